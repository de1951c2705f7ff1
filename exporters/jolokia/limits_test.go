package jolokia

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// bigRegistry holds about as many beans as a broker with 500 partitions.
func bigRegistry() *telemetry.Registry {
	r := telemetry.New()
	for p := range 500 {
		ps := fmt.Sprint(p)
		for _, n := range []string{"Size", "LogEndOffset", "LogStartOffset", "NumLogSegments"} {
			r.Gauge(telemetry.Name("kafka.log", "Log", n, "topic", "some-topic-name", "partition", ps), func() int64 { return 12345 })
		}
		r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", "t"+ps), "messages").Mark(3)
	}
	return r
}

func TestBulkOfStarStarReadsRefusedWithinMemoryBound(t *testing.T) {
	const limit = 4 << 20
	h := NewHandler(bigRegistry(), WithLimits(Limits{MaxDepth: 15, MaxResponseBytes: limit}))
	ts := httptest.NewServer(h)
	defer ts.Close()

	var body strings.Builder
	body.WriteString("[")
	for i := range 1000 {
		if i > 0 {
			body.WriteString(",")
		}
		body.WriteString(`{"type":"read","mbean":"*:*"}`)
	}
	body.WriteString("]")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	resp, err := http.Post(ts.URL+"/jolokia", "application/json", strings.NewReader(body.String()))
	require.NoError(t, err)
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("1,000 x *:* (%d request bytes): %d response bytes, %d MiB allocated, %v", body.Len(), len(data), allocated>>20, elapsed)

	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.LessOrEqual(t, len(data), limit+1000*512, "the answer is the limit plus one short error per refused request")
	// Everything the server allocated for the answer, garbage included, stays
	// within a small multiple of the limit (before the limit: 355 MB of
	// response and 3 GB of heap for this request on a small broker). Seen:
	// 103 MiB, and 169 MiB under the race detector, which allocates more.
	require.Less(t, allocated, uint64(64*limit))

	var answers []map[string]any
	require.NoError(t, json.Unmarshal(data, &answers))
	require.Len(t, answers, 1000, "one answer per request, in order")
	ok, refused := 0, 0
	for i, a := range answers {
		switch a["status"] {
		case 200.0:
			require.Zero(t, refused, "answer %d succeeded after a refusal", i)
			ok++
		default:
			refused++
			require.Equal(t, 500.0, a["status"])
			require.Equal(t, true, a[".error"])
			require.Equal(t, "java.lang.IllegalArgumentException", a["error_type"])
			require.Contains(t, a["error"], "Response too large")
			require.Equal(t, map[string]any{"type": "read", "mbean": "*:*"}, a["request"])
		}
	}
	require.Positive(t, ok)
	require.Positive(t, refused)
}

func TestSingleAnswerOverLimitIsAnError(t *testing.T) {
	a := NewAgent(bigRegistry(), WithLimits(Limits{MaxResponseBytes: 64 << 10}))
	h := &Handler{agent: a, prefix: "/jolokia"}
	ts := httptest.NewServer(h)
	defer ts.Close()
	got, ct := do(t, http.MethodGet, ts.URL+"/jolokia/read/*:*", "")
	require.Equal(t, "application/json; charset=utf-8", ct)
	require.Less(t, len(got), 4096)
	var e map[string]any
	require.NoError(t, json.Unmarshal([]byte(got), &e))
	require.Equal(t, 500.0, e["status"])
	require.Contains(t, e["error"], "Response too large")
}

func TestSerializationLimits(t *testing.T) {
	a := NewAgent(testRegistry())
	read := func(params map[string]string) any {
		r := a.Handle(Request{Type: TypeRead, MBean: "kafka.server:type=BrokerTopicMetrics,*", Attributes: []string{"Count"}, AttrList: true, Params: params})
		require.Equal(t, 200, r.Status, r.Error)
		return r.Value
	}
	// maxCollectionSize: two of the three beans.
	v := read(map[string]string{"maxCollectionSize": "2"}).(map[string]any)
	require.Len(t, v, 2)
	// maxObjects: the outer map and one bean map are written, then every
	// value is Jolokia's marker.
	v = read(map[string]string{"maxObjects": "1"}).(map[string]any)
	require.Len(t, v, 3)
	marked := 0
	for _, x := range v {
		if x == objectLimitExceeded {
			marked++
		}
	}
	require.Equal(t, 2, marked, "%v", v)
	// maxDepth 1: the bean maps become their string form.
	v = read(map[string]string{"maxDepth": "1"}).(map[string]any)
	for _, x := range v {
		require.IsType(t, "", x)
		require.Contains(t, x, `"Count":`)
	}
	// The agent-wide limit caps what a request asks for.
	capped := NewAgent(testRegistry(), WithLimits(Limits{MaxCollectionSize: 1}))
	r := capped.Handle(Request{Type: TypeRead, MBean: "kafka.server:type=BrokerTopicMetrics,*", Params: map[string]string{"maxCollectionSize": "100"}})
	require.Len(t, r.Value, 1)
	// A bad value is a clear error.
	r = a.Handle(Request{Type: TypeRead, MBean: "kafka.server:type=BrokerTopicMetrics,*", Params: map[string]string{"maxObjects": "lots"}})
	require.Equal(t, 500, r.Status)
	require.Contains(t, r.Error, `Invalid value "lots" for processing parameter maxObjects`)
}

func TestJolokia2Conventions(t *testing.T) {
	base := servers(t, WithProtocol(Protocol2))["listener"]

	got, ct := do(t, http.MethodGet, base+"/jolokia/version", "")
	require.Equal(t, "application/json; charset=utf-8", ct, "Jolokia 2.1+ default content type")
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(got), &v))
	val := v["value"].(map[string]any)
	require.Equal(t, "2.6.0", val["agent"])
	require.Equal(t, "8.2", val["protocol"])
	require.Equal(t, "kobs", val["id"])
	require.Equal(t, "test", val["details"].(map[string]any)["server_version"])
	require.Contains(t, val, "info")
	require.Contains(t, val, "config")

	_, ct = do(t, http.MethodGet, base+"/jolokia/version?mimeType=text/plain", "")
	require.Equal(t, "text/plain; charset=utf-8", ct)
	resp, err := http.Get(base + "/jolokia/version?mimeType=text/html")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "2.3+ refuses an unknown mimeType")

	// Error fields as ErrorUtil writes them (2.5+): the message alone, a
	// marker, error_type_jmx; no stack trace unless asked.
	got, _ = do(t, http.MethodGet, base+"/jolokia/read/kafka.server:type=Gone,name=X", "")
	requireJSON(t, `{"request":{"type":"read","mbean":"kafka.server:type=Gone,name=X"},".error":true,"status":404,
		"error_type":"javax.management.InstanceNotFoundException","error":"kafka.server:type=Gone,name=X",
		"error_type_jmx":"javax.management.InstanceNotFoundException"}`, got)
	got, _ = do(t, http.MethodGet, base+"/jolokia/read/kafka.server:type=Gone,name=X?includeStackTrace=true&includeRequest=false", "")
	var e map[string]any
	require.NoError(t, json.Unmarshal([]byte(got), &e))
	require.Contains(t, e, "stacktrace")
	require.NotContains(t, e, "request", "includeRequest=false")

	// ignoreErrors: a missing attribute's value is an error object.
	got, _ = do(t, http.MethodPost, base+"/jolokia", `{"type":"read","mbean":"kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions","attribute":["Value","Nope"],"config":{"ignoreErrors":true}}`)
	require.NoError(t, json.Unmarshal([]byte(got), &e))
	require.Equal(t, map[string]any{"Value": 2.0, "Nope": map[string]any{".error": true,
		"error_type": "javax.management.AttributeNotFoundException", "error": "No such attribute: Nope"}}, e["value"])

	// Unparsable requests are refused at the HTTP level (2.3+).
	for _, body := range []string{`{"type":`, `[{"type":"read","mbean":"a:b=c"},{"type":"frobnicate"}]`} {
		resp, err := http.Post(base+"/jolokia", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.True(t, strings.HasPrefix(string(b), "400 (Bad Request)\n\n"), string(b))
	}
}
