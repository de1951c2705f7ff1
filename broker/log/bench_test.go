package log

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkAppend appends batches of 1 KiB records (a fresh copy of the
// payload per append, since Append rewrites it in place, outside the timer's
// concern: the copy is a memmove the broker also pays when it reads a request).
// Segments roll at 64 MiB so rolls (with their fsync) are part of the cost.
//
//	go test -run '^$' -bench BenchmarkAppend -count 10 ./broker/log/ | tee new.txt
//	benchstat old.txt new.txt
func BenchmarkAppend(b *testing.B) {
	for _, recs := range []int{1, 16} {
		b.Run(fmt.Sprintf("records=%d/recsize=1KiB", recs), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.SegmentBytes = 64 << 20
			l, _ := openLog(b, cfg)
			payload := makeBatch(b, spec{ts: tsRange(1_700_000_000_000, 1, recs), valueSize: 1024})
			bs, err := ValidateBatches(payload, 0)
			require.NoError(b, err)
			buf := make([]byte, len(payload))
			batches := make([]Batch, 1)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, payload)
				batches[0] = bs[0]
				batches[0].Raw = buf
				if _, err := l.Append(batches); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*recs)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkValidateBatches measures produce-path validation of a 16 x 1 KiB
// uncompressed batch (CRC plus the record walk).
func BenchmarkValidateBatches(b *testing.B) {
	payload := makeBatch(b, spec{ts: tsRange(1, 1, 16), valueSize: 1024})
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ValidateBatches(payload, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads 1 MiB from a random-ish offset of a populated log.
func BenchmarkRead(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 16 << 20
	l, _ := openLog(b, cfg)
	payload := makeBatch(b, spec{ts: tsRange(1, 1, 4), valueSize: 1024})
	for range 20_000 {
		bs, err := ValidateBatches(append([]byte(nil), payload...), 0)
		require.NoError(b, err)
		_, err = l.Append(bs)
		require.NoError(b, err)
	}
	leo := l.LogEndOffset()
	b.ReportAllocs()
	var i int64
	var n int64
	for b.Loop() {
		data, err := l.Read((i*7919)%leo, 1<<20, leo, true)
		if err != nil {
			b.Fatal(err)
		}
		n += int64(len(data))
		i++
	}
	b.SetBytes(n / max(i, 1))
}
