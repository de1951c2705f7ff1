package tracing

import (
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultShipperListen is the default HTTP address of a standalone
// shipper's /metrics ("kobs trace ship --listen").
const DefaultShipperListen = "127.0.0.1:8790"

// The shipper's Prometheus metrics. Trace clients count their own drops on
// their go-metrics registry (kobs-trace-events-dropped), but that registry
// lives in each application; the drop events they write to the trace topic
// all pass through the shipper, so the shipper is the one place an
// operator can scrape every client's drops from.
var (
	descDropped = prometheus.NewDesc("kobs_trace_events_dropped_total",
		"Trace events traced clients could not write to the trace topic, as reported by their drop events and read by this shipper. "+
			"client is the client's client.id; tier is producer or consumer; reason is buffer_full (the client's trace buffer was full), "+
			"not_started or closed (the trace producer was not running), write_failed (the trace topic refused the write) or other. "+
			"The journeys of these messages say \"trace incomplete\".",
		[]string{"client", "tier", "reason"}, nil)
	descShipped = prometheus.NewDesc("kobs_trace_shipper_events_total",
		"Trace events the shipper handled, by outcome: stored (acknowledged by the store), rejected (refused by the store for good, skipped), "+
			"corrupt (not a trace event, skipped).",
		[]string{"outcome"}, nil)
	descRetries = prometheus.NewDesc("kobs_trace_shipper_retries_total",
		"Store requests (bulk writes, index creation) that failed and were retried; nothing is committed past a failure.", nil, nil)
	descCommits = prometheus.NewDesc("kobs_trace_shipper_commits_total",
		"Offset commits on the trace topic, each after the store acknowledged every event up to it.", nil, nil)
)

// dropLabels are the labels of one kobs_trace_events_dropped_total series.
type dropLabels struct{ client, tier, reason string }

// dropCounts sums the "dropped" field of the drop events the shipper read.
// Every client and tier seen in any event gets its series at 0 for every
// reason: a series born at its first drop holds one sample, and
// increase() over it (the KobsTraceEventsDropped alert) sees nothing.
type dropCounts struct {
	mu   sync.Mutex
	m    map[dropLabels]int64
	seen map[[2]string]bool // client, tier
}

// dropReasons are the values of the reason label (dropReasonLabel).
var dropReasons = []string{"buffer_full", "not_started", "closed", "write_failed", "other"}

// saw starts the series of a client and tier at 0 the first time one of
// its events is read.
func (d *dropCounts) saw(client, tier string) {
	k := [2]string{client, tier}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[k] {
		return
	}
	if d.seen == nil {
		d.seen = map[[2]string]bool{}
	}
	if d.m == nil {
		d.m = map[dropLabels]int64{}
	}
	d.seen[k] = true
	for _, r := range dropReasons {
		d.m[dropLabels{client: client, tier: tier, reason: r}] += 0
	}
}

// add counts a drop event of a client and tier: n events lost for reason
// (the event's "error"). It runs once per event read from the trace topic:
// an event re-read by another shipper after a crash before the commit is
// counted again there (each process's counter starts at zero, which rate()
// and increase() handle as a reset).
func (d *dropCounts) add(client, tier, reason string, n int64) {
	if n <= 0 {
		return
	}
	k := dropLabels{client: client, tier: tier, reason: dropReasonLabel(reason)}
	d.mu.Lock()
	if d.m == nil {
		d.m = map[dropLabels]int64{}
	}
	d.m[k] += n
	d.mu.Unlock()
}

// dropReasonLabel maps a drop event's reason text to a label value from a
// fixed set: the text of a failed write carries the broker's error, which
// would make a new series per message.
func dropReasonLabel(reason string) string {
	switch {
	case reason == reasonBufferFull:
		return "buffer_full"
	case reason == reasonNotStarted:
		return "not_started"
	case reason == reasonClosed:
		return "closed"
	case strings.HasPrefix(reason, reasonWriteFailed):
		return "write_failed"
	}
	return "other"
}

type shipperCollector struct{ s *Shipper }

func (c shipperCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDropped, descShipped, descRetries, descCommits} {
		ch <- d
	}
}

func (c shipperCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	s.drops.mu.Lock()
	for k, v := range s.drops.m {
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(v), k.client, k.tier, k.reason)
	}
	s.drops.mu.Unlock()
	st := s.Stats()
	ch <- prometheus.MustNewConstMetric(descShipped, prometheus.CounterValue, float64(st.Shipped), "stored")
	ch <- prometheus.MustNewConstMetric(descShipped, prometheus.CounterValue, float64(st.Rejected), "rejected")
	ch <- prometheus.MustNewConstMetric(descShipped, prometheus.CounterValue, float64(st.Corrupt), "corrupt")
	ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(st.Retries))
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(st.Committed))
}

// Collector exports the shipper's metrics (kobs_trace_events_dropped_total
// and kobs_trace_shipper_*), for a registry the caller serves.
func (s *Shipper) Collector() prometheus.Collector { return shipperCollector{s} }

// MetricsHandler serves the shipper's metrics in the Prometheus text
// format, on a registry of their own.
func (s *Shipper) MetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
