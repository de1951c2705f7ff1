package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// OffsetFetch: v0-8
//
// Behavior:
//   - Returns committed offsets from the coordinator's cache (loaded from
//     __consumer_offsets on start); partitions without a commit get offset
//     -1, leader epoch -1 and empty metadata, unknown groups likewise.
//   - Null topics (v2+) returns every committed offset of the group.
//   - While the group's partition loads: COORDINATOR_LOAD_IN_PROGRESS.
//   - RequireStable (v7) needs no waiting: kobs has no pending
//     transactional offsets.
//
// Version notes: v0 read ZooKeeper offsets in Kafka; kobs answers it from
// the same store as v1. v0-v1 carry errors per partition, v2-v7 at the top
// level; v5 leader epoch; v6 flexible; v8 batches groups. v9+ (KIP-848
// member epochs) are not advertised.
func (b *Broker) handleOffsetFetch(r *wire.Request) {
	respond(r, b.groups.OffsetFetch(r.Msg.(*kmsg.OffsetFetchRequest)))
}
