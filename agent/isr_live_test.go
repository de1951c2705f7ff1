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
// under-replicated and at min ISR with broker 3 missing; after its
// restart the ISRs are whole again and nothing is reported.
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
	_, err = adm.CreateTopic(ctx, parts, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
	require.NoError(t, err)

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
			if p.Topic == topic && (p.Has(agent.UnderReplicated) || p.Has(agent.AtMinISR) || p.Has(agent.UnderMinISR) || p.Has(agent.Offline)) {
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
		m, err := scrape(a.URL)
		if err != nil {
			return err
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
