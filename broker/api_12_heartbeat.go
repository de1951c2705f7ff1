package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// Heartbeat: v0-4
//
// Behavior:
//   - Keeps a member's session alive. REBALANCE_IN_PROGRESS while the group
//     prepares a rebalance (the member must rejoin), UNKNOWN_MEMBER_ID,
//     ILLEGAL_GENERATION, FENCED_INSTANCE_ID as in Kafka; members that stop
//     heartbeating for their session timeout are removed and the group
//     rebalances.
//
// Version notes: v3 group.instance.id; v4 flexible.
func (b *Broker) handleHeartbeat(r *wire.Request) {
	respond(r, b.groups.Heartbeat(r.Msg.(*kmsg.HeartbeatRequest)))
}
