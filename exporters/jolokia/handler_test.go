package jolokia

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Unix(1_700_000_000, 0)

// testRegistry: three MessagesInPerSec meters (all topics, t1, t2) read 10 s
// after creation, two ReplicaManager-style gauges, and a bean whose quoted
// value contains a slash (for !/ escaping).
func testRegistry() *telemetry.Registry {
	now := t0
	r := telemetry.New(telemetry.WithClock(func() time.Time { return now }))
	r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec"), "messages").Mark(30)
	r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", "t1"), "messages").Mark(10)
	r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", "t2"), "messages").Mark(20)
	r.Gauge(telemetry.Name("kafka.server", "ReplicaManager", "UnderReplicatedPartitions"), func() int64 { return 2 })
	r.GaugeFloat64(telemetry.Name("kafka.network", "SocketServer", "NetworkProcessorAvgIdlePercent"), func() float64 { return 0.5 })
	r.Gauge(telemetry.Name("kafka.server", "Request", "", "user", "a/b"), func() int64 { return 7 })
	now = t0.Add(10 * time.Second)
	return r
}

// servers returns the base URLs of the same handler behind httptest and behind
// a plain http.Server on a real 127.0.0.1:0 listener.
func servers(t *testing.T, opts ...Option) map[string]string {
	t.Helper()
	opts = append([]Option{WithClock(func() time.Time { return t0 }), WithVersion("test"), WithProtocol(Protocol1)}, opts...)
	h := NewHandler(testRegistry(), opts...)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := http.NewServeMux()
	// Mounted the way a broker would: both the bare path and the subtree.
	mux.Handle("/jolokia", h)
	mux.Handle("/jolokia/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return map[string]string{"httptest": ts.URL, "listener": "http://" + ln.Addr().String()}
}

func do(t *testing.T, method, url, body string) (string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "Jolokia answers 200 whenever it produced JSON: %s", b)
	return string(b), resp.Header.Get("Content-Type")
}

// stripTimestamps removes "timestamp" fields after checking they are the
// agent clock in epoch seconds.
func stripTimestamps(t *testing.T, v any) any {
	switch x := v.(type) {
	case map[string]any:
		if ts, ok := x["timestamp"]; ok {
			require.Equal(t, float64(t0.Unix()), ts, "timestamp is epoch seconds")
			delete(x, "timestamp")
		}
		for k, y := range x {
			x[k] = stripTimestamps(t, y)
		}
	case []any:
		for i, y := range x {
			x[i] = stripTimestamps(t, y)
		}
	}
	return v
}

func requireJSON(t *testing.T, want, got string) {
	t.Helper()
	var w, g any
	require.NoError(t, json.Unmarshal([]byte(want), &w), "want is not JSON")
	require.NoError(t, json.Unmarshal([]byte(got), &g), "got is not JSON: %s", got)
	require.Equal(t, stripTimestamps(t, w), stripTimestamps(t, g), "got %s", got)
}

const (
	meterAll = `kafka.server:name=MessagesInPerSec,type=BrokerTopicMetrics`
	meterT1  = `kafka.server:name=MessagesInPerSec,topic=t1,type=BrokerTopicMetrics`
	meterT2  = `kafka.server:name=MessagesInPerSec,topic=t2,type=BrokerTopicMetrics`
)

var versionValue = `{"agent":"1.7.2","protocol":"7.2",
	"config":{"agentId":"kobs","agentType":"kobs","agentContext":"/jolokia","canonicalNaming":"true",
	  "includeStackTrace":"true","maxDepth":"15","maxCollectionSize":"0","maxObjects":"0"},
	"info":{"product":"kobs","vendor":"kobs","version":"test"}}`

func TestGETGolden(t *testing.T) {
	cases := []struct {
		name, path, want string
	}{
		{"version", "/jolokia/version", `{"request":{"type":"version"},"value":` + versionValue + `,"status":200,"timestamp":1700000000}`},
		{"empty path is version", "/jolokia", `{"request":{"type":"version"},"value":` + versionValue + `,"status":200,"timestamp":1700000000}`},
		{"single attribute", "/jolokia/read/kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t1/Count",
			`{"request":{"type":"read","mbean":"` + meterT1 + `","attribute":"Count"},"value":10,"status":200,"timestamp":1700000000}`},
		{"several attributes", "/jolokia/read/kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t1/Count,MeanRate",
			`{"request":{"type":"read","mbean":"` + meterT1 + `","attribute":["Count","MeanRate"]},"value":{"Count":10,"MeanRate":1.0},"status":200,"timestamp":1700000000}`},
		{"no attribute", "/jolokia/read/kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec",
			`{"request":{"type":"read","mbean":"` + meterAll + `"},"value":{"Count":30,"EventType":"messages","RateUnit":"SECONDS",
			 "MeanRate":3.0,"OneMinuteRate":0.0,"FiveMinuteRate":0.0,"FifteenMinuteRate":0.0},"status":200,"timestamp":1700000000}`},
		{"pattern with trailing *", "/jolokia/read/kafka.server:type=BrokerTopicMetrics,*/Count",
			`{"request":{"type":"read","mbean":"kafka.server:type=BrokerTopicMetrics,*","attribute":"Count"},
			  "value":{"` + meterAll + `":{"Count":30},"` + meterT1 + `":{"Count":10},"` + meterT2 + `":{"Count":20}},"status":200,"timestamp":1700000000}`},
		{"pattern without * matches the exact key set", "/jolokia/read/kafka.server:name=*,type=BrokerTopicMetrics/Count",
			`{"request":{"type":"read","mbean":"kafka.server:name=*,type=BrokerTopicMetrics","attribute":"Count"},
			  "value":{"` + meterAll + `":{"Count":30}},"status":200,"timestamp":1700000000}`},
		{"pattern with path wildcard", "/jolokia/read/kafka.server:name=*,topic=*,type=BrokerTopicMetrics/Count/*/Count",
			`{"request":{"type":"read","mbean":"kafka.server:name=*,topic=*,type=BrokerTopicMetrics","attribute":"Count","path":"*/Count"},
			  "value":{"` + meterT1 + `":10,"` + meterT2 + `":20},"status":200,"timestamp":1700000000}`},
		{"escaped slash", `/jolokia/read/kafka.server:type=Request,user=%22a!/b%22/Value`,
			`{"request":{"type":"read","mbean":"kafka.server:type=Request,user=\"a/b\"","attribute":"Value"},"value":7,"status":200,"timestamp":1700000000}`},
		{"p parameter", "/jolokia/?p=/read/kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions/Value",
			`{"request":{"type":"read","mbean":"kafka.server:name=UnderReplicatedPartitions,type=ReplicaManager","attribute":"Value"},"value":2,"status":200,"timestamp":1700000000}`},
		{"unknown mbean", "/jolokia/read/kafka.server:type=Nope,name=X/Count",
			`{"request":{"type":"read","mbean":"kafka.server:name=X,type=Nope","attribute":"Count"},"status":404,
			  "error_type":"javax.management.InstanceNotFoundException","error":"javax.management.InstanceNotFoundException : kafka.server:type=Nope,name=X",
			  "stacktrace":"javax.management.InstanceNotFoundException: kafka.server:type=Nope,name=X\n"}`},
		{"unknown attribute", "/jolokia/read/kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions/Nope?includeStackTrace=false",
			`{"request":{"type":"read","mbean":"kafka.server:name=UnderReplicatedPartitions,type=ReplicaManager","attribute":"Nope"},"status":404,
			  "error_type":"javax.management.AttributeNotFoundException","error":"javax.management.AttributeNotFoundException : No such attribute: Nope"}`},
		{"pattern matching nothing", "/jolokia/read/kafka.server:type=Nope,*?includeStackTrace=false",
			`{"request":{"type":"read","mbean":"kafka.server:type=Nope,*"},"status":404,
			  "error_type":"javax.management.InstanceNotFoundException","error":"javax.management.InstanceNotFoundException : No MBean with pattern kafka.server:type=Nope,* found for reading attributes"}`},
		{"pattern without the attribute", "/jolokia/read/kafka.server:type=ReplicaManager,*/Count?includeStackTrace=false",
			`{"request":{"type":"read","mbean":"kafka.server:type=ReplicaManager,*","attribute":"Count"},"status":400,
			  "error_type":"java.lang.IllegalArgumentException","error":"java.lang.IllegalArgumentException : No matching attributes [Count] found on MBeans [kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions]"}`},
		{"ignoreErrors", "/jolokia/read/kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions/Value,Nope?ignoreErrors=true",
			`{"request":{"type":"read","mbean":"kafka.server:name=UnderReplicatedPartitions,type=ReplicaManager","attribute":["Value","Nope"]},
			  "value":{"Value":2,"Nope":"ERROR: No such attribute: Nope (class javax.management.AttributeNotFoundException)"},"status":200,"timestamp":1700000000}`},
		{"search", "/jolokia/search/kafka.server:type=BrokerTopicMetrics,*",
			// Jolokia's order is a HashSet's; kobs answers in canonical order.
			`{"request":{"type":"search","mbean":"kafka.server:type=BrokerTopicMetrics,*"},"value":["` + meterT1 + `","` + meterT2 + `","` + meterAll + `"],"status":200,"timestamp":1700000000}`},
		{"search, registration order", "/jolokia/search/kafka.server:topic=t1,*?canonicalNaming=false",
			`{"request":{"type":"search","mbean":"kafka.server:topic=t1,*"},"value":["kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t1"],"status":200,"timestamp":1700000000}`},
		{"search without match", "/jolokia/search/nothing:*", `{"request":{"type":"search","mbean":"nothing:*"},"value":[],"status":200,"timestamp":1700000000}`},
		{"list one mbean", "/jolokia/list/kafka.server/name=UnderReplicatedPartitions,type=ReplicaManager",
			`{"request":{"type":"list","path":"kafka.server/name=UnderReplicatedPartitions,type=ReplicaManager"},
			  "value":{"desc":"Information on the management interface of the MBean","class":"com.yammer.metrics.reporting.JmxReporter$Gauge",
			    "attr":{"Value":{"type":"java.lang.Object","desc":"Attribute exposed for management","rw":false}}},"status":200,"timestamp":1700000000}`},
		{"list attribute", "/jolokia/list/kafka.server/name=MessagesInPerSec,topic=t1,type=BrokerTopicMetrics/attr/RateUnit",
			`{"request":{"type":"list","path":"kafka.server/name=MessagesInPerSec,topic=t1,type=BrokerTopicMetrics/attr/RateUnit"},
			  "value":{"type":"java.util.concurrent.TimeUnit","desc":"Attribute exposed for management","rw":false},"status":200,"timestamp":1700000000}`},
		{"list maxDepth 1", "/jolokia/list?maxDepth=1",
			`{"request":{"type":"list"},"value":{"kafka.server":1,"kafka.network":1},"status":200,"timestamp":1700000000}`},
		{"list domain maxDepth 1", "/jolokia/list/kafka.network?maxDepth=1",
			`{"request":{"type":"list","path":"kafka.network"},"value":{"name=NetworkProcessorAvgIdlePercent,type=SocketServer":1},"status":200,"timestamp":1700000000}`},
		{"unknown type", "/jolokia/frobnicate/x?includeStackTrace=false",
			`{"status":400,"error_type":"java.lang.IllegalArgumentException","error":"java.lang.IllegalArgumentException : Invalid request type 'frobnicate'",
			  "stacktrace":"java.lang.IllegalArgumentException: Invalid request type 'frobnicate'\n"}`},
		{"malformed name", "/jolokia/read/nocolon?includeStackTrace=false",
			`{"status":400,"error_type":"java.lang.IllegalArgumentException","error":"java.lang.IllegalArgumentException : Invalid object name. \"nocolon\" has no domain part",
			  "stacktrace":"java.lang.IllegalArgumentException: Invalid object name. \"nocolon\" has no domain part\n"}`},
	}
	for mode, base := range servers(t) {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				got, ct := do(t, http.MethodGet, base+tc.path, "")
				require.Equal(t, "text/plain; charset=utf-8", ct)
				requireJSON(t, tc.want, got)
			})
		}
	}
}

func TestJavaStyleNumbersOnTheWire(t *testing.T) {
	base := servers(t)["httptest"]
	got, _ := do(t, http.MethodGet, base+"/jolokia/read/kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec", "")
	// Doubles keep their ".0" like Java's Double.toString; longs do not.
	require.Contains(t, got, `"MeanRate":3.0`)
	require.Contains(t, got, `"OneMinuteRate":0.0`)
	require.Contains(t, got, `"Count":30,`)
	require.Contains(t, got, `"timestamp":1700000000}`)
	got, ct := do(t, http.MethodGet, base+"/jolokia/read/kafka.network:type=SocketServer,name=NetworkProcessorAvgIdlePercent/Value?mimeType=application/json", "")
	require.Equal(t, "application/json; charset=utf-8", ct)
	require.Contains(t, got, `"value":0.5,`)
	b, err := marshal(map[string]any{"k": "kafka<x>&"})
	require.NoError(t, err)
	require.Equal(t, `{"k":"kafka<x>&"}`, string(b), "json-simple does not HTML-escape")
}

func TestPOST(t *testing.T) {
	bulk := `[
	  {"type":"read","mbean":"kafka.server:name=*,type=BrokerTopicMetrics"},
	  {"type":"read","mbean":"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t2","attribute":["Count"]},
	  {"type":"read","mbean":"kafka.server:type=Gone,name=X","config":{"includeStackTrace":"false"}},
	  {"type":"search","mbean":"kafka.network:*"},
	  {"type":"version"},
	  42
	]`
	wantBulk := `[
	  {"request":{"type":"read","mbean":"kafka.server:name=*,type=BrokerTopicMetrics"},
	   "value":{"` + meterAll + `":{"Count":30,"EventType":"messages","RateUnit":"SECONDS","MeanRate":3.0,"OneMinuteRate":0.0,"FiveMinuteRate":0.0,"FifteenMinuteRate":0.0}},
	   "status":200,"timestamp":1700000000},
	  {"request":{"type":"read","mbean":"` + meterT2 + `","attribute":"Count"},"value":{"Count":20},"status":200,"timestamp":1700000000},
	  {"request":{"type":"read","mbean":"kafka.server:name=X,type=Gone"},"status":404,"error_type":"javax.management.InstanceNotFoundException",
	   "error":"javax.management.InstanceNotFoundException : kafka.server:type=Gone,name=X"},
	  {"request":{"type":"search","mbean":"kafka.network:*"},"value":["kafka.network:name=NetworkProcessorAvgIdlePercent,type=SocketServer"],"status":200,"timestamp":1700000000},
	  {"request":{"type":"version"},"value":` + versionValue + `,"status":200,"timestamp":1700000000},
	  {"status":400,"error_type":"java.lang.IllegalArgumentException","error":"java.lang.IllegalArgumentException : Not a request within the list of requests. Expected map, but found: 42",
	   "stacktrace":"java.lang.IllegalArgumentException: Not a request within the list of requests. Expected map, but found: 42\n"}
	]`
	for mode, base := range servers(t) {
		t.Run(mode, func(t *testing.T) {
			// A one-element attribute array still answers with a map (multi-attribute mode),
			// though the echo shows the single name, as in Jolokia 1.x.
			got, ct := do(t, http.MethodPost, base+"/jolokia", bulk)
			require.Equal(t, "text/plain; charset=utf-8", ct)
			requireJSON(t, wantBulk, got)

			// Path info is ignored for POST.
			got, _ = do(t, http.MethodPost, base+"/jolokia/read",
				`{"type":"read","mbean":"kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions","attribute":"Value"}`)
			requireJSON(t, `{"request":{"type":"read","mbean":"kafka.server:name=UnderReplicatedPartitions,type=ReplicaManager","attribute":"Value"},"value":2,"status":200,"timestamp":1700000000}`, got)

			// Malformed JSON: HTTP 200 with one error object, inner status 400, no request echo.
			got, _ = do(t, http.MethodPost, base+"/jolokia", `[{"type":"read",`)
			var e map[string]any
			require.NoError(t, json.Unmarshal([]byte(got), &e))
			require.Equal(t, float64(400), e["status"])
			require.Equal(t, "java.lang.IllegalArgumentException", e["error_type"])
			require.True(t, strings.HasPrefix(e["error"].(string), "java.lang.IllegalArgumentException : Invalid JSON request"), e["error"])
			require.NotContains(t, e, "request")
			require.NotContains(t, e, "timestamp")

			// Errors outside any request (Jolokia's handleThrowable) always carry
			// the stack trace: there is no request whose includeStackTrace applies.
			got, _ = do(t, http.MethodPost, base+"/jolokia?includeStackTrace=false", `"just a string"`)
			requireJSON(t, `{"status":400,"error_type":"java.lang.IllegalArgumentException","error":"java.lang.IllegalArgumentException : Invalid JSON Request just a string",
			  "stacktrace":"java.lang.IllegalArgumentException: Invalid JSON Request just a string\n"}`, got)
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	base := servers(t)["httptest"]
	req, _ := http.NewRequest(http.MethodDelete, base+"/jolokia", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
