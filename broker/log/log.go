package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kobs-dev/kobs/internal/fsutil"
)

// AppendResult describes where an Append put its batches.
type AppendResult struct {
	FirstOffset    int64 // base offset assigned to the first batch
	LastOffset     int64 // last offset of the last batch
	LogAppendTime  int64 // ms when MessageTimestampType is LogAppendTime, else -1
	LogStartOffset int64
}

// OpenOptions carries what the broker knows about a partition from its
// per-log-dir checkpoint files.
type OpenOptions struct {
	LogStartOffset int64        // from the broker's log-start-offset-checkpoint; 0 if unknown
	RecoveryPoint  int64        // from recovery-point-offset-checkpoint; segments at/after it are re-scanned
	Logger         *slog.Logger // nil = discard
	// OnFlush, if set, is told how long each fsync of the log took
	// (Kafka's LogFlushStats LogFlushRateAndTimeMs).
	OnFlush func(time.Duration)
}

// Log is one partition's segment log.
//
// Contract: all methods are safe for concurrent use. Mutations (Append,
// AppendAsFollower, TruncateTo, DeleteRecordsBefore, EnforceRetention, Flush,
// MaybeFlush, SetConfig, Close, Delete) are serialised by wmu; the broker may
// still call Append under its own partition lock. Readers (Read,
// OffsetForTimestamp, MaxTimestamp) hold mu for reading only long enough to
// check bounds and pin a segment: the pin snapshots the segment's committed
// end and index entries and takes a reference on its files. The file I/O
// then runs without any lock, so a slow fetch never delays an Append. An
// Append writes the batch bytes and index entries first and publishes the
// new end position and offsets under mu afterwards, so a reader never sees a
// half-written batch. A segment deleted or a Log closed while a read is in
// flight keeps its files open (renamed to .deleted) until the read unpins it.
//
// Lock order: wmu before mu.
type Log struct {
	dir    string
	logger *slog.Logger

	wmu sync.Mutex   // serialises writers
	mu  sync.RWMutex // guards committed state below for readers

	// Written only with wmu and mu held; read with either.
	cfg    Config
	segs   []*segment // sorted by base offset; the last one is active
	closed bool

	// Written only with wmu and mu held; atomics so getters take no lock.
	logStart      atomic.Int64
	leo           atomic.Int64
	recoveryPoint atomic.Int64

	// cmu serialises Clean calls (taken before wmu); firstDirty is the
	// cleaner checkpoint: offsets below it were compacted by an earlier Clean.
	cmu        sync.Mutex
	firstDirty atomic.Int64

	unflushedSince time.Time // (wmu) time of the oldest append not yet fsynced; zero if none
	onFlush        func(time.Duration)
}

// Dir returns the partition directory.
func (l *Log) Dir() string { return l.dir }

// LogStartOffset is the first offset readers may fetch.
func (l *Log) LogStartOffset() int64 { return l.logStart.Load() }

// LogEndOffset is the next offset to be assigned.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// RecoveryPoint is the offset below which everything is fsynced.
func (l *Log) RecoveryPoint() int64 { return l.recoveryPoint.Load() }

// Config returns the current topic config.
func (l *Log) Config() Config {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cfg
}

// SetConfig applies a changed topic config; it takes effect on the next
// append, roll or retention pass. An invalid config is logged and ignored:
// callers should Validate first so the client gets INVALID_CONFIG.
func (l *Log) SetConfig(cfg Config) {
	if err := cfg.Validate(); err != nil {
		l.logger.Error("ignoring invalid log config", "err", err)
		return
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	l.cfg = cfg
	l.mu.Unlock()
}

// Size is the bytes of all .log files.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// NumSegments is the number of segments, the active one included.
func (l *Log) NumSegments() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segs)
}

func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// segmentFor returns the index of the segment that holds offset (the last
// one whose base <= offset), or -1.
func (l *Log) segmentFor(offset int64) int {
	return sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
}

// Append assigns consecutive offsets (rewrites each batch's baseOffset; with LogAppendTime also
// sets the timestamp-type attribute bit and MaxTimestamp and recomputes the CRC), writes the batches
// to the active segment (rolling first per segment.bytes/segment.ms/full index), updates .index
// every index.interval.bytes and .timeindex when the max timestamp grows, applies the flush policy.
// It does NOT recompress. Safe for concurrent use with readers.
//
// It also writes each Batch's PartitionLeaderEpoch field into Raw (unchanged
// unless the caller set it after ValidateBatches) and updates the Batch
// structs in place, so the caller sees the assigned offsets. All batches go
// to one segment, as in Kafka. A batch larger than max.message.bytes or
// segment.bytes gets ErrRecordTooLarge.
func (l *Log) Append(batches []Batch) (AppendResult, error) {
	return l.append(batches, true)
}

// AppendAsFollower appends batches that already carry offsets (replication).
// Offsets must increase and start at or after LogEndOffset (gaps are allowed,
// as after compaction on the leader); nothing in Raw is rewritten.
func (l *Log) AppendAsFollower(batches []Batch) (AppendResult, error) {
	return l.append(batches, false)
}

func (l *Log) append(batches []Batch, assign bool) (AppendResult, error) {
	if len(batches) == 0 {
		return AppendResult{}, fmt.Errorf("append to %s: no batches: %w", l.dir, ErrCorruptMessage)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return AppendResult{}, fmt.Errorf("append to %s: %w", l.dir, ErrClosed)
	}
	cfg := l.cfg
	var total int64
	for i := range batches {
		b := &batches[i]
		n := int64(len(b.Raw))
		if n < batchHeaderSize || n != int64(int32(binary.BigEndian.Uint32(b.Raw[offBatchLength:])))+logOverhead {
			return AppendResult{}, fmt.Errorf("append to %s: batch %d: length field does not match its %d bytes: %w", l.dir, i, n, ErrCorruptMessage)
		}
		if cfg.MaxMessageBytes > 0 && n > int64(cfg.MaxMessageBytes) {
			return AppendResult{}, fmt.Errorf("append to %s: batch %d of %d bytes exceeds max.message.bytes %d: %w", l.dir, i, n, cfg.MaxMessageBytes, ErrRecordTooLarge)
		}
		if n > cfg.segmentLimit() {
			return AppendResult{}, fmt.Errorf("append to %s: batch %d of %d bytes exceeds segment.bytes %d: %w", l.dir, i, n, cfg.segmentLimit(), ErrBatchLargerThanSegment)
		}
		total += n
	}

	now := cfg.now()
	res := AppendResult{LogAppendTime: -1}
	next := l.leo.Load()
	var setMax int64 = -1 // largest max timestamp of this append, for segment.ms
	for i := range batches {
		b := &batches[i]
		b.LastOffsetDelta = int32(binary.BigEndian.Uint32(b.Raw[offLastOffsetDelta:]))
		b.MaxTimestamp = int64(binary.BigEndian.Uint64(b.Raw[offMaxTimestamp:]))
		if b.LastOffsetDelta < 0 {
			return AppendResult{}, fmt.Errorf("append to %s: batch %d: lastOffsetDelta %d: %w", l.dir, i, b.LastOffsetDelta, ErrCorruptMessage)
		}
		if assign {
			b.BaseOffset = next
			binary.BigEndian.PutUint64(b.Raw[offBaseOffset:], uint64(next))
			binary.BigEndian.PutUint32(b.Raw[offLeaderEpoch:], uint32(b.PartitionLeaderEpoch))
			if cfg.logAppendTime() {
				res.LogAppendTime = now.UnixMilli()
				setLogAppendTime(b, res.LogAppendTime)
			}
		} else {
			b.BaseOffset = int64(binary.BigEndian.Uint64(b.Raw[offBaseOffset:]))
			if b.BaseOffset < next {
				return AppendResult{}, fmt.Errorf("append to %s: follower batch %d at offset %d, expected >= %d: %w", l.dir, i, b.BaseOffset, next, ErrCorruptMessage)
			}
		}
		setMax = max(setMax, b.MaxTimestamp)
		next = b.LastOffset() + 1
	}
	res.FirstOffset = batches[0].BaseOffset
	res.LastOffset = next - 1

	seg := l.active()
	if reason := l.shouldRoll(seg, cfg, total, setMax, res.FirstOffset, res.LastOffset, now); reason != "" {
		if err := l.roll(res.FirstOffset, now, reason); err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: %w", l.dir, err)
		}
		seg = l.active()
	}
	if err := l.writeBatches(seg, cfg, batches, now); err != nil {
		return AppendResult{}, fmt.Errorf("append to %s at offset %d: %w", l.dir, res.FirstOffset, err)
	}

	l.mu.Lock()
	l.leo.Store(next)
	l.mu.Unlock()
	res.LogStartOffset = l.logStart.Load()

	if l.unflushedSince.IsZero() {
		l.unflushedSince = now
	}
	if next-l.recoveryPoint.Load() >= cfg.FlushMessages || now.Sub(l.unflushedSince).Milliseconds() >= cfg.FlushMs {
		if err := l.flushLocked(); err != nil {
			// The batches are in the log and visible; only durability is
			// behind. Report it so the producer is not told "durable".
			return res, fmt.Errorf("append to %s: %w", l.dir, err)
		}
	}
	return res, nil
}

// shouldRoll mirrors Kafka's LogSegment.shouldRoll and returns why, or "".
func (l *Log) shouldRoll(seg *segment, cfg Config, size, setMaxTs, first, last int64, now time.Time) string {
	switch {
	case seg.size > 0 && seg.size+size > cfg.segmentLimit():
		return "segment.bytes"
	case seg.size > 0 && timeWaitedForRoll(seg, now, setMaxTs) > cfg.SegmentMs:
		return "segment.ms"
	case seg.idx.full(cfg.SegmentIndexBytes) || seg.tidx.full(cfg.SegmentIndexBytes):
		return "index full"
	case !seg.fitsRelative(last):
		// Relative offsets are int32 in both indexes.
		return "offset overflow"
	}
	return ""
}

// timeWaitedForRoll is Kafka's rule for segment.ms: compare the new batches'
// timestamp with the first batch's when the segment has timestamps, else the
// wall clock with the segment's creation time.
func timeWaitedForRoll(seg *segment, now time.Time, setMaxTs int64) int64 {
	if seg.firstBatchTs >= 0 && setMaxTs >= 0 {
		return setMaxTs - seg.firstBatchTs
	}
	return now.Sub(seg.created).Milliseconds()
}

// writeBatches writes the batches at the active segment's end, computes the
// index entries Kafka's LogSegment.append would add, and publishes all of it.
func (l *Log) writeBatches(seg *segment, cfg Config, batches []Batch, now time.Time) error {
	pos := seg.size
	// Batches from one ValidateBatches call are adjacent in the payload;
	// write each adjacent run with a single pwrite.
	for i := 0; i < len(batches); {
		run := batches[i].Raw
		j := i + 1
		for ; j < len(batches) && adjacent(run, batches[j].Raw); j++ {
			run = run[:len(run)+len(batches[j].Raw)]
		}
		if _, err := seg.log.WriteAt(run, pos); err != nil {
			// Cut off whatever part of the run landed so the file ends at
			// the committed size again; recovery would do it otherwise.
			if terr := seg.log.Truncate(seg.size); terr != nil {
				err = errors.Join(err, terr)
			}
			return fmt.Errorf("write segment %s: %w", seg.logPath, err)
		}
		pos += int64(len(run))
		i = j
	}

	// Index entries, following LogSegment.append.
	seg.pendIdx, seg.pendTime = seg.pendIdx[:0], seg.pendTime[:0]
	maxTs, maxTsOff := seg.maxTs, seg.maxTsOffset
	lastTs := seg.tidx.lastTs
	if seg.tidx.n == 0 {
		lastTs = -1
	}
	idxN, tidxN := seg.idx.n, seg.tidx.n
	pos = seg.size
	for i := range batches {
		b := &batches[i]
		if b.MaxTimestamp > maxTs {
			maxTs, maxTsOff = b.MaxTimestamp, b.LastOffset()
		}
		if seg.bytesSinceIndex >= int64(cfg.IndexIntervalBytes) {
			if int64(idxN+1)*indexEntrySize <= int64(cfg.SegmentIndexBytes) {
				seg.pendIdx = encodeIndexEntry(seg.pendIdx, int32(b.LastOffset()-seg.base), int32(pos))
				idxN++
			}
			if maxTs > lastTs && int64(tidxN+1)*timeIndexEntrySize <= int64(cfg.SegmentIndexBytes) {
				seg.pendTime = encodeTimeEntry(seg.pendTime, maxTs, int32(maxTsOff-seg.base))
				lastTs = maxTs
				tidxN++
			}
			seg.bytesSinceIndex = 0
		}
		pos += int64(len(b.Raw))
		seg.bytesSinceIndex += int64(len(b.Raw))
	}
	if err := seg.idx.write(seg.pendIdx); err != nil {
		return err
	}
	if err := seg.tidx.write(seg.pendTime); err != nil {
		return err
	}
	if seg.firstBatchTs < 0 && seg.size == 0 {
		seg.firstBatchTs = batches[0].MaxTimestamp
	}
	seg.lastModified = now

	l.mu.Lock()
	seg.size = pos
	seg.maxTs, seg.maxTsOffset = maxTs, maxTsOff
	seg.idx.commit(seg.pendIdx)
	seg.commitTimeEntries(seg.pendTime)
	l.mu.Unlock()
	return nil
}

// adjacent reports whether b starts right where a ends in memory.
func adjacent(a, b []byte) bool {
	return len(b) > 0 && cap(a) > len(a) && &a[:len(a)+1][len(a)] == &b[0]
}

// roll seals the active segment and starts a new one at base. The sealed
// segment is fsynced before the recovery point moves past it, so an unclean
// restart only re-scans from the new segment on (Kafka does this flush
// asynchronously; we do it inline under the write lock for simplicity).
func (l *Log) roll(base int64, now time.Time, reason string) error {
	old := l.active()
	if old.size == 0 && old.base == base {
		// The empty active segment already starts here.
		return nil
	}
	ents, err := old.sealTimeIndex()
	if err != nil {
		return fmt.Errorf("roll %s: %w", old.logPath, err)
	}
	if old.size == 0 {
		// An empty active segment whose base is behind the new offsets
		// (follower gap): replace it rather than keep an empty file.
		return l.replaceEmptyActive(base, now)
	}
	ns, err := createSegment(l.dir, base, now)
	if err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	l.mu.Lock()
	old.commitTimeEntries(ents)
	l.mu.Unlock()
	if err := l.syncFrom(l.recoveryPoint.Load()); err != nil {
		ns.close()
		os.Remove(ns.logPath)
		return fmt.Errorf("roll: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	l.mu.Lock()
	// Sealed segments are searched through the files; drop the copies.
	old.idx.mem, old.tidx.mem = nil, nil
	l.segs = append(l.segs, ns)
	// Everything up to the log end is now on disk (a follower's base may lie
	// past it, across a gap).
	l.recoveryPoint.Store(max(l.recoveryPoint.Load(), l.leo.Load()))
	l.mu.Unlock()
	l.unflushedSince = time.Time{}
	l.logger.Info("rolled segment", "offset", base, "reason", reason, "sealed_bytes", old.size)
	return nil
}

// replaceEmptyActive swaps an empty active segment for one at base.
func (l *Log) replaceEmptyActive(base int64, now time.Time) error {
	old := l.active()
	ns, err := createSegment(l.dir, base, now)
	if err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	l.mu.Lock()
	l.segs[len(l.segs)-1] = ns
	if len(l.segs) == 1 {
		l.logStart.Store(max(l.logStart.Load(), base))
	}
	l.mu.Unlock()
	if err := old.discard(); err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	return syncDir(l.dir)
}

// syncFrom fsyncs every segment that may hold offsets >= from.
func (l *Log) syncFrom(from int64) error {
	for i, s := range l.segs {
		if i+1 < len(l.segs) && l.segs[i+1].base <= from {
			continue
		}
		if err := s.sync(); err != nil {
			return err
		}
	}
	return nil
}

// Flush fsyncs everything and moves the recovery point to the log end.
func (l *Log) Flush() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return fmt.Errorf("flush %s: %w", l.dir, ErrClosed)
	}
	return l.flushLocked()
}

// MaybeFlush applies flush.ms; the broker calls it periodically.
func (l *Log) MaybeFlush() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return fmt.Errorf("flush %s: %w", l.dir, ErrClosed)
	}
	if l.unflushedSince.IsZero() || l.cfg.now().Sub(l.unflushedSince).Milliseconds() < l.cfg.FlushMs {
		return nil
	}
	return l.flushLocked()
}

func (l *Log) flushLocked() error {
	leo := l.leo.Load()
	start := time.Now()
	if err := l.syncFrom(l.recoveryPoint.Load()); err != nil {
		return fmt.Errorf("flush %s: %w", l.dir, err)
	}
	if l.onFlush != nil {
		l.onFlush(time.Since(start))
	}
	l.mu.Lock()
	l.recoveryPoint.Store(leo)
	l.mu.Unlock()
	l.unflushedSince = time.Time{}
	return nil
}

// cleanShutdownFile marks a partition directory whose Log was closed cleanly.
// Kafka keeps one .kafka_cleanshutdown per log dir; we keep one per partition
// so the package needs nothing from the broker to decide what to re-scan.
const cleanShutdownFile = ".kobs_cleanshutdown"

// Close flushes, writes the final time index entry and the clean-shutdown
// marker, and closes all files. Closing twice is a no-op.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return nil
	}
	act := l.active()
	ents, err := act.sealTimeIndex()
	if err == nil {
		l.mu.Lock()
		act.commitTimeEntries(ents)
		l.mu.Unlock()
		err = l.flushLocked()
	}
	if err == nil {
		// Only a fully flushed log may claim a clean shutdown.
		err = fsutil.WriteFileAtomic(filepath.Join(l.dir, cleanShutdownFile), fmt.Appendf(nil, "%d\n", l.leo.Load()))
	}
	l.mu.Lock()
	l.closed = true
	segs := l.segs
	l.mu.Unlock()
	// Files close now, or when the last in-flight reader unpins them.
	for _, s := range segs {
		err = errors.Join(err, s.release())
	}
	if err != nil {
		return fmt.Errorf("close log %s: %w", l.dir, err)
	}
	return nil
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	var err error
	if !l.closed {
		l.mu.Lock()
		l.closed = true
		segs := l.segs
		l.mu.Unlock()
		for _, s := range segs {
			err = errors.Join(err, s.release())
		}
	}
	if rerr := os.RemoveAll(l.dir); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	return nil
}

// syncDir fsyncs a directory so created, renamed and removed entries survive
// a crash.
func syncDir(dir string) error { return fsutil.SyncDir(dir) }
