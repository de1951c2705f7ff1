package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrIdleTimeout is returned (wrapped) by RunConsume when it stopped because
// no record arrived for ConsumeConfig.Timeout before NumRecords were read.
var ErrIdleTimeout = errors.New("no record within timeout")

// ErrRebalanceRunning is returned (wrapped) by RunConsume when it stopped
// because its group gave it no partitions within ConsumeConfig.JoinTimeout.
var ErrRebalanceRunning = errors.New("rebalance still running")

// ConsumeConfig configures RunConsume. The zero value of every optional field
// means "the default named in its comment".
type ConsumeConfig struct {
	// Brokers are the bootstrap servers, host:port. Required.
	Brokers []string
	// Topic is read from the earliest offset. Required.
	Topic string
	// NumRecords stops the run once this many records were read; 0 reads
	// until no record arrives for Timeout.
	NumRecords int64
	// Group joins this consumer group (committing offsets as it goes);
	// empty reads every partition directly, with no group.
	Group string
	// Timeout ends the run when no record arrived for this long (Kafka's
	// --timeout), overriding the default of 10s.
	Timeout time.Duration
	// JoinTimeout bounds the wait for a group assignment, which does not
	// count against Timeout (a new group's first rebalance waits
	// group.initial.rebalance.delay.ms, 3 s by default); 0 means
	// max(Timeout, 30s).
	JoinTimeout time.Duration
	// ReportInterval is how often a detailed stats row is printed when
	// ShowDetailedStats is set, overriding the default of 5s.
	ReportInterval time.Duration
	// ShowDetailedStats prints a row per ReportInterval, in Kafka's
	// --show-detailed-stats format, instead of the one summary row.
	ShowDetailedStats bool
	// HideHeader omits the CSV header line (Kafka's --hide-header).
	HideHeader bool
	// FetchMaxBytes is kgo's FetchMaxBytes (fetch.max.bytes); 0 keeps kgo's
	// default of 50MB.
	FetchMaxBytes int
	// FetchMaxPartitionBytes is kgo's FetchMaxPartitionBytes
	// (max.partition.fetch.bytes, Kafka's --fetch-size); 0 keeps kgo's
	// default of 1MB.
	FetchMaxPartitionBytes int
	// ExtraOpts are appended after ours, so they win.
	ExtraOpts []kgo.Opt
}

// ConsumeResult holds the final numbers of a consume run. The embedded
// latencies are end to end: the time a record was read minus its timestamp.
// They mean something only when the records were produced during the run
// (and, across hosts, with synchronised clocks); for an old backlog they
// measure its age.
type ConsumeResult struct {
	Records       int64
	Bytes         int64
	Start         time.Time
	End           time.Time
	Elapsed       time.Duration
	RecordsPerSec float64
	MBPerSec      float64 // MiB, as Kafka's tools print it
	// RebalanceTime is how long joining the group took before the first
	// assignment; always 0 without a group.
	RebalanceTime time.Duration
	// FetchTime is Elapsed minus RebalanceTime, and the Fetch rates use it.
	FetchTime          time.Duration
	FetchRecordsPerSec float64
	FetchMBPerSec      float64
	LatencyStats
}

const (
	defaultConsumeTimeout = 10 * time.Second
	defaultJoinTimeout    = 30 * time.Second
)

// kafkaTime formats t as Kafka's default --date-format,
// yyyy-MM-dd HH:mm:ss:SSS. Go layouts only know fractional seconds after a
// '.' or ',', so the colon-separated milliseconds are appended by hand.
func kafkaTime(t time.Time) string {
	return fmt.Sprintf("%s:%03d", t.Format("2006-01-02 15:04:05"), t.Nanosecond()/int(time.Millisecond))
}

func (c *ConsumeConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = defaultConsumeTimeout
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = max(c.Timeout, defaultJoinTimeout)
	}
	if c.ReportInterval <= 0 {
		c.ReportInterval = defaultReportInterval
	}
}

func (c *ConsumeConfig) validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("no bootstrap brokers")
	case c.Topic == "":
		return errors.New("no topic")
	case c.NumRecords < 0:
		return fmt.Errorf("num records %d: must be >= 0", c.NumRecords)
	case c.Timeout < 0:
		return fmt.Errorf("timeout %s: must be > 0", c.Timeout)
	case c.FetchMaxBytes < 0 || c.FetchMaxPartitionBytes < 0:
		return errors.New("fetch sizes must be >= 0")
	}
	return nil
}

// joinTimer measures time spent without an assignment, like Kafka's
// ConsumerPerfRebListener: the clock starts at the run start and whenever the
// last partition is revoked, and stops at the next assignment. kgo calls the
// hooks from its group goroutine, so the state is atomic.
type joinTimer struct {
	joinStart  atomic.Int64 // unix nanos; 0 while assigned
	total      atomic.Int64 // nanos
	assignedAt atomic.Int64 // unix nanos of the last assignment
}

func (j *joinTimer) assigned(now time.Time) {
	if s := j.joinStart.Swap(0); s != 0 {
		j.total.Add(now.UnixNano() - s)
	}
	j.assignedAt.Store(now.UnixNano())
}

func (j *joinTimer) revoked(now time.Time) { j.joinStart.CompareAndSwap(0, now.UnixNano()) }

func (c *ConsumeConfig) clientOpts(jt *joinTimer) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ConsumeTopics(c.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	if c.Group != "" {
		opts = append(opts,
			kgo.ConsumerGroup(c.Group),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { jt.assigned(time.Now()) }),
			// Revoked and lost both leave us without partitions; the next
			// assignment ends the rebalance either way.
			kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) { jt.revoked(time.Now()) }),
			kgo.OnPartitionsLost(func(context.Context, *kgo.Client, map[string][]int32) { jt.revoked(time.Now()) }),
		)
	}
	if c.FetchMaxBytes > 0 {
		opts = append(opts, kgo.FetchMaxBytes(int32(min(c.FetchMaxBytes, 1<<30))))
	}
	if c.FetchMaxPartitionBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(int32(min(c.FetchMaxPartitionBytes, 1<<30))))
	}
	return append(opts, c.ExtraOpts...)
}

// RunConsume reads cfg.Topic from the start, as kafka-consumer-perf-test does,
// until cfg.NumRecords records were read or none arrived for cfg.Timeout. It
// prints Kafka's CSV header and summary row (or detailed rows) to out, then
// one line of end-to-end latency percentiles.
//
// It returns an error wrapping ErrIdleTimeout when it gave up before
// NumRecords, and ctx's error when ctx ended; the result is filled in as far
// as the run got.
func RunConsume(ctx context.Context, cfg ConsumeConfig, out io.Writer) (ConsumeResult, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return ConsumeResult{}, fmt.Errorf("consume config: %w", err)
	}
	start := time.Now()
	jt := &joinTimer{}
	if cfg.Group != "" {
		jt.joinStart.Store(start.UnixNano())
	}
	// A group join the broker holds (its initial rebalance delay) would
	// hold Close too; abandoning the client's context lets a run that gave
	// up on the rebalance end at once.
	clientCtx, abandon := context.WithCancel(context.Background())
	defer abandon()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.WithContext(clientCtx)}, cfg.clientOpts(jt)...)...)
	if err != nil {
		return ConsumeResult{}, fmt.Errorf("create consumer client: %w", err)
	}
	defer cl.Close()
	if err := probe(ctx, cl, cfg.Brokers, cfg.Timeout); err != nil {
		return ConsumeResult{}, fmt.Errorf("consume %s: %w", cfg.Topic, err)
	}

	if !cfg.HideHeader {
		printConsumeHeader(out, cfg.ShowDetailedStats)
	}

	var (
		records, bytes int64
		lat            = newLatencyRecorder(maxLatencySamples)
		lastConsumed   = start
		lastErr        error
		runErr         error

		// Detailed stats state, as in Kafka's consume loop.
		lastReport             = start
		lastRecords, lastBytes int64
		lastJoinTotal          time.Duration
	)
	for cfg.NumRecords == 0 || records < cfg.NumRecords {
		deadline, joining := idleDeadline(cfg, jt, lastConsumed)
		if !time.Now().Before(deadline) {
			runErr = ErrIdleTimeout
			if joining {
				runErr = ErrRebalanceRunning
			}
			break
		}
		pollDeadline := deadline
		if joining {
			// Come back soon to restart the idle clock once assigned.
			pollDeadline = minTime(deadline, time.Now().Add(250*time.Millisecond))
		}
		pollCtx, cancel := context.WithDeadline(ctx, pollDeadline)
		var fetches kgo.Fetches
		if cfg.NumRecords > 0 {
			// Asking for no more than we still need makes the count exact;
			// Kafka's loop overshoots by up to one poll.
			fetches = cl.PollRecords(pollCtx, int(min(cfg.NumRecords-records, 1<<20)))
		} else {
			fetches = cl.PollFetches(pollCtx)
		}
		cancel()
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
		if fetches.IsClientClosed() {
			runErr = kgo.ErrClientClosed
			break
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			// Our own poll deadline shows up as a fetch error; it is not news.
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				lastErr = fmt.Errorf("fetch %s[%d]: %w", topic, partition, err)
			}
		})
		now := time.Now()
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			bytes += int64(len(r.Key) + len(r.Value))
			lat.record(now.Sub(r.Timestamp))
		})
		if n == 0 {
			continue
		}
		records += int64(n)
		lastConsumed = now
		if cfg.ShowDetailedStats && now.Sub(lastReport) >= cfg.ReportInterval {
			joinTotal := time.Duration(jt.total.Load())
			printConsumeProgress(out, lastReport, now, records, lastRecords, bytes, lastBytes, joinTotal-lastJoinTotal)
			lastReport, lastRecords, lastBytes, lastJoinTotal = now, records, bytes, joinTotal
		}
	}

	// Commit what was consumed, so a group run leaves its position (and
	// lag) behind as a real consumer would; kgo's periodic autocommit may
	// not have run in a short run.
	if cfg.Group != "" && records > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := cl.CommitUncommittedOffsets(cctx); err != nil && runErr == nil {
			runErr = fmt.Errorf("commit offsets of group %s: %w", cfg.Group, err)
		}
		cancel()
	}

	// Kafka ends the clock when the loop exits, so a run that stops on the
	// idle timeout counts the idle time as consuming time and understates the
	// rate by up to --timeout. We end it at the last record instead.
	end := time.Now()
	if errors.Is(runErr, ErrIdleTimeout) || errors.Is(runErr, ErrRebalanceRunning) {
		end = lastConsumed
	}
	res := ConsumeResult{
		Records:       records,
		Bytes:         bytes,
		Start:         start,
		End:           end,
		Elapsed:       end.Sub(start),
		RebalanceTime: time.Duration(jt.total.Load()),
		LatencyStats:  lat.stats(),
	}
	res.FetchTime = max(res.Elapsed-res.RebalanceTime, 0)
	res.RecordsPerSec = rate(float64(records), res.Elapsed)
	res.MBPerSec = rate(float64(bytes), res.Elapsed) / mib
	res.FetchRecordsPerSec = rate(float64(records), res.FetchTime)
	res.FetchMBPerSec = rate(float64(bytes), res.FetchTime) / mib

	if (errors.Is(runErr, ErrIdleTimeout) || errors.Is(runErr, ErrRebalanceRunning)) && cfg.NumRecords > 0 {
		fmt.Fprintf(out, "WARNING: Exiting before consuming the expected number of messages: timeout (%d ms) exceeded. "+
			"You can use the --timeout option to increase the timeout.\n", cfg.Timeout.Milliseconds())
	}
	if !cfg.ShowDetailedStats {
		fmt.Fprintf(out, "%s, %s, %.4f, %.4f, %d, %.4f, %d, %d, %.4f, %.4f\n",
			kafkaTime(res.Start), kafkaTime(res.End),
			float64(res.Bytes)/mib, res.MBPerSec, res.Records, res.RecordsPerSec,
			res.RebalanceTime.Milliseconds(), res.FetchTime.Milliseconds(),
			res.FetchMBPerSec, res.FetchRecordsPerSec)
	}
	fmt.Fprintf(out, "%d records, %.2f ms avg end-to-end latency, %.2f ms max end-to-end latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th.\n",
		res.Records, ms(res.Avg), ms(res.Max),
		wholeMs(res.P50), wholeMs(res.P95), wholeMs(res.P99), wholeMs(res.P999))

	switch {
	case errors.Is(runErr, ErrRebalanceRunning):
		abandon() // nothing was assigned, so nothing is left to commit
		return res, fmt.Errorf("consume %s: read %d records: %w: group %s got no partitions within %s "+
			"(a new group's first rebalance waits group.initial.rebalance.delay.ms, and every rebalance waits for all members to rejoin)",
			cfg.Topic, records, runErr, cfg.Group, cfg.JoinTimeout)
	case errors.Is(runErr, ErrIdleTimeout):
		if cfg.NumRecords == 0 && records > 0 {
			// Reading until idle is how an unbounded run is meant to end.
			return res, nil
		}
		err := fmt.Errorf("consume %s: read %d records, wanted %d: %w", cfg.Topic, records, cfg.NumRecords, runErr)
		if cfg.NumRecords == 0 {
			err = fmt.Errorf("consume %s: read no records: %w", cfg.Topic, runErr)
		}
		if cause := idleCause(ctx, cl, cfg); cause != nil {
			err = fmt.Errorf("%w: %w", err, cause)
		}
		if lastErr != nil {
			err = fmt.Errorf("%w (last fetch error: %w)", err, lastErr)
		}
		return res, err
	case runErr != nil:
		return res, fmt.Errorf("consume %s: stopped after %d records: %w", cfg.Topic, records, runErr)
	}
	return res, nil
}

func printConsumeHeader(out io.Writer, detailed bool) {
	const extra = ", rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
	if detailed {
		fmt.Fprintf(out, "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec%s\n", extra)
		return
	}
	fmt.Fprintf(out, "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec%s\n", extra)
}

// printConsumeProgress prints one --show-detailed-stats row: totals so far and
// the interval's rates. threadId is always 0, as in Kafka since its consumer
// became single threaded.
func printConsumeProgress(out io.Writer, from, to time.Time, records, lastRecords, bytes, lastBytes int64, join time.Duration) {
	elapsed := to.Sub(from)
	fetchTime := max(elapsed-join, 0)
	intervalMB := float64(bytes-lastBytes) / mib
	intervalRecords := float64(records - lastRecords)
	fmt.Fprintf(out, "%s, %d, %.4f, %.4f, %d, %.4f, %d, %d, %.4f, %.4f\n",
		kafkaTime(to), 0,
		float64(bytes)/mib, rate(intervalMB, elapsed), records, rate(intervalRecords, elapsed),
		join.Milliseconds(), fetchTime.Milliseconds(),
		rate(intervalMB, fetchTime), rate(intervalRecords, fetchTime))
}

// idleDeadline is when the run gives up waiting: Timeout after the last
// record or the last assignment, whichever is later; while the group has not
// assigned us partitions, JoinTimeout after the rebalance began, because a
// rebalance is not the topic going quiet.
func idleDeadline(cfg ConsumeConfig, jt *joinTimer, lastConsumed time.Time) (deadline time.Time, joining bool) {
	deadline = lastConsumed.Add(cfg.Timeout)
	if cfg.Group == "" {
		return deadline, false
	}
	if js := jt.joinStart.Load(); js != 0 {
		return maxTime(deadline, time.Unix(0, js).Add(cfg.JoinTimeout)), true
	}
	if a := time.Unix(0, jt.assignedAt.Load()); a.After(lastConsumed) {
		deadline = a.Add(cfg.Timeout)
	}
	return deadline, false
}

// idleCause says why a run that read nothing for Timeout may have read
// nothing: the cluster went away, or the topic does not exist. It returns
// nil when it finds neither.
func idleCause(ctx context.Context, cl *kgo.Client, cfg ConsumeConfig) error {
	if err := probe(ctx, cl, cfg.Brokers, 5*time.Second); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tds, err := kadm.NewClient(cl).ListTopics(cctx, cfg.Topic)
	if err != nil {
		return nil
	}
	if td, ok := tds[cfg.Topic]; !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topic %s does not exist", cfg.Topic)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
