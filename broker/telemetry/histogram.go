package telemetry

import (
	"math"
	"slices"
	"sync"
	"time"

	metrics "github.com/rcrowley/go-metrics"
)

// Kafka's histograms are "biased": an exponentially decaying reservoir of
// 1028 samples with alpha 0.015 (Yammer 2.2 ExponentiallyDecayingSample).
const (
	ReservoirSize  = 1028
	ReservoirAlpha = 0.015
)

// quantiles are Yammer's JMX percentiles, in attribute order.
var quantiles = []float64{0.5, 0.75, 0.95, 0.98, 0.99, 0.999}

var percentileAttrs = [...]string{
	Attr50thPercentile, Attr75thPercentile, Attr95thPercentile,
	Attr98thPercentile, Attr99thPercentile, Attr999thPercentile,
}

// Histogram records a distribution like a Yammer 2.2 biased Histogram.
// Percentiles come from go-metrics' ExpDecaySample (same reservoir, priority
// and hourly rescale as Yammer). Count, Min, Max, Mean and StdDev cover every
// value since creation, as Yammer's do, so they are kept here rather than
// taken from the sample (go-metrics computes them from the reservoir only).
type Histogram struct {
	mu     sync.Mutex // guards the all-time stats; also keeps sample's own lock uncontended
	count  int64
	min    int64
	max    int64
	sum    float64
	mean   float64 // Welford running mean
	m2     float64 // Welford sum of squared deviations
	sample metrics.Sample
}

func newHistogram() *Histogram {
	return &Histogram{sample: metrics.NewExpDecaySample(ReservoirSize, ReservoirAlpha)}
}

// Update records one value.
func (h *Histogram) Update(v int64) {
	h.mu.Lock()
	h.count++
	if h.count == 1 {
		h.min, h.max = v, v
		h.mean, h.m2 = float64(v), 0
	} else {
		h.min = min(h.min, v)
		h.max = max(h.max, v)
		// Yammer 2.2 Histogram.updateVariance (Welford).
		old := h.mean
		h.mean = old + (float64(v)-old)/float64(h.count)
		h.m2 += (float64(v) - old) * (float64(v) - h.mean)
	}
	h.sum += float64(v)
	h.sample.Update(v)
	h.mu.Unlock()
}

// histStats is a consistent copy of the all-time statistics.
type histStats struct {
	count          int64
	min, max, mean float64
	stddev         float64
}

func (h *Histogram) stats() histStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count == 0 {
		return histStats{}
	}
	s := histStats{count: h.count, min: float64(h.min), max: float64(h.max), mean: h.sum / float64(h.count)}
	if h.count > 1 {
		s.stddev = math.Sqrt(h.m2 / float64(h.count-1))
	}
	return s
}

// Count returns the number of values recorded since creation.
func (h *Histogram) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// Percentiles returns the reservoir's percentiles for qs (0 < q < 1), with
// Yammer's interpolation (pos = q*(n+1)). An empty reservoir yields zeros.
func (h *Histogram) Percentiles(qs []float64) []float64 {
	// Values copies the reservoir under its own lock; sorting happens on
	// the copy, so writers are only held up for the copy.
	return percentiles(h.sample.Values(), qs)
}

func percentiles(values []int64, qs []float64) []float64 {
	out := make([]float64, len(qs))
	n := len(values)
	if n == 0 {
		return out
	}
	slices.Sort(values)
	for i, q := range qs {
		pos := q * float64(n+1)
		switch {
		case pos < 1:
			out[i] = float64(values[0])
		case pos >= float64(n):
			out[i] = float64(values[n-1])
		default:
			lower := float64(values[int(pos)-1])
			upper := float64(values[int(pos)])
			out[i] = lower + (pos-math.Floor(pos))*(upper-lower)
		}
	}
	return out
}

// appendAttrs appends Min..999thPercentile (not Count) scaled by 1/scale.
func (h *Histogram) appendAttrs(attrs []Attribute, st histStats, scale float64) []Attribute {
	attrs = append(attrs,
		Attribute{AttrMin, Float64Value(st.min / scale)},
		Attribute{AttrMax, Float64Value(st.max / scale)},
		Attribute{AttrMean, Float64Value(st.mean / scale)},
		Attribute{AttrStdDev, Float64Value(st.stddev / scale)},
	)
	for i, p := range h.Percentiles(quantiles) {
		attrs = append(attrs, Attribute{percentileAttrs[i], Float64Value(p / scale)})
	}
	return attrs
}

func (h *Histogram) snapshot() (Snapshot, bool) {
	st := h.stats()
	attrs := make([]Attribute, 0, len(histogramInfo))
	attrs = append(attrs, Attribute{AttrCount, Int64Value(st.count)})
	return Snapshot{kind: KindHistogram, attrs: h.appendAttrs(attrs, st, 1)}, true
}

func (h *Histogram) kind() Kind { return KindHistogram }

// Timer is a Yammer 2.2 Timer: a meter of calls plus a histogram of their
// durations. Durations are stored in nanoseconds and reported in
// milliseconds (Kafka's LatencyUnit); EventType is "calls".
type Timer struct {
	meter *Meter
	hist  *Histogram
}

// Update records one call that took d.
func (t *Timer) Update(d time.Duration) {
	t.hist.Update(int64(d))
	t.meter.Mark(1)
}

// UpdateSince records one call that started at start (time.Since(start)).
func (t *Timer) UpdateSince(start time.Time) { t.Update(time.Since(start)) }

// Time runs f and records its duration.
func (t *Timer) Time(f func()) {
	start := time.Now()
	defer t.UpdateSince(start)
	f()
}

// Count returns the number of calls recorded.
func (t *Timer) Count() int64 { return t.hist.Count() }

func (t *Timer) tick() { t.meter.tick() }

func (t *Timer) snapshot() (Snapshot, bool) {
	st := t.hist.stats()
	attrs := make([]Attribute, 0, len(timerInfo))
	attrs = t.meter.appendAttrs(attrs)
	// Yammer's TimerMBean.getCount is the histogram's count.
	attrs[0].Value = Int64Value(st.count)
	attrs = t.hist.appendAttrs(attrs, st, float64(time.Millisecond))
	attrs = append(attrs, Attribute{AttrLatencyUnit, StringValue("MILLISECONDS")})
	return Snapshot{kind: KindTimer, attrs: attrs}, true
}

func (t *Timer) kind() Kind { return KindTimer }
