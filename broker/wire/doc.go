// Package wire owns the Kafka wire protocol of the broker: the listener,
// request framing, header decoding (v0-v2, flexible versions), per-connection
// in-order responses, the ApiVersions table, and one handler file per API,
// named by API key like 00_produce.go. Encoding and decoding are franz-go's kmsg.
package wire
