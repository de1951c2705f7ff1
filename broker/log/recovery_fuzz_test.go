package log

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FuzzRecover writes arbitrary bytes as the only segment and opens the log
// without a clean-shutdown marker. Recovery must not panic, must keep exactly
// a prefix of the file made of whole valid batches, and the log must accept
// appends afterwards.
//
//	go test -run '^$' -fuzz FuzzRecover -fuzztime 30s ./broker/log/
func FuzzRecover(f *testing.F) {
	a := makeBatch(f, spec{ts: tsRange(1, 1, 3), valueSize: 10})
	b := makeBatch(f, spec{ts: tsRange(9, 1, 2), valueSize: 30, codec: kgo.SnappyCompression()})
	b[7] = 3 // baseOffset 3 follows a's offsets 0..2
	valid := append(append([]byte(nil), a...), b...)
	f.Add(valid)
	f.Add(valid[:len(valid)-9])
	f.Add(append(append([]byte(nil), valid...), make([]byte, 100)...))
	f.Add(a[:30])
	f.Add([]byte{})
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "00000000000000000000.log"), data, 0o644))
		cfg := DefaultConfig()
		cfg.IndexIntervalBytes = 16
		l, err := Open(dir, cfg, OpenOptions{})
		require.NoError(t, err)
		defer l.Close()

		kept, err := os.ReadFile(filepath.Join(dir, "00000000000000000000.log"))
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(data, kept), "recovery only cuts the tail")
		got, err := l.Read(0, int32(len(kept))+1, l.LogEndOffset(), true)
		require.NoError(t, err)
		require.True(t, bytes.Equal(kept, got), "Read returns exactly the kept batches")
		// Whole batches with valid CRCs and increasing offsets, and the log
		// end right after the last one.
		next := int64(0)
		for rest := kept; len(rest) > 0; {
			require.GreaterOrEqual(t, len(rest), batchHeaderSize)
			h := parseHeader(rest)
			size := int(h.BatchLength) + logOverhead
			require.LessOrEqual(t, size, len(rest))
			require.Equal(t, h.CRC, batchCRC(rest[:size]))
			require.GreaterOrEqual(t, h.BaseOffset, next)
			next = h.LastOffset() + 1
			rest = rest[size:]
		}
		require.Equal(t, next, l.LogEndOffset())
		leo := l.LogEndOffset()
		res, err := l.Append(mustBatches(t, makeBatch(t, spec{ts: []int64{1}, valueSize: 1})))
		require.NoError(t, err)
		require.Equal(t, leo, res.FirstOffset)
	})
}
