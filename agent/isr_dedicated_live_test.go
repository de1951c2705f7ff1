package agent_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/agent"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestFailingISRDedicatedControllers: three dedicated controllers (the
// metadata quorum) and three broker-only brokers, as production KRaft
// clusters run, so brokers can die without taking the quorum with them.
// "payments" has replication factor 3 and min.insync.replicas 2, "pairs"
// factor 2 and "solo" factor 1. Broker 3 killed: payments is
// under-replicated and at min ISR with broker 3 missing. Broker 2 killed
// too: payments is under min ISR with 2 and 3 missing, the pairs partition
// on {2,3} and the solo partitions on 2 or 3 are offline, naming their
// offline replicas, and the agent names both brokers unreachable. Both
// restarted: nothing is reported.
func TestFailingISRDedicatedControllers(t *testing.T) {
	c := testcluster.StartCluster(t, 3, testcluster.DedicatedControllers(3),
		testcluster.Prop("replica.lag.time.max.ms", "1500"),
		testcluster.Prop("replica.fetch.wait.max.ms", "100"),
		// A broker fenced while the topics are created would skew the
		// round-robin placement asserted below: heartbeats may stall ~2 s
		// on a loaded machine before a broker is fenced (as TestFailingISRLive).
		testcluster.Prop("broker.session.timeout.ms", "3000"),
		testcluster.Prop("broker.heartbeat.interval.ms", "500"))
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := "2"
	for _, tc := range []struct {
		name string
		rf   int16
		cfg  map[string]*string
	}{{"payments", 3, map[string]*string{"min.insync.replicas": &minISR}}, {"pairs", 2, nil}, {"solo", 1, nil}} {
		createTopic(t, adm, 3, tc.rf, tc.cfg, tc.name)
	}
	// Which partitions lose every replica with brokers 2 and 3.
	var lost map[string][]int32
	waitFor(t, 30*time.Second, "partitions placed", func() error {
		md, err := adm.Metadata(ctx, "pairs", "solo")
		if err != nil {
			return err
		}
		lost = map[string][]int32{}
		for _, name := range []string{"pairs", "solo"} {
			if n := len(md.Topics[name].Partitions); n != 3 {
				return fmt.Errorf("%s has %d partitions", name, n)
			}
			for _, p := range md.Topics[name].Partitions {
				if !slices.Contains(p.Replicas, 1) {
					lost[name] = append(lost[name], p.Partition)
				}
			}
		}
		return nil
	})
	// Round-robin placement puts one pairs partition on {2,3} and two
	// solo partitions on 2 or 3.
	require.Len(t, lost["pairs"], 1, "pairs placement %v", lost)
	require.Len(t, lost["solo"], 2, "solo placement %v", lost)

	a := startAgent(t, agent.Config{Brokers: c.Addrs(), Interval: 300 * time.Millisecond})
	failing := func() (failingAnswer, error) {
		var f failingAnswer
		code, err := getJSON(a.URL+"/v1/partitions/failing", &f)
		if err == nil && code != 200 {
			err = fmt.Errorf("HTTP %d", code)
		}
		if err == nil && f.Stale {
			err = fmt.Errorf("answer is stale")
		}
		return f, err
	}
	ours := func(f failingAnswer, topic string) []agent.FailingPartition {
		var out []agent.FailingPartition
		for _, p := range f.Partitions {
			if p.Topic == topic {
				out = append(out, p)
			}
		}
		return out
	}
	healthy := func() error {
		f, err := failing()
		if err != nil {
			return err
		}
		for _, p := range f.Partitions {
			if p.Has(agent.UnderReplicated) || p.Has(agent.UnderMinISR) || p.Has(agent.Offline) {
				return fmt.Errorf("%s-%d failing: %v", p.Topic, p.Partition, p.Conditions)
			}
		}
		m, err := scrape(a.URL)
		if err != nil {
			return err
		}
		if m["kafka_brokers"] != 3 || m["kobs_agent_up"] != 1 {
			return fmt.Errorf("kafka_brokers %v, up %v", m["kafka_brokers"], m["kobs_agent_up"])
		}
		for p := 0; p < 3; p++ {
			if got := m[key("kafka_topic_partition_in_sync_replica", "topic", "payments", "partition", strconv.Itoa(p))]; got != 3 {
				return fmt.Errorf("payments-%d ISR size %v", p, got)
			}
		}
		return nil
	}
	waitFor(t, 60*time.Second, "every ISR whole", healthy)

	// One broker down: under-replicated, at min ISR, broker 3 named.
	c.Node(3).Kill()
	waitFor(t, 30*time.Second, "broker 3 missing from payments' ISRs", func() error {
		f, err := failing()
		if err != nil {
			return err
		}
		mine := ours(f, "payments")
		if len(mine) != 3 {
			return fmt.Errorf("%d of 3 payments partitions failing", len(mine))
		}
		for _, p := range mine {
			if !p.Has(agent.UnderReplicated) || !p.Has(agent.AtMinISR) || !slices.Equal(p.Missing, []int32{3}) {
				return fmt.Errorf("payments-%d: %v missing %v", p.Partition, p.Conditions, p.Missing)
			}
		}
		return nil
	})

	// Two brokers down: the quorum (three other processes) still decides,
	// so the ISRs shrink to broker 1 and leaderless partitions go offline.
	c.Node(2).Kill()
	waitFor(t, 30*time.Second, "under min ISR and offline with brokers 2 and 3 down", func() error {
		f, err := failing()
		if err != nil {
			return err
		}
		mine := ours(f, "payments")
		if len(mine) != 3 {
			return fmt.Errorf("%d of 3 payments partitions failing", len(mine))
		}
		for _, p := range mine {
			if !p.Has(agent.UnderMinISR) || p.Has(agent.Offline) || p.Leader != 1 ||
				!slices.Equal(p.ISR, []int32{1}) || !slices.Equal(sorted(p.Missing), []int32{2, 3}) {
				return fmt.Errorf("payments-%d: %v leader %d ISR %v missing %v", p.Partition, p.Conditions, p.Leader, p.ISR, p.Missing)
			}
		}
		for _, name := range []string{"pairs", "solo"} {
			for _, idx := range lost[name] {
				i := slices.IndexFunc(f.Partitions, func(p agent.FailingPartition) bool { return p.Topic == name && p.Partition == idx })
				if i < 0 {
					return fmt.Errorf("%s-%d not reported", name, idx)
				}
				p := f.Partitions[i]
				if !p.Has(agent.Offline) || p.Leader != -1 || !slices.Equal(sorted(p.OfflineReplicas), sorted(p.Replicas)) {
					return fmt.Errorf("%s-%d: %v leader %d replicas %v offline replicas %v", name, idx, p.Conditions, p.Leader, p.Replicas, p.OfflineReplicas)
				}
			}
		}
		for _, b := range []string{"2", "3"} {
			if len(f.ByBroker[b]) < 3 {
				return fmt.Errorf("broker %s missing from %v", b, f.ByBroker[b])
			}
		}
		m, err := scrape(a.URL)
		if err != nil {
			return err
		}
		if m["kobs_agent_up"] != 1 || m["kafka_brokers"] != 1 ||
			m[key("kobs_agent_broker_unreachable", "broker", "2")] != 1 || m[key("kobs_agent_broker_unreachable", "broker", "3")] != 1 {
			return fmt.Errorf("up %v, kafka_brokers %v, unreachable 2: %v 3: %v", m["kobs_agent_up"], m["kafka_brokers"],
				m[key("kobs_agent_broker_unreachable", "broker", "2")], m[key("kobs_agent_broker_unreachable", "broker", "3")])
		}
		for p := 0; p < 3; p++ {
			pk := []string{"topic", "payments", "partition", strconv.Itoa(p)}
			if m[key("kobs_partition_under_min_isr", pk...)] != 1 || m[key("kafka_topic_partition_in_sync_replica", pk...)] != 1 ||
				m[key("kobs_partition_isr_missing", append(pk, "broker", "2")...)] != 1 ||
				m[key("kobs_partition_isr_missing", append(pk, "broker", "3")...)] != 1 {
				return fmt.Errorf("payments-%d metrics not under min ISR yet", p)
			}
		}
		for _, name := range []string{"pairs", "solo"} {
			for _, idx := range lost[name] {
				pk := []string{"topic", name, "partition", strconv.Itoa(int(idx))}
				if m[key("kobs_partition_offline", pk...)] != 1 || m[key("kafka_topic_partition_leader", pk...)] != -1 {
					return fmt.Errorf("%s-%d: offline %v leader %v", name, idx, m[key("kobs_partition_offline", pk...)], m[key("kafka_topic_partition_leader", pk...)])
				}
			}
		}
		return nil
	})

	c.Node(2).Restart()
	c.Node(3).Restart()
	waitFor(t, 60*time.Second, "all clear after the restarts", healthy)
}

func sorted(ids []int32) []int32 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}
