package log

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
)

// Open opens (creating if missing) the partition log in dir and recovers it.
//
// Recovery, after Kafka's LogLoader:
//   - a .log.swap file is a compacted segment whose swap a crash
//     interrupted: the segments it replaces are deleted and it takes their
//     place (its indexes are rebuilt), see completeSwaps;
//   - stray .deleted/.cleaned/.swap files (an interrupted delete or
//     compaction) and index files without a .log are removed;
//   - the clean-shutdown marker written by Close is consumed. With it, only
//     the active segment is re-scanned; without it, every segment that may
//     hold offsets >= opts.RecoveryPoint is (all of them when it is 0);
//   - any other segment whose .index or .timeindex is missing or fails its
//     sanity check is re-scanned too;
//   - a re-scan reads batches from the start, stops at the first partial
//     batch, bad length, wrong magic, bad CRC or offset going backwards,
//     truncates the file there (logging a Warn) and rebuilds both indexes. When
//     a segment other than the last was truncated, the segments after it are
//     deleted, as Kafka does, because they follow a hole;
//   - the log start offset is max(opts.LogStartOffset, first base offset);
//     if it lies past the log end, the log is emptied and restarted there.
func Open(dir string, cfg Config, opts OpenOptions) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{dir: dir, logger: logger.With("dir", dir), cfg: cfg, onFlush: opts.OnFlush}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	bases, err := l.cleanDir()
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	clean, err := consumeCleanShutdown(dir)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	if err := l.loadSegments(bases, clean, opts.RecoveryPoint); err != nil {
		for _, s := range l.segs {
			s.close()
		}
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	if err := l.initOffsets(clean, opts); err != nil {
		for _, s := range l.segs {
			s.close()
		}
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l.logger.Debug("opened log", "offset", l.leo.Load(), "log_start", l.logStart.Load(),
		"segments", len(l.segs), "clean", clean)
	return l, nil
}

// cleanDir removes leftovers of interrupted operations and returns the base
// offsets of the .log files, sorted.
func (l *Log) cleanDir() ([]int64, error) {
	if err := l.completeSwaps(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	logs := map[int64]bool{}
	var indexes []string
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		switch {
		case strings.HasSuffix(name, deletedSuffix), strings.HasSuffix(name, cleanedSuffix),
			strings.HasSuffix(name, swapSuffix), strings.HasSuffix(name, ".tmp"):
			l.logger.Info("removing stray file", "file", name)
			if err := os.Remove(l.path(name)); err != nil {
				return nil, fmt.Errorf("remove stray %s: %w", name, err)
			}
		case strings.HasSuffix(name, logSuffix):
			if base, ok := parseSegmentName(name, logSuffix); ok {
				logs[base] = true
			}
		case strings.HasSuffix(name, indexSuffix), strings.HasSuffix(name, timeIndexSuffix):
			indexes = append(indexes, name)
		}
	}
	for _, name := range indexes {
		base, ok := parseSegmentName(name, indexSuffix)
		if !ok {
			base, ok = parseSegmentName(name, timeIndexSuffix)
		}
		if ok && !logs[base] {
			l.logger.Info("removing index without segment", "file", name)
			if err := os.Remove(l.path(name)); err != nil {
				return nil, fmt.Errorf("remove orphan index %s: %w", name, err)
			}
		}
	}
	bases := make([]int64, 0, len(logs))
	for b := range logs {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	return bases, nil
}

func (l *Log) path(name string) string { return l.dir + string(os.PathSeparator) + name }

// consumeCleanShutdown reports whether the marker existed and removes it, so
// a crash from now on is seen as unclean by the next Open.
func consumeCleanShutdown(dir string) (bool, error) {
	p := dir + string(os.PathSeparator) + cleanShutdownFile
	err := os.Remove(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("remove clean-shutdown marker: %w", err)
	}
	return true, syncDir(dir)
}

func (l *Log) loadSegments(bases []int64, clean bool, recoveryPoint int64) error {
	now := l.cfg.now()
	for i, base := range bases {
		s, err := openSegment(l.dir, base, now)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, s)
		last := i == len(bases)-1
		nextBase := int64(-1)
		if !last {
			nextBase = bases[i+1]
		}
		// Offsets in this segment are [base, nextBase); it needs a re-scan
		// when it may hold unflushed offsets.
		rescan := last || (!clean && nextBase > recoveryPoint)
		if !rescan {
			if err := s.loadSealed(nextBase - base - 1); err != nil {
				l.logger.Warn("rebuilding index", "offset", base, "err", err)
				rescan = true
			}
		}
		if !rescan {
			continue
		}
		truncated, err := l.recoverSegment(s, last)
		if err != nil {
			return err
		}
		if truncated && !last {
			// Kafka deletes everything after a truncated segment: the
			// offsets there follow data that no longer exists.
			for _, b := range bases[i+1:] {
				l.logger.Warn("deleting segment after a truncated one", "offset", b)
				if err := removeSegmentFiles(l.dir, b); err != nil {
					return err
				}
			}
			break
		}
	}
	return nil
}

// removeSegmentFiles deletes a segment that was never opened.
func removeSegmentFiles(dir string, base int64) error {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := os.Remove(segmentPath(dir, base, suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete segment %d: %w", base, err)
		}
	}
	return nil
}

// initOffsets derives log start, log end and recovery point after loading.
func (l *Log) initOffsets(clean bool, opts OpenOptions) error {
	now := l.cfg.now()
	if len(l.segs) == 0 {
		s, err := createSegment(l.dir, max(opts.LogStartOffset, 0), now)
		if err != nil {
			return err
		}
		l.segs = []*segment{s}
		if err := syncDir(l.dir); err != nil {
			return err
		}
	}
	act := l.active()
	if act.idx.mem == nil {
		// The active segment searches its indexes in memory.
		if err := errors.Join(act.idx.loadMem(), act.tidx.loadMem()); err != nil {
			return err
		}
	}
	leo := act.nextOffset
	logStart := max(opts.LogStartOffset, l.segs[0].base)
	if logStart > leo {
		// Kafka's truncateFullyAndStartAt: the checkpoint says data up to
		// logStart was deleted, so nothing we hold is readable anyway.
		l.logger.Warn("log start offset past log end, emptying log", "offset", logStart, "log_end", leo)
		return l.truncateFully(logStart)
	}
	l.leo.Store(leo)
	l.logStart.Store(logStart)
	rp := leo
	if !clean {
		rp = min(max(opts.RecoveryPoint, 0), leo)
	}
	l.recoveryPoint.Store(rp)
	if rp < leo {
		// Data below the log end may not be on disk yet; let flush.ms start
		// counting now.
		l.unflushedSince = now
	}
	return nil
}

// scanState is what a re-scan of one segment learns.
type scanState struct {
	valid       int64 // bytes of whole, valid batches
	next        int64 // offset after the last valid batch
	maxTs       int64
	maxTsOffset int64
	firstTs     int64
	sinceIndex  int64
	idx, tidx   []byte // rebuilt entries
}

// recoverSegment re-scans s, truncates an invalid tail and rebuilds the
// indexes. It returns whether bytes were cut.
func (l *Log) recoverSegment(s *segment, active bool) (bool, error) {
	st, reason, err := scanSegment(s, s.size, l.cfg)
	if err != nil {
		return false, err
	}
	truncated := st.valid < s.size
	if truncated {
		l.logger.Warn("truncating invalid data at the end of a segment",
			"offset", st.next, "segment", s.base, "position", st.valid,
			"bytes", s.size-st.valid, "reason", reason)
		if err := s.log.Truncate(st.valid); err != nil {
			return false, fmt.Errorf("truncate segment %s: %w", s.logPath, err)
		}
		s.size = st.valid
	}
	return truncated, s.applyScan(st, active)
}

// applyScan rewrites both indexes from a scan and takes over its state.
func (s *segment) applyScan(st scanState, active bool) error {
	if err := s.idx.reset(st.idx, active); err != nil {
		return err
	}
	if err := s.tidx.reset(st.tidx, active); err != nil {
		return err
	}
	if n := len(st.idx); n > 0 {
		s.idx.lastRel = int32(binary.BigEndian.Uint32(st.idx[n-indexEntrySize:]))
	}
	s.tidx.lastTs, s.tidx.lastRel = -1, 0
	if n := len(st.tidx); n > 0 {
		s.tidx.lastTs = int64(binary.BigEndian.Uint64(st.tidx[n-timeIndexEntrySize:]))
		s.tidx.lastRel = int32(binary.BigEndian.Uint32(st.tidx[n-4:]))
	}
	s.maxTs, s.maxTsOffset = st.maxTs, st.maxTsOffset
	s.firstBatchTs = st.firstTs
	s.bytesSinceIndex = st.sinceIndex
	s.nextOffset = st.next
	s.size = st.valid
	return nil
}

// scanSegment reads every batch of s in [0, limit) and validates it like
// Kafka's LogSegment.recover (size, magic, CRC, offsets in range), rebuilding
// index entries with the same rule as Append. It returns the state up to the
// first invalid batch and why it stopped there. Only I/O errors are errors.
func scanSegment(s *segment, limit int64, cfg Config) (scanState, string, error) {
	st := scanState{next: s.base, maxTs: -1, maxTsOffset: s.base, firstTs: -1}
	r := bufio.NewReaderSize(io.NewSectionReader(s.log, 0, limit), 256<<10)
	var hdr [batchHeaderSize]byte
	var body []byte
	lastTs := int64(-1)
	for {
		if st.valid == limit {
			return st, "", nil
		}
		if limit-st.valid < batchHeaderSize {
			return st, "partial batch header", nil
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return st, "", fmt.Errorf("scan segment %s at %d: %w", s.logPath, st.valid, err)
		}
		b := parseHeader(hdr[:])
		size := int64(b.BatchLength) + logOverhead
		switch {
		case b.Magic != 2:
			return st, fmt.Sprintf("magic %d", b.Magic), nil
		case b.BatchLength < minBatchLength:
			return st, fmt.Sprintf("batch length %d", b.BatchLength), nil
		case size > limit-st.valid:
			return st, "partial batch", nil
		case b.BaseOffset < st.next || b.LastOffsetDelta < 0 || !s.fitsRelative(b.LastOffset()):
			return st, fmt.Sprintf("offsets %d..%d do not follow %d", b.BaseOffset, b.LastOffset(), st.next), nil
		}
		bodyLen := int(size - batchHeaderSize)
		if cap(body) < bodyLen {
			body = make([]byte, bodyLen)
		}
		body = body[:bodyLen]
		if _, err := io.ReadFull(r, body); err != nil {
			return st, "", fmt.Errorf("scan segment %s at %d: %w", s.logPath, st.valid, err)
		}
		crc := crc32.Update(crc32.Checksum(hdr[offAttributes:], crcTable), crcTable, body)
		if crc != b.CRC {
			return st, fmt.Sprintf("crc %08x, computed %08x", b.CRC, crc), nil
		}

		// Same index rule as Log.writeBatches.
		if b.MaxTimestamp > st.maxTs {
			st.maxTs, st.maxTsOffset = b.MaxTimestamp, b.LastOffset()
		}
		if st.sinceIndex >= int64(cfg.IndexIntervalBytes) {
			if int64(len(st.idx)+indexEntrySize) <= int64(cfg.SegmentIndexBytes) {
				st.idx = encodeIndexEntry(st.idx, int32(b.LastOffset()-s.base), int32(st.valid))
			}
			if st.maxTs > lastTs && int64(len(st.tidx)+timeIndexEntrySize) <= int64(cfg.SegmentIndexBytes) {
				st.tidx = encodeTimeEntry(st.tidx, st.maxTs, int32(st.maxTsOffset-s.base))
				lastTs = st.maxTs
			}
			st.sinceIndex = 0
		}
		if st.firstTs < 0 && st.valid == 0 {
			st.firstTs = b.MaxTimestamp
		}
		st.valid += size
		st.sinceIndex += size
		st.next = b.LastOffset() + 1
	}
}

// completeSwaps finishes compactions that a crash interrupted after their
// commit point (Kafka's LogLoader does the same with .swap segments). Clean
// renames a group's .log.cleaned to .log.swap only once the file is whole and
// fsynced, and its last batch is always the last batch of the group it
// replaces, so the replaced segments are exactly the .log files whose base
// lies in [swap base, swap's last offset]. They are deleted and the swap
// becomes the segment; its indexes are removed so loadSegments rebuilds them.
func (l *Log) completeSwaps() error {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var logs, swaps []int64
	for _, e := range ents {
		if base, ok := parseSegmentName(e.Name(), logSuffix); ok {
			logs = append(logs, base)
		}
		if base, ok := parseSegmentName(e.Name(), logSuffix+swapSuffix); ok {
			swaps = append(swaps, base)
		}
	}
	for _, base := range swaps {
		swap := segmentPath(l.dir, base, logSuffix+swapSuffix)
		last, whole, err := lastBatchOffset(swap, base)
		if err != nil {
			return fmt.Errorf("complete swap %s: %w", swap, err)
		}
		if !whole || last < base {
			// Clean fsyncs a swap before naming it, and it always holds
			// its group's last batch: this one is not ours to trust.
			l.logger.Warn("removing invalid swap file", "file", swap)
			if err := os.Remove(swap); err != nil {
				return fmt.Errorf("remove invalid swap %s: %w", swap, err)
			}
			continue
		}
		for _, b := range logs {
			if b >= base && b <= last {
				l.logger.Info("deleting segment replaced by a cleaned one", "offset", b, "cleaned", base)
				if err := removeSegmentFiles(l.dir, b); err != nil {
					return fmt.Errorf("complete swap %s: %w", swap, err)
				}
			}
		}
		if err := removeSegmentFiles(l.dir, base); err != nil {
			return fmt.Errorf("complete swap %s: %w", swap, err)
		}
		if err := os.Rename(swap, segmentPath(l.dir, base, logSuffix)); err != nil {
			return fmt.Errorf("complete swap %s: %w", swap, err)
		}
		l.logger.Warn("completed interrupted segment swap", "offset", base, "last_offset", last)
	}
	if len(swaps) > 0 {
		return syncDir(l.dir)
	}
	return nil
}

// lastBatchOffset walks the batch headers of a segment file and returns the
// last offset of its last whole batch (base-1 if it has none) and whether
// the file is whole batches, in offset order from base, to its end.
func lastBatchOffset(path string, base int64) (int64, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	last := base - 1
	var hdr [batchHeaderSize]byte
	pos := int64(0)
	for pos+batchHeaderSize <= st.Size() {
		if _, err := f.ReadAt(hdr[:], pos); err != nil {
			return 0, false, err
		}
		b := parseHeader(hdr[:])
		size := int64(b.BatchLength) + logOverhead
		if b.Magic != 2 || b.BatchLength < minBatchLength || pos+size > st.Size() || b.BaseOffset <= last || b.LastOffsetDelta < 0 {
			break
		}
		last = b.LastOffset()
		pos += size
	}
	return last, pos == st.Size(), nil
}
