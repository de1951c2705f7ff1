package prom

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// go test -run x -bench Scrape -benchmem -count 6 ./exporters/prom | tee new.txt; benchstat old.txt new.txt

// BenchmarkScrape1000Partitions renders a full /metrics (kobs collector plus
// Go and process collectors) for 100 topics x 10 partitions: the Log and
// Partition gauges of every partition and the BrokerTopicMetrics meters of
// every topic, plus request histograms.
func BenchmarkScrape1000Partitions(b *testing.B) {
	r := telemetry.New()
	var v int64
	gauge := func() int64 { v++; return v }
	for topic := range 100 {
		tn := fmt.Sprintf("topic-%03d", topic)
		for _, m := range []string{"MessagesInPerSec", "BytesInPerSec", "BytesOutPerSec", "BytesRejectedPerSec",
			"TotalProduceRequestsPerSec", "TotalFetchRequestsPerSec", "FailedProduceRequestsPerSec", "FailedFetchRequestsPerSec"} {
			r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", m, "topic", tn), "events").Mark(int64(topic))
		}
		for p := range 10 {
			ps := fmt.Sprint(p)
			for _, g := range []string{"LogEndOffset", "LogStartOffset", "Size", "NumLogSegments"} {
				r.Gauge(telemetry.Name("kafka.log", "Log", g, "topic", tn, "partition", ps), gauge)
			}
			for _, g := range []string{"UnderReplicated", "UnderMinIsr", "InSyncReplicasCount", "ReplicasCount"} {
				r.Gauge(telemetry.Name("kafka.cluster", "Partition", g, "topic", tn, "partition", ps), gauge)
			}
		}
	}
	for _, req := range []string{"Produce", "FetchConsumer", "FetchFollower", "Metadata"} {
		for _, h := range []string{"TotalTimeMs", "RequestQueueTimeMs", "LocalTimeMs", "RemoteTimeMs", "ResponseQueueTimeMs", "ResponseSendTimeMs"} {
			hist := r.Histogram(telemetry.Name("kafka.network", "RequestMetrics", h, "request", req))
			for i := range 2000 {
				hist.Update(int64(i % 97))
			}
		}
	}
	r.Tick()
	scrape := func(b *testing.B, h http.Handler) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		return w.Body.Len()
	}
	// state=warm is the steady state (rule results cached per MBean);
	// state=cold is the first scrape after start, which runs the rules.
	b.Run("state=warm", func(b *testing.B) {
		h := Handler(NewRegistry(r))
		scrape(b, h)
		var n int
		b.ReportAllocs()
		for b.Loop() {
			n = scrape(b, h)
		}
		b.ReportMetric(float64(n), "B/scrape")
		b.ReportMetric(float64(r.Len()), "mbeans")
	})
	b.Run("state=cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			scrape(b, Handler(NewRegistry(r)))
		}
	})
}
