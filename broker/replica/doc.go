// Package replica owns the partitions this broker holds a replica of: for
// each one its log, its idempotent producer state, the append lock that
// makes the sequence check, the append and the state update one step, the
// high watermark, the fetches parked on it, and the replica assignment
// (leader, leader epoch, replicas, ISR, min.insync.replicas) as the last
// metadata image said.
//
// The Manager is keyed by topic-partition and is a metadata.Listener: each
// published image tells it which partitions exist and who leads them.
// Request handlers find a partition with Manager.Partition and read its
// assignment with Partition.State, one atomic load, so no broker-wide lock
// sits on the produce or fetch path.
//
// # Locks
//
//	Manager.mu            leaf: only the partition map
//	Partition.appendMu -> log.Log locks
//	Partition.waitMu      leaf: only the waiter set
//
// Slow work (mkdir, fsync, opening or deleting a log) never runs under
// Manager.mu: a partition is opened first and then put in the map, and is
// taken out of the map before its files are deleted.
package replica
