// Package broker wires a single kobs broker together: it reads Kafka's own
// server.properties keys into a Config, opens the partition logs under log.dirs,
// and serves the Kafka protocol on the configured listeners. The wire protocol
// lives in broker/wire and the storage in broker/log; this package owns the
// topic and partition state that connects them.
package broker
