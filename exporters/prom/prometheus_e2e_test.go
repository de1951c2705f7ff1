package prom

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

const prometheusBin = "/usr/bin/prometheus"

// TestRealPrometheusScrapesRate runs the Debian prometheus binary against the
// handler and checks that rate() over the meter's _total counter becomes
// positive: the names, types and exposition format work for a real server.
// Skipped only when the binary is absent and KOBS_REQUIRE_PROMETHEUS is unset.
func TestRealPrometheusScrapesRate(t *testing.T) {
	if _, err := os.Stat(prometheusBin); err != nil {
		if os.Getenv("KOBS_REQUIRE_PROMETHEUS") != "" {
			t.Fatalf("KOBS_REQUIRE_PROMETHEUS is set but %s is missing: %v", prometheusBin, err)
		}
		t.Skipf("%s not installed", prometheusBin)
	}
	if testing.Short() {
		t.Skip("starts a Prometheus server; skipped with -short")
	}

	r := telemetry.New()
	meter := r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", "orders"), "messages")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: Handler(NewRegistry(r)), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	// Keep marking so consecutive scrapes see a growing counter.
	go func() {
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				meter.Mark(10)
			}
		}
	}()

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kobs
    static_configs:
      - targets: ["%s"]
`, ln.Addr().String())
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	promAddr := freeAddr(t)
	cmd := exec.CommandContext(ctx, prometheusBin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn",
	)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})

	query := `rate(kafka_server_brokertopicmetrics_messagesin_total{topic="orders"}[5s])`
	var last string
	for ctx.Err() == nil {
		v, err := instantQuery(ctx, promAddr, query)
		if err == nil && v > 0 {
			t.Logf("%s = %g", query, v)
			// The kobs rate gauges are scraped too.
			g, err := instantQuery(ctx, promAddr, `kafka_server_brokertopicmetrics_messagesin_meanrate{topic="orders"}`)
			require.NoError(t, err)
			require.Greater(t, g, 0.0)
			return
		}
		last = fmt.Sprint(v, err)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("rate never became positive within 40 s; last answer: %s", last)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// instantQuery returns the first sample of an instant vector query.
func instantQuery(ctx context.Context, addr, q string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", body.Error)
	}
	if len(body.Data.Result) == 0 {
		return 0, fmt.Errorf("empty result")
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}
