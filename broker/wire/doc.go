// Package wire owns the Kafka wire protocol of the broker: the listener,
// request framing, header decoding (v0-v2, flexible versions), per-connection
// in-order responses and the ApiVersions answer. Encoding and decoding are
// franz-go's kmsg. The API handlers are not here: they live in package
// broker, one file per API named by key (broker/api_00_produce.go ...), and
// wire reaches them through its Handler interface, knowing nothing of topics.
package wire
