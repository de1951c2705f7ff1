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

type failingAnswer struct {
	Stale      bool                              `json:"stale"`
	Partitions []agent.FailingPartition          `json:"partitions"`
	ByBroker   map[string][]agent.TopicPartition `json:"missing_by_broker"`
}

// TestFailingISRLive: on a 3-broker kobs cluster (replication factor 3,
// min.insync.replicas 2), killing broker 3 makes every partition
// under-replicated and at min ISR with broker 3 missing, a topic with
// min.insync.replicas 3 under min ISR, and a replication-factor-1
// partition on broker 3 offline; after its restart the ISRs are whole
// again and nothing is reported. (A second broker down would leave one
// of three controller voters: no quorum, so no ISR change is ever
// committed; the topic with min.insync.replicas 3 shows under-min-ISR
// with one broker down instead. Two brokers down, with dedicated
// controllers: TestFailingISRDedicatedControllers.)
func TestFailingISRLive(t *testing.T) {
	c := testcluster.StartCluster(t, 3,
		testcluster.Prop("replica.lag.time.max.ms", "1500"),
		testcluster.Prop("replica.fetch.wait.max.ms", "100"),
		testcluster.Prop("broker.session.timeout.ms", "3000"),
		testcluster.Prop("broker.heartbeat.interval.ms", "500"))
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	const topic, parts = "payments", 3
	minISR := "2"
	createTopic(t, adm, parts, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)

	// "strict" needs all three replicas in sync; "solo" has one replica
	// per partition, so the partition on broker 3 goes offline with it.
	all := "3"
	createTopic(t, adm, 1, 3, map[string]*string{"min.insync.replicas": &all}, "strict")
	createTopic(t, adm, 3, 1, nil, "solo")
	var soloOn3 []int32
	waitFor(t, 30*time.Second, "solo's partitions placed", func() error {
		md, err := adm.Metadata(kadm.WithAuthorizedOps(ctx), "solo")
		if err != nil {
			return err
		}
		soloOn3 = nil
		for _, p := range md.Topics["solo"].Partitions {
			if slices.Equal(p.Replicas, []int32{3}) {
				soloOn3 = append(soloOn3, p.Partition)
			}
		}
		if len(md.Topics["solo"].Partitions) != 3 {
			return fmt.Errorf("solo has %d partitions", len(md.Topics["solo"].Partitions))
		}
		return nil
	})
	require.NotEmpty(t, soloOn3, "no partition of solo on broker 3")

	a := startAgent(t, agent.Config{Brokers: c.Addrs(), Interval: 500 * time.Millisecond})
	failing := func() (failingAnswer, error) {
		var f failingAnswer
		code, err := getJSON(a.URL+"/v1/partitions/failing", &f)
		if err == nil && code != 200 {
			err = fmt.Errorf("HTTP %d", code)
		}
		return f, err
	}
	healthy := func() error {
		f, err := failing()
		if err != nil {
			return err
		}
		if f.Stale {
			return fmt.Errorf("stale")
		}
		for _, p := range f.Partitions {
			// solo (1 replica, min 1) and strict (3 replicas, min 3) are
			// at min ISR whenever healthy, as Kafka counts it.
			atMin := p.Has(agent.AtMinISR) && p.Topic == topic
			if (p.Topic == topic || p.Topic == "strict" || p.Topic == "solo") && (p.Has(agent.UnderReplicated) || atMin || p.Has(agent.UnderMinISR) || p.Has(agent.Offline)) {
				return fmt.Errorf("%s-%d failing: %v", p.Topic, p.Partition, p.Conditions)
			}
		}
		m, err := scrape(a.URL)
		if err != nil {
			return err
		}
		for p := 0; p < parts; p++ {
			if got := m[key("kafka_topic_partition_in_sync_replica", "topic", topic, "partition", strconv.Itoa(p))]; got != 3 {
				return fmt.Errorf("partition %d ISR size %v", p, got)
			}
		}
		return nil
	}
	waitFor(t, 60*time.Second, "every ISR whole", healthy)

	killed := time.Now()
	c.Node(3).Kill()
	waitFor(t, 60*time.Second, "broker 3 missing from every ISR", func() error {
		f, err := failing()
		if err != nil {
			return err
		}
		var mine []agent.FailingPartition
		for _, p := range f.Partitions {
			if p.Topic == topic {
				mine = append(mine, p)
			}
		}
		if len(mine) != parts {
			return fmt.Errorf("%d of %d partitions failing: %+v", len(mine), parts, mine)
		}
		for _, p := range mine {
			if !p.Has(agent.UnderReplicated) || !p.Has(agent.AtMinISR) || !slices.Equal(p.Missing, []int32{3}) {
				return fmt.Errorf("%s-%d: %v missing %v", p.Topic, p.Partition, p.Conditions, p.Missing)
			}
			if p.Since.Before(killed.Add(-time.Second)) {
				return fmt.Errorf("since %v is before the kill at %v", p.Since, killed)
			}
		}
		if len(f.ByBroker["3"]) < parts {
			return fmt.Errorf("broker 3 missing from %v", f.ByBroker["3"])
		}
		strictOK, soloOffline := false, 0
		for _, p := range f.Partitions {
			if p.Topic == "strict" && p.Has(agent.UnderMinISR) && slices.Equal(p.Missing, []int32{3}) {
				strictOK = true
			}
			if p.Topic == "solo" && p.Has(agent.Offline) && slices.Contains(soloOn3, p.Partition) {
				soloOffline++
			}
		}
		if !strictOK {
			return fmt.Errorf("strict-0 not under min ISR")
		}
		if soloOffline != len(soloOn3) {
			return fmt.Errorf("%d of solo's partitions on broker 3 (%v) offline", soloOffline, soloOn3)
		}
		m, err := scrape(a.URL)
		if err != nil {
			return err
		}
		// The rest of the cluster is still reported, and broker 3 named.
		if m["kobs_agent_up"] != 1 || m[key("kobs_agent_broker_unreachable", "broker", "3")] != 1 || m["kafka_brokers"] != 2 {
			return fmt.Errorf("up %v, broker 3 unreachable %v, kafka_brokers %v", m["kobs_agent_up"],
				m[key("kobs_agent_broker_unreachable", "broker", "3")], m["kafka_brokers"])
		}
		for p := 0; p < parts; p++ {
			pk := []string{"topic", topic, "partition", strconv.Itoa(p)}
			if m[key("kafka_topic_partition_under_replicated_partition", pk...)] != 1 ||
				m[key("kobs_partition_isr_missing", append(pk, "broker", "3")...)] != 1 ||
				m[key("kobs_partition_at_min_isr", pk...)] != 1 {
				return fmt.Errorf("partition %d metrics not failing yet", p)
			}
		}
		return nil
	})

	c.Node(3).Restart()
	waitFor(t, 90*time.Second, "ISRs whole again after the restart", healthy)
}
