package log

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Read returns whole stored batches starting with the batch that contains offset, up to maxBytes in
// total, but never a batch whose base offset is >= maxOffset (the high watermark; pass LogEndOffset()
// to read everything). If minOneBatch and the first batch is larger than maxBytes, it is returned
// whole anyway (KIP-74). offset < LogStartOffset or > LogEndOffset -> ErrOffsetOutOfRange;
// offset == LogEndOffset -> empty, nil.
//
// Unlike Kafka, which stops at a segment boundary, the result may span
// segments while maxBytes allows. The returned slice is freshly allocated.
func (l *Log) Read(offset int64, maxBytes int32, maxOffset int64, minOneBatch bool) ([]byte, error) {
	return l.ReadTo(nil, offset, maxBytes, maxOffset, minOneBatch)
}

// ReadTo is Read into dst[:0], growing it when it is too small: fetches
// pass buffers they recycle, so a replica fetch does not allocate (and
// fault in) a fresh buffer for every batch it copies. On error, or when
// nothing is read, the result is nil and dst is untouched.
func (l *Log) ReadTo(dst []byte, offset int64, maxBytes int32, maxOffset int64, minOneBatch bool) ([]byte, error) {
	// Check bounds and pin the first segment under the reader lock; the I/O
	// runs without it so a slow read never delays an Append's commit.
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, fmt.Errorf("read %s: %w", l.dir, ErrClosed)
	}
	start, end := l.logStart.Load(), l.leo.Load()
	if offset < start || offset > end {
		l.mu.RUnlock()
		return nil, fmt.Errorf("read %s at offset %d (log %d..%d): %w", l.dir, offset, start, end, ErrOffsetOutOfRange)
	}
	if offset == end {
		l.mu.RUnlock()
		return nil, nil
	}
	v := l.segs[l.segmentFor(offset)].pin()
	l.mu.RUnlock()

	// Batches appended after this point lie at or past end and are excluded.
	maxOffset = min(maxOffset, end)
	budget := int64(max(maxBytes, 0))
	out := dst[:0]
	first := true
	for {
		more, err := l.readSegment(v, first, offset, maxOffset, minOneBatch, &budget, &out)
		v.unpin()
		if err != nil {
			return nil, fmt.Errorf("read %s at offset %d: %w", l.dir, offset, err)
		}
		if !more {
			return nilIfEmpty(out), nil
		}
		first = false
		var ok bool
		v, ok, err = l.pinNext(v.base, true, func(int) bool { return true })
		if err != nil || !ok {
			// Closed meanwhile, or no further segment: what we have is whole.
			return nilIfEmpty(out), nil
		}
	}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// readSegment adds whole batches from one pinned segment to *out. In the
// first segment it starts at the batch holding offset, in later ones at the
// start. It reports whether the read may continue into the next segment.
func (l *Log) readSegment(v segView, first bool, offset, maxOffset int64, minOneBatch bool, budget *int64, out *[]byte) (bool, error) {
	hr := newHeaderReader(v)
	var pos int64
	var b Batch
	found := v.size > 0
	var err error
	if first {
		pos, b, found, err = hr.find(v, offset)
	} else if found {
		b, err = hr.header(0)
	}
	hr.release()
	if err != nil {
		return false, err
	}
	if !found {
		return true, nil // offset sits in a gap at the end of this segment
	}
	if b.BaseOffset >= maxOffset {
		return false, nil
	}
	firstSize := int64(b.BatchLength) + logOverhead
	want := min(*budget, v.size-pos)
	if len(*out) == 0 && minOneBatch && firstSize > want {
		want = firstSize // KIP-74: make progress past a large batch
	}
	if want < firstSize {
		return false, nil
	}
	n, toEnd, err := readRun(v, pos, want, maxOffset, out)
	if err != nil {
		return false, err
	}
	*budget -= n
	return toEnd && *budget > 0, nil
}

// pinNext pins the first segment after the one based at after (-1: from the
// start) whose index in l.segs keep accepts; keep runs under the reader
// lock. ok=false when there is none, or, if contiguous, when the segment at
// after has been deleted since (a Read then stops rather than skip offsets).
func (l *Log) pinNext(after int64, contiguous bool, keep func(i int) bool) (segView, bool, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return segView{}, false, ErrClosed
	}
	i := l.segmentFor(after)
	if contiguous && after >= 0 && (i < 0 || l.segs[i].base != after) {
		// The segment we came from was deleted meanwhile; whatever follows
		// now is not adjacent to what the caller has read.
		return segView{}, false, nil
	}
	for i++; i < len(l.segs); i++ {
		if keep(i) {
			return l.segs[i].pin(), true, nil
		}
	}
	return segView{}, false, nil
}

// readRun appends to *out up to want bytes of whole batches from v at pos,
// stopping before a batch whose base offset is >= maxOffset. It reports the
// bytes added and whether the read ran to the segment's end (so the next
// segment may continue it).
func readRun(v segView, pos, want, maxOffset int64, out *[]byte) (int64, bool, error) {
	old := len(*out)
	buf := slices.Grow(*out, int(want))[:old+int(want)]
	chunk := buf[old:]
	n, err := v.seg.log.ReadAt(chunk, pos)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, false, fmt.Errorf("read segment %s at %d: %w", v.seg.logPath, pos, err)
	}
	// A short read means a follower truncation cut the file after we pinned
	// it; the whole batches before the cut are still a valid answer.
	chunk = chunk[:n]
	var p int64
	stopped := n < int(want)
	for p+batchHeaderSize <= int64(len(chunk)) {
		b := parseHeader(chunk[p:])
		size := int64(b.BatchLength) + logOverhead
		if b.BaseOffset >= maxOffset || b.BatchLength < minBatchLength || p+size > int64(len(chunk)) {
			stopped = true
			break
		}
		p += size
	}
	*out = buf[:old+int(p)]
	return p, !stopped && pos+p == v.size, nil
}

// decompressor is shared: kgo's default decompressor pools its codecs and is
// safe for concurrent use.
var decompressor = kgo.DefaultDecompressor()

// batchRecords returns the uncompressed records section of a stored batch.
func batchRecords(raw []byte, b Batch) ([]byte, error) {
	body := raw[batchHeaderSize:]
	if b.Compression() == 0 {
		return body, nil
	}
	out, err := decompressor.Decompress(body, kgo.CompressionCodecType(b.Compression()))
	if err != nil {
		return nil, fmt.Errorf("decompress batch at offset %d (codec %d): %w", b.BaseOffset, b.Compression(), err)
	}
	return out, nil
}

// firstRecordAtOrAfter walks a stored batch and returns the first record
// whose timestamp >= ts and offset >= minOffset. With LogAppendTime every
// record's timestamp is the batch's maxTimestamp, as Kafka defines it.
func firstRecordAtOrAfter(raw []byte, b Batch, ts, minOffset int64) (offset, timestamp int64, found bool, err error) {
	recs, err := batchRecords(raw, b)
	if err != nil {
		return 0, 0, false, err
	}
	err = eachRecord(recs, b.NumRecords, func(r record) bool {
		rts := b.FirstTimestamp + r.tsDelta
		if b.IsLogAppendTime() {
			rts = b.MaxTimestamp
		}
		off := b.BaseOffset + int64(r.offDelta)
		if rts >= ts && off >= minOffset {
			offset, timestamp, found = off, rts, true
			return false
		}
		return true
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("batch at offset %d: %w", b.BaseOffset, err)
	}
	return offset, timestamp, found, nil
}

// OffsetForTimestamp: Kafka's ListOffsets-by-timestamp: the earliest offset whose record timestamp
// >= ts (record level: decompress the batch with kgo.DefaultDecompressor() from
// github.com/twmb/franz-go/pkg/kgo and walk records, kmsg has record decoding helpers), with that
// record's timestamp; found=false when no such record.
//
// As in Kafka's LogSegment.findOffsetByTimestamp, the first segment whose
// largest timestamp reaches ts holds the answer; within it the .timeindex
// floor entry and the .index give a starting position, then batches are
// walked until one's maxTimestamp >= ts, and only that batch is decompressed.
// Records below the log start offset are skipped.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	var logStart int64
	// Candidates: segments not wholly below the log start whose largest
	// timestamp reaches ts. Each is pinned in turn, searched without the lock.
	keep := func(i int) bool {
		logStart = l.logStart.Load()
		whollyBelowStart := i+1 < len(l.segs) && l.segs[i+1].base <= logStart
		return !whollyBelowStart && l.segs[i].maxTs >= ts
	}
	after := int64(-1)
	for {
		v, ok, err := l.pinNext(after, false, keep)
		if err != nil {
			return 0, 0, false, fmt.Errorf("offset for timestamp %s: %w", l.dir, err)
		}
		if !ok {
			return 0, 0, false, nil
		}
		offset, timestamp, found, err = searchSegment(v, ts, logStart)
		v.unpin()
		if err != nil {
			return 0, 0, false, fmt.Errorf("offset for timestamp %s: %w", l.dir, err)
		}
		if found {
			return offset, timestamp, true, nil
		}
		after = v.base
	}
}

func searchSegment(v segView, ts, logStart int64) (offset, timestamp int64, found bool, err error) {
	hr := newHeaderReader(v)
	defer hr.release()
	startOff, ok, err := lookupTimestamp(v.tidx, v.base, ts)
	if err != nil {
		return 0, 0, false, err
	}
	pos := int64(0)
	if ok {
		if pos, err = lookupPosition(v.idx, v.base, startOff); err != nil {
			return 0, 0, false, err
		}
	}
	for pos < v.size {
		b, err := hr.header(pos)
		if err != nil {
			return 0, 0, false, err
		}
		if b.MaxTimestamp >= ts && b.LastOffset() >= logStart {
			raw, err := hr.readBatch(pos, b)
			if err != nil {
				return 0, 0, false, err
			}
			offset, timestamp, found, err = firstRecordAtOrAfter(raw, b, ts, logStart)
			if err != nil || found {
				return offset, timestamp, found, err
			}
		}
		pos += int64(b.BatchLength) + logOverhead
	}
	return 0, 0, false, nil
}

// MaxTimestamp: the record with the largest timestamp and its offset (ListOffsets -3); found=false if empty.
//
// The segment with the largest timestamp (the earliest on ties) is found from
// in-memory state; then the batch that first reached it is decompressed to
// return the exact record offset (KIP-734), not the batch's last offset.
// found=false also when no record carries a timestamp (all -1).
func (l *Log) MaxTimestamp() (offset, timestamp int64, found bool, err error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return 0, 0, false, fmt.Errorf("max timestamp %s: %w", l.dir, ErrClosed)
	}
	logStart := l.logStart.Load()
	var best *segment
	for i, seg := range l.segs {
		if i+1 < len(l.segs) && l.segs[i+1].base <= logStart {
			continue
		}
		if seg.maxTs >= 0 && (best == nil || seg.maxTs > best.maxTs) {
			best = seg
		}
	}
	if best == nil || l.leo.Load() == logStart {
		l.mu.RUnlock()
		return 0, 0, false, nil
	}
	v := best.pin()
	l.mu.RUnlock()
	defer v.unpin()

	hr := newHeaderReader(v)
	defer hr.release()
	pos, b, ok, err := hr.find(v, max(v.maxTsOffset, logStart))
	if err != nil {
		return 0, 0, false, fmt.Errorf("max timestamp %s: %w", l.dir, err)
	}
	if !ok {
		return v.maxTsOffset, v.maxTs, true, nil
	}
	raw, err := hr.readBatch(pos, b)
	if err != nil {
		return 0, 0, false, fmt.Errorf("max timestamp %s: %w", l.dir, err)
	}
	offset, timestamp, found, err = firstRecordAtOrAfter(raw, b, v.maxTs, logStart)
	if err != nil {
		return 0, 0, false, fmt.Errorf("max timestamp %s: %w", l.dir, err)
	}
	if !found {
		// The header claimed a max no record has; fall back to the batch.
		return b.LastOffset(), v.maxTs, true, nil
	}
	return offset, timestamp, true, nil
}
