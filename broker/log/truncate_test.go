package log

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTruncateTo(t *testing.T) {
	cfg := testConfig(nil)
	cfg.IndexIntervalBytes = 100
	setup := func(t *testing.T) (*Log, [][2]int64) {
		l, _ := openLog(t, cfg)
		return l, appendMany(t, l, 60, 60)
	}
	tests := []struct {
		name string
		// target picks the truncation offset and the expected log end.
		target func(r [][2]int64) (offset, wantEnd int64)
	}{
		{"batch boundary in middle segment", func(r [][2]int64) (int64, int64) { return r[25][0], r[25][0] }},
		{"inside a batch", func(r [][2]int64) (int64, int64) { return r[25][0] + 1, r[25][0] }},
		{"last batch", func(r [][2]int64) (int64, int64) { return r[59][0], r[59][0] }},
		{"to the start", func(r [][2]int64) (int64, int64) { return 0, 0 }},
		{"past the end is a no-op", func(r [][2]int64) (int64, int64) { return r[59][1] + 5, r[59][1] + 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, ranges := setup(t)
			offset, wantEnd := tc.target(ranges)
			require.NoError(t, l.TruncateTo(offset))
			require.Equal(t, wantEnd, l.LogEndOffset())
			require.LessOrEqual(t, l.RecoveryPoint(), wantEnd)
			require.Len(t, segFiles(t, l.Dir()), l.NumSegments())
			checkIndexFiles(t, l)

			data, err := l.Read(l.LogStartOffset(), 1<<30, l.LogEndOffset(), false)
			require.NoError(t, err)
			bs := splitStored(t, data)
			if wantEnd > 0 {
				require.Equal(t, wantEnd, bs[len(bs)-1].LastOffset()+1)
			} else {
				require.Empty(t, bs)
			}
			// Every kept offset is still found through the rebuilt index.
			for _, r := range ranges {
				if r[1] >= wantEnd {
					break
				}
				d, err := l.Read(r[1], 1, l.LogEndOffset(), true)
				require.NoError(t, err)
				require.Equal(t, r[0], splitStored(t, d)[0].BaseOffset)
			}
			// The follower continues from the new end.
			res := appendSpec(t, l, spec{ts: []int64{1}, valueSize: 5})
			require.Equal(t, wantEnd, res.FirstOffset)

			// And the truncation is what a restart sees.
			require.NoError(t, l.Close())
			l2 := reopen(t, l.Dir(), cfg, OpenOptions{})
			require.Equal(t, wantEnd+1, l2.LogEndOffset())
		})
	}
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	cfg := testConfig(nil)
	l, dir := openLog(t, cfg)
	appendMany(t, l, 30, 60)
	require.Greater(t, l.NumSegments(), 1)
	require.NoError(t, l.TruncateFullyAndStartAt(5000))
	require.Equal(t, int64(5000), l.LogStartOffset())
	require.Equal(t, int64(5000), l.LogEndOffset())
	require.Equal(t, 1, l.NumSegments())
	require.Len(t, segFiles(t, dir), 1)
	_, err := l.Read(0, 100, l.LogEndOffset(), false)
	require.ErrorIs(t, err, ErrOffsetOutOfRange)
	res := appendSpec(t, l, spec{ts: []int64{1}, valueSize: 5})
	require.Equal(t, int64(5000), res.FirstOffset)

	// Restarting at an offset an old segment used is fine too.
	require.NoError(t, l.TruncateFullyAndStartAt(0))
	require.Equal(t, int64(0), l.LogEndOffset())
	res = appendSpec(t, l, spec{ts: []int64{1}, valueSize: 5})
	require.Equal(t, int64(0), res.FirstOffset)

	// TruncateTo below the start empties the log as well.
	_, err = l.DeleteRecordsBefore(1)
	require.NoError(t, err)
	require.NoError(t, l.TruncateTo(0))
	require.Equal(t, int64(0), l.LogStartOffset())
	require.Equal(t, int64(0), l.LogEndOffset())
}

// TestFollowerOffsetOverflowRolls: relative offsets are int32, so a follower
// batch too far above the segment's base starts a new segment; on an empty
// log the empty segment is replaced rather than kept.
func TestFollowerOffsetOverflowRolls(t *testing.T) {
	l, dir := openLog(t, testConfig(nil))
	far := int64(1) << 40
	raw := makeBatch(t, spec{ts: []int64{1}, valueSize: 5})
	binary.BigEndian.PutUint64(raw[offBaseOffset:], uint64(far))
	_, err := l.AppendAsFollower(mustBatches(t, raw))
	require.NoError(t, err)
	require.Equal(t, 1, l.NumSegments())
	require.Equal(t, far, l.LogStartOffset(), "the empty segment at 0 is gone")
	require.Equal(t, far+1, l.LogEndOffset())
	require.NoFileExists(t, segmentPath(dir, 0, logSuffix))

	raw = makeBatch(t, spec{ts: []int64{2}, valueSize: 5})
	next := far + 1 + math.MaxInt32
	binary.BigEndian.PutUint64(raw[offBaseOffset:], uint64(next))
	_, err = l.AppendAsFollower(mustBatches(t, raw))
	require.NoError(t, err)
	require.Equal(t, 2, l.NumSegments())
	require.FileExists(t, segmentPath(dir, next, logSuffix))
	data, err := l.Read(far, 1<<20, l.LogEndOffset(), false)
	require.NoError(t, err)
	bs := splitStored(t, data)
	require.Len(t, bs, 2)
	require.Equal(t, next, bs[1].BaseOffset)
}
