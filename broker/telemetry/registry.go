package telemetry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Reader is the narrow read side the exporters depend on. Snapshots are
// immutable copies; implementations must not hold locks shared with the
// write path while fn runs.
type Reader interface {
	// Each calls fn for every registered metric, in canonical-name order.
	// Metrics registered or removed during the walk may or may not be seen.
	Each(fn func(ObjectName, Snapshot))
	// Get returns the snapshot of the metric whose canonical name equals name's.
	Get(name ObjectName) (Snapshot, bool)
}

// NameLister is an optional extension of Reader for callers that only need
// names and kinds (Jolokia search and list): it skips computing snapshots,
// which for histograms means sorting a 1028-value reservoir each.
type NameLister interface {
	EachName(fn func(ObjectName, Kind))
}

// metric is what the registry stores.
type metric interface {
	kind() Kind
	snapshot() (Snapshot, bool)
}

type ticker interface{ tick() }

type entry struct {
	name ObjectName
	m    metric
}

// Option configures a Registry.
type Option func(*Registry)

// WithClock replaces time.Now for mean rates (tests advance it by hand
// alongside Tick). The histogram reservoir keeps using real time, as
// go-metrics' ExpDecaySample offers no clock hook.
func WithClock(now func() time.Time) Option {
	return func(r *Registry) { r.now = now }
}

// Registry holds the broker's metrics keyed by canonical ObjectName. The write
// side hands out metric objects once (get-or-create); the hot path then only
// touches those objects, never the registry's lock. There is no default
// registry: each broker owns one.
type Registry struct {
	now      func() time.Time
	interval time.Duration // TickInterval; shortened only by this package's tests

	mu     sync.RWMutex
	byName map[string]*entry
	sorted []*entry // canonical order; rebuilt lazily, immutable once built

	tickMu sync.Mutex // serialises Tick (meters' lastTick is not atomic)

	runMu   sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{}
}

var _ Reader = (*Registry)(nil)
var _ NameLister = (*Registry)(nil)

// New returns an empty registry. Call Start to run the 5 s EWMA clock.
func New(opts ...Option) *Registry {
	r := &Registry{now: time.Now, interval: TickInterval, byName: map[string]*entry{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// getOrCreate returns the metric registered under name, creating it with mk
// if absent. A name already used by another kind is a programming error
// (Kafka would fail with a ClassCastException) and panics.
func (r *Registry) getOrCreate(name ObjectName, k Kind, mk func() metric) metric {
	if name.IsZero() || name.IsPattern() {
		panic(fmt.Sprintf("telemetry: cannot register %q: not a concrete ObjectName", name))
	}
	key := name.Canonical()
	r.mu.RLock()
	e := r.byName[key]
	r.mu.RUnlock()
	if e == nil {
		r.mu.Lock()
		if e = r.byName[key]; e == nil {
			e = &entry{name: name, m: mk()}
			r.byName[key] = e
			r.sorted = nil
		}
		r.mu.Unlock()
	}
	if e.m.kind() != k {
		panic(fmt.Sprintf("telemetry: %s is registered as a %s, not a %s", name, e.m.kind(), k))
	}
	return e.m
}

// Meter returns the meter registered under name, creating it with the given
// Yammer event type ("messages", "bytes", "requests", ...) and a rate unit of
// seconds. The event type of an existing meter is not changed.
func (r *Registry) Meter(name ObjectName, eventType string) *Meter {
	return r.MeterWithUnit(name, eventType, time.Second)
}

// MeterWithUnit is Meter with an explicit rate unit. Kafka uses nanoseconds
// for RequestHandlerAvgIdlePercent, marking idle nanoseconds so the rates read
// as an idle fraction.
func (r *Registry) MeterWithUnit(name ObjectName, eventType string, rateUnit time.Duration) *Meter {
	if timeUnitName(rateUnit) == "" {
		panic(fmt.Sprintf("telemetry: rate unit %v is not a java.util.concurrent.TimeUnit", rateUnit))
	}
	return r.getOrCreate(name, KindMeter, func() metric { return newMeter(eventType, rateUnit, r.now) }).(*Meter)
}

// Histogram returns the biased histogram registered under name, creating it.
func (r *Registry) Histogram(name ObjectName) *Histogram {
	return r.getOrCreate(name, KindHistogram, func() metric { return newHistogram() }).(*Histogram)
}

// Timer returns the timer registered under name, creating it (event type
// "calls", rate unit seconds, latency unit milliseconds, as Kafka's).
func (r *Registry) Timer(name ObjectName) *Timer {
	return r.getOrCreate(name, KindTimer, func() metric {
		return &Timer{meter: newMeter("calls", time.Second, r.now), hist: newHistogram()}
	}).(*Timer)
}

// Gauge registers (or re-points) an integer gauge under name. If a gauge is
// already registered there, its function is replaced: a re-created partition
// must not keep reporting the deleted one's state.
func (r *Registry) Gauge(name ObjectName, fn func() int64) *Gauge {
	if fn == nil {
		panic("telemetry: nil gauge function")
	}
	g := r.getOrCreate(name, KindGauge, func() metric { return &Gauge{} }).(*Gauge)
	g.set(gaugeFunc{i: fn})
	return g
}

// GaugeFloat64 is Gauge for floating-point values.
func (r *Registry) GaugeFloat64(name ObjectName, fn func() float64) *Gauge {
	if fn == nil {
		panic("telemetry: nil gauge function")
	}
	g := r.getOrCreate(name, KindGauge, func() metric { return &Gauge{} }).(*Gauge)
	g.set(gaugeFunc{f: fn})
	return g
}

// Unregister removes the metric registered under name and reports whether
// there was one. Holders of the metric object may keep writing to it; it is
// simply no longer exported.
func (r *Registry) Unregister(name ObjectName) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := name.Canonical()
	if _, ok := r.byName[key]; !ok {
		return false
	}
	delete(r.byName, key)
	r.sorted = nil
	return true
}

// UnregisterMatching removes every metric whose name matches pattern (JMX
// rules, see ObjectName.Matches) and returns how many were removed. Used when
// a topic or partition is deleted:
// kafka.log:type=Log,name=*,topic=t,partition=*.
func (r *Registry) UnregisterMatching(pattern ObjectName) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for key, e := range r.byName {
		if pattern.Matches(e.name) {
			delete(r.byName, key)
			n++
		}
	}
	if n > 0 {
		r.sorted = nil
	}
	return n
}

// entries returns the registered entries in canonical order. The returned
// slice is shared and must not be modified; it is replaced, never mutated,
// when the registry changes, so callers iterate it without any lock.
func (r *Registry) entries() []*entry {
	r.mu.RLock()
	s := r.sorted
	r.mu.RUnlock()
	if s != nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sorted == nil {
		s := make([]*entry, 0, len(r.byName))
		for _, e := range r.byName {
			s = append(s, e)
		}
		slices.SortFunc(s, func(a, b *entry) int { return strings.Compare(a.name.canonical, b.name.canonical) })
		r.sorted = s
	}
	return r.sorted
}

// Len returns the number of registered metrics.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byName)
}

// Each implements Reader.
func (r *Registry) Each(fn func(ObjectName, Snapshot)) {
	for _, e := range r.entries() {
		if s, ok := e.m.snapshot(); ok {
			fn(e.name, s)
		}
	}
}

// EachName implements NameLister.
func (r *Registry) EachName(fn func(ObjectName, Kind)) {
	for _, e := range r.entries() {
		fn(e.name, e.m.kind())
	}
}

// Get implements Reader.
func (r *Registry) Get(name ObjectName) (Snapshot, bool) {
	r.mu.RLock()
	e := r.byName[name.Canonical()]
	r.mu.RUnlock()
	if e == nil {
		return Snapshot{}, false
	}
	return e.m.snapshot()
}

// Tick advances every meter's and timer's EWMAs by one 5 s interval. Start
// calls it from its ticker; tests call it directly.
func (r *Registry) Tick() {
	r.tickMu.Lock()
	defer r.tickMu.Unlock()
	for _, e := range r.entries() {
		if t, ok := e.m.(ticker); ok {
			t.tick()
		}
	}
}

// Start runs the EWMA clock (Tick every 5 s) until ctx is done or Stop is
// called. Starting a running registry is a no-op.
func (r *Registry) Start(ctx context.Context) {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if r.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.stopped = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.Tick()
			}
		}
	}(r.stopped)
}

// Stop stops the clock started by Start and waits for its goroutine to exit.
// It is safe to call more than once, or without Start.
func (r *Registry) Stop() {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.stopped
	r.cancel, r.stopped = nil, nil
}
