package producerstate

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func in(pid int64, epoch int16, seq, n int32) Incoming {
	return Incoming{ProducerID: pid, Epoch: epoch, FirstSeq: seq, NumRecords: n, MaxTimestamp: 1000 + int64(seq)}
}

func TestCheck(t *testing.T) {
	s := NewPartition()
	off := int64(0)
	appendOK := func(x Incoming) {
		t.Helper()
		dup, err := s.Check(x)
		require.NoError(t, err)
		require.Nil(t, dup)
		s.Update(x, off, off+int64(x.NumRecords)-1)
		off += int64(x.NumRecords)
	}
	appendOK(in(7, 0, 0, 2)) // seq 0-1 at offsets 0-1
	for seq := int32(2); seq < 14; seq += 2 {
		appendOK(in(7, 0, seq, 2))
	}
	cases := []struct {
		name    string
		in      Incoming
		dupAt   int64 // -1: not a duplicate
		wantErr error
	}{
		{"non-idempotent", in(-1, -1, -1, 3), -1, nil},
		{"unknown producer, any sequence", in(8, 0, 42, 1), -1, nil},
		{"next in sequence", in(7, 0, 14, 1), -1, nil},
		{"duplicate of the newest batch", in(7, 0, 12, 2), 12, nil},
		{"duplicate of the fifth newest batch", in(7, 0, 4, 2), 4, nil},
		{"sixth newest is forgotten: out of order", in(7, 0, 2, 2), -1, ErrOutOfOrderSequence},
		{"gap", in(7, 0, 15, 1), -1, ErrOutOfOrderSequence},
		{"overlapping but not equal", in(7, 0, 12, 1), -1, ErrOutOfOrderSequence},
		{"older epoch", in(7, -1, 14, 1), -1, ErrInvalidEpoch},
		{"new epoch from 0", in(7, 1, 0, 1), -1, nil},
		{"new epoch not from 0", in(7, 1, 5, 1), -1, ErrOutOfOrderSequence},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dup, err := s.Check(tc.in)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			if tc.dupAt < 0 {
				require.Nil(t, dup)
			} else {
				require.NotNil(t, dup)
				require.Equal(t, tc.dupAt, dup.FirstOffset)
			}
		})
	}
	// Bump the epoch; the old one is now fenced.
	appendOK(in(7, 1, 0, 1))
	_, err := s.Check(in(7, 0, 14, 1))
	require.ErrorIs(t, err, ErrInvalidEpoch)
}

func TestSequenceWraps(t *testing.T) {
	s := NewPartition()
	x := in(1, 0, math.MaxInt32-1, 2) // MaxInt32-1, MaxInt32
	s.Update(x, 0, 1)
	dup, err := s.Check(in(1, 0, 0, 1))
	require.NoError(t, err, "0 follows MaxInt32")
	require.Nil(t, dup)
	wrapping := in(1, 0, math.MaxInt32, 3) // MaxInt32, 0, 1
	require.Equal(t, int32(1), wrapping.lastSeq())
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := NewPartition()
	s.Update(in(3, 2, 0, 4), 10, 13)
	s.Update(in(3, 2, 4, 4), 14, 17)
	s.Update(in(9, 0, 0, 1), 18, 18)
	path := filepath.Join(t.TempDir(), SnapshotFile)
	require.NoError(t, s.WriteSnapshot(path, 19))
	got, off, err := LoadSnapshot(path)
	require.NoError(t, err)
	require.Equal(t, int64(19), off)
	require.ElementsMatch(t, s.Producers(), got.Producers())

	got.TruncateAfter(15) // the batch at 14-17 was torn off
	dup, err := got.Check(in(3, 2, 4, 4))
	require.NoError(t, err)
	require.Nil(t, dup, "the torn batch is no longer a duplicate")
	_, off, err = LoadSnapshot(filepath.Join(t.TempDir(), "missing"))
	require.NoError(t, err)
	require.Equal(t, int64(-1), off)
}

func TestIDsNeverReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ids")
	ids, err := OpenIDs(path)
	require.NoError(t, err)
	var last int64 = -1
	for i := 0; i < 1500; i++ {
		id, err := ids.Next()
		require.NoError(t, err)
		require.Greater(t, id, last)
		last = id
	}
	// A restart (clean or not) continues past everything reserved.
	ids, err = OpenIDs(path)
	require.NoError(t, err)
	id, err := ids.Next()
	require.NoError(t, err)
	require.Greater(t, id, last)
}
