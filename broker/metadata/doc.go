// Package metadata is the cluster metadata a broker serves from: an
// immutable Image (brokers, topics, partitions with their leader, epochs,
// replicas and ISR, and topic config overrides) that is replaced as a whole
// whenever the metadata log advances.
//
// Why immutable: request handlers (Metadata, Produce, Fetch, admin APIs)
// read the current image with one atomic load and never take a lock that the
// controller or the replica manager hold while doing slow work. A writer
// builds the next image from the previous one (copy on write of the changed
// topics only) and publishes it; readers that loaded the old one finish with
// a consistent, if slightly old, view, exactly as a Kafka broker answers from
// its MetadataImage.
//
// The image is produced by broker/controller, which applies the raft
// metadata log; broker/replica and the group coordinator subscribe to it to
// learn which partitions this node leads or follows.
package metadata
