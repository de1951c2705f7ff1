package log

import (
	"fmt"
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
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, fmt.Errorf("read %s: %w", l.dir, ErrClosed)
	}
	start, end := l.logStart.Load(), l.leo.Load()
	if offset < start || offset > end {
		return nil, fmt.Errorf("read %s at offset %d (log %d..%d): %w", l.dir, offset, start, end, ErrOffsetOutOfRange)
	}
	if offset == end {
		return nil, nil
	}
	maxOffset = min(maxOffset, end)
	budget := int64(max(maxBytes, 0))

	var out []byte
	firstSeg := l.segmentFor(offset)
	for i := firstSeg; i < len(l.segs); i++ {
		seg := l.segs[i]
		hr := newHeaderReader(seg)
		var pos int64
		var first Batch
		found := true
		var err error
		if i == firstSeg {
			pos, first, found, err = hr.find(seg, offset)
		} else if seg.size > 0 {
			first, err = hr.header(0)
		} else {
			found = false
		}
		hr.release()
		if err != nil {
			return nil, fmt.Errorf("read %s at offset %d: %w", l.dir, offset, err)
		}
		if !found {
			continue // offset sits in a gap at the end of this segment
		}
		if first.BaseOffset >= maxOffset {
			break
		}
		firstSize := int64(first.BatchLength) + logOverhead
		want := min(budget, seg.size-pos)
		if len(out) == 0 && minOneBatch && firstSize > want {
			want = firstSize // KIP-74: make progress past a large batch
		}
		if want < firstSize {
			break
		}
		n, more, err := l.readRun(seg, pos, want, maxOffset, &out)
		if err != nil {
			return nil, fmt.Errorf("read %s at offset %d: %w", l.dir, offset, err)
		}
		budget -= n
		if !more || budget <= 0 {
			break
		}
	}
	return out, nil
}

// readRun appends to *out up to want bytes of whole batches from seg at pos,
// stopping before a batch whose base offset is >= maxOffset. It reports the
// bytes added and whether the read ran to the segment's end (so the next
// segment may continue it).
func (l *Log) readRun(seg *segment, pos, want, maxOffset int64, out *[]byte) (int64, bool, error) {
	old := len(*out)
	buf := slices.Grow(*out, int(want))[:old+int(want)]
	chunk := buf[old:]
	if _, err := seg.log.ReadAt(chunk, pos); err != nil {
		return 0, false, fmt.Errorf("read segment %s at %d: %w", seg.logPath, pos, err)
	}
	var p int64
	stopped := false
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
	ranToEnd := !stopped && pos+p == seg.size
	return p, ranToEnd, nil
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
	err = walkRecords(recs, b.NumRecords, func(tsDelta int64, offDelta int32) bool {
		rts := b.FirstTimestamp + tsDelta
		if b.IsLogAppendTime() {
			rts = b.MaxTimestamp
		}
		off := b.BaseOffset + int64(offDelta)
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
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, 0, false, fmt.Errorf("offset for timestamp %s: %w", l.dir, ErrClosed)
	}
	logStart := l.logStart.Load()
	for i, seg := range l.segs {
		if i+1 < len(l.segs) && l.segs[i+1].base <= logStart {
			continue // wholly below the log start, awaiting retention
		}
		if seg.maxTs < ts {
			continue
		}
		offset, timestamp, found, err = l.searchSegment(seg, ts, logStart)
		if err != nil || found {
			return offset, timestamp, found, err
		}
	}
	return 0, 0, false, nil
}

func (l *Log) searchSegment(seg *segment, ts, logStart int64) (offset, timestamp int64, found bool, err error) {
	hr := newHeaderReader(seg)
	defer hr.release()
	startOff, ok, err := seg.tidx.lookup(ts)
	if err != nil {
		return 0, 0, false, fmt.Errorf("offset for timestamp %s: %w", l.dir, err)
	}
	pos := int64(0)
	if ok {
		if pos, err = seg.idx.lookup(startOff); err != nil {
			return 0, 0, false, fmt.Errorf("offset for timestamp %s: %w", l.dir, err)
		}
	}
	for pos < seg.size {
		b, err := hr.header(pos)
		if err != nil {
			return 0, 0, false, fmt.Errorf("offset for timestamp %s: %w", l.dir, err)
		}
		if b.MaxTimestamp >= ts && b.LastOffset() >= logStart {
			raw, err := hr.readBatch(pos, b)
			if err != nil {
				return 0, 0, false, fmt.Errorf("offset for timestamp %s: %w", l.dir, err)
			}
			b.Raw = raw
			offset, timestamp, found, err = firstRecordAtOrAfter(raw, b, ts, logStart)
			if err != nil {
				return 0, 0, false, fmt.Errorf("offset for timestamp %s: %w", l.dir, err)
			}
			if found {
				return offset, timestamp, true, nil
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
	defer l.mu.RUnlock()
	if l.closed {
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
		return 0, 0, false, nil
	}
	hr := newHeaderReader(best)
	defer hr.release()
	pos, b, ok, err := hr.find(best, max(best.maxTsOffset, logStart))
	if err != nil {
		return 0, 0, false, fmt.Errorf("max timestamp %s: %w", l.dir, err)
	}
	if !ok {
		return best.maxTsOffset, best.maxTs, true, nil
	}
	raw, err := hr.readBatch(pos, b)
	if err != nil {
		return 0, 0, false, fmt.Errorf("max timestamp %s: %w", l.dir, err)
	}
	b.Raw = raw
	offset, timestamp, found, err = firstRecordAtOrAfter(raw, b, best.maxTs, logStart)
	if err != nil {
		return 0, 0, false, fmt.Errorf("max timestamp %s: %w", l.dir, err)
	}
	if !found {
		// The header claimed a max no record has; fall back to the batch.
		return b.LastOffset(), best.maxTs, true, nil
	}
	return offset, timestamp, true, nil
}
