package telemetry

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKafkaMetricsBean(t *testing.T) {
	r := New()
	n := Name("kafka.server", "socket-server-metrics", "", "listener", "PLAINTEXT", "networkProcessor", "0")
	require.Equal(t, "kafka.server:type=socket-server-metrics,listener=PLAINTEXT,networkProcessor=0", n.String())
	count := 3.0
	r.KafkaMetrics(n, func() []Attribute {
		return []Attribute{{"connection-count", Float64Value(count)}, {"current-state", StringValue("leader")}}
	})
	s, ok := r.Get(n)
	require.True(t, ok)
	require.Equal(t, KindKafkaMetrics, s.Kind())
	v, _ := s.Attr("connection-count")
	require.Equal(t, 3.0, v.Any())
	count = 5 // read at read time, like a gauge
	s, _ = r.Get(n)
	v, _ = s.Attr("connection-count")
	require.Equal(t, 5.0, v.Any())
	require.Equal(t, []AttributeInfo{
		{Name: "connection-count", Type: "double", Desc: attrDesc},
		{Name: "current-state", Type: "java.lang.String", Desc: attrDesc},
	}, DescribeSnapshot(s))
	require.Equal(t, "org.apache.kafka.common.metrics.JmxReporter$KafkaMbean", KindKafkaMetrics.ClassName())

	// A panicking bean is skipped, not fatal; re-registering re-points it.
	r.KafkaMetrics(n, func() []Attribute { panic("boom") })
	_, ok = r.Get(n)
	require.False(t, ok)
	require.Panics(t, func() { r.Gauge(n, func() int64 { return 1 }) }, "one name, one kind")
}
