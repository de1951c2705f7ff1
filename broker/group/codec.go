package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record key versions in __consumer_offsets. The key version doubles as the
// record type: 0 and 1 are offset commits (Kafka writes 1), 2 is group
// metadata (GroupCoordinatorRecordHelpers).
const (
	keyOffsetCommitV0  = 0
	keyOffsetCommit    = 1
	keyGroupMetadata   = 2
	valueOffsetCommit  = 3 // written unless an expire timestamp is set
	valueOffsetExpire  = 1 // the only version with expireTimestamp
	valueGroupMetadata = 3
)

// ErrCorruptRecord marks a __consumer_offsets record that cannot be decoded.
var ErrCorruptRecord = errors.New("corrupt __consumer_offsets record")

// OffsetKey is an OffsetCommitKey: which group's offset of which partition.
type OffsetKey struct {
	Group     string
	Topic     string
	Partition int32
}

// OffsetValue is an OffsetCommitValue.
type OffsetValue struct {
	Offset          int64
	LeaderEpoch     int32 // -1 when unknown (and in v0-v2 records)
	Metadata        string
	CommitTimestamp int64
	ExpireTimestamp int64 // -1 unless set by OffsetCommit v2-v4 retention
}

// GroupValue is a GroupMetadataValue.
type GroupValue struct {
	ProtocolType          string
	Generation            int32
	Protocol              *string
	Leader                *string
	CurrentStateTimestamp int64 // -1 when unknown
	Members               []MemberValue
}

// MemberValue is one GroupMetadataValue member.
type MemberValue struct {
	MemberID         string
	GroupInstanceID  *string
	ClientID         string
	ClientHost       string
	RebalanceTimeout int32
	SessionTimeout   int32
	Subscription     []byte
	Assignment       []byte
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendNullableString(dst []byte, s *string) []byte {
	if s == nil {
		return binary.BigEndian.AppendUint16(dst, 0xffff)
	}
	return appendString(dst, *s)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// EncodeOffsetKey is OffsetCommitKey v1: int16 version, group, topic,
// int32 partition, strings int16-length prefixed.
func EncodeOffsetKey(k OffsetKey) []byte {
	b := binary.BigEndian.AppendUint16(nil, keyOffsetCommit)
	b = appendString(b, k.Group)
	b = appendString(b, k.Topic)
	return binary.BigEndian.AppendUint32(b, uint32(k.Partition))
}

// EncodeOffsetValue is OffsetCommitValue v3 {offset, leaderEpoch, metadata,
// commitTimestamp}, or v1 {offset, metadata, commitTimestamp,
// expireTimestamp} when an expire timestamp is set, which is what Kafka
// writes (MetadataVersion.offsetCommitValueVersion). Both are versions
// Burrow reads; v2 would be dropped by it.
func EncodeOffsetValue(v OffsetValue) []byte {
	if v.ExpireTimestamp >= 0 {
		b := binary.BigEndian.AppendUint16(nil, valueOffsetExpire)
		b = binary.BigEndian.AppendUint64(b, uint64(v.Offset))
		b = appendString(b, v.Metadata)
		b = binary.BigEndian.AppendUint64(b, uint64(v.CommitTimestamp))
		return binary.BigEndian.AppendUint64(b, uint64(v.ExpireTimestamp))
	}
	b := binary.BigEndian.AppendUint16(nil, valueOffsetCommit)
	b = binary.BigEndian.AppendUint64(b, uint64(v.Offset))
	b = binary.BigEndian.AppendUint32(b, uint32(v.LeaderEpoch))
	b = appendString(b, v.Metadata)
	return binary.BigEndian.AppendUint64(b, uint64(v.CommitTimestamp))
}

// EncodeGroupKey is GroupMetadataKey v2: int16 version, group.
func EncodeGroupKey(group string) []byte {
	return appendString(binary.BigEndian.AppendUint16(nil, keyGroupMetadata), group)
}

// EncodeGroupValue is GroupMetadataValue v3.
func EncodeGroupValue(v GroupValue) []byte {
	b := binary.BigEndian.AppendUint16(nil, valueGroupMetadata)
	b = appendString(b, v.ProtocolType)
	b = binary.BigEndian.AppendUint32(b, uint32(v.Generation))
	b = appendNullableString(b, v.Protocol)
	b = appendNullableString(b, v.Leader)
	b = binary.BigEndian.AppendUint64(b, uint64(v.CurrentStateTimestamp))
	b = binary.BigEndian.AppendUint32(b, uint32(len(v.Members)))
	for _, m := range v.Members {
		b = appendString(b, m.MemberID)
		b = appendNullableString(b, m.GroupInstanceID)
		b = appendString(b, m.ClientID)
		b = appendString(b, m.ClientHost)
		b = binary.BigEndian.AppendUint32(b, uint32(m.RebalanceTimeout))
		b = binary.BigEndian.AppendUint32(b, uint32(m.SessionTimeout))
		b = appendBytes(b, m.Subscription)
		b = appendBytes(b, m.Assignment)
	}
	return b
}

// reader wraps kbin.Reader with the classic (v0-v3) and flexible (v4)
// encodings of the record schemas.
type reader struct {
	kbin.Reader
	flexible bool
}

func (r *reader) str() string {
	if r.flexible {
		return r.CompactString()
	}
	return r.String()
}

func (r *reader) nullableStr() *string {
	if r.flexible {
		return r.CompactNullableString()
	}
	return r.NullableString()
}

func (r *reader) bytes() []byte {
	if r.flexible {
		return r.CompactBytes()
	}
	return r.Bytes()
}

func (r *reader) arrayLen() int32 {
	if r.flexible {
		return r.CompactArrayLen()
	}
	return r.ArrayLen()
}

// skipTags skips a flexible version's tagged-field section.
func (r *reader) skipTags() {
	if !r.flexible {
		return
	}
	for n := r.Uvarint(); n > 0 && r.Ok(); n-- {
		r.Uvarint()
		r.Span(int(r.Uvarint()))
	}
}

// DecodeKey returns the key's version and, for offset keys, the key, for
// group keys the group id.
func DecodeKey(b []byte) (version int16, ok OffsetKey, group string, err error) {
	r := reader{Reader: kbin.Reader{Src: b}}
	version = r.Int16()
	switch version {
	case keyOffsetCommitV0, keyOffsetCommit:
		ok.Group, ok.Topic, ok.Partition = r.String(), r.String(), r.Int32()
	case keyGroupMetadata:
		group = r.String()
	default:
		if r.Ok() {
			// Newer record types (consumer/share groups of KIP-848)
			// that a classic coordinator does not read.
			return version, ok, "", nil
		}
	}
	if !r.Ok() {
		return version, ok, group, fmt.Errorf("%w: short key", ErrCorruptRecord)
	}
	return version, ok, group, nil
}

// DecodeOffsetValue decodes OffsetCommitValue v0-v4.
func DecodeOffsetValue(b []byte) (OffsetValue, error) {
	r := reader{Reader: kbin.Reader{Src: b}}
	v := OffsetValue{LeaderEpoch: -1, ExpireTimestamp: -1}
	version := r.Int16()
	if version < 0 || version > 4 {
		return v, fmt.Errorf("%w: offset commit value version %d", ErrCorruptRecord, version)
	}
	r.flexible = version >= 4
	v.Offset = r.Int64()
	if version >= 3 {
		v.LeaderEpoch = r.Int32()
	}
	v.Metadata = r.str()
	v.CommitTimestamp = r.Int64()
	if version == 1 {
		v.ExpireTimestamp = r.Int64()
	}
	r.skipTags()
	if !r.Ok() {
		return v, fmt.Errorf("%w: short offset commit value v%d", ErrCorruptRecord, version)
	}
	return v, nil
}

// DecodeGroupValue decodes GroupMetadataValue v0-v4.
func DecodeGroupValue(b []byte) (GroupValue, error) {
	r := reader{Reader: kbin.Reader{Src: b}}
	v := GroupValue{CurrentStateTimestamp: -1}
	version := r.Int16()
	if version < 0 || version > 4 {
		return v, fmt.Errorf("%w: group metadata value version %d", ErrCorruptRecord, version)
	}
	r.flexible = version >= 4
	v.ProtocolType = r.str()
	v.Generation = r.Int32()
	v.Protocol = r.nullableStr()
	v.Leader = r.nullableStr()
	if version >= 2 {
		v.CurrentStateTimestamp = r.Int64()
	}
	n := r.arrayLen()
	if n < 0 || int(n) > len(r.Src) {
		return v, fmt.Errorf("%w: group metadata member count %d", ErrCorruptRecord, n)
	}
	for i := int32(0); i < n && r.Ok(); i++ {
		m := MemberValue{RebalanceTimeout: -1}
		m.MemberID = r.str()
		if version >= 3 {
			m.GroupInstanceID = r.nullableStr()
		}
		m.ClientID = r.str()
		m.ClientHost = r.str()
		if version >= 1 {
			m.RebalanceTimeout = r.Int32()
		}
		m.SessionTimeout = r.Int32()
		m.Subscription = r.bytes()
		m.Assignment = r.bytes()
		r.skipTags()
		v.Members = append(v.Members, m)
	}
	r.skipTags()
	if !r.Ok() {
		return v, fmt.Errorf("%w: short group metadata value v%d", ErrCorruptRecord, version)
	}
	return v, nil
}

// JavaStringHashCode is java.lang.String.hashCode: s[0]*31^(n-1) + ... over
// UTF-16 code units with int32 overflow.
func JavaStringHashCode(s string) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(s)) {
		h = 31*h + int32(u)
	}
	return h
}

// PartitionFor is Kafka's Utils.abs(groupId.hashCode) % partitions, where
// Utils.abs maps MinInt32 to 0 (not to itself, as Math.abs would).
func PartitionFor(group string, partitions int32) int32 {
	h := JavaStringHashCode(group)
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// KV is one record of a batch; a nil Value is a tombstone.
type KV struct {
	Key, Value []byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EncodeBatch builds an uncompressed v2 record batch the way Kafka's
// coordinator writes one: base offset 0 (the log assigns it), CreateTime
// timestamps all equal to nowMs, no producer id, one record per KV with
// offset deltas 0..n-1 and no headers.
func EncodeBatch(recs []KV, nowMs int64) []byte {
	var body []byte
	for i, kv := range recs {
		var r []byte
		r = append(r, 0)                   // attributes
		r = kbin.AppendVarlong(r, 0)       // timestamp delta
		r = kbin.AppendVarint(r, int32(i)) // offset delta
		r = kbin.AppendVarintBytes(r, kv.Key)
		r = kbin.AppendVarintBytes(r, kv.Value) // nil -> -1: tombstone
		r = kbin.AppendVarint(r, 0)             // headers
		body = kbin.AppendVarint(body, int32(len(r)))
		body = append(body, r...)
	}
	be := binary.BigEndian
	b := make([]byte, 0, 61+len(body))
	b = be.AppendUint64(b, 0)                   // base offset
	b = be.AppendUint32(b, 0)                   // batch length, below
	b = be.AppendUint32(b, 0)                   // partition leader epoch (set by the log)
	b = append(b, 2)                            // magic
	b = be.AppendUint32(b, 0)                   // crc, below
	b = be.AppendUint16(b, 0)                   // attributes: no compression, CreateTime
	b = be.AppendUint32(b, uint32(len(recs)-1)) // last offset delta
	b = be.AppendUint64(b, uint64(nowMs))       // first timestamp
	b = be.AppendUint64(b, uint64(nowMs))       // max timestamp
	b = be.AppendUint64(b, 0xffffffffffffffff)  // producer id -1
	b = be.AppendUint16(b, 0xffff)              // producer epoch -1
	b = be.AppendUint32(b, 0xffffffff)          // base sequence -1
	b = be.AppendUint32(b, uint32(len(recs)))   // record count
	b = append(b, body...)
	be.PutUint32(b[8:], uint32(len(b)-12))
	be.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// StoredRecord is one record read back from a __consumer_offsets log.
type StoredRecord struct {
	Offset      int64
	Timestamp   int64
	Key, Value  []byte // Value nil for a tombstone
	Transaction bool   // from a transactional batch (not written by kobs yet)
}

var decompressor = kgo.DefaultDecompressor()

// DecodeBatches walks stored record batches (as the log returns them),
// decompressing where needed, and calls fn for each data record. Control
// batches (transaction markers) are skipped. It returns the offset after
// the last whole batch, so a caller reading in chunks knows where to go on.
func DecodeBatches(data []byte, fn func(StoredRecord) error) (next int64, err error) {
	next = -1
	for len(data) > 0 {
		if len(data) < 12 {
			return next, nil // partial trailing batch: the caller reads on
		}
		size := 12 + int(int32(binary.BigEndian.Uint32(data[8:])))
		if size < 61 {
			return next, fmt.Errorf("%w: batch length %d", ErrCorruptRecord, size-12)
		}
		if size > len(data) {
			return next, nil
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(data[:size]); err != nil {
			return next, fmt.Errorf("%w: batch header: %v", ErrCorruptRecord, err)
		}
		data = data[size:]
		if rb.Magic != 2 {
			return next, fmt.Errorf("%w: magic %d", ErrCorruptRecord, rb.Magic)
		}
		next = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
		if rb.Attributes&0x20 != 0 { // control batch
			continue
		}
		recs := rb.Records
		if codec := rb.Attributes & 0x07; codec != 0 {
			recs, err = decompressor.Decompress(recs, kgo.CompressionCodecType(codec))
			if err != nil {
				return next, fmt.Errorf("%w: decompress batch at %d: %v", ErrCorruptRecord, rb.FirstOffset, err)
			}
		}
		r := kbin.Reader{Src: recs}
		for i := int32(0); i < rb.NumRecords; i++ {
			l := r.Varint()
			rec := kbin.Reader{Src: r.Span(int(l))}
			rec.Int8() // attributes
			tsDelta := rec.Varlong()
			offDelta := rec.Varint()
			key := rec.VarintBytes()
			val := rec.VarintBytes()
			if !r.Ok() || !rec.Ok() {
				return next, fmt.Errorf("%w: record %d of batch at %d", ErrCorruptRecord, i, rb.FirstOffset)
			}
			if len(val) == 0 {
				val = nil // Kafka's readers treat an empty value as a tombstone too
			}
			if err := fn(StoredRecord{
				Offset:      rb.FirstOffset + int64(offDelta),
				Timestamp:   rb.FirstTimestamp + tsDelta,
				Key:         key,
				Value:       val,
				Transaction: rb.Attributes&0x10 != 0,
			}); err != nil {
				return next, err
			}
		}
	}
	return next, nil
}
