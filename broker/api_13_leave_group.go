package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// LeaveGroup: v0-5
//
// Behavior:
//   - Removes members at once (no session timeout wait) and rebalances the
//     rest. From v3 a batch of members, each by member id or, for
//     administrative removal of static members, by group.instance.id alone;
//     each gets its own error code.
//
// Version notes: v0-v2 one member id, errors at the top level; v3 batches
// with group.instance.id (KIP-345); v4 flexible; v5 per-member reason.
func (b *Broker) handleLeaveGroup(r *wire.Request) {
	respond(r, b.groups.LeaveGroup(r.Msg.(*kmsg.LeaveGroupRequest)))
}
