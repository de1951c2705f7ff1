package telemetry

import "sync/atomic"

// Gauge reports a value computed on demand (Yammer Gauge, attribute Value).
// The function runs on the exporter's goroutine at read time, never on the
// broker's hot path; it must be safe for concurrent use and cheap.
type Gauge struct {
	fn atomic.Pointer[gaugeFunc]
}

// gaugeFunc holds exactly one of the two function kinds.
type gaugeFunc struct {
	i func() int64
	f func() float64
}

// set replaces the function; re-registering a gauge under the same name (a
// partition re-created after deletion) must not keep reading the old object.
func (g *Gauge) set(fn gaugeFunc) { g.fn.Store(&fn) }

// Value evaluates the gauge.
func (g *Gauge) Value() (v Value, ok bool) {
	fn := g.fn.Load()
	if fn == nil {
		return Value{}, false
	}
	// A panicking gauge must not take the exporter (or the broker) down; the
	// MBean is simply skipped for this read.
	defer func() {
		if recover() != nil {
			v, ok = Value{}, false
		}
	}()
	if fn.i != nil {
		return Int64Value(fn.i()), true
	}
	return Float64Value(fn.f()), true
}

func (g *Gauge) snapshot() (Snapshot, bool) {
	v, ok := g.Value()
	if !ok {
		return Snapshot{}, false
	}
	return Snapshot{kind: KindGauge, attrs: []Attribute{{AttrValue, v}}}, true
}

func (g *Gauge) kind() Kind { return KindGauge }
