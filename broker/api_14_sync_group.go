package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// SyncGroup: v0-5
//
// Behavior:
//   - In CompletingRebalance followers are parked until the leader sends the
//     assignment; it is written to __consumer_offsets (GroupMetadataValue)
//     before anyone gets it, then every member receives its own and the
//     group is Stable. Members the leader left out get an empty assignment.
//   - In a Stable group a member gets its current assignment at once; during
//     PreparingRebalance REBALANCE_IN_PROGRESS.
//   - Errors as Kafka: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
//     FENCED_INSTANCE_ID, INCONSISTENT_GROUP_PROTOCOL (v5 protocol
//     type/name not the group's), INVALID_GROUP_ID for an empty group id.
//
// Version notes: v3 group.instance.id; v4 flexible; v5 protocol type and
// name in request and response.
func (b *Broker) handleSyncGroup(r *wire.Request) {
	req := r.Msg.(*kmsg.SyncGroupRequest)
	b.groups.SyncGroup(req, func(resp *kmsg.SyncGroupResponse) { respond(r, resp) })
}
