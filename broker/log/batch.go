package log

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// v2 record batch header layout (Kafka's DefaultRecordBatch). Offsets are byte
// positions from the start of the batch.
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offFirstTimestamp  = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57

	// batchHeaderSize is the fixed part before the records (RECORD_BATCH_OVERHEAD).
	batchHeaderSize = 61
	// logOverhead is baseOffset + batchLength: the bytes not counted in batchLength.
	logOverhead = 12
	// minBatchLength is the smallest legal batchLength (a header without records).
	minBatchLength = batchHeaderSize - logOverhead

	attrCompressionMask = 0x07
	attrTimestampType   = 0x08 // set: LogAppendTime
	attrTransactional   = 0x10
	attrControl         = 0x20

	maxCodec = 4 // zstd; 5..7 are not assigned
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Batch is one validated v2 record batch of a produce payload; Raw aliases the payload.
// Append rewrites baseOffset (and, with LogAppendTime, attributes,
// maxTimestamp and CRC) inside Raw, so the payload must not be shared with
// another goroutine while Append runs.
type Batch struct {
	Raw                  []byte
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Compression returns the codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
func (b Batch) Compression() int8 { return int8(b.Attributes & attrCompressionMask) }

// IsTransactional reports the transactional attribute bit.
func (b Batch) IsTransactional() bool { return b.Attributes&attrTransactional != 0 }

// IsControl reports the control-batch attribute bit (transaction markers).
func (b Batch) IsControl() bool { return b.Attributes&attrControl != 0 }

// IsLogAppendTime reports whether the batch's timestamps are broker-assigned.
func (b Batch) IsLogAppendTime() bool { return b.Attributes&attrTimestampType != 0 }

// LastOffset is the offset of the batch's last record.
func (b Batch) LastOffset() int64 { return b.BaseOffset + int64(b.LastOffsetDelta) }

// Size is the batch's length on disk and on the wire.
func (b Batch) Size() int { return len(b.Raw) }

// parseHeader decodes the fixed header; raw must hold at least batchHeaderSize
// bytes. It does not check anything.
func parseHeader(raw []byte) Batch {
	be := binary.BigEndian
	return Batch{
		Raw:                  raw,
		BaseOffset:           int64(be.Uint64(raw[offBaseOffset:])),
		BatchLength:          int32(be.Uint32(raw[offBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(raw[offLeaderEpoch:])),
		Magic:                int8(raw[offMagic]),
		CRC:                  be.Uint32(raw[offCRC:]),
		Attributes:           int16(be.Uint16(raw[offAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(raw[offLastOffsetDelta:])),
		FirstTimestamp:       int64(be.Uint64(raw[offFirstTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(raw[offMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(raw[offProducerID:])),
		ProducerEpoch:        int16(be.Uint16(raw[offProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(raw[offBaseSequence:])),
		NumRecords:           int32(be.Uint32(raw[offNumRecords:])),
	}
}

// batchCRC computes the v2 CRC: CRC32C over attributes..end of batch.
func batchCRC(raw []byte) uint32 { return crc32.Checksum(raw[offAttributes:], crcTable) }

// ValidateBatches splits a produce payload (one or more concatenated v2 batches) and validates
// each: length fields consistent and in bounds, magic == 2 (else ErrUnsupportedMagic), CRC32C
// (Castagnoli, over attributes..end) matches (else ErrCorruptMessage), batch size <= maxBatchBytes
// (else ErrRecordTooLarge), NumRecords >= 1 and lastOffsetDelta == NumRecords-1 for uncompressed
// batches (ErrCorruptMessage otherwise). Empty payload -> ErrCorruptMessage. Never panics on any input.
//
// Beyond the header checks it also, like Kafka's LogValidator:
//   - rejects unassigned compression codecs (5..7);
//   - requires lastOffsetDelta == NumRecords-1 for compressed batches too,
//     because the broker assigns offsets from the header and a smaller delta
//     would make the next batch's offsets overlap;
//   - walks the records of uncompressed batches: every record must be well
//     formed, carry offsetDelta == its index, and the records must fill the
//     batch exactly. Compressed batches are not decompressed here.
//
// maxBatchBytes <= 0 disables the size check. The returned Batches alias records.
func ValidateBatches(records []byte, maxBatchBytes int32) ([]Batch, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("empty produce payload: %w", ErrCorruptMessage)
	}
	// Nearly every produce carries one batch per partition; avoid growing.
	out := make([]Batch, 0, 1)
	for pos := 0; pos < len(records); {
		b, err := validateOne(records[pos:], maxBatchBytes)
		if err != nil {
			return nil, fmt.Errorf("batch %d at byte %d: %w", len(out), pos, err)
		}
		out = append(out, b)
		pos += len(b.Raw)
	}
	return out, nil
}

// validateOne validates the batch at the start of rest and returns it with Raw
// cut to its length.
func validateOne(rest []byte, maxBatchBytes int32) (Batch, error) {
	if len(rest) < batchHeaderSize {
		// Read the magic if we have it, so an old-format message gets the
		// more useful error even when it is shorter than a v2 header.
		if len(rest) > offMagic && rest[offMagic] != 2 {
			return Batch{}, fmt.Errorf("magic %d: %w", int8(rest[offMagic]), ErrUnsupportedMagic)
		}
		return Batch{}, fmt.Errorf("%d bytes left, a v2 header needs %d: %w", len(rest), batchHeaderSize, ErrCorruptMessage)
	}
	if m := int8(rest[offMagic]); m != 2 {
		return Batch{}, fmt.Errorf("magic %d: %w", m, ErrUnsupportedMagic)
	}
	length := int32(binary.BigEndian.Uint32(rest[offBatchLength:]))
	if length < minBatchLength {
		return Batch{}, fmt.Errorf("batchLength %d < %d: %w", length, minBatchLength, ErrCorruptMessage)
	}
	size := int64(length) + logOverhead
	if size > int64(len(rest)) {
		return Batch{}, fmt.Errorf("batchLength %d overruns payload (%d bytes left): %w", length, len(rest), ErrCorruptMessage)
	}
	if maxBatchBytes > 0 && size > int64(maxBatchBytes) {
		return Batch{}, fmt.Errorf("batch of %d bytes exceeds max.message.bytes %d: %w", size, maxBatchBytes, ErrRecordTooLarge)
	}
	raw := rest[:size:size]
	b := parseHeader(raw)
	if got := batchCRC(raw); got != b.CRC {
		return Batch{}, fmt.Errorf("crc %08x, computed %08x: %w", b.CRC, got, ErrCorruptMessage)
	}
	if err := checkCounts(b); err != nil {
		return Batch{}, err
	}
	if b.Compression() == 0 {
		var want int32
		err := eachRecord(raw[batchHeaderSize:], b.NumRecords, func(r record) bool {
			if r.offDelta != want {
				return false
			}
			want++
			return true
		})
		if err != nil {
			return Batch{}, err
		}
		if want != b.NumRecords {
			return Batch{}, fmt.Errorf("record %d has offsetDelta out of sequence: %w", want, ErrCorruptMessage)
		}
	}
	return b, nil
}

// checkCounts holds the header checks shared by produce validation and
// recovery.
func checkCounts(b Batch) error {
	if c := b.Compression(); c > maxCodec {
		return fmt.Errorf("compression codec %d: %w", c, ErrCorruptMessage)
	}
	if b.NumRecords < 1 {
		return fmt.Errorf("record count %d: %w", b.NumRecords, ErrCorruptMessage)
	}
	if b.LastOffsetDelta != b.NumRecords-1 {
		return fmt.Errorf("lastOffsetDelta %d with %d records: %w", b.LastOffsetDelta, b.NumRecords, ErrCorruptMessage)
	}
	return nil
}

// record is one parsed v2 record. Slices alias the records section.
type record struct {
	raw        []byte // length varint and body
	attr       byte
	tsDelta    int64
	offDelta   int32
	key, value []byte // nil when null
	rest       []byte // key, value and headers: everything after offsetDelta
}

// eachRecord is the one record walker of the package (produce validation,
// timestamp lookups, compaction, key checks): it parses n v2 records from
// an uncompressed records section, checking every field's layout, and calls
// fn with each until fn returns false. Bytes after the n-th record are
// corruption.
func eachRecord(data []byte, n int32, fn func(record) bool) error {
	for i := range n {
		l, k := binary.Varint(data)
		if k <= 0 || l < 0 || l > int64(len(data)-k) {
			return fmt.Errorf("record %d: bad length: %w", i, ErrCorruptMessage)
		}
		r := record{raw: data[:k+int(l)]}
		body := data[k : k+int(l)]
		data = data[k+int(l):]
		if _, _, err := parseRecord(body); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		// parseRecord checked the layout; decode the fields it skipped.
		r.attr = body[0]
		body = body[1:]
		ts, k1 := binary.Varint(body)
		od, k2 := binary.Varint(body[k1:])
		r.tsDelta, r.offDelta = ts, int32(od)
		r.rest = body[k1+k2:]
		r.key, body = varBytes(r.rest)
		r.value, _ = varBytes(body)
		if !fn(r) {
			return nil
		}
	}
	if len(data) != 0 {
		return fmt.Errorf("%d bytes after the last record: %w", len(data), ErrCorruptMessage)
	}
	return nil
}

// varBytes reads a nullable varint-prefixed field already checked by
// parseRecord; null comes back as nil, empty as a non-nil empty slice.
func varBytes(b []byte) ([]byte, []byte) {
	l, k := binary.Varint(b)
	b = b[k:]
	if l < 0 {
		return nil, b
	}
	return b[:l:l], b[l:]
}

// parseRecord checks one record body (after its length varint) and returns its
// timestamp and offset deltas.
func parseRecord(rec []byte) (tsDelta int64, offDelta int32, err error) {
	bad := func(what string) (int64, int32, error) {
		return 0, 0, fmt.Errorf("bad %s: %w", what, ErrCorruptMessage)
	}
	if len(rec) < 1 {
		return bad("attributes")
	}
	rec = rec[1:]
	tsDelta, k := binary.Varint(rec)
	if k <= 0 {
		return bad("timestampDelta")
	}
	rec = rec[k:]
	od, k := binary.Varint(rec)
	if k <= 0 || od != int64(int32(od)) {
		return bad("offsetDelta")
	}
	rec = rec[k:]
	var ok bool
	if rec, ok = skipVarBytes(rec, true); !ok {
		return bad("key")
	}
	if rec, ok = skipVarBytes(rec, true); !ok {
		return bad("value")
	}
	nh, k := binary.Varint(rec)
	if k <= 0 || nh < 0 || nh > int64(len(rec)) {
		return bad("header count")
	}
	rec = rec[k:]
	for range nh {
		if rec, ok = skipVarBytes(rec, false); !ok {
			return bad("header key")
		}
		if rec, ok = skipVarBytes(rec, true); !ok {
			return bad("header value")
		}
	}
	if len(rec) != 0 {
		return bad("record length")
	}
	return tsDelta, int32(od), nil
}

// skipVarBytes skips a varint-length-prefixed byte field (-1 = null when
// nullable).
func skipVarBytes(b []byte, nullable bool) ([]byte, bool) {
	l, k := binary.Varint(b)
	if k <= 0 {
		return nil, false
	}
	b = b[k:]
	if l == -1 && nullable {
		return b, true
	}
	if l < 0 || l > int64(len(b)) {
		return nil, false
	}
	return b[l:], true
}

// setLogAppendTime marks the batch as LogAppendTime with maxTimestamp ts and
// recomputes the CRC, as Kafka's LogValidator does in place.
func setLogAppendTime(b *Batch, ts int64) {
	be := binary.BigEndian
	b.Attributes |= attrTimestampType
	b.MaxTimestamp = ts
	be.PutUint16(b.Raw[offAttributes:], uint16(b.Attributes))
	be.PutUint64(b.Raw[offMaxTimestamp:], uint64(ts))
	b.CRC = batchCRC(b.Raw)
	be.PutUint32(b.Raw[offCRC:], b.CRC)
}
