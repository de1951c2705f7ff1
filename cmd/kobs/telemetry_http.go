package main

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/kobs-dev/kobs/broker"
	"github.com/kobs-dev/kobs/exporters"
	"github.com/kobs-dev/kobs/exporters/jolokia"
)

// telemetryHandler is what a broker serves on kobs.http.listener: the
// exporters over its registry, the Jolokia agent configured by the
// kobs.jolokia.* keys, and GET /v1/health.
func telemetryHandler(b *broker.Broker, cfg *broker.Config) http.Handler {
	proto := jolokia.Protocol2
	if cfg.JolokiaProtocol == 1 {
		proto = jolokia.Protocol1
	}
	mux := http.NewServeMux()
	mux.Handle("/", exporters.NewHandler(b.Registry(),
		jolokia.WithProtocol(proto),
		jolokia.WithLimits(jolokia.Limits{
			MaxDepth:          cfg.JolokiaMaxDepth,
			MaxCollectionSize: cfg.JolokiaMaxCollectionSize,
			MaxObjects:        cfg.JolokiaMaxObjects,
			MaxResponseBytes:  cfg.JolokiaMaxResponseBytes,
		})))
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
		serveHealth(w, b)
	})
	if cfg.PprofEnable {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// serveHealth answers 200 when every Kafka listener accepts connections and
// 503 when one does not (backing off on "too many open files", or stopped),
// with each listener's state: the telemetry endpoint keeps answering while
// the Kafka port cannot, so it has to say so.
func serveHealth(w http.ResponseWriter, b *broker.Broker) {
	ls := b.ListenerHealth()
	status := http.StatusOK
	for _, l := range ls {
		if !l.Serving {
			status = http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"serving": status == http.StatusOK, "listeners": ls})
}
