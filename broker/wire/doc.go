// Package wire owns the Kafka wire protocol of the broker: the listener,
// request framing, header decoding (v0-v2, flexible versions), per-connection
// in-order responses and the ApiVersions answer. Encoding and decoding are
// franz-go's kmsg. The API handlers are not here: they live in package
// broker, one file per API named by key (broker/api_00_produce.go ...), and
// wire reaches them through its Handler interface, knowing nothing of topics.
//
// It also keeps one client from taking the listener or the broker's memory
// (limits.go): the accept loop retries temporary errors ("too many open
// files") with a backoff and reports the listener's health
// (ListenerStats.Serving); Kafka's max.connections, max.connections.per.ip,
// connections.max.idle.ms and queued.max.request.bytes; request bodies
// buffered as their bytes arrive, never from the announced size; read and
// write deadlines for clients that trickle requests or never read responses.
package wire
