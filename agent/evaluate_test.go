package agent

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// refTable is the offset table as a plain slice that moves its points on
// every add: the specification the ring must match.
type refTable struct {
	points []point
	limit  int
}

func (t *refTable) add(offset int64, when time.Time) {
	at := when.UnixNano()
	n := len(t.points)
	if n > 0 {
		last := t.points[n-1]
		if at <= last.at {
			return
		}
		if offset < last.offset {
			t.points, n = t.points[:0], 0
		} else if offset == last.offset && n > 1 && t.points[n-2].offset == offset {
			t.points[n-1].at = at
			return
		}
	}
	if n == t.limit {
		t.points = append(t.points[:0], t.points[1:]...)
	}
	t.points = append(t.points, point{offset, at})
}

func (t *refTable) lagSeconds(committed int64, now time.Time) (float64, string) {
	tab := &offsetTable{points: t.points, limit: t.limit}
	return tab.lagSeconds(committed, now)
}

// TestOffsetTableRing: the ring keeps the same points in the same order as
// a table that moves its points, and answers the same lag seconds, over
// random histories (growth, flat runs, truncation, out-of-order samples)
// that wrap the ring many times.
func TestOffsetTableRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := 0; run < 200; run++ {
		limit := 2 + rng.IntN(7)
		ring, ref := &offsetTable{limit: limit}, &refTable{limit: limit}
		now := time.Unix(1000, 0)
		offset := int64(0)
		for step := 0; step < 100; step++ {
			switch r := rng.IntN(10); {
			case r < 5:
				offset += int64(1 + rng.IntN(50))
			case r < 8: // flat
			case r < 9:
				offset = int64(rng.IntN(int(offset) + 1)) // truncated or recreated
			}
			now = now.Add(time.Duration(1+rng.IntN(3000)) * time.Millisecond)
			when := now
			if rng.IntN(20) == 0 {
				when = now.Add(-5 * time.Second) // out of order
			}
			ring.add(offset, when)
			ref.add(offset, when)

			require.Len(t, ring.points, len(ref.points), "run %d step %d", run, step)
			require.LessOrEqual(t, cap(ring.points), limit, "a table holds at most limit points")
			for i := range ref.points {
				require.Equal(t, ref.points[i], *ring.at(i), "run %d step %d point %d", run, step, i)
			}
			for _, c := range []int64{-1, 0, offset / 3, offset / 2, offset - 1, offset} {
				want, wantSrc := ref.lagSeconds(c, now)
				got, gotSrc := ring.lagSeconds(c, now)
				require.Equal(t, wantSrc, gotSrc, "run %d step %d committed %d", run, step, c)
				if math.IsNaN(want) {
					require.True(t, math.IsNaN(got))
				} else {
					require.Equal(t, want, got, "run %d step %d committed %d", run, step, c)
				}
			}
		}
	}
}

// oneTopic is a snapshot of topic "t" with the given end offsets (all on
// broker 1) and groups committed as given (group -> partition -> offset).
func oneTopic(at time.Time, ends []int64, groups map[string]map[int32]int64) *Snapshot {
	m := kmsg.NewPtrMetadataResponse()
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = 1, "127.0.0.1", 9091
	m.Brokers = append(m.Brokers, b)
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr("t")
	for p := range ends {
		pd := kmsg.NewMetadataResponseTopicPartition()
		pd.Partition, pd.Leader, pd.Replicas, pd.ISR = int32(p), 1, []int32{1}, []int32{1}
		mt.Partitions = append(mt.Partitions, pd)
	}
	m.Topics = append(m.Topics, mt)
	s, _, _ := fromMetadata(m, at)
	for p, e := range ends {
		s.Topics["t"].Partitions[p].Start, s.Topics["t"].Partitions[p].End = 0, e
	}
	for name, committed := range groups {
		g := &Group{Name: name, State: "Empty", Committed: map[string]map[int32]int64{}}
		if len(committed) > 0 {
			g.Committed["t"] = committed
		}
		s.Groups[name] = g
	}
	return s
}

func newTestAgent(t *testing.T, window int) *Agent {
	a, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Interval: time.Hour, StatusWindow: window})
	require.NoError(t, err)
	t.Cleanup(a.Close)
	return a
}

// TestEvaluateGroupsApart: groups evaluated together (in parallel) get
// the statuses each gets evaluated alone; a partition not committed in one
// evaluation starts a new window; a group gone from the cluster loses its
// windows.
func TestEvaluateGroupsApart(t *testing.T) {
	const window = 3
	ends := func(c int) []int64 { return []int64{int64(100 + 10*c), int64(100 + 10*c), 50} }
	// Per cycle, each group's commits on partitions 0..2.
	plan := map[string]func(c int) map[int32]int64{
		"stopped":  func(int) map[int32]int64 { return map[int32]int64{0: 90, 1: 90} },
		"slow":     func(c int) map[int32]int64 { return map[int32]int64{0: int64(95 + 5*c), 1: int64(95 + 5*c)} },
		"keeping":  func(c int) map[int32]int64 { return map[int32]int64{0: int64(90 + 10*c), 1: int64(90 + 10*c)} },
		"caughtup": func(c int) map[int32]int64 { return map[int32]int64{2: 50} },
		"rewound":  func(c int) map[int32]int64 { return map[int32]int64{0: int64(90 - c)} },
	}
	for i := 0; i < 12; i++ { // more groups than cores
		lag := int64(i)
		plan["steady"+string(rune('a'+i))] = func(c int) map[int32]int64 {
			return map[int32]int64{0: int64(100+10*c) - lag, 1: int64(100+10*c) - 2*lag}
		}
	}
	start := time.Unix(1000, 0)
	snap := func(c int, only ...string) *Snapshot {
		gs := map[string]map[int32]int64{}
		for name, f := range plan {
			if len(only) == 0 || only[0] == name {
				gs[name] = f(c)
			}
		}
		return oneTopic(start.Add(time.Duration(c)*10*time.Second), ends(c), gs)
	}
	together := newTestAgent(t, window)
	alone := map[string]*Agent{}
	for name := range plan {
		alone[name] = newTestAgent(t, window)
	}
	var v *View
	for c := 0; c < 4; c++ {
		v = together.evaluate(t.Context(), snap(c))
		for name, a := range alone {
			va := a.evaluate(t.Context(), snap(c, name))
			require.Equal(t, va.Groups[name].Status, v.Groups[name].Status, "cycle %d group %s", c, name)
			require.Equal(t, sansNaN(va.Groups[name].Partitions), sansNaN(v.Groups[name].Partitions), "cycle %d group %s", c, name)
		}
	}
	require.Equal(t, StatusStop, v.Groups["stopped"].Status)
	require.Equal(t, StatusWarn, v.Groups["slow"].Status)
	require.Equal(t, StatusOK, v.Groups["keeping"].Status)
	require.Equal(t, StatusOK, v.Groups["caughtup"].Status)
	require.Equal(t, StatusRewind, v.Groups["rewound"].Status)
	require.Equal(t, 1.0, v.Groups["stopped"].Partitions[0].Complete)

	// Partition 1 of "stopped" is not committed in cycle 4: its window
	// starts over in cycle 5.
	plan["stopped"] = func(c int) map[int32]int64 {
		if c == 4 {
			return map[int32]int64{0: 90}
		}
		return map[int32]int64{0: 90, 1: 90}
	}
	together.evaluate(t.Context(), snap(4))
	v = together.evaluate(t.Context(), snap(5))
	g := v.Groups["stopped"]
	require.Equal(t, 1.0, g.Partitions[0].Complete)
	require.Equal(t, int32(1), g.Partitions[1].Partition)
	require.InDelta(t, 1.0/window, g.Partitions[1].Complete, 1e-9, "the window restarted")
	require.Equal(t, StatusOK, g.Partitions[1].Status, "a restarted window cannot judge a trend")

	// A group gone from the cluster loses its windows.
	require.Contains(t, together.groups, "slow")
	delete(plan, "slow")
	together.evaluate(t.Context(), snap(6))
	require.NotContains(t, together.groups, "slow")
}

// comparable copies partition lags with NaN lag seconds as -1 (NaN is
// never equal to itself).
func sansNaN(pls []PartitionLag) []PartitionLag {
	out := append([]PartitionLag(nil), pls...)
	for i := range out {
		if math.IsNaN(out[i].LagSeconds) {
			out[i].LagSeconds = -1
		}
	}
	return out
}
