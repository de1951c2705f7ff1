// Package prom exposes the telemetry registry to Prometheus with the names the
// jmx_exporter Kafka rules produce.
package prom
