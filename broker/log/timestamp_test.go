package log

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

type rec struct{ offset, ts int64 }

// fillRandom appends batches with jittery, partly decreasing timestamps and
// returns every record in offset order.
func fillRandom(t *testing.T, l *Log, codec kgo.CompressionCodec, batches int, seed uint64) []rec {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	var all []rec
	base := int64(1_000_000)
	for range batches {
		n := 1 + rng.IntN(6)
		ts := make([]int64, n)
		for i := range ts {
			// Mostly increasing, with records that go back in time so the
			// max timestamp is not simply the last record's.
			base += int64(rng.IntN(50))
			ts[i] = base - int64(rng.IntN(120))
		}
		res := appendSpec(t, l, spec{ts: ts, valueSize: 20 + rng.IntN(100), codec: codec})
		for i, x := range ts {
			all = append(all, rec{res.FirstOffset + int64(i), x})
		}
	}
	return all
}

// expectAtOrAfter is the brute-force answer: first record in offset order
// with timestamp >= ts and offset >= start.
func expectAtOrAfter(all []rec, ts, start int64) (rec, bool) {
	for _, r := range all {
		if r.ts >= ts && r.offset >= start {
			return r, true
		}
	}
	return rec{}, false
}

func expectMax(all []rec) rec {
	best := all[0]
	for _, r := range all[1:] {
		if r.ts > best.ts {
			best = r
		}
	}
	return best
}

var codecs = []struct {
	name  string
	codec kgo.CompressionCodec
}{
	{"none", kgo.CompressionCodec{}},
	{"gzip", kgo.GzipCompression()},
	{"snappy", kgo.SnappyCompression()},
	{"lz4", kgo.Lz4Compression()},
	{"zstd", kgo.ZstdCompression()},
}

func checkTimestamps(t *testing.T, l *Log, all []rec) {
	t.Helper()
	start := l.LogStartOffset()
	lo, hi := all[0].ts, all[0].ts
	for _, r := range all {
		lo, hi = min(lo, r.ts), max(hi, r.ts)
	}
	// Every record's timestamp and its neighbours, plus both ends: the
	// answers only change at record timestamps.
	targets := []int64{lo - 2, hi + 1, hi + 2}
	for _, r := range all {
		targets = append(targets, r.ts-1, r.ts, r.ts+1)
	}
	for _, ts := range targets {
		want, wantFound := expectAtOrAfter(all, ts, start)
		off, gotTs, found, err := l.OffsetForTimestamp(ts)
		require.NoError(t, err)
		require.Equal(t, wantFound, found, "ts %d", ts)
		if found {
			require.Equal(t, want.offset, off, "ts %d", ts)
			require.Equal(t, want.ts, gotTs, "ts %d", ts)
		}
	}
	wantMax := expectMax(all)
	off, ts, found, err := l.MaxTimestamp()
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, wantMax.ts, ts)
	require.Equal(t, wantMax.offset, off, "the record, not the batch end (KIP-734)")
}

func TestOffsetForTimestamp(t *testing.T) {
	for i, c := range codecs {
		t.Run("codec="+c.name, func(t *testing.T) {
			cfg := testConfig(nil)
			cfg.SegmentBytes = 2048
			cfg.IndexIntervalBytes = 300
			l, dir := openLog(t, cfg)
			all := fillRandom(t, l, c.codec, 80, uint64(i+1))
			require.Greater(t, l.NumSegments(), 2)
			checkTimestamps(t, l, all)
			checkIndexFiles(t, l)

			// Clean restart: sealed segments answer from their files.
			require.NoError(t, l.Close())
			l2 := reopen(t, dir, cfg, OpenOptions{})
			checkTimestamps(t, l2, all)

			// Unclean restart with a torn tail: the indexes are rebuilt by
			// the re-scan and the lost records are gone from the answers.
			crash(t, l2)
			p := segFiles(t, dir)
			last := p[len(p)-1]
			require.NoError(t, truncateBy(last, 7))
			l3 := reopen(t, dir, cfg, OpenOptions{})
			kept := all[:0:0]
			for _, r := range all {
				if r.offset < l3.LogEndOffset() {
					kept = append(kept, r)
				}
			}
			require.Less(t, len(kept), len(all))
			checkTimestamps(t, l3, kept)
		})
	}
}

func truncateBy(path string, n int64) error {
	data, err := readFileSize(path)
	if err != nil {
		return err
	}
	return osTruncate(path, data-n)
}

func TestOffsetForTimestampRespectsLogStart(t *testing.T) {
	cfg := testConfig(nil)
	l, _ := openLog(t, cfg)
	all := fillRandom(t, l, kgo.SnappyCompression(), 60, 99)
	_, err := l.DeleteRecordsBefore(all[len(all)/2].offset + 1)
	require.NoError(t, err)
	checkTimestamps(t, l, all[len(all)/2+1:])
}

func TestMaxTimestampEmpty(t *testing.T) {
	l, _ := openLog(t, testConfig(nil))
	_, _, found, err := l.MaxTimestamp()
	require.NoError(t, err)
	require.False(t, found)
	_, _, found, err = l.OffsetForTimestamp(0)
	require.NoError(t, err)
	require.False(t, found)
}

func TestMaxTimestampAcrossSegments(t *testing.T) {
	cfg := testConfig(nil)
	cfg.SegmentBytes = 600
	l, _ := openLog(t, cfg)
	// The largest timestamp sits in an early segment; a later segment ties
	// with it, and the earliest record wins, as in Kafka.
	specs := [][]int64{{10, 20}, {30, 999, 40}, {50}, {60, 999}, {70}}
	var firstMax int64 = -1
	for _, ts := range specs {
		res := appendSpec(t, l, spec{ts: ts, valueSize: 150})
		for i, x := range ts {
			if x == 999 && firstMax < 0 {
				firstMax = res.FirstOffset + int64(i)
			}
		}
	}
	require.Greater(t, l.NumSegments(), 2)
	off, ts, found, err := l.MaxTimestamp()
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, int64(999), ts)
	require.Equal(t, firstMax, off)
}
