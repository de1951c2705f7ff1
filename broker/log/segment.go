package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Segment file suffixes, as in Kafka.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	deletedSuffix   = ".deleted"
	cleanedSuffix   = ".cleaned"
	swapSuffix      = ".swap"
)

// segmentPath names a segment file: the base offset as 20 zero-padded digits.
func segmentPath(dir string, base int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, suffix))
}

// parseSegmentName returns the base offset of "<20 digits><suffix>".
func parseSegmentName(name, suffix string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, suffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// segment is one .log file with its two indexes.
//
// Fields marked (w) are touched only by the goroutine holding the Log's write
// lock. Fields marked (c) are "committed" state that readers use: they change
// only while the write lock AND the reader lock (for writing) are held, so
// either lock is enough to read them.
type segment struct {
	base    int64
	logPath string
	log     *os.File
	idx     *offsetIndex
	tidx    *timeIndex

	size        int64 // (c) bytes of whole batches; readers never look past it
	maxTs       int64 // (c) largest batch maxTimestamp, -1 if none
	maxTsOffset int64 // (c) last offset of the first batch that reached maxTs

	nextOffset      int64     // (w) offset after the last batch; set by create and recovery, used by Open
	bytesSinceIndex int64     // (w) bytes appended since the last .index entry
	firstBatchTs    int64     // (w) max timestamp of the first batch (Kafka's rollingBasedTimestamp), -1 unknown
	created         time.Time // (w) when this process created or opened the segment
	lastModified    time.Time // (w) last append, or the file mtime after open

	// (w) scratch for the index entries of one Append, written then committed.
	pendIdx, pendTime []byte

	// refs counts the Log's own reference plus one per reader that pinned
	// the segment; the files are closed when it drops to zero, so a segment
	// deleted (or a Log closed) during a read stays readable until the read
	// ends, as Kafka's delayed .deleted removal allows.
	refs   atomic.Int32
	doomed atomic.Bool // files renamed to .deleted; unlink them on the last release
}

// createSegment makes a new empty segment at base. An existing .log is an
// error: it would mean two segments claim the same offsets.
func createSegment(dir string, base int64, now time.Time) (*segment, error) {
	p := segmentPath(dir, base, logSuffix)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", p, err)
	}
	s := &segment{base: base, logPath: p, log: f, maxTs: -1, maxTsOffset: base, nextOffset: base, firstBatchTs: -1, created: now, lastModified: now}
	// Stale index files could only come from a crash between deleting a
	// segment's .log and its indexes; they must not leak into the new segment.
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if err := os.Remove(segmentPath(dir, base, suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
			f.Close()
			return nil, fmt.Errorf("create segment %s: remove stale index: %w", p, err)
		}
	}
	if err := s.openIndexes(dir); err != nil {
		f.Close()
		return nil, err
	}
	s.idx.mem, s.tidx.mem = []byte{}, []byte{}
	s.refs.Store(1)
	return s, nil
}

// openSegment opens an existing segment's files; its state is filled in by
// recovery or by loadSealed.
func openSegment(dir string, base int64, now time.Time) (*segment, error) {
	p := segmentPath(dir, base, logSuffix)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open segment %s: %w", p, err)
	}
	s := &segment{base: base, logPath: p, log: f, size: st.Size(), maxTs: -1, maxTsOffset: base,
		firstBatchTs: -1, created: now, lastModified: st.ModTime()}
	if err := s.openIndexes(dir); err != nil {
		f.Close()
		return nil, err
	}
	s.refs.Store(1)
	return s, nil
}

func (s *segment) openIndexes(dir string) error {
	idx, err := openOffsetIndex(segmentPath(dir, s.base, indexSuffix), s.base)
	if err != nil {
		return fmt.Errorf("open segment %s: %w", s.logPath, err)
	}
	tidx, err := openTimeIndex(segmentPath(dir, s.base, timeIndexSuffix), s.base)
	if err != nil {
		idx.close()
		return fmt.Errorf("open segment %s: %w", s.logPath, err)
	}
	s.idx, s.tidx = idx, tidx
	return nil
}

// loadSealed trusts a segment that recovery skips: it validates both indexes
// and takes the largest timestamp from the last .timeindex entry (written when
// the segment was sealed). maxRel bounds relative offsets (next base - base - 1).
func (s *segment) loadSealed(maxRel int64) error {
	if err := s.idx.check(s.log, s.size); err != nil {
		return err
	}
	if err := s.tidx.check(maxRel); err != nil {
		return err
	}
	if s.tidx.n > 0 {
		s.maxTs, s.maxTsOffset = s.tidx.lastTs, s.base+int64(s.tidx.lastRel)
	}
	return nil
}

// largestTimestamp is what retention.ms compares against: the largest record
// timestamp, or the file's modification time when no batch carries one
// (Kafka's LogSegment.largestTimestamp).
func (s *segment) largestTimestamp() int64 {
	if s.maxTs >= 0 {
		return s.maxTs
	}
	return s.lastModified.UnixMilli()
}

// fitsRelative reports whether offset can be stored relative to base in int32.
func (s *segment) fitsRelative(offset int64) bool {
	d := offset - s.base
	return d >= 0 && d <= math.MaxInt32
}

// sealTimeIndex writes the final .timeindex entry (Kafka's
// onBecomeInactiveSegment / close: maybeAppend with skipFullCheck) so the
// segment's largest timestamp survives a restart. Requires the write lock;
// the caller commits under the reader lock.
func (s *segment) sealTimeIndex() ([]byte, error) {
	if s.maxTs < 0 || (s.tidx.n > 0 && s.maxTs <= s.tidx.lastTs) {
		return nil, nil
	}
	ent := encodeTimeEntry(nil, s.maxTs, int32(s.maxTsOffset-s.base))
	if err := s.tidx.write(ent); err != nil {
		return nil, err
	}
	return ent, nil
}

func (s *segment) commitTimeEntries(ents []byte) {
	if len(ents) == 0 {
		return
	}
	s.tidx.commit(ents)
	last := ents[len(ents)-timeIndexEntrySize:]
	s.tidx.lastTs = int64(binary.BigEndian.Uint64(last))
	s.tidx.lastRel = int32(binary.BigEndian.Uint32(last[8:]))
}

func (s *segment) sync() error {
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("fsync segment %s: %w", s.logPath, err)
	}
	if err := s.idx.sync(); err != nil {
		return err
	}
	return s.tidx.sync()
}

func (s *segment) close() error {
	return errors.Join(s.log.Close(), s.idx.close(), s.tidx.close())
}

// markDeleted renames the segment's files to .deleted, as Kafka does before
// its delayed delete: new opens no longer see the segment, readers that
// pinned it keep their descriptors, and a crash leaves files Open removes.
// The caller has taken the segment out of the Log and then calls release.
func (s *segment) markDeleted() error {
	var errs []error
	for _, p := range []string{s.logPath, s.idx.path, s.tidx.path} {
		if err := os.Rename(p, p+deletedSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete segment file %s: %w", p, err))
		}
	}
	s.doomed.Store(true)
	return errors.Join(errs...)
}

// release drops a reference; the last one closes the files and, for a
// deleted segment, unlinks them.
func (s *segment) release() error {
	if s.refs.Add(-1) != 0 {
		return nil
	}
	err := s.close()
	if s.doomed.Load() {
		for _, p := range []string{s.logPath, s.idx.path, s.tidx.path} {
			if rerr := os.Remove(p + deletedSuffix); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("delete segment file %s: %w", p, rerr))
			}
		}
	}
	return err
}

// discard deletes a segment that has left the Log: rename, then drop the
// Log's reference.
func (s *segment) discard() error {
	return errors.Join(s.markDeleted(), s.release())
}

// segView is a reader's snapshot of a segment's committed state plus a
// reference that keeps its files open. Take it with pin under the Log's
// reader lock, use it without the lock, and unpin it.
type segView struct {
	seg         *segment
	base        int64
	size        int64
	maxTs       int64
	maxTsOffset int64
	idx, tidx   entriesView
}

func (s *segment) pin() segView {
	s.refs.Add(1)
	return segView{seg: s, base: s.base, size: s.size, maxTs: s.maxTs, maxTsOffset: s.maxTsOffset,
		idx: s.idx.view(), tidx: s.tidx.view()}
}

// unpin drops the reader's reference. An error closing a deleted segment's
// files has nobody to report to but the reader, which already has its data,
// so it is dropped.
func (v segView) unpin() { _ = v.seg.release() }

// windowSize is the read-ahead used when walking batch headers: one pread
// usually covers the gap between an index entry and the wanted batch
// (index.interval.bytes, 4 KiB by default).
const windowSize = 16 << 10

var windowPool = sync.Pool{New: func() any { b := make([]byte, windowSize); return &b }}

// headerReader walks batch headers of one segment's committed bytes through a
// pooled read-ahead window, so a lookup costs one or two preads instead of one
// per batch.
type headerReader struct {
	f     *os.File
	path  string
	end   int64 // committed size
	bufp  *[]byte
	win   []byte // valid window bytes
	wpos  int64  // file position of win[0]
	valid bool
}

func newHeaderReader(v segView) *headerReader {
	return &headerReader{f: v.seg.log, path: v.seg.logPath, end: v.size, bufp: windowPool.Get().(*[]byte)}
}

func (h *headerReader) release() { windowPool.Put(h.bufp) }

// header returns the header of the batch starting at pos. It checks only what
// navigation needs (length in bounds); the bytes were validated on append or
// by recovery.
func (h *headerReader) header(pos int64) (Batch, error) {
	if pos+batchHeaderSize > h.end {
		return Batch{}, fmt.Errorf("segment %s: batch header at %d past committed end %d: %w", h.path, pos, h.end, ErrCorruptMessage)
	}
	if !h.valid || pos < h.wpos || pos+batchHeaderSize > h.wpos+int64(len(h.win)) {
		n := min(int64(windowSize), h.end-pos)
		buf := (*h.bufp)[:n]
		if _, err := h.f.ReadAt(buf, pos); err != nil {
			return Batch{}, fmt.Errorf("read segment %s at %d: %w", h.path, pos, err)
		}
		h.win, h.wpos, h.valid = buf, pos, true
	}
	b := parseHeader(h.win[pos-h.wpos:])
	b.Raw = nil
	if b.BatchLength < minBatchLength || pos+int64(b.BatchLength)+logOverhead > h.end {
		return Batch{}, fmt.Errorf("segment %s: batch at %d has length %d past committed end %d: %w", h.path, pos, b.BatchLength, h.end, ErrCorruptMessage)
	}
	return b, nil
}

// find returns the position and header of the first batch whose last offset
// is >= offset, starting the walk at the .index floor entry; ok=false when the
// segment has no such batch.
func (h *headerReader) find(v segView, offset int64) (pos int64, b Batch, ok bool, err error) {
	pos, err = lookupPosition(v.idx, v.base, offset)
	if err != nil {
		return 0, Batch{}, false, err
	}
	for pos < h.end {
		b, err = h.header(pos)
		if err != nil {
			return 0, Batch{}, false, err
		}
		if b.LastOffset() >= offset {
			return pos, b, true, nil
		}
		pos += int64(b.BatchLength) + logOverhead
	}
	return pos, Batch{}, false, nil
}

// readBatch reads the whole batch whose header is b at pos.
func (h *headerReader) readBatch(pos int64, b Batch) ([]byte, error) {
	raw := make([]byte, int64(b.BatchLength)+logOverhead)
	if _, err := h.f.ReadAt(raw, pos); err != nil {
		return nil, fmt.Errorf("read segment %s at %d: %w", h.path, pos, err)
	}
	return raw, nil
}
