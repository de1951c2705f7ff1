package jolokia

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

func newTestAgent() *Agent {
	return NewAgent(testRegistry(), WithClock(func() time.Time { return t0 }), WithProtocol(Protocol1))
}

// The direct path: the same answers as over HTTP, as Go values.
func TestAgentReadDirect(t *testing.T) {
	a := newTestAgent()

	r := a.Handle(Request{Type: TypeRead, MBean: "kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t2", Attributes: []string{"Count"}})
	require.Equal(t, 200, r.Status)
	require.Equal(t, int64(20), r.Value)
	require.Equal(t, t0.Unix(), r.Timestamp)
	require.Equal(t, map[string]any{"type": "read", "mbean": meterT2, "attribute": "Count"}, r.Request)

	r = a.Read(Request{Type: TypeRead, MBean: "kafka.server:type=BrokerTopicMetrics,*", Attributes: []string{"MeanRate"}, AttrList: true})
	require.Equal(t, 200, r.Status)
	require.Equal(t, map[string]any{
		meterAll: map[string]any{"MeanRate": javaDouble(3)},
		meterT1:  map[string]any{"MeanRate": javaDouble(1)},
		meterT2:  map[string]any{"MeanRate": javaDouble(2)},
	}, r.Value)
	require.Equal(t, "MeanRate", r.Request["attribute"], "1.x echoes a one-element list as a string")

	r = a.Read(Request{Type: TypeRead, MBean: "kafka.server:type=ReplicaManager,name=Missing", Params: map[string]string{"includeStackTrace": "false"}})
	require.Equal(t, 404, r.Status)
	require.Equal(t, "javax.management.InstanceNotFoundException", r.ErrorType)
	require.False(t, r.HasStack)

	// canonicalNaming=false echoes and keys names in registration order.
	r = a.Read(Request{Type: TypeRead, MBean: "kafka.server:topic=t1,name=MessagesInPerSec,type=BrokerTopicMetrics",
		Attributes: []string{"Count"}, Params: map[string]string{"canonicalNaming": "false"}})
	require.Equal(t, "kafka.server:topic=t1,name=MessagesInPerSec,type=BrokerTopicMetrics", r.Request["mbean"])
	r = a.Read(Request{Type: TypeRead, MBean: "kafka.server:topic=*,*", Attributes: []string{"Count"}, Params: map[string]string{"canonicalNaming": "false"}})
	require.Contains(t, r.Value, "kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t1")
	require.Equal(t, "kafka.server:topic=*,*", r.Request["mbean"], "patterns always echo canonically")

	// A scalar cannot be navigated into.
	r = a.Read(Request{Type: TypeRead, MBean: "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions", Attributes: []string{"Value"}, Path: []string{"x"}})
	require.Equal(t, 400, r.Status)
	require.Equal(t, "x", r.Request["path"])
}

func TestAgentOtherTypesDirect(t *testing.T) {
	a := newTestAgent()
	r := a.Search(Request{Type: TypeSearch, MBean: "kafka.*:*"})
	require.Len(t, r.Value, 6)

	r = a.List(Request{Type: TypeList, Path: []string{"kafka.server"}, Params: map[string]string{"maxDepth": "2"}})
	require.Equal(t, 200, r.Status)
	require.Equal(t, map[string]any{"desc": telemetry.MBeanDescription, "class": "com.yammer.metrics.reporting.JmxReporter$Meter", "attr": 1},
		r.Value.(map[string]any)["name=MessagesInPerSec,topic=t1,type=BrokerTopicMetrics"])

	r = a.List(Request{Type: TypeList, Path: []string{"kafka.nope"}})
	require.Equal(t, 404, r.Status)

	r = a.Handle(Request{Type: "exec", MBean: "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions"})
	require.Equal(t, 500, r.Status)
	require.Equal(t, "java.lang.UnsupportedOperationException", r.ErrorType)

	r = a.Version(Request{Type: TypeVersion})
	require.Equal(t, "1.7.2", r.Value.(map[string]any)["agent"])
	require.Equal(t, "7.2", r.Value.(map[string]any)["protocol"])
}

func TestJavaDoubleFormat(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0.0", 1: "1.0", 3.5: "3.5", 0.001: "0.001", 0.0001: "1.0E-4", 1234567: "1234567.0",
		1e7: "1.0E7", 12345678.9: "1.23456789E7", -2.5e-5: "-2.5E-5", 1e21: "1.0E21",
	} {
		require.Equal(t, want, formatJavaDouble(f), "%v", f)
	}
}

func TestSplitPathEscapes(t *testing.T) {
	require.Equal(t, []string{"read", "a:b=c/d", "Attr"}, splitPath("/read/a:b=c!/d/Attr"))
	require.Equal(t, []string{"read", "a:b=c!", "x"}, splitPath("read/a:b=c!!/x"))
	require.Equal(t, []string{"read", `a:b="q"`}, splitPath(`read//a:b=!"q!"/`))
	require.Equal(t, "a!!b/c!/d", escapePath([]string{"a!b", "c/d"}))
	require.Equal(t, []string{"a,b", "c"}, splitAttributes(`a\,b,c`))

	req, err := parseGET("/read/d:k=v/A,B/x/*", nil)
	require.NoError(t, err)
	require.Equal(t, Request{Type: TypeRead, MBean: "d:k=v", Attributes: []string{"A", "B"}, AttrList: true, Path: []string{"x", "*"}}, req)
	_, err = parseGET("/read", nil)
	require.Error(t, err)
}

// A Reader without the NameLister extension works too (exporters must only
// need Each and Get).
type plainReader struct{ r *telemetry.Registry }

func (p plainReader) Each(fn func(telemetry.ObjectName, telemetry.Snapshot)) { p.r.Each(fn) }
func (p plainReader) Get(n telemetry.ObjectName) (telemetry.Snapshot, bool)  { return p.r.Get(n) }

func TestAgentOverPlainReader(t *testing.T) {
	a := NewAgent(plainReader{testRegistry()}, WithProtocol(Protocol1))
	r := a.Search(Request{Type: TypeSearch, MBean: "kafka.server:type=BrokerTopicMetrics,*"})
	require.Len(t, r.Value, 3)
	r = a.List(Request{Type: TypeList, Params: map[string]string{"maxDepth": "1"}})
	require.Equal(t, map[string]any{"kafka.server": 1, "kafka.network": 1}, r.Value)
}
