package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// DeleteGroups: v0-2
//
// Behavior:
//   - Deletes empty groups: tombstones for every committed offset and for
//     the group metadata are appended, then the group is gone. A group with
//     members gets NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND;
//     other groups in the request are unaffected.
//
// Version notes: v1 throttle semantics only; v2 flexible.
func (b *Broker) handleDeleteGroups(r *wire.Request) {
	respond(r, b.groups.DeleteGroups(r.Msg.(*kmsg.DeleteGroupsRequest)))
}
