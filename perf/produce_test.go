package perf

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka's kafka-producer-perf-test line formats.
var (
	windowLine = regexp.MustCompile(`^\d+ records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), \d+\.\d ms avg latency, \d+\.\d ms max latency\.$`)
	finalLine  = regexp.MustCompile(`^(\d+) records sent, (\d+\.\d{6}) records/sec \((\d+\.\d\d) MB/sec\), \d+\.\d\d ms avg latency, \d+\.\d\d ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th\.$`)
)

// lines splits output into non-empty lines.
func lines(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' })
}

func requirePercentilesOrdered(t *testing.T, s LatencyStats) {
	t.Helper()
	require.LessOrEqual(t, s.P50, s.P95)
	require.LessOrEqual(t, s.P95, s.P99)
	require.LessOrEqual(t, s.P99, s.P999)
	require.LessOrEqual(t, s.P999, s.Max)
	require.LessOrEqual(t, s.Avg, s.Max)
	require.Positive(t, s.Max)
}

// TestProduceAcksCompression produces with every acks setting and codec,
// then reads the topic back to check that every record arrived intact.
func TestProduceAcksCompression(t *testing.T) {
	const n, size = 2000, 200
	type tc struct{ acks, codec string }
	var cases []tc
	for _, acks := range []string{"0", "1", "all", "-1"} {
		cases = append(cases, tc{acks, "none"})
	}
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		cases = append(cases, tc{"1", codec})
	}
	var topics []string
	for _, c := range cases {
		topics = append(topics, topicFor(c.acks, c.codec))
	}
	brokers := newCluster(t, 3, topics...)

	for _, c := range cases {
		t.Run(fmt.Sprintf("acks=%s/compression=%s", c.acks, c.codec), func(t *testing.T) {
			topic := topicFor(c.acks, c.codec)
			var out strings.Builder
			res, err := RunProduce(context.Background(), ProduceConfig{
				Brokers:     brokers,
				Topic:       topic,
				NumRecords:  n,
				RecordSize:  size,
				Throughput:  -1,
				Acks:        c.acks,
				Compression: c.codec,
			}, &out)
			require.NoError(t, err)
			require.EqualValues(t, n, res.Records)
			require.EqualValues(t, n*size, res.Bytes)
			require.Zero(t, res.Errors)
			require.Positive(t, res.RecordsPerSec)
			requirePercentilesOrdered(t, res.LatencyStats)

			ls := lines(out.String())
			require.Len(t, ls, 1, "a sub-second run prints only the final line:\n%s", out.String())
			m := finalLine.FindStringSubmatch(ls[0])
			require.NotNil(t, m, "final line %q", ls[0])
			require.Equal(t, strconv.Itoa(n), m[1])

			var cout strings.Builder
			cres, err := RunConsume(context.Background(), ConsumeConfig{
				Brokers: brokers, Topic: topic, NumRecords: n, Timeout: 5 * time.Second,
			}, &cout)
			require.NoError(t, err, cout.String())
			require.EqualValues(t, n, cres.Records)
			require.EqualValues(t, n*size, cres.Bytes)
		})
	}
}

func topicFor(acks, codec string) string { return "t-acks" + acks + "-" + codec }

// TestProduceProgressLines runs long enough, throttled, to print progress
// windows, and checks their format and that their counts add up.
func TestProduceProgressLines(t *testing.T) {
	brokers := newCluster(t, 1, "progress")
	var out strings.Builder
	res, err := RunProduce(context.Background(), ProduceConfig{
		Brokers:        brokers,
		Topic:          "progress",
		NumRecords:     600,
		RecordSize:     100,
		Throughput:     1000, // about 0.6s
		Acks:           "all",
		Idempotent:     true,
		ReportInterval: 100 * time.Millisecond,
	}, &out)
	require.NoError(t, err)
	ls := lines(out.String())
	require.GreaterOrEqual(t, len(ls), 4, out.String())
	var windowed int64
	for _, l := range ls[:len(ls)-1] {
		require.Regexp(t, windowLine, l)
		n, err := strconv.ParseInt(strings.Fields(l)[0], 10, 64)
		require.NoError(t, err)
		windowed += n
	}
	require.Regexp(t, finalLine, ls[len(ls)-1])
	// Records acked after the last window are only in the final line.
	require.LessOrEqual(t, windowed, res.Records)
	require.Greater(t, windowed, res.Records/2)
}

// TestProduceThroughputCap checks the throttler end to end: 2000 records at
// 2000/s must take about a second, not less.
func TestProduceThroughputCap(t *testing.T) {
	brokers := newCluster(t, 3, "capped")
	var out strings.Builder
	res, err := RunProduce(context.Background(), ProduceConfig{
		Brokers:    brokers,
		Topic:      "capped",
		NumRecords: 2000,
		RecordSize: 100,
		Throughput: 2000,
		Acks:       "1",
	}, &out)
	require.NoError(t, err)
	require.EqualValues(t, 2000, res.Records)
	require.LessOrEqual(t, res.RecordsPerSec, 2200.0, out.String())
	// The lower bound only guards against a throttler that sleeps far too
	// much; the machine is shared, so it is loose.
	require.GreaterOrEqual(t, res.RecordsPerSec, 1000.0, out.String())
	require.GreaterOrEqual(t, res.Elapsed, 900*time.Millisecond)
}

// TestProduceAutoCreatesTopic: like Kafka's producer, ours must ask a broker
// that allows it to create a missing topic.
func TestProduceAutoCreatesTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	res, err := RunProduce(context.Background(), ProduceConfig{
		Brokers: c.ListenAddrs(), Topic: "brand-new", NumRecords: 100, RecordSize: 10, Throughput: -1, Acks: "1",
	}, &strings.Builder{})
	require.NoError(t, err)
	require.EqualValues(t, 100, res.Records)
}

// TestProduceUnreachableBroker: a dead bootstrap server fails the run at
// once with the cause, instead of after the delivery timeout (2 minutes by
// default) with nothing printed meanwhile.
func TestProduceUnreachableBroker(t *testing.T) {
	var out strings.Builder
	began := time.Now()
	_, err := RunProduce(context.Background(), ProduceConfig{
		Brokers: []string{deadAddr(t)}, Topic: "nowhere", NumRecords: 10, RecordSize: 10, Throughput: -1, Acks: "1",
	}, &out)
	require.ErrorContains(t, err, "connection refused")
	require.ErrorContains(t, err, "cannot reach bootstrap servers")
	require.Less(t, time.Since(began), 5*time.Second)
}

// TestProduceRecordsFail: records the cluster refuses are counted, the first
// few printed, and the run fails with the first error.
func TestProduceRecordsFail(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "refused"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kr.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	var out strings.Builder
	res, err := RunProduce(context.Background(), ProduceConfig{
		Brokers: c.ListenAddrs(), Topic: "refused", NumRecords: 10, RecordSize: 10, Throughput: -1, Acks: "1",
		DeliveryTimeout: 5 * time.Second,
	}, &out)
	require.Error(t, err)
	require.Zero(t, res.Records)
	require.EqualValues(t, 10, res.Errors)
	require.Contains(t, err.Error(), "10 of 10 records failed")
	require.ErrorIs(t, err, kerr.InvalidRecord)
	s := out.String()
	require.Equal(t, maxPrintedErrors, strings.Count(s, "produce error: "), s)
	require.Contains(t, s, "10 records failed.")
	require.Contains(t, s, "0 records sent, ")
}

// TestProduceCanceled stops a long throttled run through its context.
func TestProduceCanceled(t *testing.T) {
	brokers := newCluster(t, 1, "cancel")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	res, err := RunProduce(ctx, ProduceConfig{
		Brokers:    brokers,
		Topic:      "cancel",
		NumRecords: 1_000_000,
		RecordSize: 10,
		Throughput: 1000,
	}, &strings.Builder{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(began), 5*time.Second)
	require.Less(t, res.Records, int64(1000))
}

func TestProduceConfigErrors(t *testing.T) {
	valid := ProduceConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "t", NumRecords: 1, RecordSize: 1, Throughput: -1}
	for name, mutate := range map[string]func(*ProduceConfig){
		"no brokers":           func(c *ProduceConfig) { c.Brokers = nil },
		"no topic":             func(c *ProduceConfig) { c.Topic = "" },
		"zero records":         func(c *ProduceConfig) { c.NumRecords = 0 },
		"zero size":            func(c *ProduceConfig) { c.RecordSize = 0 },
		"zero throughput":      func(c *ProduceConfig) { c.Throughput = 0 },
		"bad acks":             func(c *ProduceConfig) { c.Acks = "2" },
		"bad codec":            func(c *ProduceConfig) { c.Compression = "brotli" },
		"idempotent with acks": func(c *ProduceConfig) { c.Acks = "1"; c.Idempotent = true },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := valid
			mutate(&cfg)
			_, err := RunProduce(context.Background(), cfg, &strings.Builder{})
			require.ErrorContains(t, err, "produce config")
		})
	}
}
