// Package exporters groups the HTTP endpoints that expose the broker's
// telemetry registry: exporters/jolokia (JMX over HTTP, the Jolokia protocol)
// and exporters/prom (Prometheus, jmx_exporter-compatible names).
package exporters
