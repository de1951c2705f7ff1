package log

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fixCRC recomputes the CRC so a test reaches the check after it.
func fixCRC(raw []byte) []byte {
	binary.BigEndian.PutUint32(raw[offCRC:], batchCRC(raw))
	return raw
}

func TestValidateBatchesAccepts(t *testing.T) {
	for _, c := range codecs {
		t.Run("codec="+c.name, func(t *testing.T) {
			a := makeBatch(t, spec{ts: tsRange(100, 3, 5), valueSize: 33, codec: c.codec})
			b := makeBatch(t, spec{ts: []int64{7}, valueSize: 0, codec: c.codec, producer: 42})
			payload := append(append([]byte(nil), a...), b...)
			bs, err := ValidateBatches(payload, int32(len(a)))
			require.NoError(t, err)
			require.Len(t, bs, 2)
			require.Equal(t, a, bs[0].Raw)
			require.Equal(t, b, bs[1].Raw)
			require.Equal(t, int32(5), bs[0].NumRecords)
			require.Equal(t, int32(4), bs[0].LastOffsetDelta)
			require.Equal(t, int64(100), bs[0].FirstTimestamp)
			require.Equal(t, int64(112), bs[0].MaxTimestamp)
			require.Equal(t, int64(42), bs[1].ProducerID)
			require.Equal(t, int8(2), bs[0].Magic)
			require.Equal(t, int32(len(a)-logOverhead), bs[0].BatchLength)
			require.False(t, bs[0].IsControl())
			require.False(t, bs[0].IsTransactional())
			if c.codec != (kgo.CompressionCodec{}) {
				require.NotZero(t, bs[0].Compression())
			}
			// The header agrees with kmsg's decoder.
			var kb kmsg.RecordBatch
			require.NoError(t, kb.ReadFrom(bs[0].Raw))
			require.Equal(t, kb.CRC, int32(bs[0].CRC))
			require.Equal(t, kb.Attributes, bs[0].Attributes)
		})
	}
	t.Run("attribute bits", func(t *testing.T) {
		raw := makeBatch(t, spec{ts: []int64{1}})
		binary.BigEndian.PutUint16(raw[offAttributes:], attrTransactional|attrControl)
		bs, err := ValidateBatches(fixCRC(raw), 0)
		require.NoError(t, err)
		require.True(t, bs[0].IsTransactional())
		require.True(t, bs[0].IsControl())
	})
}

func TestValidateBatchesRejects(t *testing.T) {
	good := func() []byte { return makeBatch(t, spec{ts: tsRange(1, 1, 3), valueSize: 10}) }
	gz := func() []byte {
		return makeBatch(t, spec{ts: tsRange(1, 1, 3), valueSize: 10, codec: kgo.GzipCompression()})
	}
	put32 := func(raw []byte, off int, v int32) []byte {
		binary.BigEndian.PutUint32(raw[off:], uint32(v))
		return raw
	}
	tests := []struct {
		name    string
		payload []byte
		max     int32
		want    error
	}{
		{"empty", nil, 0, ErrCorruptMessage},
		{"one byte", []byte{0}, 0, ErrCorruptMessage},
		{"short header", good()[:40], 0, ErrCorruptMessage},
		{"short old magic", func() []byte { b := good()[:30]; b[offMagic] = 1; return b }(), 0, ErrUnsupportedMagic},
		{"magic 1", func() []byte { b := good(); b[offMagic] = 1; return b }(), 0, ErrUnsupportedMagic},
		{"magic 0", func() []byte { b := good(); b[offMagic] = 0; return b }(), 0, ErrUnsupportedMagic},
		{"magic 3", func() []byte { b := good(); b[offMagic] = 3; return b }(), 0, ErrUnsupportedMagic},
		{"length past payload", func() []byte { b := good(); return put32(b, offBatchLength, int32(len(b))) }(), 0, ErrCorruptMessage},
		{"length negative", func() []byte { b := good(); return put32(b, offBatchLength, -5) }(), 0, ErrCorruptMessage},
		{"length below header", func() []byte { b := good(); return put32(b, offBatchLength, 48) }(), 0, ErrCorruptMessage},
		{"truncated payload", func() []byte { b := good(); return b[:len(b)-1] }(), 0, ErrCorruptMessage},
		{"crc mismatch", func() []byte { b := good(); b[len(b)-1] ^= 1; return b }(), 0, ErrCorruptMessage},
		{"crc field flipped", func() []byte { b := good(); b[offCRC] ^= 0x80; return b }(), 0, ErrCorruptMessage},
		{"compressed body flipped", func() []byte { b := gz(); b[len(b)-2] ^= 1; return b }(), 0, ErrCorruptMessage},
		{"too large", good(), 50 + batchHeaderSize, ErrRecordTooLarge},
		{"zero records", fixCRC(put32(put32(good(), offNumRecords, 0), offLastOffsetDelta, -1)), 0, ErrCorruptMessage},
		{"negative records", fixCRC(put32(good(), offNumRecords, -3)), 0, ErrCorruptMessage},
		{"lastOffsetDelta mismatch", fixCRC(put32(good(), offLastOffsetDelta, 5)), 0, ErrCorruptMessage},
		{"compressed lastOffsetDelta mismatch", fixCRC(put32(gz(), offLastOffsetDelta, 0)), 0, ErrCorruptMessage},
		{"count larger than records", fixCRC(put32(put32(good(), offNumRecords, 4), offLastOffsetDelta, 3)), 0, ErrCorruptMessage},
		{"count smaller than records", fixCRC(put32(put32(good(), offNumRecords, 2), offLastOffsetDelta, 1)), 0, ErrCorruptMessage},
		{"unknown codec", func() []byte {
			b := good()
			binary.BigEndian.PutUint16(b[offAttributes:], 7)
			return fixCRC(b)
		}(), 0, ErrCorruptMessage},
		{"record offsetDelta out of order", func() []byte {
			b := makeBatch(t, spec{ts: tsRange(1, 1, 2), valueSize: 1})
			// record 0: length(1) attrs(1) tsDelta(1) offsetDelta at 3
			b[batchHeaderSize+3] = 2 // zigzag(1)
			return fixCRC(b)
		}(), 0, ErrCorruptMessage},
		{"record length overruns", func() []byte {
			b := good()
			b[batchHeaderSize] = 0x7e // zigzag 63, more than the record
			return fixCRC(b)
		}(), 0, ErrCorruptMessage},
		{"trailing garbage", append(good(), 1, 2, 3), 0, ErrCorruptMessage},
		{"good then bad magic", append(good(), func() []byte { b := good(); b[offMagic] = 1; return b }()...), 0, ErrUnsupportedMagic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := ValidateBatches(tc.payload, tc.max)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, bs)
		})
	}
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzValidateBatches seeds")

// fuzzSeeds are committed under testdata/fuzz/FuzzValidateBatches; run
// `go test -run TestWriteFuzzCorpus -update-corpus ./broker/log/` to refresh.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	tb.Helper()
	good := makeBatch(tb, spec{ts: tsRange(1, 1, 3), valueSize: 10})
	gz := makeBatch(tb, spec{ts: tsRange(5, 2, 4), valueSize: 30, codec: kgo.GzipCompression()})
	zs := makeBatch(tb, spec{ts: tsRange(5, 2, 2), valueSize: 30, codec: kgo.ZstdCompression()})
	lz := makeBatch(tb, spec{ts: []int64{9}, valueSize: 3, codec: kgo.Lz4Compression()})
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	oldMagic := append([]byte(nil), good...)
	oldMagic[offMagic] = 1
	hugeLen := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(hugeLen[offBatchLength:], 0x7fffffff)
	return map[string][]byte{
		"valid-uncompressed": good,
		"valid-gzip":         gz,
		"valid-zstd":         zs,
		"valid-lz4":          lz,
		"valid-two-batches":  append(append([]byte(nil), good...), gz...),
		"bad-crc":            badCRC,
		"old-magic":          oldMagic,
		"huge-length":        hugeLen,
		"torn":               good[:len(good)-5],
		"header-only":        good[:batchHeaderSize],
	}
}

func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("pass -update-corpus to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzValidateBatches")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, data := range fuzzSeeds(t) {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
}

// FuzzValidateBatches: ValidateBatches must never panic, and what it accepts
// must be self-consistent: the payload is left untouched, the batches tile
// it, and every batch re-validates alone and parses with kmsg.
func FuzzValidateBatches(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		orig := append([]byte(nil), payload...)
		bs, err := ValidateBatches(payload, 1<<20)
		if err != nil {
			require.Nil(t, bs)
			return
		}
		require.Equal(t, orig, payload, "validation must not modify the payload")
		var n int
		for _, b := range bs {
			require.Equal(t, orig[n:n+len(b.Raw)], b.Raw)
			n += len(b.Raw)
			again, err := ValidateBatches(b.Raw, 1<<20)
			require.NoError(t, err)
			require.Len(t, again, 1)
			var kb kmsg.RecordBatch
			require.NoError(t, kb.ReadFrom(b.Raw))
			require.Equal(t, b.NumRecords, kb.NumRecords)
			require.GreaterOrEqual(t, b.NumRecords, int32(1))
		}
		require.Equal(t, len(orig), n, "batches tile the payload")
	})
}
