package agent

import (
	"bytes"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// TestMetricsExposition renders a view with awkward names through
// /metrics and reads it back with Prometheus's own parser (and promtool
// when installed): the streamed families are well-formed, escaped, and
// carry the view's values.
func TestMetricsExposition(t *testing.T) {
	a, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Interval: time.Hour})
	require.NoError(t, err)
	defer a.Close()
	s, _, _ := fromMetadata(threeBrokers(1, 2), time.Now())
	s.Topics["orders"].MinISR = 2
	for _, p := range s.Topics["orders"].Partitions {
		p.Start, p.End = 5, 100
	}
	group := "we\"ird\\group\nname"
	s.Groups[group] = &Group{Name: group, State: "Empty", Coordinator: 1, Committed: map[string]map[int32]int64{"orders": {0: 40, 1: 100}}}
	v := a.evaluate(t.Context(), s)
	s.Phases["metadata"] = 250 * time.Millisecond
	a.view.Store(v)
	a.h.up, a.h.lastSuccess = true, s.Time

	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	body := rec.Body.Bytes()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err, "%s", body)
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := fams[name]
		require.NotNil(t, f, "no family %s", name)
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
		t.Fatalf("no %s%v", name, labels)
		return math.NaN()
	}
	require.Equal(t, 60.0, value("kafka_consumergroup_lag", map[string]string{"consumergroup": group, "topic": "orders", "partition": "0"}))
	require.Equal(t, 0.0, value("kafka_consumergroup_lag", map[string]string{"consumergroup": group, "topic": "orders", "partition": "1"}))
	require.Equal(t, -1.0, value("kafka_consumergroup_lag", map[string]string{"consumergroup": group, "topic": "orders", "partition": "2"}))
	require.Equal(t, 60.0, value("kafka_consumergroup_lag_sum", map[string]string{"consumergroup": group, "topic": "orders"}))
	require.Equal(t, 100.0, value("kafka_topic_partition_current_offset", map[string]string{"topic": "orders", "partition": "1"}))
	require.Equal(t, 5.0, value("kafka_topic_partition_oldest_offset", map[string]string{"topic": "orders", "partition": "1"}))
	require.Equal(t, 1.0, value("kafka_topic_partition_under_replicated_partition", map[string]string{"topic": "orders", "partition": "1"}))
	require.Equal(t, 0.0, value("kafka_topic_partition_under_replicated_partition", map[string]string{"topic": "orders", "partition": "0"}))
	require.Equal(t, 1.0, value("kobs_partition_at_min_isr", map[string]string{"topic": "orders", "partition": "1"}))
	require.Equal(t, 1.0, value("kobs_partition_offline", map[string]string{"topic": "logs", "partition": "0"}))
	require.Equal(t, 1.0, value("kobs_partition_isr_missing", map[string]string{"topic": "orders", "partition": "2", "broker": "2"}))
	require.Equal(t, 2.0, value("kafka_brokers", nil))
	require.Equal(t, 1.0, value("kobs_agent_up", nil))
	require.Equal(t, 0.25, value("kobs_agent_cycle_phase_seconds", map[string]string{"phase": "metadata"}))
	require.NotContains(t, string(body), `kobs_partition_offline{topic="orders",partition="0"}`, "healthy partitions have no kobs_partition_* series")

	if _, err := os.Stat("/usr/bin/promtool"); err == nil {
		cmd := exec.Command("/usr/bin/promtool", "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		// promtool exits 3 for lint warnings (kafka_exporter's names are
		// not ours to change), 1 for a malformed exposition.
		if err != nil {
			require.NotContains(t, string(out), "error while linting", "%s", out)
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			require.NotEqual(t, 1, ee.ExitCode(), "%s", out)
		}
	}

	// gzip when asked, as Prometheus asks.
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec = httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	require.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
	require.True(t, strings.HasPrefix(rec.Body.String(), "\x1f\x8b"))
	_, _ = io.Copy(io.Discard, rec.Body)

	// Stale: only the agent's own series.
	a.h.up = false
	rec = httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Contains(t, rec.Body.String(), "kobs_agent_up 0")
	require.NotContains(t, rec.Body.String(), "kafka_")
}
