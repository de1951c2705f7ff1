package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// JoinGroup: v0-9
//
// Behavior:
//   - Classic group membership (broker/group): the request is parked, without
//     holding a handler goroutine, until the rebalance completes; then every
//     member learns the generation and the leader gets all members' metadata
//     to run the client-side assignor (range, roundrobin, sticky,
//     cooperative-sticky: the broker only picks the protocol all members
//     support, by vote).
//   - A group starting from Empty waits group.initial.rebalance.delay.ms
//     (extended while members keep arriving, up to the rebalance timeout).
//   - Session timeouts outside group.min/max.session.timeout.ms get
//     INVALID_SESSION_TIMEOUT; an empty group id INVALID_GROUP_ID; a
//     protocol type or protocol set the group cannot share
//     INCONSISTENT_GROUP_PROTOCOL; unknown member ids UNKNOWN_MEMBER_ID;
//     a stale member id of a static member FENCED_INSTANCE_ID.
//
// Version notes: v0 has no rebalance timeout (the session timeout is used);
// v4 makes a new dynamic member rejoin with the id we hand out
// (MEMBER_ID_REQUIRED, KIP-394); v5 adds group.instance.id (static
// membership, KIP-345); v6 flexible; v7 protocol type in the response; v8
// reason; v9 SkipAssignment for a static leader that rejoins (KIP-814).
func (b *Broker) handleJoinGroup(r *wire.Request) {
	req := r.Msg.(*kmsg.JoinGroupRequest)
	b.groups.JoinGroup(req, clientOf(r), func(resp *kmsg.JoinGroupResponse) { respond(r, resp) })
}
