package exporters

import (
	"net/http"

	"github.com/kobs-dev/kobs/broker/telemetry"
	"github.com/kobs-dev/kobs/exporters/jolokia"
	"github.com/kobs-dev/kobs/exporters/prom"
)

// NewHandler serves a registry on the paths operators' tools expect:
// /jolokia (the Jolokia protocol, for Telegraf jolokia2 and the like) and
// /metrics (Prometheus, jmx_exporter-compatible names, plus Go runtime and
// process metrics). opts configure the Jolokia agent (protocol line, limits).
func NewHandler(r telemetry.Reader, opts ...jolokia.Option) http.Handler {
	mux := http.NewServeMux()
	j := jolokia.NewHandler(r, opts...)
	mux.Handle("/jolokia", j)
	mux.Handle("/jolokia/", j)
	mux.Handle("/metrics", prom.Handler(prom.NewRegistry(r)))
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/" {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("kobs broker telemetry\n/jolokia  Jolokia protocol (read, search, list, version; Jolokia 2 conventions)\n/metrics  Prometheus text format\n"))
	})
	return mux
}
