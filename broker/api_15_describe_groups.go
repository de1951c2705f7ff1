package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// DescribeGroups: v0-5
//
// Behavior:
//   - State (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead),
//     protocol type, and members with client id and host; the protocol
//     name, member metadata and assignments only for a Stable group, as in
//     Kafka. Unknown groups are described as Dead with no error.
//   - Authorized operations (v3+) are READ, DELETE, DESCRIBE when asked
//     (kobs has no authorizer), else Kafka's "not requested" value.
//
// Version notes: v3 authorized operations; v4 group.instance.id; v5
// flexible. v6 (GROUP_ID_NOT_FOUND for unknown groups) is not advertised.
func (b *Broker) handleDescribeGroups(r *wire.Request) {
	respond(r, b.groups.DescribeGroups(r.Msg.(*kmsg.DescribeGroupsRequest)))
}
