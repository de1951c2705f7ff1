package agent

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// threeBrokers is a Metadata response as a 3-broker cluster answers it
// after broker 3 died: broker 3 is gone from the broker list and from the
// ISRs.
func threeBrokers(alive ...int32) *kmsg.MetadataResponse {
	m := kmsg.NewPtrMetadataResponse()
	m.ClusterID, m.ControllerID = kmsg.StringPtr("c"), 1
	for _, id := range alive {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = id, "127.0.0.1", 9090+id
		m.Brokers = append(m.Brokers, b)
	}
	part := func(p, leader int32, replicas, isr, offline []int32) kmsg.MetadataResponseTopicPartition {
		pd := kmsg.NewMetadataResponseTopicPartition()
		pd.Partition, pd.Leader, pd.Replicas, pd.ISR, pd.OfflineReplicas = p, leader, replicas, isr, offline
		return pd
	}
	topic := func(name string, ps ...kmsg.MetadataResponseTopicPartition) {
		t := kmsg.NewMetadataResponseTopic()
		t.Topic, t.Partitions = kmsg.StringPtr(name), ps
		m.Topics = append(m.Topics, t)
	}
	topic("orders",
		// healthy
		part(0, 1, []int32{1, 2, 3}, []int32{1, 2, 3}, nil),
		// follower 3 out of the ISR: under-replicated, at min ISR (2)
		part(1, 2, []int32{2, 3, 1}, []int32{2, 1}, nil),
		// leader moved off the preferred replica 3, which is out of the ISR
		part(2, 1, []int32{3, 1, 2}, []int32{1}, nil),
		// no leader at all
		part(3, -1, []int32{3}, []int32{}, []int32{3}))
	// leader 3 is not a live broker although the ISR still names it
	topic("logs", part(0, 3, []int32{3}, []int32{3}, nil))
	return m
}

func TestClassifyMetadataResponse(t *testing.T) {
	s, topics, unreachable := fromMetadata(threeBrokers(1, 2), time.Unix(100, 0))
	require.Equal(t, []string{"logs", "orders"}, topics)
	require.Equal(t, map[int32]bool{3: true}, unreachable)
	s.Topics["orders"].MinISR = 2
	s.Topics["logs"].MinISR = 1

	got := map[TopicPartition]FailingPartition{}
	for _, f := range Classify(s) {
		got[TopicPartition{f.Topic, f.Partition}] = f
	}
	require.NotContains(t, got, TopicPartition{"orders", 0}, "healthy partition classified")

	p1 := got[TopicPartition{"orders", 1}]
	require.Equal(t, []Condition{UnderReplicated, AtMinISR}, p1.Conditions)
	require.Equal(t, []int32{3}, p1.Missing)

	p2 := got[TopicPartition{"orders", 2}]
	require.Equal(t, []Condition{UnderReplicated, UnderMinISR, NotPreferredLeader}, p2.Conditions)
	require.Equal(t, []int32{3, 2}, p2.Missing)
	require.Equal(t, []int32{3}, p2.OfflineReplicas, "broker 3 is not live")

	p3 := got[TopicPartition{"orders", 3}]
	require.Equal(t, []Condition{Offline, UnderReplicated, UnderMinISR}, p3.Conditions)
	require.Equal(t, []int32{3}, p3.Missing)

	// A leader that is not a live broker is offline, as
	// kafka-topics.sh --unavailable-partitions has it.
	l0 := got[TopicPartition{"logs", 0}]
	require.Equal(t, []Condition{Offline, AtMinISR}, l0.Conditions)
	// Its ISR still names broker 3 (nothing is missing from it), but the
	// replica is offline: the broker to look at.
	require.Empty(t, l0.Missing)
	require.Equal(t, []int32{3}, l0.OfflineReplicas)

	failing := Classify(s)
	require.Len(t, UnderReplicatedPartitions(failing), 3)
	require.Len(t, UnderMinISRPartitions(failing), 2)
	require.Len(t, UnavailablePartitions(failing), 2)
	require.Equal(t, map[int32][]TopicPartition{
		2: {{"orders", 2}},
		3: {{"orders", 1}, {"orders", 2}, {"orders", 3}},
	}, ByBroker(failing))

	// Unknown min.insync.replicas (0) never yields min-ISR conditions.
	f, ok := ClassifyPartition(s.Partition("orders", 1), 0, nil)
	require.True(t, ok)
	require.Equal(t, []Condition{UnderReplicated}, f.Conditions)
}

func TestFailingSince(t *testing.T) {
	var st sinceTracker
	s, _, _ := fromMetadata(threeBrokers(1, 2), time.Unix(100, 0))
	t0, t1, t2 := time.Unix(100, 0), time.Unix(110, 0), time.Unix(120, 0)
	f := Classify(s)
	st.stamp(f, t0)
	require.Equal(t, t0, f[0].Since)
	f = Classify(s)
	st.stamp(f, t1)
	require.Equal(t, t0, f[0].Since, "a partition still failing keeps its first-seen time")
	st.stamp(nil, t1) // everything recovered
	f = Classify(s)
	st.stamp(f, t2)
	require.Equal(t, t2, f[0].Since, "failing again starts a new period")
}

func obsWindow(size int, obs ...[2]int64) *window {
	w := &window{size: size}
	for _, o := range obs {
		w.add(observation{committed: o[0], lag: o[1]})
	}
	return w
}

func TestStatusRules(t *testing.T) {
	cases := []struct {
		name     string
		w        *window
		owned    bool
		readable bool
		want     Status
	}{
		{"end offset unknown", obsWindow(3, [2]int64{10, 5}), true, false, StatusErr},
		{"caught up now", obsWindow(3, [2]int64{10, 5}, [2]int64{10, 5}, [2]int64{20, 0}), true, true, StatusOK},
		{"rewind", obsWindow(3, [2]int64{10, 5}, [2]int64{4, 11}, [2]int64{6, 9}), true, true, StatusRewind},
		{"zero lag in window", obsWindow(3, [2]int64{10, 0}, [2]int64{10, 5}, [2]int64{10, 9}), false, true, StatusOK},
		{"window not full", obsWindow(3, [2]int64{10, 5}, [2]int64{10, 9}), false, true, StatusOK},
		{"stalled owner", obsWindow(3, [2]int64{10, 5}, [2]int64{10, 7}, [2]int64{10, 9}), true, true, StatusStall},
		{"stopped, no owner", obsWindow(3, [2]int64{10, 5}, [2]int64{10, 7}, [2]int64{10, 9}), false, true, StatusStop},
		{"slow: lag never shrinks", obsWindow(3, [2]int64{10, 5}, [2]int64{12, 6}, [2]int64{14, 6}), true, true, StatusWarn},
		{"keeping up", obsWindow(3, [2]int64{10, 5}, [2]int64{12, 4}, [2]int64{14, 6}), true, true, StatusOK},
		{"steady lag", obsWindow(3, [2]int64{10, 5}, [2]int64{12, 5}, [2]int64{14, 5}), true, true, StatusOK},
		{"window slides out old samples", obsWindow(2, [2]int64{10, 0}, [2]int64{10, 5}, [2]int64{10, 9}), false, true, StatusStop},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, c.w.evaluate(c.owned, c.readable))
		})
	}
	require.Equal(t, StatusErr, Worse(StatusStop, StatusErr))
	require.Equal(t, StatusStall, Worse(StatusStall, StatusWarn))
	require.Equal(t, 5, StatusStall.Code())
}

func TestOffsetTable(t *testing.T) {
	at := func(s float64) time.Time { return time.Unix(1000, 0).Add(time.Duration(s * float64(time.Second))) }
	tab := &offsetTable{limit: 4}
	v, src := tab.lagSeconds(5, at(0))
	require.True(t, math.IsNaN(v))
	require.Equal(t, SecondsNone, src)

	tab.add(0, at(0))
	tab.add(100, at(10)) // 10 records/s
	tab.add(100, at(20))
	tab.add(100, at(30)) // flat run: the right end moves
	require.Len(t, tab.points, 3)
	require.Equal(t, at(30).UnixNano(), tab.at(2).at)

	// Record 49 was written when the end passed 50: t=5s.
	v, src = tab.lagSeconds(49, at(40))
	require.Equal(t, SecondsInterpolated, src)
	require.InDelta(t, 35, v, 1e-9)

	v, src = tab.lagSeconds(100, at(40))
	require.Equal(t, SecondsZero, src)
	require.Zero(t, v)

	tab.add(140, at(40))
	tab.add(180, at(50)) // limit 4: (0,0) slides out
	require.Equal(t, int64(100), tab.at(0).offset)
	// Older than the table: extrapolated along its trend (80 offsets in
	// 40 s, 2/s), the end reached 90 five seconds before it reached 100.
	v, src = tab.lagSeconds(89, at(50))
	require.Equal(t, SecondsExtrapolated, src)
	require.InDelta(t, 50-(10-(100.0-90.0)*40/80), v, 1e-9)

	// Out-of-order samples are ignored; a lower offset restarts the table.
	tab.add(500, at(45))
	require.Equal(t, int64(180), tab.at(len(tab.points)-1).offset)
	tab.add(3, at(60))
	require.Len(t, tab.points, 1)

	flat := &offsetTable{limit: 4}
	flat.add(10, at(0))
	flat.add(10, at(5))
	v, src = flat.lagSeconds(2, at(9))
	require.Equal(t, SecondsLowerBound, src)
	require.InDelta(t, 9, v, 1e-9)
}
