package prom

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/broker/telemetry"
	"github.com/kobs-dev/kobs/internal/promtest"
)

// TestRealPrometheusScrapesRate runs the Debian prometheus binary against the
// handler and checks that rate() over the meter's _total counter becomes
// positive: the names, types and exposition format work for a real server.
// Skipped only when the binary is absent and KOBS_REQUIRE_PROMETHEUS is unset
// (see promtest.Start).
func TestRealPrometheusScrapesRate(t *testing.T) {
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
	prom := promtest.Start(t, ln.Addr().String())

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

	query := `rate(kafka_server_brokertopicmetrics_messagesin_total{topic="orders"}[5s])`
	var last string
	for ctx.Err() == nil {
		v, err := prom.Query(ctx, query)
		if err == nil && v > 0 {
			t.Logf("%s = %g", query, v)
			// The kobs rate gauges are scraped too.
			g, err := prom.Query(ctx, `kafka_server_brokertopicmetrics_messagesin_meanrate{topic="orders"}`)
			require.NoError(t, err)
			require.Greater(t, g, 0.0)
			return
		}
		last = fmt.Sprint(v, err)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("rate never became positive within 40 s; last answer: %s", last)
}
