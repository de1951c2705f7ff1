package broker

import "github.com/kobs-dev/kobs/broker/metadata"

// TopicID is a Kafka topic UUID.
type TopicID = metadata.TopicID
