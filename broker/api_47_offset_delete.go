package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// OffsetDelete: v0
//
// Behavior:
//   - Deletes (tombstones) a group's committed offsets for the given
//     partitions. Partitions of topics the group's members consume get
//     GROUP_SUBSCRIBED_TO_TOPIC; unknown topics UNKNOWN_TOPIC_OR_PARTITION.
//   - Top-level errors: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP for an active
//     group whose protocol type is not "consumer" (kobs cannot tell what
//     it consumes), INVALID_GROUP_ID for an empty group id.
//
// Version notes: only v0 exists.
func (b *Broker) handleOffsetDelete(r *wire.Request) {
	respond(r, b.groups.OffsetDelete(r.Msg.(*kmsg.OffsetDeleteRequest)))
}
