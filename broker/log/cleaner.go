package log

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// attrDeleteHorizon is KIP-534's batch attribute: firstTimestamp holds the
// time after which the batch's tombstones may be removed.
const attrDeleteHorizon = 0x40

// CleanOptions tunes one Clean call.
type CleanOptions struct {
	// MaxMapEntries bounds the key -> offset map, as Kafka sizes its map
	// from log.cleaner.dedupe.buffer.size. When it fills, only the dirty
	// offsets mapped so far are cleaned and the next call goes on from
	// there. 0 = unlimited.
	MaxMapEntries int
	// UpperBound caps the cleanable section (Kafka's last stable offset);
	// 0 = no cap. The active segment is never cleaned either way.
	UpperBound int64
	// Force cleans whatever is cleanable, ignoring min.cleanable.dirty.ratio
	// and max.compaction.lag.ms.
	Force bool
}

// CleanStats describes one Clean call.
type CleanStats struct {
	Cleaned          bool    // false: nothing cleanable, or the dirty ratio was below min.cleanable.dirty.ratio
	FirstDirtyOffset int64   // start of the dirty section
	EndOffset        int64   // first offset not cleaned: the new cleaner checkpoint
	DirtyRatio       float64 // cleanable bytes / (clean + cleanable bytes), Kafka's cleanableRatio
	ForcedByMaxLag   bool    // max.compaction.lag.ms forced the clean despite the ratio

	SegmentsBefore, SegmentsAfter int   // segments of the rewritten range
	BytesBefore, BytesAfter       int64 // .log bytes of the rewritten range
	RecordsRead, RecordsKept      int64
	TombstonesRemoved             int64 // past their delete horizon
	InvalidRecords                int64 // null-key records dropped (invalid in a compacted topic)
	GroupsSkipped                 int   // groups whose segments retention or truncation changed meanwhile
	Elapsed                       time.Duration
}

// CleanerCheckpoint is the first dirty offset: everything below it was
// compacted by an earlier Clean. The broker persists it in each log dir's
// cleaner-offset-checkpoint, as Kafka does.
func (l *Log) CleanerCheckpoint() int64 { return l.firstDirty.Load() }

// SetCleanerCheckpoint restores the first dirty offset read from the
// cleaner-offset-checkpoint; a value outside the log is reset to the log
// start by the next Clean.
func (l *Log) SetCleanerCheckpoint(offset int64) {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	l.firstDirty.Store(offset)
}

// Clean compacts the log's non-active segments as Kafka's log cleaner does
// (cleanup.policy=compact); it does nothing unless Config.Compact is set.
//
// The dirty section runs from the cleaner checkpoint (or the log start) to
// the first uncleanable offset: the active segment's base, opts.UpperBound,
// or the first segment whose largest timestamp is within min.compaction.lag.ms
// of now. Unless opts.Force, it is cleaned only when its share of the bytes
// exceeds min.cleanable.dirty.ratio, or when the oldest dirty segment's first
// batch is older than max.compaction.lag.ms. Then:
//
//   - a key -> last offset map is built over the dirty section;
//   - every segment below the mapped end is rewritten, in groups of adjacent
//     segments whose combined size fits segment.bytes and segment.index.bytes
//     (Kafka's groupSegmentsBySize), keeping a record only if no later record
//     has its key; null-key records are dropped as invalid;
//   - tombstones (null values) survive their first clean, which stamps their
//     batch with a delete horizon of now + delete.retention.ms (KIP-534); a
//     later clean after the horizon removes them;
//   - offsets never change: a rewritten batch keeps its base offset,
//     lastOffsetDelta, producer fields and codec (records are decompressed,
//     filtered and recompressed); a batch left with no records is dropped
//     unless it is its producer's last batch in the log or the last batch of
//     its group, which stay as an empty header (numRecords 0) so the producer
//     sequence state and the group's offset range survive;
//   - each group is written as .cleaned files, renamed to .swap, then swapped
//     for the old segments under the write lock; Open completes a swap that a
//     crash interrupted. Readers that pinned an old segment read it to the end.
//
// Control batches are kept as they are (kobs writes no transactions).
// Appends continue during a Clean; Clean calls are serialised.
func (l *Log) Clean(opts CleanOptions) (CleanStats, error) {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	began := time.Now()
	p, err := l.planClean(opts)
	if err != nil {
		return CleanStats{}, fmt.Errorf("clean %s: %w", l.dir, err)
	}
	defer p.unpin()
	st := p.stats
	if !st.Cleaned {
		return st, nil
	}
	c := &cleaner{l: l, cfg: p.cfg, now: p.nowMs, br: bufio.NewReaderSize(nil, 256<<10)}
	if err := c.buildMap(p, opts.MaxMapEntries); err != nil {
		return CleanStats{}, fmt.Errorf("clean %s: %w", l.dir, err)
	}
	st.EndOffset = c.latest + 1
	if st.EndOffset <= st.FirstDirtyOffset && p.cleanableBytes > 0 {
		return CleanStats{}, fmt.Errorf("clean %s: offset map of %d entries cannot hold one batch at offset %d", l.dir, opts.MaxMapEntries, st.FirstDirtyOffset)
	}
	if err := c.producerLastBatches(p.views); err != nil {
		return CleanStats{}, fmt.Errorf("clean %s: %w", l.dir, err)
	}
	var cleanable []segView
	for _, v := range p.views[:len(p.views)-1] {
		if v.base < st.EndOffset {
			cleanable = append(cleanable, v)
		}
	}
	for _, g := range groupBySize(cleanable, p.cfg, p.firstUncleanable) {
		c.stats = &st
		done, err := c.cleanGroup(g)
		if err != nil {
			return st, fmt.Errorf("clean %s: %w", l.dir, err)
		}
		if !done {
			st.GroupsSkipped++
		}
	}
	l.firstDirty.Store(st.EndOffset)
	st.Elapsed = time.Since(began)
	l.logger.Debug("cleaned log", "dirty_start", st.FirstDirtyOffset, "dirty_end", st.EndOffset,
		"segments_before", st.SegmentsBefore, "segments_after", st.SegmentsAfter,
		"bytes_before", st.BytesBefore, "bytes_after", st.BytesAfter,
		"records_read", st.RecordsRead, "records_kept", st.RecordsKept, "elapsed", st.Elapsed)
	return st, nil
}

// cleanPlan is the snapshot a Clean works from: every segment pinned, so
// retention or truncation running meanwhile cannot close files under it.
type cleanPlan struct {
	cfg              Config
	nowMs            int64
	views            []segView // all segments; the last is the active one
	largestTs        []int64   // per view, Kafka's largestTimestamp
	firstDirty       int64
	firstUncleanable int64
	cleanableBytes   int64
	stats            CleanStats
}

func (p *cleanPlan) unpin() {
	for _, v := range p.views {
		v.unpin()
	}
}

// planClean pins the segments and decides, like LogCleanerManager's
// cleanableOffsets and LogToClean, whether and how far to clean.
func (l *Log) planClean(opts CleanOptions) (*cleanPlan, error) {
	p := &cleanPlan{}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	p.cfg = l.cfg
	logStart, leo := l.logStart.Load(), l.leo.Load()
	for i, s := range l.segs {
		p.views = append(p.views, s.pin())
		ts := int64(-1) // the active segment's is never needed, and its mtime is the writer's
		if i+1 < len(l.segs) {
			ts = s.largestTimestamp()
		}
		p.largestTs = append(p.largestTs, ts)
	}
	l.mu.RUnlock()
	p.nowMs = p.cfg.nowMs()
	if !p.cfg.Compact {
		return p, nil
	}

	// Kafka resets a checkpoint outside the log to the log start.
	p.firstDirty = l.firstDirty.Load()
	if p.firstDirty < logStart || p.firstDirty > leo {
		p.firstDirty = logStart
	}
	p.stats.FirstDirtyOffset = p.firstDirty
	p.stats.EndOffset = p.firstDirty
	active := len(p.views) - 1
	nextBase := func(i int) int64 {
		if i+1 < len(p.views) {
			return p.views[i+1].base
		}
		return math.MaxInt64
	}
	// First segment holding offsets >= firstDirty.
	di := 0
	for di < active && nextBase(di) <= p.firstDirty {
		di++
	}

	uncleanable := p.views[active].base
	if opts.UpperBound > 0 {
		uncleanable = min(uncleanable, opts.UpperBound)
	}
	if lag := p.cfg.MinCompactionLagMs; lag > 0 {
		for i := di; i < active; i++ {
			if p.largestTs[i] > p.nowMs-lag {
				uncleanable = min(uncleanable, p.views[i].base)
				break
			}
		}
	}
	uncleanable = max(uncleanable, p.firstDirty)
	p.firstUncleanable = uncleanable

	// LogToClean's byte counts: clean = segments below the first dirty
	// offset; cleanable = segments from the dirty one up to the segment
	// holding the first uncleanable offset.
	ui := active
	for i := 0; i < active; i++ {
		if nextBase(i) > uncleanable {
			ui = i
			break
		}
	}
	fuo := p.views[ui].base
	var cleanBytes, cleanableBytes int64
	for i, v := range p.views {
		if v.base < p.firstDirty {
			cleanBytes += v.size
		}
		if i < ui && nextBase(i) > min(p.firstDirty, fuo) {
			cleanableBytes += v.size
		}
	}
	p.cleanableBytes = cleanableBytes
	if cleanableBytes == 0 {
		// Nothing dirty. Force still re-cleans the clean section (tombstones
		// past their horizon, grouping), when there is one.
		p.stats.Cleaned = opts.Force && cleanBytes > 0
		return p, nil
	}
	p.stats.DirtyRatio = float64(cleanableBytes) / float64(cleanBytes+cleanableBytes)

	// max.compaction.lag.ms: the earliest first-batch timestamp of the
	// dirty non-active segments (Kafka's maxCompactionDelay).
	needNow := false
	if lag := p.cfg.MaxCompactionLagMs; lag < math.MaxInt64 {
		earliest := int64(math.MaxInt64)
		for i := di; i < active; i++ {
			ts, err := firstBatchTimestamp(p.views[i])
			if err != nil {
				p.unpin()
				return nil, err
			}
			if ts > 0 {
				earliest = min(earliest, ts)
			}
		}
		needNow = earliest < p.nowMs-lag
	}
	switch {
	case opts.Force, p.stats.DirtyRatio > p.cfg.MinCleanableDirtyRatio:
		p.stats.Cleaned = true
	case needNow:
		p.stats.Cleaned, p.stats.ForcedByMaxLag = true, true
	}
	return p, nil
}

// firstBatchTimestamp is the max timestamp of a segment's first batch, or -1.
func firstBatchTimestamp(v segView) (int64, error) {
	if v.size == 0 {
		return -1, nil
	}
	hr := newHeaderReader(v)
	defer hr.release()
	b, err := hr.header(0)
	if err != nil {
		return 0, err
	}
	return b.MaxTimestamp, nil
}

// groupBySize is Kafka's groupSegmentsBySize: runs of adjacent segments
// whose .log, .index and .timeindex sizes fit segment.bytes and
// segment.index.bytes, and whose offsets fit int32 relative to the group's
// base, so each group becomes one segment.
func groupBySize(segs []segView, cfg Config, firstUncleanable int64) [][]segView {
	var groups [][]segView
	for i := 0; i < len(segs); {
		logSize := segs[i].size
		idxSize := int64(segs[i].idx.n) * indexEntrySize
		tidxSize := int64(segs[i].tidx.n) * timeIndexEntrySize
		j := i + 1
		for ; j < len(segs); j++ {
			next := segs[j]
			lastOff := firstUncleanable - 1
			if j+1 < len(segs) {
				lastOff = segs[j+1].base - 1
			}
			ni, nt := int64(next.idx.n)*indexEntrySize, int64(next.tidx.n)*timeIndexEntrySize
			if logSize+next.size > cfg.segmentLimit() ||
				idxSize+ni > int64(cfg.SegmentIndexBytes) || tidxSize+nt > int64(cfg.SegmentIndexBytes) ||
				(next.size > 0 && lastOff-segs[i].base > math.MaxInt32) {
				break
			}
			logSize += next.size
			idxSize += ni
			tidxSize += nt
		}
		groups = append(groups, segs[i:j:j])
		i = j
	}
	return groups
}

// cleaner is the state of one Clean call.
type cleaner struct {
	l     *Log
	cfg   Config
	now   int64
	br    *bufio.Reader
	stats *CleanStats

	offsets map[string]int64 // key -> offset of its last record in the dirty section
	latest  int64            // last offset the map covers (Kafka's OffsetMap.latestOffset)
	lastOf  map[int64]int64  // producer id -> last offset of its last batch in the log

	recs, out []byte // scratch: records section, rebuilt batch
	zbuf      bytes.Buffer
}

// buildMap fills the offset map from the dirty section, as Kafka's
// buildOffsetMap: records at or past the first dirty offset, segment by
// segment; when the map is full it stops and latest tells how far it got.
func (c *cleaner) buildMap(p *cleanPlan, maxEntries int) error {
	c.offsets = map[string]int64{}
	c.latest = p.firstDirty - 1
	views := p.views[:len(p.views)-1]
	for i, v := range views {
		// Segments holding offsets in [firstDirty, firstUncleanable).
		next := p.views[i+1].base
		if v.base >= p.firstUncleanable || next <= p.firstDirty {
			continue
		}
		from, err := lookupPosition(v.idx, v.base, p.firstDirty)
		if err != nil {
			return err
		}
		full := false
		err = c.eachBatch(v, from, func(raw []byte, h Batch, _ bool) error {
			if h.BaseOffset >= p.firstUncleanable {
				return errStopScan
			}
			if !h.IsControl() {
				recs, err := batchRecords(raw, h)
				if err != nil {
					return err
				}
				err = eachRecord(recs, h.NumRecords, func(r record) bool {
					off := h.BaseOffset + int64(r.offDelta)
					if r.key == nil || off < p.firstDirty {
						return true
					}
					if _, ok := c.offsets[string(r.key)]; !ok && maxEntries > 0 && len(c.offsets) >= maxEntries {
						full = true
						return false
					}
					c.offsets[string(r.key)] = off
					return true
				})
				if err != nil {
					return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
				}
			}
			if full {
				return errStopScan
			}
			if h.LastOffset() >= p.firstDirty {
				c.latest = max(c.latest, h.LastOffset())
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("build offset map: %w", err)
		}
		if full {
			return nil
		}
		// Offsets in a gap at the segment's end are covered too.
		c.latest = max(c.latest, min(next, p.firstUncleanable)-1)
	}
	return nil
}

// producerLastBatches records, per producer id, the last offset of its last
// data batch in the whole log. Kafka keeps such a batch (empty if need be)
// so the producer's sequence state can be rebuilt from the log; kobs has no
// producer expiry in the log, so every producer id seen keeps one.
func (c *cleaner) producerLastBatches(views []segView) error {
	c.lastOf = map[int64]int64{}
	for _, v := range views {
		hr := newHeaderReader(v)
		for pos := int64(0); pos < v.size; {
			b, err := hr.header(pos)
			if err != nil {
				hr.release()
				return fmt.Errorf("walk producer batches: %w", err)
			}
			if b.ProducerID >= 0 && !b.IsControl() {
				c.lastOf[b.ProducerID] = b.LastOffset()
			}
			pos += int64(b.BatchLength) + logOverhead
		}
		hr.release()
	}
	return nil
}

// errStopScan ends eachBatch early without an error.
var errStopScan = errors.New("stop scan")

// eachBatch reads the whole batches of v from position from in order and
// calls fn with each (raw is reused between calls) and whether it is the
// segment's last batch. The CRC is checked: a clean must not copy damage
// into a new segment.
func (c *cleaner) eachBatch(v segView, from int64, fn func(raw []byte, h Batch, last bool) error) error {
	c.br.Reset(io.NewSectionReader(v.seg.log, from, v.size-from))
	var raw []byte
	for pos := from; pos < v.size; {
		if v.size-pos < batchHeaderSize {
			return fmt.Errorf("segment %s: partial batch header at %d: %w", v.seg.logPath, pos, ErrCorruptMessage)
		}
		var hdr [batchHeaderSize]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return fmt.Errorf("read segment %s at %d: %w", v.seg.logPath, pos, err)
		}
		h := parseHeader(hdr[:])
		size := int64(h.BatchLength) + logOverhead
		if h.Magic != 2 || h.BatchLength < minBatchLength || size > v.size-pos {
			return fmt.Errorf("segment %s: bad batch header at %d: %w", v.seg.logPath, pos, ErrCorruptMessage)
		}
		raw = slices.Grow(raw[:0], int(size))[:size]
		copy(raw, hdr[:])
		if _, err := io.ReadFull(c.br, raw[batchHeaderSize:]); err != nil {
			return fmt.Errorf("read segment %s at %d: %w", v.seg.logPath, pos, err)
		}
		if batchCRC(raw) != h.CRC {
			return fmt.Errorf("segment %s: batch at offset %d fails its CRC: %w", v.seg.logPath, h.BaseOffset, ErrCorruptMessage)
		}
		h.Raw = raw
		pos += size
		if c.stats != nil {
			c.stats.BytesBefore += size
		}
		if err := fn(raw, h, pos == v.size); err != nil {
			if errors.Is(err, errStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

// cleanGroup rewrites one group of segments into one and swaps it in. It
// reports false when the group changed meanwhile and was left alone.
func (c *cleaner) cleanGroup(g []segView) (bool, error) {
	base := g[0].base
	dir := c.l.dir
	logTmp := segmentPath(dir, base, logSuffix+cleanedSuffix)
	f, err := os.OpenFile(logTmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return false, fmt.Errorf("create cleaned segment: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
				os.Remove(segmentPath(dir, base, suf+cleanedSuffix))
				os.Remove(segmentPath(dir, base, suf+swapSuffix))
			}
		}
	}()

	w := bufio.NewWriterSize(f, 256<<10)
	var written int64
	bytesBefore := c.stats.BytesBefore
	for k, v := range g {
		lastSeg := k == len(g)-1
		err := c.eachBatch(v, 0, func(raw []byte, h Batch, last bool) error {
			out, err := c.filterBatch(raw, h, lastSeg && last)
			if err != nil {
				return fmt.Errorf("segment %s: %w", v.seg.logPath, err)
			}
			if _, err := w.Write(out); err != nil {
				return fmt.Errorf("write cleaned segment: %w", err)
			}
			written += int64(len(out))
			return nil
		})
		if err != nil {
			return false, err
		}
	}
	if err := w.Flush(); err != nil {
		return false, fmt.Errorf("write cleaned segment: %w", err)
	}

	// Rebuild both indexes with recovery's scan: it applies Append's entry
	// rule and re-checks every batch just written.
	tmp := &segment{base: base, logPath: logTmp, log: f}
	st, reason, err := scanSegment(tmp, written, c.cfg)
	if err != nil {
		return false, err
	}
	if st.valid != written {
		return false, fmt.Errorf("cleaned segment %s invalid at %d (%s): %w", logTmp, st.valid, reason, ErrCorruptMessage)
	}
	tidx := st.tidx
	if n := len(tidx); st.maxTs >= 0 && (n == 0 || st.maxTs > int64(binary.BigEndian.Uint64(tidx[n-timeIndexEntrySize:]))) {
		// The seal entry a roll writes: the largest timestamp must survive.
		tidx = encodeTimeEntry(tidx, st.maxTs, int32(st.maxTsOffset-base))
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("fsync cleaned segment: %w", err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("close cleaned segment: %w", err)
	}
	for _, x := range []struct {
		suf  string
		data []byte
	}{{indexSuffix, st.idx}, {timeIndexSuffix, tidx}} {
		if err := writeSynced(segmentPath(dir, base, x.suf+cleanedSuffix), x.data); err != nil {
			return false, err
		}
	}
	// Keep the last modification time of the originals, as Kafka does:
	// retention of a segment without timestamps goes by it.
	mtime := g[len(g)-1].seg.lastModified
	if err := os.Chtimes(logTmp, mtime, mtime); err != nil {
		return false, fmt.Errorf("set cleaned segment mtime: %w", err)
	}
	// .cleaned -> .swap, the .log last: a .log.swap on disk means the
	// whole replacement is durable and Open will finish the swap.
	for _, suf := range []string{indexSuffix, timeIndexSuffix, logSuffix} {
		from := segmentPath(dir, base, suf+cleanedSuffix)
		if err := os.Rename(from, segmentPath(dir, base, suf+swapSuffix)); err != nil {
			return false, fmt.Errorf("rename %s to swap: %w", from, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return false, err
	}
	done, err := c.l.swapIn(g, mtime)
	committed = done || err != nil // past the commit point the files belong to the log or to Open
	if err != nil {
		return false, err
	}
	if done {
		c.stats.SegmentsBefore += len(g)
		c.stats.SegmentsAfter++
		c.stats.BytesAfter += written
	} else {
		c.stats.BytesBefore = bytesBefore
	}
	return done, nil
}

// writeSynced writes a new file and fsyncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// swapIn replaces the group's segments with the .swap files at the group's
// base (Kafka's replaceSegments). Under the write lock it checks that the
// segments are still in the log, unchanged and not active; if not it
// reports false and the caller removes the swap files. Otherwise the old
// files become .deleted, the .swap files take the final names, and the new
// segment replaces the old ones for readers at once. A failure after the old
// segments were renamed closes the log: Open will complete the swap.
func (l *Log) swapIn(g []segView, mtime time.Time) (bool, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return false, nil
	}
	i := -1
	for k, s := range l.segs {
		if s == g[0].seg {
			i = k
			break
		}
	}
	if i < 0 || i+len(g) >= len(l.segs) {
		return false, nil
	}
	for k, v := range g {
		if s := l.segs[i+k]; s != v.seg || s.size != v.size {
			return false, nil
		}
	}
	base, nextBase := g[0].base, l.segs[i+len(g)].base
	fail := func(err error) (bool, error) {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		return true, fmt.Errorf("swap cleaned segment %d: %w (log closed; reopening completes the swap)", base, err)
	}
	var errs []error
	for _, v := range g {
		errs = append(errs, v.seg.markDeleted())
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	// The old names must be gone on disk before the new ones appear, so a
	// crash never shows both under one name.
	if err := syncDir(l.dir); err != nil {
		return fail(err)
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix, logSuffix} {
		if err := os.Rename(segmentPath(l.dir, base, suf+swapSuffix), segmentPath(l.dir, base, suf)); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(l.dir); err != nil {
		return fail(err)
	}
	ns, err := openSegment(l.dir, base, l.cfg.now())
	if err != nil {
		return fail(err)
	}
	if err := ns.loadSealed(nextBase - base - 1); err != nil {
		ns.close()
		return fail(err)
	}
	ns.lastModified = mtime
	segs := make([]*segment, 0, len(l.segs)-len(g)+1)
	segs = append(append(append(segs, l.segs[:i]...), ns), l.segs[i+len(g):]...)
	l.mu.Lock()
	l.segs = segs
	l.mu.Unlock()
	for _, v := range g {
		// Files close (and unlink) when the last reader unpins them.
		errs = append(errs, v.seg.release())
	}
	if err := errors.Join(errs...); err != nil {
		l.logger.Warn("releasing cleaned-away segments", "err", err)
	}
	return true, nil
}

// filterBatch returns what stays of one stored batch: the original bytes,
// a rebuilt batch with fewer records or a new delete horizon, an empty
// header, or nothing. The result aliases c's scratch or raw.
func (c *cleaner) filterBatch(raw []byte, h Batch, lastInGroup bool) ([]byte, error) {
	if h.IsControl() {
		return raw, nil
	}
	recs, err := batchRecords(raw, h)
	if err != nil {
		return nil, err
	}
	hasHorizon := h.Attributes&attrDeleteHorizon != 0
	var kept []record
	tombstones := false
	err = eachRecord(recs, h.NumRecords, func(r record) bool {
		c.stats.RecordsRead++
		off := h.BaseOffset + int64(r.offDelta)
		keep := true
		switch {
		case off > c.latest:
			// Past what the map covers: newer records may follow.
		case r.key == nil:
			c.stats.InvalidRecords++
			keep = false
		case off < c.lookup(r.key):
			keep = false
		case r.value == nil && hasHorizon && c.now >= h.FirstTimestamp:
			c.stats.TombstonesRemoved++
			keep = false
		}
		if keep {
			kept = append(kept, r)
			tombstones = tombstones || r.value == nil
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
	}
	c.stats.RecordsKept += int64(len(kept))
	setHorizon := tombstones && !hasHorizon
	switch {
	case len(kept) == int(h.NumRecords) && !setHorizon:
		return raw, nil
	case len(kept) == 0:
		if (h.ProducerID >= 0 && c.lastOf[h.ProducerID] == h.LastOffset()) || lastInGroup {
			return c.emptyHeader(h), nil
		}
		return nil, nil
	}
	return c.rebuild(h, kept, setHorizon)
}

func (c *cleaner) lookup(key []byte) int64 {
	if off, ok := c.offsets[string(key)]; ok {
		return off
	}
	return -1
}

// emptyHeader is Kafka's writeEmptyHeader: the batch's offsets, producer
// fields and max timestamp with no records.
func (c *cleaner) emptyHeader(h Batch) []byte {
	out := append(c.out[:0], h.Raw[:batchHeaderSize]...)
	c.out = out
	be := binary.BigEndian
	be.PutUint32(out[offBatchLength:], uint32(batchHeaderSize-logOverhead))
	be.PutUint16(out[offAttributes:], uint16(h.Attributes&(attrTimestampType|attrTransactional|attrControl)))
	be.PutUint64(out[offFirstTimestamp:], math.MaxUint64) // -1: no timestamp
	be.PutUint32(out[offNumRecords:], 0)
	be.PutUint32(out[offCRC:], batchCRC(out))
	return out
}

// rebuild writes a batch holding the kept records, with the original base
// offset, lastOffsetDelta, producer fields and codec, as Kafka's
// buildRetainedRecordsInto. Setting a delete horizon moves the base
// timestamp to it and re-encodes each record's timestamp delta; otherwise
// the records are copied as they are.
func (c *cleaner) rebuild(h Batch, kept []record, setHorizon bool) ([]byte, error) {
	attrs := h.Attributes
	baseTs := h.FirstTimestamp
	if setHorizon {
		attrs |= attrDeleteHorizon
		baseTs = c.now + c.cfg.DeleteRetentionMs
		if baseTs < c.now { // overflow with a huge delete.retention.ms
			baseTs = math.MaxInt64
		}
	}
	maxTs := int64(-1)
	recs := c.recs[:0]
	for _, r := range kept {
		ts := h.FirstTimestamp + r.tsDelta
		maxTs = max(maxTs, ts)
		if !setHorizon {
			recs = append(recs, r.raw...)
			continue
		}
		var body [1 + 2*binary.MaxVarintLen64]byte
		body[0] = r.attr
		n := 1 + binary.PutVarint(body[1:], ts-baseTs)
		n += binary.PutVarint(body[n:], int64(r.offDelta))
		recs = binary.AppendVarint(recs, int64(n+len(r.rest)))
		recs = append(append(recs, body[:n]...), r.rest...)
	}
	c.recs = recs
	if h.IsLogAppendTime() {
		maxTs = h.MaxTimestamp
	}
	if codec := h.Compression(); codec != 0 {
		comp, err := compressorFor(codec)
		if err != nil {
			return nil, err
		}
		c.zbuf.Reset()
		z, got := comp.Compress(&c.zbuf, recs)
		if got != kgo.CompressionCodecType(codec) {
			return nil, fmt.Errorf("recompress batch at offset %d with codec %d: got codec %d", h.BaseOffset, codec, got)
		}
		recs = z
	}
	out := append(c.out[:0], h.Raw[:batchHeaderSize]...)
	out = append(out, recs...)
	c.out = out
	be := binary.BigEndian
	be.PutUint32(out[offBatchLength:], uint32(len(out)-logOverhead))
	be.PutUint16(out[offAttributes:], uint16(attrs))
	be.PutUint64(out[offFirstTimestamp:], uint64(baseTs))
	be.PutUint64(out[offMaxTimestamp:], uint64(maxTs))
	be.PutUint32(out[offNumRecords:], uint32(len(kept)))
	be.PutUint32(out[offCRC:], batchCRC(out))
	return out, nil
}

var (
	compressorsMu sync.Mutex
	compressors   = map[int8]kgo.Compressor{}
)

// compressorFor returns kgo's compressor for a codec id; kgo's compressors
// pool their state and are safe for concurrent use.
func compressorFor(codec int8) (kgo.Compressor, error) {
	compressorsMu.Lock()
	defer compressorsMu.Unlock()
	if c, ok := compressors[codec]; ok {
		return c, nil
	}
	var cc kgo.CompressionCodec
	switch codec {
	case 1:
		cc = kgo.GzipCompression()
	case 2:
		cc = kgo.SnappyCompression()
	case 3:
		cc = kgo.Lz4Compression()
	case 4:
		cc = kgo.ZstdCompression()
	default:
		return nil, fmt.Errorf("compression codec %d: %w", codec, ErrCorruptMessage)
	}
	c, err := kgo.DefaultCompressor(cc)
	if err != nil {
		return nil, fmt.Errorf("compressor for codec %d: %w", codec, err)
	}
	compressors[codec] = c
	return c, nil
}

// ErrMissingKey: a record without a key was produced to a compacted topic
// (Kafka answers INVALID_RECORD).
var ErrMissingKey = errors.New("record without key in a compacted topic")

// CheckKeys reports ErrMissingKey if any record of a validated produce
// batch has a null key, decompressing it if needed. The broker calls it
// for cleanup.policy=compact topics, as Kafka's LogValidator does.
func CheckKeys(b Batch) error {
	if b.IsControl() {
		return nil
	}
	recs, err := batchRecords(b.Raw, b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptMessage, err)
	}
	var missing int32 = -1
	err = eachRecord(recs, b.NumRecords, func(r record) bool {
		if r.key == nil {
			missing = r.offDelta
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if missing >= 0 {
		return fmt.Errorf("record at offset delta %d: %w", missing, ErrMissingKey)
	}
	return nil
}

// SplitStored splits batches as Read returns them, checking lengths, magic
// and CRC but not record counts: a cleaned batch keeps its lastOffsetDelta
// with fewer records (or none), which ValidateBatches rejects in a produce
// payload. A partial trailing batch is an error.
func SplitStored(data []byte) ([]Batch, error) {
	var out []Batch
	for pos := 0; pos < len(data); {
		rest := data[pos:]
		if len(rest) < batchHeaderSize {
			return nil, fmt.Errorf("stored batch at byte %d: %d bytes left: %w", pos, len(rest), ErrCorruptMessage)
		}
		b := parseHeader(rest)
		size := int64(b.BatchLength) + logOverhead
		switch {
		case b.Magic != 2:
			return nil, fmt.Errorf("stored batch at byte %d: magic %d: %w", pos, b.Magic, ErrUnsupportedMagic)
		case b.BatchLength < minBatchLength || size > int64(len(rest)):
			return nil, fmt.Errorf("stored batch at byte %d: length %d: %w", pos, b.BatchLength, ErrCorruptMessage)
		}
		b.Raw = rest[:size:size]
		if crc := crc32.Checksum(b.Raw[offAttributes:], crcTable); crc != b.CRC {
			return nil, fmt.Errorf("stored batch at offset %d: crc %08x, computed %08x: %w", b.BaseOffset, b.CRC, crc, ErrCorruptMessage)
		}
		out = append(out, b)
		pos += int(size)
	}
	return out, nil
}
