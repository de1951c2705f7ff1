package main

import (
	"net/http"

	"github.com/kobs-dev/kobs/broker"
	"github.com/kobs-dev/kobs/exporters"
	"github.com/kobs-dev/kobs/exporters/jolokia"
)

// telemetryHandler is what a broker serves on kobs.http.listener: the
// exporters over its registry, the Jolokia agent configured by the
// kobs.jolokia.* keys.
func telemetryHandler(b *broker.Broker, cfg *broker.Config) http.Handler {
	proto := jolokia.Protocol2
	if cfg.JolokiaProtocol == 1 {
		proto = jolokia.Protocol1
	}
	return exporters.NewHandler(b.Registry(),
		jolokia.WithProtocol(proto),
		jolokia.WithLimits(jolokia.Limits{
			MaxDepth:          cfg.JolokiaMaxDepth,
			MaxCollectionSize: cfg.JolokiaMaxCollectionSize,
			MaxObjects:        cfg.JolokiaMaxObjects,
			MaxResponseBytes:  cfg.JolokiaMaxResponseBytes,
		}))
}
