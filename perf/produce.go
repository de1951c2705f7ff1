package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProduceConfig configures RunProduce. The zero value of every optional field
// means "the default named in its comment".
type ProduceConfig struct {
	// Brokers are the bootstrap servers, host:port. Required.
	Brokers []string
	// Topic receives every record. Required.
	Topic string
	// NumRecords is how many records to send. Required, > 0.
	NumRecords int64
	// RecordSize is the value size in bytes. Required, > 0.
	RecordSize int
	// Throughput caps the send rate in records per second; negative means
	// no cap. Zero is rejected: Kafka's tool would stall forever on it.
	Throughput int64
	// Acks is "0", "1" or "all" (alias "-1"); empty means "all".
	Acks string
	// BatchBytes is kgo's ProducerBatchMaxBytes (roughly batch.size);
	// 0 keeps kgo's default of 1MB.
	BatchBytes int
	// Linger is kgo's ProducerLinger (linger.ms); 0 keeps kgo's default of
	// 10ms and a negative value disables lingering.
	Linger time.Duration
	// Compression is none, gzip, snappy, lz4 or zstd; empty means none.
	Compression string
	// Idempotent enables idempotent writes. It defaults to off because kgo
	// refuses idempotency with acks other than all, and the point of a perf
	// tool is to compare acks settings on equal terms.
	Idempotent bool
	// DeliveryTimeout bounds how long a record may wait for its ack before
	// it fails (delivery.timeout.ms), overriding the default of 2 minutes,
	// Kafka's default. Without it an unreachable broker would hang the run.
	DeliveryTimeout time.Duration
	// ReportInterval is how often a progress line is printed, overriding the
	// default of 5s; negative disables progress lines.
	ReportInterval time.Duration
	// ExtraOpts are appended after ours, so they win.
	ExtraOpts []kgo.Opt
}

// ProduceResult holds the final numbers of a produce run. Records, Bytes and
// the latencies count acknowledged records only; Errors counts the rest.
type ProduceResult struct {
	Records       int64
	Bytes         int64
	Errors        int64
	Elapsed       time.Duration
	RecordsPerSec float64
	MBPerSec      float64 // MiB, as Kafka's tools print it
	LatencyStats
}

const (
	defaultReportInterval  = 5 * time.Second
	defaultDeliveryTimeout = 2 * time.Minute
	// maxPrintedErrors bounds how many produce errors we print one by one;
	// a dead broker fails every record and the first few say it all.
	maxPrintedErrors = 5
)

func (c *ProduceConfig) setDefaults() {
	if c.ReportInterval == 0 {
		c.ReportInterval = defaultReportInterval
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = defaultDeliveryTimeout
	}
}

func (c *ProduceConfig) validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("no bootstrap brokers")
	case c.Topic == "":
		return errors.New("no topic")
	case c.NumRecords <= 0:
		return fmt.Errorf("num records %d: must be > 0", c.NumRecords)
	case c.RecordSize <= 0:
		return fmt.Errorf("record size %d: must be > 0", c.RecordSize)
	case c.Throughput == 0:
		return errors.New("throughput 0: use a negative value for no limit")
	case c.BatchBytes < 0:
		return fmt.Errorf("batch bytes %d: must be >= 0", c.BatchBytes)
	}
	return nil
}

// clientOpts turns the config into kgo options.
func (c *ProduceConfig) clientOpts() ([]kgo.Opt, error) {
	acks, allAcks, err := parseAcks(c.Acks)
	if err != nil {
		return nil, err
	}
	if c.Idempotent && !allAcks {
		return nil, fmt.Errorf("idempotent writes need acks=all, got acks=%s", c.Acks)
	}
	codec, err := parseCompression(c.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.RequiredAcks(acks),
		kgo.ProducerBatchCompression(codec),
		kgo.RecordDeliveryTimeout(c.DeliveryTimeout),
		// Kafka's producer asks for auto-creation in its metadata requests
		// (allow.auto.create.topics=true) and kgo does not by default; without
		// this a broker with auto.create.topics.enable=true would answer
		// UNKNOWN_TOPIC_OR_PARTITION for a new topic.
		kgo.AllowAutoTopicCreation(),
	}
	if !c.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if c.BatchBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(min(c.BatchBytes, 1<<30))))
	}
	switch {
	case c.Linger > 0:
		opts = append(opts, kgo.ProducerLinger(c.Linger))
	case c.Linger < 0:
		opts = append(opts, kgo.ProducerLinger(0))
	}
	return append(opts, c.ExtraOpts...), nil
}

// newPayload returns size random upper-case letters. Kafka's tool fills its
// payload the same way; letters rather than arbitrary bytes keep the
// compression codecs doing real work instead of giving up on noise.
func newPayload(size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	p := make([]byte, size)
	for i := range p {
		p[i] = 'A' + byte(rng.IntN(26))
	}
	return p
}

// produceStats is Kafka's ProducerPerformance.Stats: totals for the run plus a
// window that is printed and reset every report interval. Promises run on
// kgo's goroutines, so every method takes mu.
type produceStats struct {
	mu       sync.Mutex
	out      io.Writer
	interval time.Duration
	start    time.Time

	records  int64
	bytes    int64
	errors   int64
	lat      *latencyRecorder
	firstErr error

	winStart   time.Time
	winRecords int64
	winBytes   int64
	winLatency time.Duration
	winMax     time.Duration
}

func newProduceStats(out io.Writer, interval time.Duration, start time.Time, numRecords int64) *produceStats {
	return &produceStats{
		out:      out,
		interval: interval,
		start:    start,
		winStart: start,
		lat:      newLatencyRecorder(int(min(numRecords, maxLatencySamples))),
	}
}

// recordAck counts one acknowledged record and prints the window if it is
// due. Like Kafka, the window is printed from the ack path, so a run where
// nothing is acked prints no progress; the final line still appears.
func (s *produceStats) recordAck(latency time.Duration, size int, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records++
	s.bytes += int64(size)
	s.lat.record(latency)
	s.winRecords++
	s.winBytes += int64(size)
	s.winLatency += latency
	s.winMax = max(s.winMax, latency)
	if s.interval > 0 && now.Sub(s.winStart) >= s.interval {
		elapsed := now.Sub(s.winStart)
		fmt.Fprintf(s.out, "%d records sent, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, %.1f ms max latency.\n",
			s.winRecords,
			rate(float64(s.winRecords), elapsed),
			rate(float64(s.winBytes), elapsed)/mib,
			ms(s.winLatency)/float64(s.winRecords),
			ms(s.winMax))
		s.winStart, s.winRecords, s.winBytes, s.winLatency, s.winMax = now, 0, 0, 0, 0
	}
}

func (s *produceStats) recordError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors++
	if s.firstErr == nil {
		s.firstErr = err
	}
	if s.errors <= maxPrintedErrors {
		fmt.Fprintf(s.out, "produce error: %v\n", err)
	}
}

// result computes the final numbers and prints Kafka's final line. Call it
// after every promise has run.
func (s *produceStats) result(end time.Time) ProduceResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	elapsed := end.Sub(s.start)
	r := ProduceResult{
		Records:       s.records,
		Bytes:         s.bytes,
		Errors:        s.errors,
		Elapsed:       elapsed,
		RecordsPerSec: rate(float64(s.records), elapsed),
		MBPerSec:      rate(float64(s.bytes), elapsed) / mib,
		LatencyStats:  s.lat.stats(),
	}
	// Kafka prints records/sec with %f; we keep that so scripts written for
	// kafka-producer-perf-test parse our output unchanged.
	fmt.Fprintf(s.out, "%d records sent, %f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th.\n",
		r.Records, r.RecordsPerSec, r.MBPerSec, ms(r.Avg), ms(r.Max),
		wholeMs(r.P50), wholeMs(r.P95), wholeMs(r.P99), wholeMs(r.P999))
	if r.Errors > 0 {
		fmt.Fprintf(s.out, "%d records failed.\n", r.Errors)
	}
	return r
}

// RunProduce sends cfg.NumRecords records of cfg.RecordSize bytes to
// cfg.Topic, as kafka-producer-perf-test does, printing a progress line every
// ReportInterval and a final line with rates and latency percentiles to out.
// Latency is the time from handing a record to the client until its ack
// (for acks=0, until it is written to the socket).
//
// It returns an error if the config is invalid, ctx ends, or any record
// failed; the result is filled in as far as the run got in every case but the
// first.
func RunProduce(ctx context.Context, cfg ProduceConfig, out io.Writer) (ProduceResult, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return ProduceResult{}, fmt.Errorf("produce config: %w", err)
	}
	opts, err := cfg.clientOpts()
	if err != nil {
		return ProduceResult{}, fmt.Errorf("produce config: %w", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return ProduceResult{}, fmt.Errorf("create producer client: %w", err)
	}
	defer cl.Close()
	if err := probe(ctx, cl, cfg.Brokers, cfg.DeliveryTimeout); err != nil {
		return ProduceResult{}, fmt.Errorf("produce to %s: %w", cfg.Topic, err)
	}

	payload := newPayload(cfg.RecordSize)
	start := time.Now()
	stats := newProduceStats(out, cfg.ReportInterval, start, cfg.NumRecords)
	throttle := newThrottler(float64(cfg.Throughput), start)

	// wg tracks outstanding promises, so result never reads stats while a
	// late promise could still write them, even if Flush is cut short.
	var wg sync.WaitGroup
	var runErr error
	for i := range cfg.NumRecords {
		sendStart := time.Now()
		// kgo owns each Record until its promise runs, so every send needs its
		// own; the payload is shared because nothing writes to it.
		r := &kgo.Record{Value: payload}
		wg.Add(1)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			now := time.Now()
			if err != nil {
				stats.recordError(err)
				return
			}
			stats.recordAck(now.Sub(sendStart), len(payload), now)
		})
		if throttle.shouldThrottle(i+1, sendStart) {
			if err := throttle.throttle(ctx); err != nil {
				runErr = err
				break
			}
		}
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
	}
	if err := cl.Flush(ctx); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		// Fail whatever is still buffered so that every promise runs and
		// wg.Wait below cannot hang on a record kgo would retry forever.
		cl.PurgeTopicsFromProducing(cfg.Topic)
	}
	wg.Wait()
	res := stats.result(time.Now())
	switch {
	case runErr != nil:
		return res, fmt.Errorf("produce to %s stopped after %d acked records: %w", cfg.Topic, res.Records, runErr)
	case res.Errors > 0:
		return res, fmt.Errorf("produce to %s: %d of %d records failed, first error: %w",
			cfg.Topic, res.Errors, cfg.NumRecords, stats.firstErr)
	}
	return res, nil
}
