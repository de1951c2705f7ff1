// Package tracing holds the producer and consumer interceptors (franz-go hooks)
// that write message-trace events to a trace topic, the shipper that moves them
// to an Elasticsearch-compatible store, and the journey queries.
//
// Nothing is lost silently: an event the interceptors cannot write (buffer
// full, trace topic unreachable) is counted and recorded in a drop event
// (drops.go) that is itself shipped, so a journey with missing hops says
// "trace incomplete" and names the client and the time instead of "not
// found". The shipper sums the drop events it reads into the Prometheus
// counter kobs_trace_events_dropped_total{client,tier,reason}
// (shipper_metrics.go), the one place every client's drops can be scraped
// from. FetchRecord (lookup.go) reads a record from Kafka by position, to
// tell a record without trace events from no record at all.
//
// The producer hook writes one produce event per acknowledged batch
// (batch.go): its base offset, record count and the message ids in offset
// order, so the record at base+i has the i-th id, plus per-record latencies
// and whatever else differs between the records (keys, trace ids, sizes,
// record times). One event per record made the trace topic as busy as the
// traced topic's record count; per batch it is a few dozen bytes per record.
// Journeys expand batch events back into per-record events (Event.PerRecord)
// and still read the per-record events of earlier versions. The consumer
// hook likewise writes one consume event per run of consecutive offsets of
// a partition in a poll, with each record's end-to-end latency; failed
// sends, and consume events whose spans go to OpenTelemetry, stay per
// record. Drop counts, Stats and
// MaxBufferedEvents count message hops (a batch event of n records is n), so
// "N dropped" means N messages' hops are missing however they were packed.
// docs/trace-events.md describes the event fields and the cost measured.
//
// The shipper (shipper.go) reads of each event only the fields it routes on
// (eventscan.go: a scan over the bytes that accepts what ParseEvent
// accepts) and sends the bytes as the document, through olivere's
// BulkProcessor with two bulks in flight. It commits a trace-topic offset
// only when the store acknowledged every event of the records before it
// (shipper_commit.go), so a crash or a rebalance re-ships onto the same
// document ids and never skips an event; docs/trace-store.md has its rate.
package tracing
