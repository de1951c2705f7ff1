// Package telemetry is the broker's metric registry: Yammer-style meters,
// histograms, gauges and timers keyed by JMX ObjectName, with a narrow read
// interface for the exporters.
package telemetry
