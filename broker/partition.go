package broker

import "github.com/kobs-dev/kobs/broker/metadata"

// topic is a topic of the local topic store, from which a broker without a
// controller quorum publishes its metadata images. Guarded by Broker.mu;
// request handlers read the published image, never this.
type topic struct {
	name       string
	id         TopicID
	internal   bool
	configs    map[string]string // overrides only
	partitions int32
}

// TopicID is a Kafka topic UUID.
type TopicID = metadata.TopicID
