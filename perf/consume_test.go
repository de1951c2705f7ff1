package perf

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// Kafka's kafka-consumer-perf-test formats, plus our latency line.
var (
	consumeHeader  = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
	detailedHeader = "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
	kafkaDate      = `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}`
	consumeRow     = regexp.MustCompile(`^` + kafkaDate + `, ` + kafkaDate + `, \d+\.\d{4}, \d+\.\d{4}, (\d+), \d+\.\d{4}, (\d+), (\d+), \d+\.\d{4}, \d+\.\d{4}$`)
	detailedRow    = regexp.MustCompile(`^` + kafkaDate + `, 0, \d+\.\d{4}, \d+\.\d{4}, (\d+), \d+\.\d{4}, \d+, \d+, \d+\.\d{4}, \d+\.\d{4}$`)
	latencyLine    = regexp.MustCompile(`^(\d+) records, \d+\.\d\d ms avg end-to-end latency, \d+\.\d\d ms max end-to-end latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$`)
)

// fill produces n records of size bytes to topic.
func fill(t *testing.T, brokers []string, topic string, n int64, size int) {
	t.Helper()
	_, err := RunProduce(context.Background(), ProduceConfig{
		Brokers: brokers, Topic: topic, NumRecords: n, RecordSize: size, Throughput: -1, Acks: "1",
	}, &strings.Builder{})
	require.NoError(t, err)
}

func TestConsumeDirectAndGroup(t *testing.T) {
	const n, size = 3000, 100
	brokers := newCluster(t, 3, "backlog")
	fill(t, brokers, "backlog", n, size)

	for _, group := range []string{"", "perf-group"} {
		t.Run("group="+group, func(t *testing.T) {
			var out strings.Builder
			res, err := RunConsume(context.Background(), ConsumeConfig{
				Brokers: brokers, Topic: "backlog", NumRecords: n, Group: group, Timeout: 5 * time.Second,
			}, &out)
			require.NoError(t, err, out.String())
			require.EqualValues(t, n, res.Records)
			require.EqualValues(t, n*size, res.Bytes)
			require.Positive(t, res.RecordsPerSec)
			requirePercentilesOrdered(t, res.LatencyStats)
			if group == "" {
				require.Zero(t, res.RebalanceTime)
			} else {
				require.Positive(t, res.RebalanceTime, "joining a group takes time")
			}
			require.Equal(t, res.Elapsed-res.RebalanceTime, res.FetchTime)

			ls := lines(out.String())
			require.Len(t, ls, 3, out.String())
			require.Equal(t, consumeHeader, ls[0])
			m := consumeRow.FindStringSubmatch(ls[1])
			require.NotNil(t, m, "row %q", ls[1])
			require.Equal(t, strconv.Itoa(n), m[1])
			require.Equal(t, strconv.FormatInt(res.RebalanceTime.Milliseconds(), 10), m[2])
			require.Regexp(t, latencyLine, ls[2])
		})
	}
}

// TestConsumeWhileProducing consumes a throttled producer's records as they
// arrive: end-to-end latencies must then be small, and the detailed stats
// mode must print a row per interval.
func TestConsumeWhileProducing(t *testing.T) {
	const n = 1000
	brokers := newCluster(t, 2, "live")
	var wg sync.WaitGroup
	var prodErr error
	wg.Go(func() {
		_, prodErr = RunProduce(context.Background(), ProduceConfig{
			Brokers: brokers, Topic: "live", NumRecords: n, RecordSize: 50, Throughput: 2000, Acks: "1",
			Linger: -1, // no lingering: ship each record as soon as possible
		}, &strings.Builder{})
	})
	var out strings.Builder
	res, err := RunConsume(context.Background(), ConsumeConfig{
		Brokers: brokers, Topic: "live", NumRecords: n, Timeout: 5 * time.Second,
		ShowDetailedStats: true, ReportInterval: 100 * time.Millisecond,
	}, &out)
	wg.Wait()
	require.NoError(t, prodErr)
	require.NoError(t, err, out.String())
	require.EqualValues(t, n, res.Records)
	// Generous: fetches wait up to kgo's 5s max wait only when idle, and
	// records arrive every 0.5ms here.
	require.Less(t, res.P50, time.Second, "p50 %s", res.P50)
	requirePercentilesOrdered(t, res.LatencyStats)

	ls := lines(out.String())
	require.Equal(t, detailedHeader, ls[0])
	require.Regexp(t, latencyLine, ls[len(ls)-1])
	rows := ls[1 : len(ls)-1]
	require.GreaterOrEqual(t, len(rows), 2, out.String())
	prev := int64(0)
	for _, r := range rows {
		m := detailedRow.FindStringSubmatch(r)
		require.NotNil(t, m, "row %q", r)
		total, _ := strconv.ParseInt(m[1], 10, 64)
		require.Greater(t, total, prev, "totals grow")
		prev = total
	}
}

func TestConsumeIdleTimeout(t *testing.T) {
	brokers := newCluster(t, 1, "few", "empty")
	fill(t, brokers, "few", 10, 10)

	// The idle clock starts with the run, before the client has connected
	// (as Kafka's): the timeout must leave room for the first fetch on a
	// loaded machine where all 10 records are expected.
	const idle = 2 * time.Second
	t.Run("fewer than wanted", func(t *testing.T) {
		var out strings.Builder
		began := time.Now()
		res, err := RunConsume(context.Background(), ConsumeConfig{
			Brokers: brokers, Topic: "few", NumRecords: 100, Timeout: idle,
		}, &out)
		require.ErrorIs(t, err, ErrIdleTimeout)
		require.Less(t, time.Since(began), 15*time.Second)
		require.EqualValues(t, 10, res.Records)
		require.Contains(t, out.String(), "WARNING: Exiting before consuming the expected number of messages: timeout (2000 ms) exceeded.")
		// The clock stops at the last record, not after the idle wait.
		require.Less(t, res.Elapsed, time.Since(began)-idle*4/5)
	})
	t.Run("until idle", func(t *testing.T) {
		res, err := RunConsume(context.Background(), ConsumeConfig{
			Brokers: brokers, Topic: "few", Timeout: idle,
		}, &strings.Builder{})
		require.NoError(t, err)
		require.EqualValues(t, 10, res.Records)
	})
	t.Run("empty topic", func(t *testing.T) {
		res, err := RunConsume(context.Background(), ConsumeConfig{
			Brokers: brokers, Topic: "empty", Timeout: 300 * time.Millisecond,
		}, &strings.Builder{})
		require.ErrorIs(t, err, ErrIdleTimeout)
		require.Zero(t, res.Records)
	})
}

// TestConsumeUnreachableBroker: a dead bootstrap server is named as such at
// once, not after the idle timeout as "no record within timeout".
func TestConsumeUnreachableBroker(t *testing.T) {
	began := time.Now()
	var out strings.Builder
	_, err := RunConsume(context.Background(), ConsumeConfig{
		Brokers: []string{deadAddr(t)}, Topic: "nowhere", NumRecords: 1, Timeout: 30 * time.Second,
	}, &out)
	require.ErrorContains(t, err, "connection refused")
	require.ErrorContains(t, err, "cannot reach bootstrap servers")
	require.NotErrorIs(t, err, ErrIdleTimeout)
	require.Less(t, time.Since(began), 5*time.Second)
	require.Empty(t, out.String(), "no CSV header for a run that never started")
}

// TestConsumeMissingTopic: reading nothing from a topic that does not exist
// says so.
func TestConsumeMissingTopic(t *testing.T) {
	brokers := newCluster(t, 1, "present")
	_, err := RunConsume(context.Background(), ConsumeConfig{
		Brokers: brokers, Topic: "absent", NumRecords: 1, Timeout: 300 * time.Millisecond,
	}, &strings.Builder{})
	require.ErrorIs(t, err, ErrIdleTimeout)
	require.ErrorContains(t, err, "topic absent does not exist")
}

// TestConsumeGroupWaitsOutInitialRebalanceDelay: a new group's first
// rebalance waits group.initial.rebalance.delay.ms (3 s, Kafka's default) on
// a real kobs broker; with --timeout 3000 the run must still read
// everything, because waiting for an assignment is not the topic being idle.
func TestConsumeGroupWaitsOutInitialRebalanceDelay(t *testing.T) {
	b := testcluster.Start(t, testcluster.Prop("group.initial.rebalance.delay.ms", "3000"))
	brokers := []string{b.Addr()}
	const n = 2000
	fill(t, brokers, "delayed", n, 50)
	var out strings.Builder
	res, err := RunConsume(context.Background(), ConsumeConfig{
		Brokers: brokers, Topic: "delayed", NumRecords: n, Group: "g1", Timeout: 3 * time.Second,
	}, &out)
	require.NoError(t, err, out.String())
	require.EqualValues(t, n, res.Records)
	require.GreaterOrEqual(t, res.RebalanceTime, 2500*time.Millisecond, "the broker delayed the first rebalance")
}

// TestConsumeRebalanceStillRunning: when the group gives us no partitions
// within JoinTimeout, the error says the rebalance is the cause.
func TestConsumeRebalanceStillRunning(t *testing.T) {
	b := testcluster.Start(t, testcluster.Prop("group.initial.rebalance.delay.ms", "30000"))
	brokers := []string{b.Addr()}
	fill(t, brokers, "slowjoin", 10, 10)
	began := time.Now()
	var out strings.Builder
	res, err := RunConsume(context.Background(), ConsumeConfig{
		Brokers: brokers, Topic: "slowjoin", NumRecords: 10, Group: "g1",
		Timeout: 500 * time.Millisecond, JoinTimeout: 2 * time.Second,
	}, &out)
	require.ErrorIs(t, err, ErrRebalanceRunning)
	require.ErrorContains(t, err, "rebalance still running")
	require.ErrorContains(t, err, "group g1 got no partitions within 2s")
	require.Zero(t, res.Records)
	require.Less(t, time.Since(began), 15*time.Second)
	require.GreaterOrEqual(t, time.Since(began), 2*time.Second, "the join is given JoinTimeout, not Timeout")
}

func TestConsumeCanceled(t *testing.T) {
	brokers := newCluster(t, 1, "quiet")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := RunConsume(ctx, ConsumeConfig{Brokers: brokers, Topic: "quiet", Timeout: time.Minute}, &strings.Builder{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestKafkaTime(t *testing.T) {
	ts := time.Date(2024, 3, 9, 7, 5, 4, 42_900_000, time.Local)
	require.Equal(t, "2024-03-09 07:05:04:042", kafkaTime(ts))
}

func TestConsumeConfigErrors(t *testing.T) {
	for name, cfg := range map[string]ConsumeConfig{
		"no brokers":     {Topic: "t"},
		"no topic":       {Brokers: []string{"127.0.0.1:1"}},
		"negative count": {Brokers: []string{"127.0.0.1:1"}, Topic: "t", NumRecords: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := RunConsume(context.Background(), cfg, &strings.Builder{})
			require.ErrorContains(t, err, "consume config")
		})
	}
}
