package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// OffsetCommit: v0-8
//
// Behavior:
//   - Offsets are appended to the group's __consumer_offsets partition as
//     one batch (OffsetCommitKey v1, OffsetCommitValue v3) and acknowledged
//     by callback once the batch is committed (below the partition's high
//     watermark); no handler waits for it.
//   - Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION, metadata
//     longer than offset.metadata.max.bytes (4096) OFFSET_METADATA_TOO_LARGE;
//     the rest of the request is still committed.
//   - Group checks as Kafka's ClassicGroup.validateOffsetCommit: generation
//     -1 without member id commits to an empty (or new, "simple") group;
//     otherwise UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID,
//     REBALANCE_IN_PROGRESS while the group awaits its assignment. A commit
//     counts as a heartbeat.
//
// Version notes: v1 generation and member id (and a commit timestamp that
// Kafka, and kobs, ignore); v2-v4 retention time: when set, the record is
// OffsetCommitValue v1 with an expire timestamp, as Kafka writes it; v5
// drops it; v6 leader epoch; v7 group.instance.id; v8 flexible. v9+ belong
// to the KIP-848 consumer protocol and are not advertised.
func (b *Broker) handleOffsetCommit(r *wire.Request) {
	b.groups.OffsetCommit(r.Msg.(*kmsg.OffsetCommitRequest), func(resp *kmsg.OffsetCommitResponse) { respond(r, resp) })
}
