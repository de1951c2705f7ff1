package telemetry

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a manually advanced clock for mean rates.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func attr(t *testing.T, s Snapshot, name string) float64 {
	t.Helper()
	v, ok := s.Attr(name)
	require.True(t, ok, "attribute %s missing", name)
	f, ok := v.Float64()
	require.True(t, ok, "attribute %s not numeric", name)
	return f
}

func within(t *testing.T, want, got, rel float64, msg string) {
	t.Helper()
	require.InDelta(t, want, got, math.Abs(want)*rel+1e-12, "%s: want %g got %g", msg, want, got)
}

// ewma is an independent implementation of Yammer 2.2's EWMA recurrence.
type ewma struct {
	alpha, rate float64
	init        bool
}

func (e *ewma) tick(events int64) {
	instant := float64(events) / 5.0
	if !e.init {
		e.rate, e.init = instant, true
		return
	}
	e.rate += e.alpha * (instant - e.rate)
}

func TestMeterEWMAFollowsYammerRecurrence(t *testing.T) {
	clk := newFakeClock()
	r := New(WithClock(clk.Now))
	m := r.Meter(Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec"), "messages")

	want := []*ewma{{alpha: 1 - math.Exp(-5.0/60/1)}, {alpha: 1 - math.Exp(-5.0/60/5)}, {alpha: 1 - math.Exp(-5.0/60/15)}}
	attrs := []string{AttrOneMinuteRate, AttrFiveMinuteRate, AttrFifteenMinuteRate}

	// A rate profile that exercises the recurrence: 100/s for 2 min, 400/s
	// for 1 min, idle for 3 min. Marks are spread over each 5 s interval.
	var total int64
	phases := []struct {
		perSec float64
		ticks  int
	}{{100, 24}, {400, 12}, {0, 36}}
	for _, ph := range phases {
		for range ph.ticks {
			events := int64(ph.perSec * 5)
			for i := int64(0); i < events; i++ {
				m.Mark(1)
			}
			total += events
			clk.Advance(TickInterval)
			r.Tick()
			for _, w := range want {
				w.tick(events)
			}
			s, ok := r.Get(Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec"))
			require.True(t, ok)
			for i, a := range attrs {
				within(t, want[i].rate, attr(t, s, a), 0.01, a)
			}
		}
	}
	s, _ := r.Get(Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec"))
	require.Equal(t, total, s.attrs[0].Value.Int64())
	// MeanRate = Count / time since creation (6 minutes of fake time).
	within(t, float64(total)/360, attr(t, s, AttrMeanRate), 1e-9, "MeanRate")
	// Closed form for the 1-minute EWMA: 100 after phase 1 (first tick
	// initialises), 400-300*(1-a)^12 after phase 2, then *(1-a)^36, with
	// (1-a)^12 = e^-1 for a = 1-e^(-1/12).
	within(t, (400-300*math.Exp(-1))*math.Exp(-3), attr(t, s, AttrOneMinuteRate), 1e-9, "closed form")
	require.Less(t, attr(t, s, AttrOneMinuteRate), attr(t, s, AttrFifteenMinuteRate))
}

func TestMeterConvergesToConstantRate(t *testing.T) {
	clk := newFakeClock()
	r := New(WithClock(clk.Now))
	m := r.Meter(Name("kafka.server", "BrokerTopicMetrics", "BytesInPerSec"), "bytes")
	// First tick with no events pins all EWMAs at 0, so convergence is real.
	clk.Advance(TickInterval)
	r.Tick()
	const perSec = 250
	check := func(ticks int, attrName string) {
		for range ticks {
			m.Mark(perSec * 5)
			clk.Advance(TickInterval)
			r.Tick()
		}
		s, _ := r.Get(Name("kafka.server", "BrokerTopicMetrics", "BytesInPerSec"))
		within(t, perSec, attr(t, s, attrName), 0.01, attrName)
	}
	check(12*10, AttrOneMinuteRate)     // 10 minutes: e^-10 residue
	check(12*20, AttrFiveMinuteRate)    // +20 minutes
	check(12*90, AttrFifteenMinuteRate) // +90 minutes
	s, _ := r.Get(Name("kafka.server", "BrokerTopicMetrics", "BytesInPerSec"))
	v, _ := s.Attr(AttrEventType)
	require.Equal(t, "bytes", v.Str())
	v, _ = s.Attr(AttrRateUnit)
	require.Equal(t, "SECONDS", v.Str())
}

func TestMeterRateUnitNanoseconds(t *testing.T) {
	clk := newFakeClock()
	r := New(WithClock(clk.Now))
	// Kafka's RequestHandlerAvgIdlePercent: mark idle ns, rate per ns = idle fraction.
	m := r.MeterWithUnit(Name("kafka.server", "KafkaRequestHandlerPool", "RequestHandlerAvgIdlePercent"), "percent", time.Nanosecond)
	m.Mark(int64(3 * time.Second)) // idle 3 s of 5 s
	clk.Advance(TickInterval)
	r.Tick()
	s, _ := r.Get(Name("kafka.server", "KafkaRequestHandlerPool", "RequestHandlerAvgIdlePercent"))
	within(t, 0.6, attr(t, s, AttrOneMinuteRate), 1e-9, "OneMinuteRate")
	within(t, 0.6, attr(t, s, AttrMeanRate), 1e-9, "MeanRate")
	v, _ := s.Attr(AttrRateUnit)
	require.Equal(t, "NANOSECONDS", v.Str())
	require.Panics(t, func() { r.MeterWithUnit(Name("d", "T", "Odd"), "x", 3*time.Second) })
}

func TestHistogramUniformPercentilesAndExactStats(t *testing.T) {
	r := New()
	h := r.Histogram(Name("kafka.network", "RequestMetrics", "TotalTimeMs", "request", "Produce"))
	rng := rand.New(rand.NewPCG(1, 2))
	var values []int64
	for range 20 {
		for v := int64(1); v <= 1000; v++ {
			values = append(values, v)
		}
	}
	rng.Shuffle(len(values), func(i, j int) { values[i], values[j] = values[j], values[i] })
	for _, v := range values {
		h.Update(v)
	}
	s, ok := r.Get(Name("kafka.network", "RequestMetrics", "TotalTimeMs", "request", "Produce"))
	require.True(t, ok)
	require.Equal(t, KindHistogram, s.Kind())

	// Exact all-time statistics, computed two-pass here.
	var sum float64
	for _, v := range values {
		sum += float64(v)
	}
	mean := sum / float64(len(values))
	var sq float64
	for _, v := range values {
		sq += (float64(v) - mean) * (float64(v) - mean)
	}
	std := math.Sqrt(sq / float64(len(values)-1))
	c, _ := s.Attr(AttrCount)
	require.Equal(t, int64(len(values)), c.Int64())
	require.Equal(t, 1.0, attr(t, s, AttrMin))
	require.Equal(t, 1000.0, attr(t, s, AttrMax))
	within(t, 500.5, attr(t, s, AttrMean), 1e-12, "Mean")
	within(t, std, attr(t, s, AttrStdDev), 1e-9, "StdDev")

	// Percentiles of a 1028-sample reservoir of U(1,1000): the standard error
	// of the q-quantile is 1000*sqrt(q(1-q)/1028); allow about 4.5 sigma.
	for i, q := range quantiles {
		se := 1000 * math.Sqrt(q*(1-q)/ReservoirSize)
		tol := 4.5*se + 2
		require.InDelta(t, q*1000, attr(t, s, percentileAttrs[i]), tol, percentileAttrs[i])
	}
	require.Equal(t, ReservoirSize, len(h.sample.Values()))
}

func TestHistogramAllTimeStatsSurviveEviction(t *testing.T) {
	r := New()
	h := r.Histogram(Name("kafka.log", "LogFlushStats", "X"))
	h.Update(-7) // evicted from the reservoir almost surely, but all-time Min keeps it
	for i := range 50_000 {
		h.Update(int64(500 + i%101))
	}
	h.Update(100_000)
	s, _ := r.Get(Name("kafka.log", "LogFlushStats", "X"))
	require.Equal(t, -7.0, attr(t, s, AttrMin))
	require.Equal(t, 100_000.0, attr(t, s, AttrMax))
	p50 := attr(t, s, Attr50thPercentile)
	require.True(t, p50 >= 500 && p50 <= 600, "p50 %v", p50)

	empty := r.Histogram(Name("kafka.log", "LogFlushStats", "Empty"))
	_ = empty
	s, _ = r.Get(Name("kafka.log", "LogFlushStats", "Empty"))
	for _, a := range s.Attributes() {
		f, _ := a.Value.Float64()
		require.Zero(t, f, a.Name)
	}
}

func TestPercentileInterpolation(t *testing.T) {
	// Yammer Snapshot.getValue on {1,2,3,4}: pos = q*5.
	got := percentiles([]int64{4, 1, 3, 2}, []float64{0.1, 0.5, 0.75, 0.99})
	require.Equal(t, []float64{1, 2.5, 3.75, 4}, got)
}

func TestTimerAttributes(t *testing.T) {
	clk := newFakeClock()
	r := New(WithClock(clk.Now))
	name := Name("kafka.log", "LogFlushStats", "LogFlushRateAndTimeMs")
	tm := r.Timer(name)
	for i := 1; i <= 4; i++ {
		tm.Update(time.Duration(i) * time.Millisecond)
	}
	clk.Advance(2 * time.Second)
	s, _ := r.Get(name)
	require.Equal(t, KindTimer, s.Kind())
	names := make([]string, s.Len())
	for i := range names {
		names[i] = s.At(i).Name
	}
	want := make([]string, 0)
	for _, ai := range Describe(KindTimer) {
		want = append(want, ai.Name)
	}
	require.Equal(t, want, names, "snapshot attributes follow Describe order")
	c, _ := s.Attr(AttrCount)
	require.Equal(t, int64(4), c.Int64())
	require.Equal(t, 1.0, attr(t, s, AttrMin))
	require.Equal(t, 4.0, attr(t, s, AttrMax))
	require.Equal(t, 2.5, attr(t, s, AttrMean))
	require.Equal(t, 2.0, attr(t, s, AttrMeanRate))
	for _, kv := range [][2]string{{AttrLatencyUnit, "MILLISECONDS"}, {AttrRateUnit, "SECONDS"}, {AttrEventType, "calls"}} {
		v, _ := s.Attr(kv[0])
		require.Equal(t, kv[1], v.Str())
	}
}

func TestDescribeMatchesSnapshots(t *testing.T) {
	r := New()
	r.Meter(Name("d", "T", "M"), "events")
	r.Histogram(Name("d", "T", "H"))
	r.Gauge(Name("d", "T", "G"), func() int64 { return 1 })
	r.Each(func(n ObjectName, s Snapshot) {
		info := Describe(s.Kind())
		require.Equal(t, len(info), s.Len(), n.String())
		for i, ai := range info {
			require.Equal(t, ai.Name, s.At(i).Name)
			require.False(t, ai.RW)
			switch ai.Type {
			case typeLong:
				require.Equal(t, ValueInt64, s.At(i).Value.Kind(), ai.Name)
			case typeDouble:
				require.Equal(t, ValueFloat64, s.At(i).Value.Kind(), ai.Name)
			case typeString, typeTimeUnit:
				require.Equal(t, ValueString, s.At(i).Value.Kind(), ai.Name)
			}
		}
	})
	require.Equal(t, "com.yammer.metrics.reporting.JmxReporter$Histogram", KindHistogram.ClassName())
}
