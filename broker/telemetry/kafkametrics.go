package telemetry

import (
	"slices"
	"sync/atomic"
)

// KafkaMetrics is an MBean of Kafka's own metrics library, as its
// JmxReporter registers them: kafka.server:type=socket-server-metrics,
// listener=L,networkProcessor=N with attributes connection-count,
// connection-creation-total, ... Unlike a Yammer bean, whose attributes
// are fixed by its kind, each such bean carries the metrics of its group.
// The function runs on the reader's goroutine at read time, like a Gauge's.
type KafkaMetrics struct {
	fn atomic.Pointer[func() []Attribute]
}

// KafkaMetrics registers (or re-points) a Kafka Metrics bean under name; fn
// returns its attributes, in a stable order.
func (r *Registry) KafkaMetrics(name ObjectName, fn func() []Attribute) *KafkaMetrics {
	if fn == nil {
		panic("telemetry: nil KafkaMetrics function")
	}
	m := r.getOrCreate(name, KindKafkaMetrics, func() metric { return &KafkaMetrics{} }).(*KafkaMetrics)
	m.fn.Store(&fn)
	return m
}

func (m *KafkaMetrics) snapshot() (s Snapshot, ok bool) {
	fn := m.fn.Load()
	if fn == nil {
		return Snapshot{}, false
	}
	defer func() {
		if recover() != nil {
			s, ok = Snapshot{}, false
		}
	}()
	return Snapshot{kind: KindKafkaMetrics, attrs: slices.Clone((*fn)())}, true
}

func (m *KafkaMetrics) kind() Kind { return KindKafkaMetrics }

// DescribeSnapshot returns the attributes of s: those of its kind for Yammer
// beans, and for a Kafka Metrics bean (whose attributes vary) one per value,
// typed long, double or java.lang.String after it.
func DescribeSnapshot(s Snapshot) []AttributeInfo {
	if s.Kind() != KindKafkaMetrics {
		return Describe(s.Kind())
	}
	out := make([]AttributeInfo, 0, s.Len())
	for i := range s.Len() {
		a := s.At(i)
		typ := typeString
		switch a.Value.Kind() {
		case ValueInt64:
			typ = typeLong
		case ValueFloat64:
			typ = typeDouble
		}
		out = append(out, info(a.Name, typ))
	}
	return out
}
