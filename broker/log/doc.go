// Package log owns a partition's on-disk log as Kafka lays it out (book ch. 5):
// a directory of segments named by their 20-digit base offset, each a .log file
// of v2 record batches stored as received (only the base offset is rewritten),
// a sparse .index (relative offset -> file position) and a .timeindex
// (timestamp -> relative offset). It rolls segments, applies retention, keeps
// the log start offset, and recovers a torn tail after an unclean stop.
//
// # Files
//
// A partition directory holds, per segment, %020d.log, %020d.index (8-byte
// big-endian entries: int32 offset relative to the base, int32 byte position)
// and %020d.timeindex (12-byte entries: int64 timestamp, int32 relative
// offset), plus .kobs_cleanshutdown while the log is closed cleanly. The
// entry rules follow Kafka's LogSegment.append: once index.interval.bytes or
// more were written since the last entry, the next batch gets an .index entry
// (its last offset, its start position) and, if the segment's max timestamp
// grew, a .timeindex entry (max timestamp, last offset of the batch that set
// it). Sealing a segment (roll, Close) writes a final .timeindex entry so the
// largest timestamp survives restarts. Tools that read Kafka's files read ours.
//
// Unlike Kafka, index files are not preallocated to segment.index.bytes and
// mmapped: entries are appended with pwrite, the file length is always a whole
// number of entries, and nothing is trimmed on roll or close. "Index full"
// (a roll reason) means the next entry would pass segment.index.bytes. The
// active segment also keeps its entries in memory for tail fetches; sealed
// segments binary-search their files with pread.
//
// # Concurrency
//
// A Log is safe for concurrent use. Mutations are serialised by a write
// mutex. Readers take an RWMutex only to pin segments (a snapshot of the
// committed end and index entries plus a file reference) and do their I/O
// unlocked; an Append publishes its end position only after the bytes and
// index entries are written, so readers never see half a batch. Deleted
// segments are renamed to .deleted at once and unlinked when the last reader
// unpins them, like Kafka's delayed delete. Lock order: write mutex, then
// reader lock.
//
// # Durability and recovery
//
// flush.messages and flush.ms decide when Append/MaybeFlush fsync; a roll
// fsyncs the sealed segment and moves the recovery point to the new segment
// (synchronously, where Kafka schedules it). Close flushes and writes the
// clean-shutdown marker; Open removes it. On Open the active segment is always
// re-scanned; without a marker every segment that may hold offsets at or after
// OpenOptions.RecoveryPoint is re-scanned; segments with a missing or
// inconsistent index are re-scanned too. A re-scan truncates at the first
// partial or invalid batch (length, magic, CRC, offsets going backwards) and
// rebuilds both indexes; segments after a truncated one are deleted, as Kafka
// does.
//
// # Compaction
//
// Clean (cleaner.go) compacts a cleanup.policy=compact log as Kafka's log
// cleaner does: a key -> last offset map over the dirty section (from the
// cleaner checkpoint, CleanerCheckpoint, to the active segment, held back by
// min.compaction.lag.ms), then every non-active segment below the mapped end
// is rewritten in groups that fit segment.bytes, keeping per key only its
// last record. It runs when the dirty share of the bytes exceeds
// min.cleanable.dirty.ratio or max.compaction.lag.ms forces it. Offsets
// never move: a rewritten batch keeps its base offset, lastOffsetDelta,
// producer fields and codec, so cleaned batches may hold fewer records than
// lastOffsetDelta+1, or none (an empty header kept for a producer's last
// batch and for each group's last batch). Use SplitStored, not
// ValidateBatches, to split what Read returns. Tombstones get a KIP-534
// delete horizon (attribute 0x40, firstTimestamp = clean time +
// delete.retention.ms) on their first clean and are dropped by a clean after
// it. Null-key records are dropped; CheckKeys lets the broker refuse them at
// produce. A group is written as .cleaned files, renamed to .swap (the .log
// last: the commit point), and swapped in under the write lock: the old
// files become .deleted and stay readable by pinned readers. Open completes
// a swap a crash interrupted (the replaced segments are those whose base
// lies within the swap's offsets) and drops .cleaned files. The broker
// persists CleanerCheckpoint in cleaner-offset-checkpoint and restores it
// with SetCleanerCheckpoint. Without cleanup.policy=delete, EnforceRetention
// applies neither retention.ms nor retention.bytes.
//
// Errors are the sentinels in errors.go wrapped with context; the wire layer
// maps them to Kafka error codes.
package log
