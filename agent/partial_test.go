package agent_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/agent"
)

// TestOneBrokerUnreachable: on a 3-broker kfake cluster whose broker 2
// drops every ListOffsets connection, the agent stays up, reports the
// partitions the other brokers lead, marks the rest (no offsets, ERR) and
// names broker 2. kobs has one broker until replication lands, so this
// runs on franz-go's kfake.
func TestOneBrokerUnreachable(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "orders"))
	require.NoError(t, err)
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	var os kadm.Offsets
	for p := int32(0); p < 6; p++ {
		os.Add(kadm.Offset{Topic: "orders", Partition: p, At: 0, LeaderEpoch: -1})
	}
	require.NoError(t, adm.CommitAllOffsets(ctx, "g", os))
	led := map[int32]int32{}
	for p := int32(0); p < 6; p++ {
		led[p] = c.LeaderFor("orders", p)
	}
	var bad int32 = -1
	for _, l := range led {
		if l != led[0] {
			bad = l // a broker that leads some but not all partitions
		}
	}
	require.NotEqual(t, int32(-1), bad, "kfake put every leader on one broker: %v", led)

	c.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if c.CurrentNode() == bad {
			return nil, errors.New("broker down"), true // kfake closes the connection
		}
		return nil, nil, false
	})

	a := startAgent(t, agent.Config{Brokers: c.ListenAddrs(), Interval: time.Second, Timeout: 2 * time.Second})
	waitFor(t, 20*time.Second, "a partial cycle naming the broker", func() error {
		m, err := scrape(a.URL)
		if err != nil {
			return err
		}
		if m["kobs_agent_up"] != 1 || m["kobs_agent_partial"] != 1 {
			return fmt.Errorf("up %v partial %v", m["kobs_agent_up"], m["kobs_agent_partial"])
		}
		if m[key("kobs_agent_broker_unreachable", "broker", strconv.Itoa(int(bad)))] != 1 {
			return fmt.Errorf("broker %d not named unreachable", bad)
		}
		for p, l := range led {
			pk := []string{"topic", "orders", "partition", strconv.Itoa(int(p))}
			_, has := m[key("kafka_topic_partition_current_offset", pk...)]
			gk := []string{"consumergroup", "g", "topic", "orders", "partition", strconv.Itoa(int(p))}
			status := m[key("kobs_consumergroup_partition_status", gk...)]
			if l == bad && (has || status != float64(agent.StatusErr.Code())) {
				return fmt.Errorf("partition %d on the unreachable broker: offset exported %v, status %v", p, has, status)
			}
			if l != bad && (!has || status != float64(agent.StatusOK.Code())) {
				return fmt.Errorf("partition %d on broker %d: offset exported %v, status %v", p, l, has, status)
			}
		}
		return nil
	})
	// Health comes from the latest cycle, which may have timed out or run
	// late since the scrape: wait for one that is up and names the broker.
	waitFor(t, 20*time.Second, "health up, partial, naming the broker", func() error {
		var h agent.Health
		if _, err := getJSON(a.URL+"/v1/health", &h); err != nil {
			return err
		}
		if !h.Up || h.Stale || !slices.Contains(h.Unreachable, bad) || len(h.Errors) == 0 {
			return fmt.Errorf("health up %v stale %v unreachable %v errors %v", h.Up, h.Stale, h.Unreachable, h.Errors)
		}
		return nil
	})
}
