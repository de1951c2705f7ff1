// Package promtest runs a real Prometheus server (Debian package
// prometheus) for tests: it scrapes the given targets every second on
// loopback and answers instant queries.
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Binary is where Debian installs Prometheus.
const Binary = "/usr/bin/prometheus"

// Server is a running Prometheus.
type Server struct {
	Addr string
}

// Start runs Prometheus scraping targets (host:port, path /metrics) every
// second, returns once it is ready and stops it when the test ends. The
// test is skipped when the binary is missing, unless
// KOBS_REQUIRE_PROMETHEUS is set (make test sets it after installing the
// package), in which case it fails.
func Start(t testing.TB, targets ...string) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv("KOBS_REQUIRE_PROMETHEUS") != "" {
			t.Fatalf("KOBS_REQUIRE_PROMETHEUS is set but %s is missing: %v", Binary, err)
		}
		t.Skipf("%s not installed", Binary)
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kobs
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, "prometheus", dir, Binary, func(addr string) []string {
		return []string{"--config.file=" + cfgPath,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr,
			"--log.level=warn"}
	})
	return &Server{Addr: addr}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Query returns the first sample of an instant-vector query; an empty
// result is an error.
func (s *Server) Query(ctx context.Context, q string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr+"/api/v1/query?query="+url.QueryEscape(q), nil)
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
	v, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(v, 64)
}
