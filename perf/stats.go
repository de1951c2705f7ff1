package perf

import (
	"math/rand/v2"
	"slices"
	"time"
)

// maxLatencySamples bounds how many latencies we keep for percentiles. Kafka's
// ProducerPerformance keeps up to 500,000 samples for the same reason: a
// long run must not grow memory without bound, and half a million samples
// already pin the 99.9th percentile to within a few hundred records.
const maxLatencySamples = 500_000

// LatencyStats summarises a set of latencies. Avg and Max cover every
// observation; the percentiles come from a uniform sample of at most
// 500,000 of them.
type LatencyStats struct {
	Avg  time.Duration
	Max  time.Duration
	P50  time.Duration
	P95  time.Duration
	P99  time.Duration
	P999 time.Duration
}

// latencyRecorder accumulates latencies. It is not safe for concurrent use;
// callers hold their own lock.
//
// Kafka samples every (numRecords/500000)-th latency, which needs the record
// count up front. The consumer may run until idle with no count, so we use
// reservoir sampling (Vitter's algorithm R) instead: it gives a uniform sample
// of a stream of unknown length with the same memory bound.
type latencyRecorder struct {
	n       int64
	total   time.Duration
	max     time.Duration
	samples []time.Duration
	limit   int
	rng     *rand.Rand
}

func newLatencyRecorder(limit int) *latencyRecorder {
	// A fixed seed keeps runs reproducible; the sample only needs to be
	// uncorrelated with the latencies, not unpredictable.
	return &latencyRecorder{limit: limit, rng: rand.New(rand.NewPCG(1, 2))}
}

func (l *latencyRecorder) record(d time.Duration) {
	if d < 0 {
		// Clock skew between a record's producer and its consumer can make an
		// end-to-end latency negative; zero is the honest floor.
		d = 0
	}
	l.n++
	l.total += d
	l.max = max(l.max, d)
	if len(l.samples) < l.limit {
		l.samples = append(l.samples, d)
		return
	}
	if j := l.rng.Int64N(l.n); j < int64(l.limit) {
		l.samples[j] = d
	}
}

// stats computes the summary. It sorts the sample in place, so call it once
// recording is done.
func (l *latencyRecorder) stats() LatencyStats {
	if l.n == 0 {
		return LatencyStats{}
	}
	slices.Sort(l.samples)
	return LatencyStats{
		Avg:  l.total / time.Duration(l.n),
		Max:  l.max,
		P50:  percentile(l.samples, 0.5),
		P95:  percentile(l.samples, 0.95),
		P99:  percentile(l.samples, 0.99),
		P999: percentile(l.samples, 0.999),
	}
}

// percentile picks from sorted the same element Kafka's Stats.percentiles
// does: index floor(p*len), so our numbers line up with Kafka's for the same
// latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(p*float64(len(sorted))), len(sorted)-1)
	return sorted[i]
}

// ms converts a duration to fractional milliseconds for printing.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// wholeMs truncates a duration to whole milliseconds, as Kafka prints
// percentiles.
func wholeMs(d time.Duration) int64 { return d.Milliseconds() }

// mib is what Kafka's tools call a MB: 1024*1024 bytes.
const mib = 1024 * 1024

// rate returns n per second over elapsed, or 0 when no time passed (Kafka
// would print Infinity or NaN there, which helps nobody).
func rate(n float64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return n / elapsed.Seconds()
}
