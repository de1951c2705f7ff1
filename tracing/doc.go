// Package tracing holds the producer and consumer interceptors (franz-go hooks)
// that write message-trace events to a trace topic, the shipper that moves them
// to an Elasticsearch-compatible store, and the journey queries.
package tracing
