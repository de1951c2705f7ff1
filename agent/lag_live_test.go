package agent_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/agent"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

const (
	interval = 250 * time.Millisecond
	window   = 4
)

// TestLagLifecycle follows one group through a real kobs broker: exact
// offset lag, STALL while its member sits idle and producers go on, STOP
// once it leaves, lag seconds against the records' real ages (interpolated
// and exact), then back to lag 0 and OK after it catches up.
func TestLagLifecycle(t *testing.T) {
	b := testcluster.Start(t)
	brokers := []string{b.Addr()}
	const topic, group, parts = "orders", "billing", int32(3)
	ctx := context.Background()

	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	_, err = adm.CreateTopic(ctx, parts, 1, nil, topic)
	require.NoError(t, err)

	// Both agents run before the first record, so the offset history
	// covers every record's write.
	interp := startAgent(t, agent.Config{Brokers: brokers, Interval: interval, StatusWindow: window})
	exact := startAgent(t, agent.Config{Brokers: brokers, Interval: interval, StatusWindow: window, LagSeconds: agent.ModeExact})
	// read_committed measures against the last stable offset; without
	// open transactions it equals the high watermark.
	committedIso := startAgent(t, agent.Config{Brokers: brokers, Interval: interval, StatusWindow: window, ReadCommitted: true})
	waitFor(t, 10*time.Second, "agents up", func() error {
		for _, a := range []*running{interp, exact, committedIso} {
			m, err := scrape(a.URL)
			if err != nil {
				return err
			}
			if m["kobs_agent_up"] != 1 {
				return fmt.Errorf("kobs_agent_up = %v", m["kobs_agent_up"])
			}
		}
		return nil
	})

	prod := newProducer(t, brokers, topic, parts)
	for i := 0; i < 40; i++ {
		require.NoError(t, prod.round(ctx))
		time.Sleep(10 * time.Millisecond)
	}

	// A member consumes part of the topic and commits it, then idles.
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.FetchMaxPartitionBytes(200))
	require.NoError(t, err)
	defer consumer.Close()
	var polled []*kgo.Record
	for len(polled) < 50 {
		fs := consumer.PollRecords(ctx, 50-len(polled))
		requireNoFatal(t, fs)
		polled = append(polled, fs.Records()...)
	}
	require.NoError(t, consumer.CommitRecords(ctx, polled...))

	// 1. kafka_consumergroup_lag per partition equals HW - committed.
	var committed map[int32]int64
	waitFor(t, 15*time.Second, "agent lag equals HW - committed", func() error {
		want, com, err := truth(ctx, adm, group, topic)
		if err != nil {
			return err
		}
		committed = com
		m, err := scrape(interp.URL)
		if err != nil {
			return err
		}
		rc, err := scrape(committedIso.URL)
		if err != nil {
			return err
		}
		var sum int64
		for p, l := range want {
			k := key("kafka_consumergroup_lag", "consumergroup", group, "topic", topic, "partition", strconv.Itoa(int(p)))
			if got, ok := m[k]; !ok || got != float64(l) {
				return fmt.Errorf("%s = %v (present %v), want %d", k, got, ok, l)
			}
			if got, ok := rc[k]; !ok || got != float64(l) {
				return fmt.Errorf("read_committed %s = %v (present %v), want %d", k, got, ok, l)
			}
			sum += l
		}
		if got := m[key("kafka_consumergroup_lag_sum", "consumergroup", group, "topic", topic)]; got != float64(sum) {
			return fmt.Errorf("lag_sum = %v, want %d", got, sum)
		}
		if got := m[key("kafka_consumergroup_members", "consumergroup", group)]; got != 1 {
			return fmt.Errorf("members = %v, want 1", got)
		}
		return nil
	})
	t.Logf("committed %v after consuming %d records", committed, len(polled))

	// 2. Producers go on while the member idles: lag grows, STALL.
	pctx, stopProducing := context.WithCancel(ctx)
	waitProducer := prod.run(pctx, 20*time.Millisecond)
	groupStatus := func(m metrics) float64 { return m[key("kobs_consumergroup_status", "consumergroup", group)] }
	lagSum := func(m metrics) float64 {
		return m[key("kafka_consumergroup_lag_sum", "consumergroup", group, "topic", topic)]
	}
	first, err := scrape(interp.URL)
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "STALL with an idle member", func() error {
		m, err := scrape(interp.URL)
		if err != nil {
			return err
		}
		if lagSum(m) <= lagSum(first) {
			return fmt.Errorf("lag sum %v did not grow from %v", lagSum(m), lagSum(first))
		}
		if got := groupStatus(m); got != float64(agent.StatusStall.Code()) {
			return fmt.Errorf("group status %v, want STALL (%d)", got, agent.StatusStall.Code())
		}
		return nil
	})

	// 3. Lag seconds track the age of the oldest unconsumed record: the
	// record at the committed offset, written before the pause. The
	// interpolated estimate is off by at most one sampling interval (plus
	// up to 0.5 s of scheduling slack on a busy machine: end offsets are
	// listed a moment after the cycle's timestamp); the exact one by
	// rounding.
	for _, c := range []struct {
		a     *running
		bound time.Duration
	}{{interp, 2*interval + 500*time.Millisecond}, {exact, 50 * time.Millisecond}} {
		waitFor(t, 10*time.Second, "lag seconds match record age", func() error {
			m, err := scrape(c.a.URL)
			if err != nil {
				return err
			}
			sampled := time.Unix(0, int64(m["kobs_agent_last_success_timestamp_seconds"]*1e9))
			for p := int32(0); p < parts; p++ {
				written, ok := prod.timeOf(p, committed[p])
				if !ok {
					return fmt.Errorf("no produce time for partition %d offset %d", p, committed[p])
				}
				want := sampled.Sub(written).Seconds()
				k := key("kobs_consumergroup_lag_seconds", "consumergroup", group, "topic", topic, "partition", strconv.Itoa(int(p)))
				got, ok := m[k]
				if !ok || math.Abs(got-want) > c.bound.Seconds() {
					return fmt.Errorf("%s = %v (present %v), want %.3f ± %v", k, got, ok, want, c.bound)
				}
			}
			return nil
		})
	}

	// 4. The member leaves: nobody owns the partitions, STOP.
	consumer.Close()
	waitFor(t, 20*time.Second, "STOP without members", func() error {
		m, err := scrape(interp.URL)
		if err != nil {
			return err
		}
		if got := m[key("kafka_consumergroup_members", "consumergroup", group)]; got != 0 {
			return fmt.Errorf("members = %v", got)
		}
		if got := groupStatus(m); got != float64(agent.StatusStop.Code()) {
			return fmt.Errorf("group status %v, want STOP (%d)", got, agent.StatusStop.Code())
		}
		return nil
	})
	var gj struct {
		Stale bool `json:"stale"`
		Group struct {
			NoMembers  bool `json:"no_members"`
			Status     string
			Partitions []struct {
				Status string `json:"status"`
				Lag    int64  `json:"lag"`
			} `json:"partitions"`
		} `json:"group"`
	}
	// The API answers from the same view, but a cycle that failed or came
	// late since the scrape above (a 200 ms timeout on a loaded machine)
	// says stale: wait for a fresh answer rather than read one.
	waitFor(t, 20*time.Second, "the group API says STOP", func() error {
		gj.Group.Partitions = nil
		code, err := getJSON(interp.URL+"/v1/groups/"+group, &gj)
		if err != nil {
			return err
		}
		if code != 200 || gj.Stale {
			return fmt.Errorf("HTTP %d, stale %v", code, gj.Stale)
		}
		if !gj.Group.NoMembers || len(gj.Group.Partitions) != int(parts) {
			return fmt.Errorf("no_members %v, %d partitions", gj.Group.NoMembers, len(gj.Group.Partitions))
		}
		for i, p := range gj.Group.Partitions {
			if p.Status != "STOP" || p.Lag <= 0 {
				return fmt.Errorf("partition #%d: status %s lag %d, want STOP with lag", i, p.Status, p.Lag)
			}
		}
		return nil
	})

	// 5. Producers stop, a member comes back and catches up: lag 0, OK.
	stopProducing()
	require.NoError(t, waitProducer())
	back, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic))
	require.NoError(t, err)
	defer back.Close()
	waitFor(t, 30*time.Second, "caught up: lag 0 and OK", func() error {
		fctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		back.PollFetches(fctx)
		cancel()
		if err := back.CommitUncommittedOffsets(ctx); err != nil {
			return err
		}
		m, err := scrape(interp.URL)
		if err != nil {
			return err
		}
		for p := int32(0); p < parts; p++ {
			pk := []string{"consumergroup", group, "topic", topic, "partition", strconv.Itoa(int(p))}
			if got := m[key("kafka_consumergroup_lag", pk...)]; got != 0 {
				return fmt.Errorf("partition %d lag %v", p, got)
			}
			if got := m[key("kobs_consumergroup_partition_status", pk...)]; got != float64(agent.StatusOK.Code()) {
				return fmt.Errorf("partition %d status %v", p, got)
			}
			if got := m[key("kobs_consumergroup_lag_seconds", pk...)]; got != 0 {
				return fmt.Errorf("partition %d lag seconds %v", p, got)
			}
		}
		if got := groupStatus(m); got != float64(agent.StatusOK.Code()) {
			return fmt.Errorf("group status %v", got)
		}
		return nil
	})

	// 6. An operator resets partition 0 to the start: REWIND.
	back.Close()
	waitFor(t, 20*time.Second, "the member left", func() error {
		dgs, err := adm.DescribeGroups(ctx, group)
		if err != nil || len(dgs[group].Members) != 0 {
			return fmt.Errorf("members %v, err %v", len(dgs[group].Members), err)
		}
		return nil
	})
	var reset kadm.Offsets
	reset.Add(kadm.Offset{Topic: topic, Partition: 0, At: 0, LeaderEpoch: -1})
	require.NoError(t, adm.CommitAllOffsets(ctx, group, reset))
	waitFor(t, 20*time.Second, "REWIND after the reset", func() error {
		m, err := scrape(interp.URL)
		if err != nil {
			return err
		}
		pk := []string{"consumergroup", group, "topic", topic, "partition", "0"}
		if got := m[key("kobs_consumergroup_partition_status", pk...)]; got != float64(agent.StatusRewind.Code()) {
			return fmt.Errorf("partition 0 status %v, want REWIND (%d)", got, agent.StatusRewind.Code())
		}
		if got := groupStatus(m); got != float64(agent.StatusRewind.Code()) {
			return fmt.Errorf("group status %v", got)
		}
		return nil
	})
}
