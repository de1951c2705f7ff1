package telemetry

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRegistryGetOrCreate(t *testing.T) {
	r := New()
	n := Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", "t")
	m1 := r.Meter(n, "messages")
	// Same canonical name in another key order is the same MBean.
	m2 := r.Meter(MustParseObjectName("kafka.server:topic=t,name=MessagesInPerSec,type=BrokerTopicMetrics"), "other")
	require.Same(t, m1, m2)
	require.Equal(t, 1, r.Len())
	require.PanicsWithValue(t,
		"telemetry: kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t is registered as a Meter, not a Histogram",
		func() { r.Histogram(n) })
	require.Panics(t, func() { r.Meter(MustParseObjectName("kafka.server:*"), "x") })

	// The display name is the first registration's (Kafka's order).
	var names []string
	r.Each(func(o ObjectName, _ Snapshot) { names = append(names, o.String()) })
	require.Equal(t, []string{n.String()}, names)
}

func TestRegistryEachOrderGetAndUnregister(t *testing.T) {
	r := New()
	for _, topic := range []string{"b", "a", "c"} {
		for p := range 2 {
			ps := fmt.Sprint(p)
			r.Gauge(Name("kafka.log", "Log", "Size", "topic", topic, "partition", ps), func() int64 { return int64(len(topic)) })
			r.Gauge(Name("kafka.log", "Log", "LogEndOffset", "topic", topic, "partition", ps), func() int64 { return 0 })
		}
	}
	r.Meter(Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", "a"), "messages")
	var canon []string
	r.Each(func(o ObjectName, _ Snapshot) { canon = append(canon, o.Canonical()) })
	require.Len(t, canon, 13)
	require.IsIncreasing(t, canon)

	s, ok := r.Get(MustParseObjectName("kafka.log:partition=1,topic=c,name=Size,type=Log"))
	require.True(t, ok)
	require.Equal(t, KindGauge, s.Kind())
	v, _ := s.Attr(AttrValue)
	require.Equal(t, int64(1), v.Int64())

	require.True(t, r.Unregister(Name("kafka.log", "Log", "Size", "topic", "c", "partition", "1")))
	require.False(t, r.Unregister(Name("kafka.log", "Log", "Size", "topic", "c", "partition", "1")))
	_, ok = r.Get(Name("kafka.log", "Log", "Size", "topic", "c", "partition", "1"))
	require.False(t, ok)

	// Deleting topic a: every per-partition Log bean, but not BrokerTopicMetrics.
	require.Equal(t, 4, r.UnregisterMatching(MustParseObjectName("kafka.log:type=Log,name=*,topic=a,partition=*")))
	require.Equal(t, 1, r.UnregisterMatching(MustParseObjectName("kafka.server:topic=a,*")))
	require.Equal(t, 7, r.Len())
	kinds := map[Kind]int{}
	r.EachName(func(_ ObjectName, k Kind) { kinds[k]++ })
	require.Equal(t, map[Kind]int{KindGauge: 7}, kinds)
}

func TestGaugeReplaceFloatAndPanic(t *testing.T) {
	r := New()
	n := Name("kafka.cluster", "Partition", "UnderReplicated", "topic", "t", "partition", "0")
	g1 := r.Gauge(n, func() int64 { return 1 })
	g2 := r.Gauge(n, func() int64 { return 2 })
	require.Same(t, g1, g2)
	s, _ := r.Get(n)
	v, _ := s.Attr(AttrValue)
	require.Equal(t, int64(2), v.Int64(), "re-registration re-points the gauge")

	f := Name("kafka.network", "SocketServer", "NetworkProcessorAvgIdlePercent")
	r.GaugeFloat64(f, func() float64 { return 0.25 })
	s, _ = r.Get(f)
	v, _ = s.Attr(AttrValue)
	require.Equal(t, ValueFloat64, v.Kind())
	require.Equal(t, 0.25, v.Any())

	bad := Name("d", "T", "Panics")
	r.Gauge(bad, func() int64 { panic("boom") })
	_, ok := r.Get(bad)
	require.False(t, ok, "a panicking gauge is skipped, not fatal")
	count := 0
	r.Each(func(ObjectName, Snapshot) { count++ })
	require.Equal(t, 2, count)
}

func TestStartTicksAndStopLeavesNoGoroutine(t *testing.T) {
	r := New()
	r.interval = 10 * time.Millisecond
	m := r.Meter(Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec"), "messages")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx)
	r.Start(ctx) // no-op: a second clock would tick twice as fast
	m.Mark(500)
	require.Eventually(t, func() bool {
		_, m1, _, _ := m.Rates()
		return m1 > 0
	}, 5*time.Second, 5*time.Millisecond)
	r.Stop()
	r.Stop()
	goleak.VerifyNone(t) // Stop waited for the clock goroutine

	// A stopped registry does not tick: rates stay where they were however
	// much is marked, until it is started again.
	_, before, _, _ := m.Rates()
	m.Mark(1_000_000)
	for range 5 {
		r.Tick() // by hand, as a stopped clock would not
	}
	_, ticked, _, _ := m.Rates()
	require.Greater(t, ticked, before, "manual ticks move the rate")
	r.Start(ctx)
	m.Mark(1_000_000)
	require.Eventually(t, func() bool {
		_, m1, _, _ := m.Rates()
		return m1 > ticked
	}, 5*time.Second, 5*time.Millisecond, "restarted after Stop")
	// Stopped by context cancellation too.
	cancel()
	r.Stop()
	goleak.VerifyNone(t)
}

func TestConcurrentWritesAndReads(t *testing.T) {
	r := New()
	const workers = 4
	var wg sync.WaitGroup
	stop := make(chan struct{})
	iterations := make([]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := r.Meter(Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", fmt.Sprint(w)), "messages")
			h := r.Histogram(Name("kafka.network", "RequestMetrics", "TotalTimeMs", "request", fmt.Sprint(w)))
			tm := r.Timer(Name("kafka.log", "LogFlushStats", "LogFlushRateAndTimeMs", "w", fmt.Sprint(w)))
			i := 0
			for ; ; i++ {
				select {
				case <-stop:
					iterations[w] = i
					return
				default:
				}
				m.Mark(1)
				h.Update(int64(i))
				tm.Update(time.Duration(i))
				if i%100 == 0 {
					n := Name("kafka.log", "Log", "Size", "topic", fmt.Sprint(w), "partition", fmt.Sprint(i%7))
					v := int64(i) // a copy: the reader calls the gauge while i moves on
					r.Gauge(n, func() int64 { return v })
					r.Unregister(n)
				}
			}
		}()
	}
	// Readers see every meter's Count only grow, and never a bean of a
	// kind other than the one registered under its name.
	lastCount := map[string]int64{}
	reads := 0
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) || reads < 10 {
		r.Each(func(n ObjectName, s Snapshot) {
			typ, _ := n.Get("type")
			want := map[string]Kind{"BrokerTopicMetrics": KindMeter, "RequestMetrics": KindHistogram,
				"LogFlushStats": KindTimer, "Log": KindGauge}[typ]
			require.Equal(t, want, s.Kind(), n.String())
			if s.Kind() == KindMeter {
				c, _ := s.Attr(AttrCount)
				require.GreaterOrEqual(t, c.Int64(), lastCount[n.Canonical()], "count went back on %s", n)
				lastCount[n.Canonical()] = c.Int64()
			}
		})
		r.Tick()
		reads++
	}
	close(stop)
	wg.Wait()

	// Nothing was lost: every update is counted, and the churned gauges are gone.
	require.Equal(t, 3*workers, r.Len())
	for w := range workers {
		require.Positive(t, iterations[w])
		s, ok := r.Get(Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", fmt.Sprint(w)))
		require.True(t, ok)
		c, _ := s.Attr(AttrCount)
		require.Equal(t, int64(iterations[w]), c.Int64(), "meter %d", w)
		s, _ = r.Get(Name("kafka.network", "RequestMetrics", "TotalTimeMs", "request", fmt.Sprint(w)))
		c, _ = s.Attr(AttrCount)
		require.Equal(t, int64(iterations[w]), c.Int64(), "histogram %d", w)
		s, _ = r.Get(Name("kafka.log", "LogFlushStats", "LogFlushRateAndTimeMs", "w", fmt.Sprint(w)))
		c, _ = s.Attr(AttrCount)
		require.Equal(t, int64(iterations[w]), c.Int64(), "timer %d", w)
		// The histogram's max is the last value written (values only grow).
		mx, _ := s.Attr(AttrMax)
		f, _ := mx.Float64()
		require.InDelta(t, float64(iterations[w]-1)/1e6, f, 1e-9, "timer %d max in ms", w)
	}
}
