package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// appendMany appends n batches of 1..4 records with increasing timestamps and
// returns, per batch, its first and last offset.
func appendMany(tb testing.TB, l *Log, n int, valueSize int) [][2]int64 {
	tb.Helper()
	var out [][2]int64
	ts := int64(1_000)
	for i := range n {
		recs := 1 + i%4
		res := appendSpec(tb, l, spec{ts: tsRange(ts, 1, recs), valueSize: valueSize})
		require.Equal(tb, res.LastOffset-res.FirstOffset+1, int64(recs))
		if len(out) > 0 {
			require.Equal(tb, out[len(out)-1][1]+1, res.FirstOffset, "offsets must be consecutive")
		}
		out = append(out, [2]int64{res.FirstOffset, res.LastOffset})
		ts += int64(recs)
	}
	return out
}

func TestAppendReadAcrossSegments(t *testing.T) {
	l, _ := openLog(t, testConfig(nil))
	ranges := appendMany(t, l, 120, 50)
	require.Greater(t, l.NumSegments(), 3, "small segment.bytes must roll")
	require.Equal(t, ranges[len(ranges)-1][1]+1, l.LogEndOffset())
	require.Equal(t, int64(0), l.LogStartOffset())

	all, err := l.Read(0, 1<<30, l.LogEndOffset(), false)
	require.NoError(t, err)
	bs := splitStored(t, all)
	require.Len(t, bs, len(ranges))
	for i, b := range bs {
		require.Equal(t, ranges[i][0], b.BaseOffset)
		require.Equal(t, ranges[i][1], b.LastOffset())
	}
	require.Equal(t, l.Size(), int64(len(all)), "Size counts the bytes of all .log files")

	var onDisk int64
	for _, p := range segFiles(t, l.Dir()) {
		onDisk += fileSize(t, p)
	}
	require.Equal(t, onDisk, l.Size())
}

// TestReadFromEveryOffset checks the sparse index: whatever the interval, a
// read at any offset starts with the batch that holds it.
func TestReadFromEveryOffset(t *testing.T) {
	for _, interval := range []int32{0, 1, 100, 4096} {
		t.Run(fmt.Sprintf("interval=%d", interval), func(t *testing.T) {
			cfg := testConfig(nil)
			cfg.IndexIntervalBytes = interval
			cfg.SegmentBytes = 3000
			l, _ := openLog(t, cfg)
			ranges := appendMany(t, l, 60, 40)
			check := func(l *Log) {
				for _, r := range ranges {
					for off := r[0]; off <= r[1]; off++ {
						data, err := l.Read(off, 1, l.LogEndOffset(), true)
						require.NoError(t, err)
						bs := splitStored(t, data)
						require.Len(t, bs, 1, "offset %d", off)
						require.Equal(t, r[0], bs[0].BaseOffset, "offset %d", off)
					}
				}
			}
			check(l)
			checkIndexFiles(t, l)
			// Sealed segments search their files, the active one memory;
			// after a restart every segment is searched again.
			require.NoError(t, l.Close())
			l2 := reopen(t, l.Dir(), cfg, OpenOptions{})
			check(l2)
		})
	}
}

// checkIndexFiles reads the on-disk indexes in Kafka's format and checks that
// each .index entry points at a batch start whose last offset it names, and
// that .timeindex entries grow.
func checkIndexFiles(t *testing.T, l *Log) {
	t.Helper()
	for _, p := range segFiles(t, l.Dir()) {
		base, ok := parseSegmentName(filepath.Base(p), logSuffix)
		require.True(t, ok)
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		idx, err := os.ReadFile(strings.TrimSuffix(p, logSuffix) + indexSuffix)
		require.NoError(t, err)
		require.Zero(t, len(idx)%indexEntrySize)
		for i := 0; i < len(idx); i += indexEntrySize {
			rel := int32(binary.BigEndian.Uint32(idx[i:]))
			pos := int32(binary.BigEndian.Uint32(idx[i+4:]))
			require.Less(t, int(pos)+batchHeaderSize, len(data)+1)
			b := parseHeader(data[pos:])
			require.Equal(t, base+int64(rel), b.LastOffset(), "index entry %d of %s", i/8, p)
		}
		tidx, err := os.ReadFile(strings.TrimSuffix(p, logSuffix) + timeIndexSuffix)
		require.NoError(t, err)
		require.Zero(t, len(tidx)%timeIndexEntrySize)
		prev := int64(-1)
		for i := 0; i < len(tidx); i += timeIndexEntrySize {
			ts := int64(binary.BigEndian.Uint64(tidx[i:]))
			require.Greater(t, ts, prev)
			prev = ts
		}
	}
}

func TestReadLimits(t *testing.T) {
	l, _ := openLog(t, testConfig(nil))
	ranges := appendMany(t, l, 10, 100)
	leo := l.LogEndOffset()
	one, err := l.Read(0, 1<<20, leo, false)
	require.NoError(t, err)
	sizes := make([]int, 0)
	for _, b := range splitStored(t, one) {
		sizes = append(sizes, len(b.Raw))
	}

	tests := []struct {
		name        string
		offset      int64
		maxBytes    int32
		maxOffset   int64
		minOne      bool
		wantBatches int
		wantErr     error
	}{
		{name: "below start", offset: -1, maxBytes: 1000, maxOffset: leo, wantErr: ErrOffsetOutOfRange},
		{name: "past end", offset: leo + 1, maxBytes: 1000, maxOffset: leo, wantErr: ErrOffsetOutOfRange},
		{name: "at end", offset: leo, maxBytes: 1000, maxOffset: leo, wantBatches: 0},
		{name: "too small without minOne", offset: 0, maxBytes: int32(sizes[0] - 1), maxOffset: leo, wantBatches: 0},
		{name: "too small with minOne", offset: 0, maxBytes: int32(sizes[0] - 1), maxOffset: leo, minOne: true, wantBatches: 1},
		{name: "zero bytes with minOne", offset: 0, maxBytes: 0, maxOffset: leo, minOne: true, wantBatches: 1},
		{name: "exactly two", offset: 0, maxBytes: int32(sizes[0] + sizes[1]), maxOffset: leo, wantBatches: 2},
		{name: "two and a bit", offset: 0, maxBytes: int32(sizes[0] + sizes[1] + sizes[2] - 1), maxOffset: leo, wantBatches: 2},
		{name: "high watermark at batch 3", offset: 0, maxBytes: 1 << 20, maxOffset: ranges[3][0], wantBatches: 3},
		{name: "high watermark inside batch 3", offset: 0, maxBytes: 1 << 20, maxOffset: ranges[3][1], wantBatches: 4},
		{name: "high watermark at offset", offset: ranges[3][0], maxBytes: 1 << 20, maxOffset: ranges[3][0], wantBatches: 0},
		{name: "max offset past end", offset: 0, maxBytes: 1 << 20, maxOffset: leo + 100, wantBatches: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := l.Read(tc.offset, tc.maxBytes, tc.maxOffset, tc.minOne)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, splitStored(t, data), tc.wantBatches)
		})
	}
}

func TestReopenKeepsOffsets(t *testing.T) {
	cfg := testConfig(nil)
	l, dir := openLog(t, cfg)
	ranges := appendMany(t, l, 50, 60)
	before, err := l.Read(0, 1<<30, l.LogEndOffset(), false)
	require.NoError(t, err)
	leo, segs := l.LogEndOffset(), l.NumSegments()
	require.NoError(t, l.Close())
	_, err = os.Stat(filepath.Join(dir, cleanShutdownFile))
	require.NoError(t, err, "Close writes the clean-shutdown marker")

	l2 := reopen(t, dir, cfg, OpenOptions{})
	_, err = os.Stat(filepath.Join(dir, cleanShutdownFile))
	require.ErrorIs(t, err, os.ErrNotExist, "Open consumes the marker")
	require.Equal(t, leo, l2.LogEndOffset())
	require.Equal(t, segs, l2.NumSegments())
	require.Equal(t, leo, l2.RecoveryPoint(), "a clean log is flushed to its end")
	after, err := l2.Read(0, 1<<30, l2.LogEndOffset(), false)
	require.NoError(t, err)
	require.Equal(t, before, after)

	res := appendSpec(t, l2, spec{ts: tsRange(5_000, 1, 2), valueSize: 10})
	require.Equal(t, ranges[len(ranges)-1][1]+1, res.FirstOffset)
}

// corruptions damage the end of the last segment like a crash or bad disk.
var corruptions = []struct {
	name string
	// mangle edits the last .log file; lastBatch is the position of the last
	// batch and size the file size.
	mangle func(t *testing.T, f *os.File, lastBatch, size int64)
	// lost is how many trailing batches the damage destroys.
	lost int
}{
	{name: "garbage appended", lost: 0, mangle: func(t *testing.T, f *os.File, _, size int64) {
		_, err := f.WriteAt([]byte("this is not a record batch, just noise from a torn write"), size)
		require.NoError(t, err)
	}},
	{name: "zeros appended", lost: 0, mangle: func(t *testing.T, f *os.File, _, size int64) {
		_, err := f.WriteAt(make([]byte, 4096), size)
		require.NoError(t, err)
	}},
	{name: "last batch cut", lost: 1, mangle: func(t *testing.T, f *os.File, last, size int64) {
		require.NoError(t, f.Truncate(last+(size-last)/2))
	}},
	{name: "last header cut", lost: 1, mangle: func(t *testing.T, f *os.File, last, _ int64) {
		require.NoError(t, f.Truncate(last+20))
	}},
	{name: "crc flipped in last batch", lost: 1, mangle: func(t *testing.T, f *os.File, last, size int64) {
		b := make([]byte, 1)
		_, err := f.ReadAt(b, size-3)
		require.NoError(t, err)
		b[0] ^= 0xff
		_, err = f.WriteAt(b, size-3)
		require.NoError(t, err)
	}},
	{name: "length points past end", lost: 1, mangle: func(t *testing.T, f *os.File, last, _ int64) {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], 1<<30)
		_, err := f.WriteAt(b[:], last+offBatchLength)
		require.NoError(t, err)
	}},
}

func TestTornTailRecovery(t *testing.T) {
	for _, tc := range corruptions {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(nil)
			cfg.SegmentBytes = 1 << 20 // one segment: the tail is the active one
			l, dir := openLog(t, cfg)
			ranges := appendMany(t, l, 8, 30)
			crash(t, l)

			p := segFiles(t, dir)[0]
			size := fileSize(t, p)
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			bs := splitStored(t, data)
			last := int64(len(data) - len(bs[len(bs)-1].Raw))
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			tc.mangle(t, f, last, size)
			require.NoError(t, f.Close())

			var logs logBuffer
			l2 := reopen(t, dir, cfg, OpenOptions{Logger: logs.logger()})
			kept := ranges[:len(ranges)-tc.lost]
			wantLEO := kept[len(kept)-1][1] + 1
			require.Equal(t, wantLEO, l2.LogEndOffset())
			require.Contains(t, logs.String(), "level=WARN")
			require.Contains(t, logs.String(), "truncating")

			got, err := l2.Read(0, 1<<30, l2.LogEndOffset(), false)
			require.NoError(t, err)
			require.Equal(t, data[:len(got)], got, "surviving batches are untouched")
			require.Len(t, splitStored(t, got), len(kept))
			require.Equal(t, int64(len(got)), fileSize(t, p), "the file was truncated")

			res := appendSpec(t, l2, spec{ts: tsRange(9_000, 1, 3), valueSize: 10})
			require.Equal(t, wantLEO, res.FirstOffset)
			all, err := l2.Read(0, 1<<30, l2.LogEndOffset(), false)
			require.NoError(t, err)
			require.Len(t, splitStored(t, all), len(kept)+1)
		})
	}
}

// TestRecoveryPointLimitsRescan: without a marker, only segments that may
// hold offsets at or after the recovery point are re-scanned; with the
// recovery point at 0 a damaged older segment is truncated and everything
// after it removed, as in Kafka.
func TestRecoveryPointLimitsRescan(t *testing.T) {
	cfg := testConfig(nil)
	setup := func(t *testing.T) (string, [][2]int64, int64) {
		l, dir := openLog(t, cfg)
		ranges := appendMany(t, l, 60, 60)
		require.GreaterOrEqual(t, l.NumSegments(), 4)
		rp := l.RecoveryPoint()
		require.Greater(t, rp, int64(0), "rolls flush sealed segments")
		crash(t, l)
		// Flip a byte inside the last batch of the first segment.
		first := segFiles(t, dir)[0]
		size := fileSize(t, first)
		f, err := os.OpenFile(first, os.O_RDWR, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte{0xEE}, size-2)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		return dir, ranges, rp
	}

	t.Run("recovery point skips flushed segments", func(t *testing.T) {
		dir, ranges, rp := setup(t)
		l := reopen(t, dir, cfg, OpenOptions{RecoveryPoint: rp})
		require.Equal(t, ranges[len(ranges)-1][1]+1, l.LogEndOffset())
		require.Equal(t, rp, l.RecoveryPoint())
	})
	t.Run("clean shutdown rescans only the active segment", func(t *testing.T) {
		l, dir := openLog(t, cfg)
		ranges := appendMany(t, l, 60, 60)
		require.NoError(t, l.Close())
		first := segFiles(t, dir)[0]
		size := fileSize(t, first)
		f, err := os.OpenFile(first, os.O_RDWR, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte{0xEE}, size-2)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		// RecoveryPoint 0 is ignored after a clean shutdown: nothing is
		// re-scanned but the active segment, so the damage goes unnoticed
		// here (a fetch of it would fail the consumer's CRC check instead).
		l2 := reopen(t, dir, cfg, OpenOptions{})
		require.Equal(t, ranges[len(ranges)-1][1]+1, l2.LogEndOffset())
		require.Equal(t, size, fileSize(t, first))
	})
	t.Run("recovery point zero rescans all", func(t *testing.T) {
		dir, _, _ := setup(t)
		l := reopen(t, dir, cfg, OpenOptions{})
		require.Equal(t, 1, l.NumSegments(), "segments after the truncated one are deleted")
		require.Len(t, segFiles(t, dir), 1)
		all, err := l.Read(0, 1<<30, l.LogEndOffset(), false)
		require.NoError(t, err)
		bs := splitStored(t, all)
		require.Equal(t, bs[len(bs)-1].LastOffset()+1, l.LogEndOffset())
		res := appendSpec(t, l, spec{ts: []int64{1}, valueSize: 1})
		require.Equal(t, l.LogEndOffset()-1, res.FirstOffset)
	})
}

func TestIndexRebuiltWhenMissingOrCorrupt(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, idxPath, tidxPath string)
	}{
		{"index missing", func(t *testing.T, p, _ string) { require.NoError(t, os.Remove(p)) }},
		{"time index missing", func(t *testing.T, _, p string) { require.NoError(t, os.Remove(p)) }},
		{"index torn", func(t *testing.T, p, _ string) {
			require.NoError(t, os.Truncate(p, fileSize(t, p)-3))
		}},
		{"index points past the log", func(t *testing.T, p, _ string) {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write(encodeIndexEntry(nil, 1<<20, 1<<30))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
		{"index entry inside a batch", func(t *testing.T, p, _ string) {
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			last := data[len(data)-indexEntrySize:]
			rel := int32(binary.BigEndian.Uint32(last))
			pos := int32(binary.BigEndian.Uint32(last[4:]))
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write(encodeIndexEntry(nil, rel+1, pos+7))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
		{"time index out of order", func(t *testing.T, _, p string) {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write(encodeTimeEntry(nil, 1, 0))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(nil)
			l, dir := openLog(t, cfg)
			ranges := appendMany(t, l, 50, 60)
			require.NoError(t, l.Close())
			base := strings.TrimSuffix(segFiles(t, dir)[0], logSuffix)
			wantIdx, err := os.ReadFile(base + indexSuffix)
			require.NoError(t, err)
			require.NotEmpty(t, wantIdx)
			wantTidx, err := os.ReadFile(base + timeIndexSuffix)
			require.NoError(t, err)
			tc.damage(t, base+indexSuffix, base+timeIndexSuffix)

			l2 := reopen(t, dir, cfg, OpenOptions{})
			gotIdx, err := os.ReadFile(base + indexSuffix)
			require.NoError(t, err)
			require.Equal(t, wantIdx, gotIdx)
			gotTidx, err := os.ReadFile(base + timeIndexSuffix)
			require.NoError(t, err)
			require.Equal(t, wantTidx, gotTidx)
			for _, r := range ranges {
				data, err := l2.Read(r[1], 1, l2.LogEndOffset(), true)
				require.NoError(t, err)
				require.Equal(t, r[0], splitStored(t, data)[0].BaseOffset)
			}
		})
	}
}

func TestStrayFilesRemoved(t *testing.T) {
	cfg := testConfig(nil)
	l, dir := openLog(t, cfg)
	ranges := appendMany(t, l, 5, 10)
	require.NoError(t, l.Close())
	stray := []string{
		"00000000000000000007.log.deleted", "00000000000000000007.index.deleted",
		"00000000000000000003.log.cleaned", "00000000000000000009.log.swap",
		"00000000000000000042.index", "00000000000000000042.timeindex",
	}
	for _, name := range stray {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644))
	}
	l2 := reopen(t, dir, cfg, OpenOptions{})
	for _, name := range stray {
		_, err := os.Stat(filepath.Join(dir, name))
		require.ErrorIs(t, err, os.ErrNotExist, name)
	}
	require.Equal(t, ranges[len(ranges)-1][1]+1, l2.LogEndOffset())
}

func TestRollOnSegmentMsAndFullIndex(t *testing.T) {
	t.Run("segment.ms by wall clock", func(t *testing.T) {
		clk := newClock()
		cfg := testConfig(clk)
		cfg.SegmentBytes = 1 << 20
		cfg.SegmentMs = 1000
		l, _ := openLog(t, cfg)
		// Timestamps -1 (none), so the wall clock decides.
		appendSpec(t, l, spec{ts: []int64{-1}, valueSize: 10})
		clk.Advance(500 * time.Millisecond)
		appendSpec(t, l, spec{ts: []int64{-1}, valueSize: 10})
		require.Equal(t, 1, l.NumSegments())
		clk.Advance(600 * time.Millisecond)
		res := appendSpec(t, l, spec{ts: []int64{-1}, valueSize: 10})
		require.Equal(t, 2, l.NumSegments())
		require.FileExists(t, segmentPath(l.Dir(), res.FirstOffset, logSuffix))
	})
	t.Run("segment.ms by record timestamps", func(t *testing.T) {
		cfg := testConfig(nil)
		cfg.SegmentBytes = 1 << 20
		cfg.SegmentMs = 1000
		l, _ := openLog(t, cfg)
		appendSpec(t, l, spec{ts: []int64{10_000}, valueSize: 10})
		appendSpec(t, l, spec{ts: []int64{10_900}, valueSize: 10})
		require.Equal(t, 1, l.NumSegments())
		appendSpec(t, l, spec{ts: []int64{11_001}, valueSize: 10})
		require.Equal(t, 2, l.NumSegments())
	})
	t.Run("index full", func(t *testing.T) {
		cfg := testConfig(nil)
		cfg.SegmentBytes = 1 << 20
		cfg.IndexIntervalBytes = 0 // an entry per batch
		cfg.SegmentIndexBytes = 3 * timeIndexEntrySize
		l, _ := openLog(t, cfg)
		for range 3 {
			appendSpec(t, l, spec{ts: []int64{time.Now().UnixMilli()}, valueSize: 10})
		}
		require.Equal(t, 1, l.NumSegments())
		for i := range 3 {
			appendSpec(t, l, spec{ts: []int64{time.Now().UnixMilli() + int64(i) + 1}, valueSize: 10})
		}
		require.Equal(t, 2, l.NumSegments())
		checkIndexFiles(t, l)
	})
}

func TestFlushPolicy(t *testing.T) {
	t.Run("flush.messages", func(t *testing.T) {
		cfg := testConfig(nil)
		cfg.SegmentBytes = 1 << 20
		cfg.FlushMessages = 5
		l, _ := openLog(t, cfg)
		appendSpec(t, l, spec{ts: tsRange(1, 1, 3), valueSize: 1})
		require.Equal(t, int64(0), l.RecoveryPoint())
		appendSpec(t, l, spec{ts: tsRange(1, 1, 2), valueSize: 1})
		require.Equal(t, int64(5), l.RecoveryPoint())
	})
	t.Run("flush.ms", func(t *testing.T) {
		clk := newClock()
		cfg := testConfig(clk)
		cfg.SegmentBytes = 1 << 20
		cfg.FlushMs = 1000
		l, _ := openLog(t, cfg)
		appendSpec(t, l, spec{ts: tsRange(1, 1, 3), valueSize: 1})
		require.NoError(t, l.MaybeFlush())
		require.Equal(t, int64(0), l.RecoveryPoint())
		clk.Advance(999 * time.Millisecond)
		require.NoError(t, l.MaybeFlush())
		require.Equal(t, int64(0), l.RecoveryPoint())
		clk.Advance(time.Millisecond)
		require.NoError(t, l.MaybeFlush())
		require.Equal(t, int64(3), l.RecoveryPoint())
	})
	t.Run("Flush", func(t *testing.T) {
		l, _ := openLog(t, testConfig(nil))
		appendSpec(t, l, spec{ts: tsRange(1, 1, 3), valueSize: 1})
		require.NoError(t, l.Flush())
		require.Equal(t, l.LogEndOffset(), l.RecoveryPoint())
	})
}

func TestLogAppendTime(t *testing.T) {
	clk := newClock()
	cfg := testConfig(clk)
	cfg.MessageTimestampType = TimestampLogAppendTime
	l, _ := openLog(t, cfg)
	raw := makeBatch(t, spec{ts: tsRange(5, 1, 3), valueSize: 20, codec: kgo.Lz4Compression()})
	bs := mustBatches(t, raw)
	oldCRC := bs[0].CRC
	res, err := l.Append(bs)
	require.NoError(t, err)
	require.Equal(t, clk.Ms(), res.LogAppendTime)

	data, err := l.Read(0, 1<<20, l.LogEndOffset(), false)
	require.NoError(t, err)
	got := splitStored(t, data) // validates the recomputed CRC
	require.Len(t, got, 1)
	require.True(t, got[0].IsLogAppendTime())
	require.Equal(t, clk.Ms(), got[0].MaxTimestamp)
	require.Equal(t, int64(5), got[0].FirstTimestamp, "firstTimestamp is kept, as in Kafka")
	require.NotEqual(t, oldCRC, got[0].CRC)
	require.Equal(t, int8(3), got[0].Compression(), "no recompression")

	off, ts, found, err := l.OffsetForTimestamp(clk.Ms())
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, int64(0), off)
	require.Equal(t, clk.Ms(), ts, "records take the log append time")

	clk.Advance(time.Second)
	res, err = l.Append(mustBatches(t, makeBatch(t, spec{ts: []int64{7}, valueSize: 1})))
	require.NoError(t, err)
	require.Equal(t, clk.Ms(), res.LogAppendTime)
	off, ts, found, err = l.MaxTimestamp()
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, int64(3), off)
	require.Equal(t, clk.Ms(), ts)

	cfg.MessageTimestampType = TimestampCreateTime
	l.SetConfig(cfg)
	res = appendSpec(t, l, spec{ts: []int64{7}, valueSize: 1})
	require.Equal(t, int64(-1), res.LogAppendTime)
}

func TestMaxMessageBytes(t *testing.T) {
	cfg := testConfig(nil)
	cfg.MaxMessageBytes = 500
	l, _ := openLog(t, cfg)
	small := makeBatch(t, spec{ts: []int64{1}, valueSize: 100})
	big := makeBatch(t, spec{ts: []int64{1}, valueSize: 600})

	_, err := ValidateBatches(big, cfg.MaxMessageBytes)
	require.ErrorIs(t, err, ErrRecordTooLarge)
	_, err = ValidateBatches(append(append([]byte(nil), small...), big...), cfg.MaxMessageBytes)
	require.ErrorIs(t, err, ErrRecordTooLarge)
	_, err = ValidateBatches(small, cfg.MaxMessageBytes)
	require.NoError(t, err)

	// Append enforces it too, for callers that validated with another limit.
	_, err = l.Append(mustBatches(t, big))
	require.ErrorIs(t, err, ErrRecordTooLarge)
	require.Equal(t, int64(0), l.LogEndOffset())

	cfg.MaxMessageBytes = 0
	cfg.SegmentBytes = 600
	l.SetConfig(cfg)
	_, err = l.Append(mustBatches(t, big))
	require.ErrorIs(t, err, ErrBatchLargerThanSegment, "a batch must fit in a segment")
}

func TestDeleteRecordsBefore(t *testing.T) {
	cfg := testConfig(nil)
	l, dir := openLog(t, cfg)
	ranges := appendMany(t, l, 60, 60)
	segs := l.NumSegments()
	require.Greater(t, segs, 3)

	_, err := l.DeleteRecordsBefore(l.LogEndOffset() + 1)
	require.ErrorIs(t, err, ErrOffsetOutOfRange)

	mid := ranges[30][0] + 1 // inside a batch
	start, err := l.DeleteRecordsBefore(mid)
	require.NoError(t, err)
	require.Equal(t, mid, start)
	require.Equal(t, mid, l.LogStartOffset())
	require.Less(t, l.NumSegments(), segs, "segments wholly below the start are gone")
	require.Len(t, segFiles(t, dir), l.NumSegments())

	_, err = l.Read(mid-1, 1<<20, l.LogEndOffset(), false)
	require.ErrorIs(t, err, ErrOffsetOutOfRange)
	data, err := l.Read(mid, 1, l.LogEndOffset(), true)
	require.NoError(t, err)
	require.Equal(t, ranges[30][0], splitStored(t, data)[0].BaseOffset, "the batch holding the start is returned whole")

	start, err = l.DeleteRecordsBefore(3)
	require.NoError(t, err)
	require.Equal(t, mid, start, "moving backwards is a no-op")

	off, _, found, err := l.OffsetForTimestamp(0)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, mid, off, "records below the log start are skipped")

	start, err = l.DeleteRecordsBefore(l.LogEndOffset())
	require.NoError(t, err)
	require.Equal(t, l.LogEndOffset(), start)
	require.Equal(t, 1, l.NumSegments(), "only the active segment remains")
	data, err = l.Read(start, 1<<20, l.LogEndOffset(), false)
	require.NoError(t, err)
	require.Empty(t, data)

	// The broker persists the start in log-start-offset-checkpoint.
	leo := l.LogEndOffset()
	require.NoError(t, l.Close())
	l2 := reopen(t, dir, cfg, OpenOptions{LogStartOffset: start})
	require.Equal(t, start, l2.LogStartOffset())
	require.Equal(t, leo, l2.LogEndOffset())
}

func TestLogStartPastEndEmptiesLog(t *testing.T) {
	cfg := testConfig(nil)
	l, dir := openLog(t, cfg)
	appendMany(t, l, 5, 10)
	require.NoError(t, l.Close())
	l2 := reopen(t, dir, cfg, OpenOptions{LogStartOffset: 100})
	require.Equal(t, int64(100), l2.LogStartOffset())
	require.Equal(t, int64(100), l2.LogEndOffset())
	require.Equal(t, 1, l2.NumSegments())
	res := appendSpec(t, l2, spec{ts: []int64{1}, valueSize: 1})
	require.Equal(t, int64(100), res.FirstOffset)
	require.FileExists(t, segmentPath(dir, 100, logSuffix))
}

func TestRetention(t *testing.T) {
	t.Run("retention.ms", func(t *testing.T) {
		clk := newClock()
		cfg := testConfig(clk)
		cfg.RetentionMs = 60_000
		l, _ := openLog(t, cfg)
		// Record timestamps follow the clock: 10 s per batch.
		for range 60 {
			appendSpec(t, l, spec{ts: []int64{clk.Ms()}, valueSize: 300})
			clk.Advance(10 * time.Second)
		}
		n0 := l.NumSegments()
		require.Greater(t, n0, 4)
		deleted, err := l.EnforceRetention()
		require.NoError(t, err)
		require.Positive(t, deleted)
		require.Equal(t, n0-deleted, l.NumSegments())
		// Every remaining non-active segment holds a record newer than 60 s.
		l.mu.RLock()
		for _, s := range l.segs[:len(l.segs)-1] {
			require.LessOrEqual(t, clk.Ms()-s.maxTs, int64(60_000))
		}
		first := l.segs[0].base
		l.mu.RUnlock()
		require.Equal(t, first, l.LogStartOffset())

		clk.Advance(time.Hour)
		_, err = l.EnforceRetention()
		require.NoError(t, err)
		require.Equal(t, 1, l.NumSegments(), "the active segment is never deleted")
		require.Equal(t, l.LogStartOffset(), firstBase(l))
		_, err = l.Read(0, 100, l.LogEndOffset(), false)
		require.ErrorIs(t, err, ErrOffsetOutOfRange)
	})
	t.Run("retention.ms survives restart via the time index", func(t *testing.T) {
		clk := newClock()
		cfg := testConfig(clk)
		cfg.RetentionMs = 60_000
		l, dir := openLog(t, cfg)
		for range 40 {
			appendSpec(t, l, spec{ts: []int64{clk.Ms()}, valueSize: 300})
			clk.Advance(10 * time.Second)
		}
		require.NoError(t, l.Close())
		l2 := reopen(t, dir, cfg, OpenOptions{})
		n0 := l2.NumSegments()
		deleted, err := l2.EnforceRetention()
		require.NoError(t, err)
		require.Positive(t, deleted)
		require.Less(t, l2.NumSegments(), n0)
	})
	t.Run("retention.ms unlimited", func(t *testing.T) {
		clk := newClock()
		cfg := testConfig(clk)
		cfg.RetentionMs = -1
		l, _ := openLog(t, cfg)
		for range 30 {
			appendSpec(t, l, spec{ts: []int64{1}, valueSize: 300})
		}
		clk.Advance(1000 * time.Hour)
		deleted, err := l.EnforceRetention()
		require.NoError(t, err)
		require.Zero(t, deleted)
	})
	t.Run("retention.bytes", func(t *testing.T) {
		cfg := testConfig(nil)
		cfg.RetentionMs = -1
		l, _ := openLog(t, cfg)
		appendMany(t, l, 100, 60)
		n0, size0 := l.NumSegments(), l.Size()
		cfg.RetentionBytes = size0 / 2
		l.SetConfig(cfg)
		deleted, err := l.EnforceRetention()
		require.NoError(t, err)
		require.Positive(t, deleted)
		require.Equal(t, n0-deleted, l.NumSegments())
		require.GreaterOrEqual(t, l.Size(), cfg.RetentionBytes, "Kafka keeps at least retention.bytes")
		l.mu.RLock()
		oldest := l.segs[0].size
		l.mu.RUnlock()
		require.Less(t, l.Size()-oldest, cfg.RetentionBytes, "deleting one more would go below the limit")
		require.Equal(t, firstBase(l), l.LogStartOffset())
		deleted, err = l.EnforceRetention()
		require.NoError(t, err)
		require.Zero(t, deleted, "retention is idempotent")
	})
}

func firstBase(l *Log) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[0].base
}

func TestAppendAsFollower(t *testing.T) {
	l, _ := openLog(t, testConfig(nil))
	raw := makeBatch(t, spec{ts: tsRange(1, 1, 3), valueSize: 5})
	binary.BigEndian.PutUint64(raw[offBaseOffset:], 10) // leader assigned 10..12
	res, err := l.AppendAsFollower(mustBatches(t, raw))
	require.NoError(t, err)
	require.Equal(t, int64(10), res.FirstOffset)
	require.Equal(t, int64(12), res.LastOffset)
	require.Equal(t, int64(13), l.LogEndOffset())
	data, err := l.Read(11, 1<<20, l.LogEndOffset(), false)
	require.NoError(t, err)
	require.Equal(t, int64(10), splitStored(t, data)[0].BaseOffset)

	raw = makeBatch(t, spec{ts: tsRange(1, 1, 1), valueSize: 5})
	binary.BigEndian.PutUint64(raw[offBaseOffset:], 12)
	_, err = l.AppendAsFollower(mustBatches(t, raw))
	require.ErrorIs(t, err, ErrCorruptMessage, "offsets must not go backwards")
}

func TestClosedAndDeleted(t *testing.T) {
	l, dir := openLog(t, testConfig(nil))
	appendMany(t, l, 3, 10)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close twice is a no-op")
	for name, err := range map[string]error{
		"append":    func() error { _, err := l.Append(mustBatches(t, makeBatch(t, spec{ts: []int64{1}}))); return err }(),
		"read":      func() error { _, err := l.Read(0, 10, 10, true); return err }(),
		"flush":     l.Flush(),
		"retention": func() error { _, err := l.EnforceRetention(); return err }(),
		"ts":        func() error { _, _, _, err := l.OffsetForTimestamp(0); return err }(),
	} {
		require.ErrorIs(t, err, ErrClosed, name)
	}

	l2 := reopen(t, dir, testConfig(nil), OpenOptions{})
	require.NoError(t, l2.Delete())
	_, err := os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestOpenRejectsInvalidConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1
	_, err := Open(t.TempDir(), cfg, OpenOptions{})
	require.ErrorIs(t, err, ErrInvalidConfig)
	cfg = DefaultConfig()
	cfg.MessageTimestampType = "Whenever"
	require.ErrorIs(t, cfg.Validate(), ErrInvalidConfig)
	require.NoError(t, DefaultConfig().Validate())
}

// TestConcurrentReadersSeeWholeBatches runs readers against a writer that
// rolls segments and a retention loop; with -race it checks the locking, and
// every read must parse as whole valid batches with consecutive offsets.
func TestConcurrentReadersSeeWholeBatches(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RetentionBytes = 64 << 10
	cfg.RetentionMs = -1
	l, _ := openLog(t, cfg)
	const writes = 400
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				leo, start := l.LogEndOffset(), l.LogStartOffset()
				off := start + int64(i*(r+1))%(leo-start+1)
				data, err := l.Read(off, 8<<10, leo, true)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue // retention moved the start meanwhile
				}
				if err != nil {
					errs <- err
					return
				}
				bs, err := ValidateBatches(data, 0)
				if len(data) > 0 && err != nil {
					errs <- fmt.Errorf("read at %d: %w", off, err)
					return
				}
				for j := 1; j < len(bs); j++ {
					if bs[j].BaseOffset != bs[j-1].LastOffset()+1 {
						errs <- fmt.Errorf("gap at %d", bs[j].BaseOffset)
						return
					}
				}
				if _, _, _, err := l.OffsetForTimestamp(int64(i)); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := l.EnforceRetention(); err != nil {
				errs <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for i := range writes {
		appendSpec(t, l, spec{ts: tsRange(int64(i*4), 1, 4), valueSize: 64})
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(writes*4), l.LogEndOffset())
}
