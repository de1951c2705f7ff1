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
package tracing
