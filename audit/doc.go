// Package audit answers "did every message produced in a time window get
// consumed, once, by every group that should?" for any Kafka-protocol
// cluster, with or without instrumented clients.
//
// # Tiers
//
// Records are counted per topic and per bucket of their timestamp (default
// one minute) in up to three tiers:
//
//   - producer: an audit Hook on a franz-go producer (kgo.WithHooks) counts
//     acknowledged records and their key+value bytes;
//   - consumer: an audit Hook on a consumer counts polled records per group
//     (re-reads included, so duplicates are visible);
//   - broker: the reconciler reads the log itself. At each bucket boundary T
//     it asks ListOffsets for the first offset whose timestamp is at or after
//     T; a bucket holds the records between the offsets of its two
//     boundaries. No client needs a hook for this tier, nor for the consumed
//     tier of a group, which comes from its committed offsets.
//
// # Flush records
//
// A hook flushes what it counted since its last flush to the audit topic
// (__kobs_audit) every flush interval (default: the bucket width) and on
// Close, as one JSON Flush record keyed by its instance id (a random id per
// hook, so per-instance order is kept on one partition). Each flush carries
// (instance, seq): the reconciler applies a seq once, so a flush re-sent
// after a failed acknowledgement, or duplicated on the topic, is not counted
// twice, and a seq that never arrives is a lost flush. The hook never blocks
// or fails the audited client: counting is a map update under a mutex,
// flushes go through the hook's own client with TryProduce, unacknowledged
// flushes are re-sent with the same seq, and beyond MaxPendingFlushes the
// oldest are dropped and counted in Stats.
//
// Clock skew: a record whose timestamp lies more than the hook's Window
// (default 7 days back, 5 minutes ahead) from its clock is counted in the
// labelled OutOfWindow bucket instead of a wrong bucket; the reconciler does
// the same with counts for buckets older than its retention or more than
// MaxFuture ahead of its clock.
//
// # Reconciliation rules
//
// A bucket [start, end) is judged after end + grace, and not before every
// live audited producer of the topic has flushed past end. Per topic and
// bucket:
//
//   - expected = broker count, or the producers' count when the broker
//     boundaries were not sampled;
//   - producer vs broker: complete when equal; not_stored when audited
//     producers had more records acknowledged than the log holds for the
//     bucket; unaudited when the log holds more (producers without the hook,
//     or CreateTime reordering at a boundary, below);
//   - per group, reached = the bucket's records below the group's committed
//     offset on each partition, minus those the group lost to retention;
//     missing = expected - reached (without committed offsets, expected -
//     consumed); duplicates = consumed - reached for audited groups (re-read
//     records); a group without the hook gets no duplicate count;
//   - lost to retention: at each sample, offsets between a group's previous
//     committed offset and the current log start offset were deleted before
//     the group reached them. This is exact when the group is idle across
//     the deletion and an upper bound within one sample interval otherwise;
//   - status: complete, missing, duplicated, late (missing when judged,
//     complete later), uncertain (an audited producer died between flushes:
//     no Final flush and none for two flush intervals; flushes were lost; or
//     no tier counted the bucket; an audited consumer that died makes only
//     its group uncertain), pending (not yet judged).
//
// A bucket is judged again whenever new counts for it arrive, a group
// appears on the topic, or an instance dies; complete and late buckets are
// otherwise settled and not re-evaluated.
//
// # Broker tier and timestamps
//
// With message.timestamp.type=LogAppendTime the boundary offsets are exact:
// the log is ordered by time. The producer hook still buckets by the
// timestamp the client stamped (franz-go does not hand the log append time
// back with the acknowledgement), so on such topics producer vs broker may
// differ by the records produced within one produce latency of a boundary;
// groups are judged against the broker tier, and consumers see the append
// time. With CreateTime (the default) the boundaries are
// near-exact: ListOffsets by timestamp returns the first offset whose
// timestamp is at or after T in log order, so a record stamped before T
// that was appended after a record stamped at or after T (out-of-order
// timestamps across producers, or a retried batch) is counted in the later
// bucket by the broker tier, while the producer hook counts it in its own.
// The difference shows as not_stored in one bucket and unaudited in the
// next, never as a lost record. A boundary answered with the end offset (no
// record at or after T yet) is only kept once T + grace passed, so records
// stamped just before T but still in flight are counted in their bucket. A
// boundary is read once, as soon as it passed, and kept: later retention
// cannot change it.
//
// # State
//
// The reconciler's state (counts per bucket, applied seqs per instance,
// boundary offsets, lost ranges, the last committed offsets, and the
// audit-topic offsets all of this covers) lives in memory and in
// <state dir>/state.json, written atomically every SaveInterval and on a
// clean stop. It reads the audit topic with direct partition consumption
// from the saved offsets, not as a group, so a restart, even after a crash
// between two saves, re-applies exactly the flushes after the saved state:
// nothing is counted twice and nothing is lost. Offset history cannot be
// re-read from the cluster once retention deleted it, which is why the state
// is a file rather than rebuilt from the audit topic.
//
// # Limits
//
// The state grows with topics x (groups + producers) x retained buckets
// (about 45 bytes per count in state.json; 1,000 topics x 100 groups x 10
// buckets is 45 MB). New partitions of the audit topic are read after a
// restart. A group is known by its committed offsets or its hook: a group
// that neither commits nor carries the hook is invisible, and one that only
// carries the hook is judged by its polled count, which cannot tell re-reads
// from new records when both happen in a bucket. A group that rewinds its
// committed offset below records it consumed shows them missing until it
// commits past them again. A group that first appears (or resets to latest)
// is expected to have consumed every bucket still retained.
package audit
