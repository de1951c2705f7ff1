package telemetry

import (
	"math"
	"strconv"
)

// Kind is the Yammer metric kind of an MBean.
type Kind uint8

// The kinds kobs registers; their JMX attributes are those of Yammer
// metrics-core 2.2's JmxReporter, which is what Kafka exposes.
const (
	KindGauge Kind = iota + 1
	KindMeter
	KindHistogram
	KindTimer
	// KindKafkaMetrics is a bean of Kafka's own metrics library
	// (org.apache.kafka.common.metrics, e.g. socket-server-metrics): one
	// bean per group and tags, one attribute per metric.
	KindKafkaMetrics
)

// String returns "Gauge", "Meter", "Histogram" or "Timer".
func (k Kind) String() string {
	switch k {
	case KindGauge:
		return "Gauge"
	case KindMeter:
		return "Meter"
	case KindHistogram:
		return "Histogram"
	case KindTimer:
		return "Timer"
	case KindKafkaMetrics:
		return "KafkaMetrics"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// ClassName is the Java class of the MBean Kafka registers for this kind
// (Jolokia list shows it under "class").
func (k Kind) ClassName() string {
	if k == KindKafkaMetrics {
		return "org.apache.kafka.common.metrics.JmxReporter$KafkaMbean"
	}
	return "com.yammer.metrics.reporting.JmxReporter$" + k.String()
}

// ValueKind says which Go type a Value holds.
type ValueKind uint8

// Value kinds: JMX long, double and String (TimeUnit enums are strings too).
const (
	ValueInt64 ValueKind = iota + 1
	ValueFloat64
	ValueString
)

// Value is one attribute value: an int64, a float64 or a string. It is a
// small struct rather than an interface so building snapshots of thousands of
// gauges does not box every number.
type Value struct {
	kind ValueKind
	i    int64
	f    float64
	s    string
}

// Int64Value, Float64Value and StringValue construct Values.
func Int64Value(v int64) Value     { return Value{kind: ValueInt64, i: v} }
func Float64Value(v float64) Value { return Value{kind: ValueFloat64, f: v} }
func StringValue(v string) Value   { return Value{kind: ValueString, s: v} }

// Kind returns the Go type held.
func (v Value) Kind() ValueKind { return v.kind }

// Int64 returns the value as int64 (floats truncated, strings 0).
func (v Value) Int64() int64 {
	switch v.kind {
	case ValueInt64:
		return v.i
	case ValueFloat64:
		return int64(v.f)
	}
	return 0
}

// Float64 returns the value as float64 and whether it is numeric.
func (v Value) Float64() (float64, bool) {
	switch v.kind {
	case ValueInt64:
		return float64(v.i), true
	case ValueFloat64:
		return v.f, true
	}
	return math.NaN(), false
}

// Str returns the string held (empty for numbers).
func (v Value) Str() string { return v.s }

// Any returns the value as int64, float64 or string.
func (v Value) Any() any {
	switch v.kind {
	case ValueInt64:
		return v.i
	case ValueFloat64:
		return v.f
	case ValueString:
		return v.s
	}
	return nil
}

// String formats the value for display (tables, logs).
func (v Value) String() string {
	switch v.kind {
	case ValueInt64:
		return strconv.FormatInt(v.i, 10)
	case ValueFloat64:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	}
	return v.s
}

// Attribute is one named JMX attribute value.
type Attribute struct {
	Name  string
	Value Value
}

// Snapshot is an immutable, point-in-time copy of one metric's attributes in
// the order Yammer's MBean interface declares them. Readers can keep it as
// long as they like; it shares nothing with the live metric.
type Snapshot struct {
	kind  Kind
	attrs []Attribute // never mutated after construction
}

// Kind returns the metric kind.
func (s Snapshot) Kind() Kind { return s.kind }

// Len returns the number of attributes.
func (s Snapshot) Len() int { return len(s.attrs) }

// At returns the i-th attribute.
func (s Snapshot) At(i int) Attribute { return s.attrs[i] }

// Attr returns the named attribute's value.
func (s Snapshot) Attr(name string) (Value, bool) {
	for _, a := range s.attrs {
		if a.Name == name {
			return a.Value, true
		}
	}
	return Value{}, false
}

// Attributes returns a copy of all attributes in order.
func (s Snapshot) Attributes() []Attribute {
	out := make([]Attribute, len(s.attrs))
	copy(out, s.attrs)
	return out
}
