package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// ListGroups: v0-4
//
// Behavior:
//   - Lists every group this broker coordinates (all of them), sorted by
//     id, with protocol type ("" for groups that only commit offsets).
//   - v4 filters by state, case-insensitively.
//   - If a __consumer_offsets partition is still loading the error is
//     COORDINATOR_LOAD_IN_PROGRESS and the loaded groups are listed.
//
// Version notes: v3 flexible; v4 states filter and state. v5 (types filter)
// is not advertised.
func (b *Broker) handleListGroups(r *wire.Request) {
	respond(r, b.groups.ListGroups(r.Msg.(*kmsg.ListGroupsRequest)))
}
