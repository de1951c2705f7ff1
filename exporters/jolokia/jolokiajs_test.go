package jolokia

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// jolokiaJSDir holds the npm jolokia.js client (installed by
// scripts/install-test-deps.sh with npm ci) and the script that drives it.
const jolokiaJSDir = "testdata/jolokiajs"

// requireJolokiaJS skips when node or jolokia.js is missing, unless
// KOBS_REQUIRE_INTEROP is set (make test), where a missing tool fails.
func requireJolokiaJS(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(jolokiaJSDir, "node_modules", "jolokia.js", "package.json"))
	}
	if err != nil {
		if os.Getenv("KOBS_REQUIRE_INTEROP") != "" {
			t.Fatalf("jolokia.js interop needs node and %s/node_modules (scripts/install-test-deps.sh): %v", jolokiaJSDir, err)
		}
		t.Skipf("node or jolokia.js missing (run scripts/install-test-deps.sh): %v", err)
	}
	return node
}

// TestJolokia2JavaScriptClient runs the Jolokia project's own JavaScript
// client against a kobs agent on a real listener: version, one attribute, a
// search and a pattern read, each over GET and POST. jolokia.js parses a
// response only when its content type is application/json, so this also
// pins the Jolokia 2 default content type.
func TestJolokia2JavaScriptClient(t *testing.T) {
	node := requireJolokiaJS(t)
	h := NewHandler(testRegistry(), WithClock(func() time.Time { return t0 }), WithVersion("test"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/jolokia", h)
	mux.Handle("/jolokia/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	cmd := exec.Command(node, "client.mjs", "http://"+ln.Addr().String()+"/jolokia")
	cmd.Dir = jolokiaJSDir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	type line struct {
		Method, Call string
		OK           bool
		Value        any
		Error        string
	}
	got := map[string]line{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var l line
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		got[l.Method+" "+l.Call] = l
	}
	meters := map[string]any{
		"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec":          map[string]any{"Count": 30.0},
		"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t1": map[string]any{"Count": 10.0},
		"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t2": map[string]any{"Count": 20.0},
	}
	for _, method := range []string{"get", "post"} {
		for _, call := range []string{"version", "attribute", "search", "pattern"} {
			l, ok := got[method+" "+call]
			require.True(t, ok, "no answer for %s %s:\n%s", method, call, out)
			require.True(t, l.OK, "%s %s: %s", method, call, l.Error)
		}
		v := got[method+" version"].Value.(map[string]any)
		require.Equal(t, Agent2Version, v["agent"])
		require.Equal(t, Protocol2Version, v["protocol"])
		require.Equal(t, 2.0, got[method+" attribute"].Value)
		require.ElementsMatch(t, []any{
			"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec",
			"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t1",
			"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t2",
		}, got[method+" search"].Value, "Jolokia 2.5+ names in registration order by default")
		require.Equal(t, meters, got[method+" pattern"].Value)
	}
}
