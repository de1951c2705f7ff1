// Package group is kobs's classic group coordinator (the consumer group
// protocol of Kafka before KIP-848) and the committed-offset store behind
// it. It owns:
//
//   - the per-group state machine (Empty, PreparingRebalance,
//     CompletingRebalance, Stable, Dead) with generations, member ids
//     (including the MEMBER_ID_REQUIRED round trip of JoinGroup v4+),
//     session, rebalance and initial-rebalance-delay timers, static
//     membership (group.instance.id, FENCED_INSTANCE_ID) and protocol
//     selection; assignment itself stays client-side, the leader gets every
//     member's metadata;
//   - the offsets cache and its persistence in __consumer_offsets: every
//     offset commit and every group metadata change is appended to the
//     group's partition (abs(javaHashCode(groupId)) % partitions) as a v2
//     record batch whose keys and values are Kafka's own record schemas
//     (OffsetCommitKey v1, OffsetCommitValue v3 (v1 with an expire
//     timestamp), GroupMetadataKey v2, GroupMetadataValue v3, null value =
//     tombstone), so Kafka tools that read the topic (Burrow,
//     kafka-console-consumer with the offsets formatter) read ours;
//   - loading: on start each partition is replayed from its log start into
//     the cache (later records win, tombstones delete); until a partition is
//     loaded its groups answer COORDINATOR_LOAD_IN_PROGRESS.
//
// The package speaks kmsg requests and responses so the broker's handlers
// stay thin, but knows nothing of sockets or partition logs: it appends and
// reads raw batches through the Storage interface, and time comes from a
// Clock so tests can drive the timers.
//
// # Concurrency
//
// Groups are sharded by their __consumer_offsets partition; each shard has
// one mutex that serialises every operation on its groups, its timers'
// callbacks and its appends, so the order of records in a partition is the
// order in which the cache changed (what makes replay reproduce the cache).
// Responses of parked JoinGroup/SyncGroup requests are delivered through
// callbacks that run after the shard lock is released. Appends return once
// the batch is in the local log; what a client acts on (an offset commit,
// the leader's assignment, a static member's new id) is answered only when
// Storage reports the batch committed (Kafka's appendForGroup, acks=-1),
// and the callback takes the shard lock again to check that the group has
// not moved on meanwhile.
package group
