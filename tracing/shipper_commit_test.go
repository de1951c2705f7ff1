package tracing

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The commit position of a partition stops below the oldest record with an
// unacknowledged event, whatever order the acknowledgements come in, and
// partitions given up are never offered for a commit again.
func TestCommitTrackerCommitsOnlyAcknowledgedPrefix(t *testing.T) {
	var tr commitTracker
	rec := func(p int32, off int64, events int) *pendingRecord {
		r := tr.begin(&kgo.Record{Topic: "tt", Partition: p, Offset: off, LeaderEpoch: 4})
		for range events {
			tr.hold(r)
		}
		tr.done(r) // the poll loop added all its events
		return r
	}
	at := func(p int32) int64 {
		if o, ok := tr.ready(nil)["tt"][p]; ok {
			return o.Offset
		}
		return -1
	}
	a, b, c := rec(0, 10, 2), rec(0, 11, 1), rec(0, 12, 0) // c: only corrupt events
	other := rec(1, 5, 1)
	require.Equal(t, int64(-1), at(0))

	tr.done(b) // acknowledged before a's events: nothing moves
	tr.done(a)
	require.Equal(t, int64(-1), at(0), "a has an event left")
	tr.done(a)
	require.Equal(t, int64(13), at(0), "a, b and c are complete")
	require.Equal(t, int32(4), tr.ready(nil)["tt"][0].Epoch)
	require.Equal(t, int64(-1), at(1))
	_ = c

	tr.committed(tr.ready(nil))
	require.Nil(t, tr.ready(nil)["tt"], "nothing new since the commit")

	d := rec(0, 13, 1)
	tr.forget(map[string][]int32{"tt": {1}})
	tr.done(other) // acknowledged after the partition was given up
	require.NotContains(t, tr.ready(nil)["tt"], int32(1))
	tr.done(d)
	require.Equal(t, map[int32]kgo.EpochOffset{0: {Epoch: 4, Offset: 14}}, tr.ready(map[string][]int32{"tt": {0, 1}})["tt"])
}
