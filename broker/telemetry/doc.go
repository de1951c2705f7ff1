// Package telemetry is the broker's metric registry: Yammer-style meters,
// histograms, gauges and timers keyed by JMX ObjectName, with a narrow read
// interface for the exporters.
//
// Names are Kafka's own (Name("kafka.server", "BrokerTopicMetrics",
// "MessagesInPerSec", "topic", t) gives
// kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t). The
// registration order of the key properties is kept for display, because
// jmx_exporter's rules match on it; lookups use the canonical, key-sorted form.
//
// Each kind exposes exactly the JMX attributes of Yammer metrics-core 2.2's
// JmxReporter, the library Kafka uses, with the same math: 1/5/15-minute EWMAs
// ticked every 5 s (alpha = 1-exp(-5/60/N)), a mean rate since creation, and
// biased histograms (exponentially decaying reservoir of 1028, alpha 0.015)
// whose Count/Min/Max/Mean/StdDev cover every value since creation.
//
// Write side: Registry.Meter, Histogram, Timer (get-or-create) and Gauge hand
// out metric objects once; the hot path then calls Meter.Mark (one atomic add)
// or Histogram.Update without touching the registry. Unregister and
// UnregisterMatching remove beans of deleted topics and partitions.
//
// Read side: Reader (Each, Get) returns immutable Snapshots. Each walks a
// copy-on-write list, so exporters never hold a lock the broker needs.
//
// The registry owns its 5 s clock (Start/Stop); tests call Tick with a clock
// injected by WithClock. There is no default registry.
package telemetry
