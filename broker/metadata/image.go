package metadata

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"sort"
)

// NoLeader is the leader id of a partition without a live leader (offline).
const NoLeader int32 = -1

// TopicID is a Kafka topic UUID.
type TopicID [16]byte

// NewTopicID returns a random, non-zero topic id.
func NewTopicID() TopicID {
	var id TopicID
	for id == (TopicID{}) {
		_, _ = rand.Read(id[:])
	}
	return id
}

// String is Kafka's textual form: URL-safe base64 without padding.
func (id TopicID) String() string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// ParseTopicID parses Kafka's textual form of a topic id.
func ParseTopicID(s string) (TopicID, error) {
	var id TopicID
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("bad topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// Endpoint is one advertised listener of a broker.
type Endpoint struct {
	Listener string // listener name, e.g. PLAINTEXT
	Host     string
	Port     int32
}

// Broker is a registered broker.
type Broker struct {
	ID        int32
	Epoch     int64 // registration epoch: changes on every (re)registration
	Rack      string
	Endpoints []Endpoint
	// Fenced brokers missed heartbeats for broker.session.timeout.ms (or
	// have not sent their first one); they lead nothing and are not in any
	// ISR.
	Fenced bool
}

// Endpoint returns the broker's endpoint on the named listener.
func (b *Broker) Endpoint(listener string) (Endpoint, bool) {
	for _, e := range b.Endpoints {
		if e.Listener == listener {
			return e, true
		}
	}
	return Endpoint{}, false
}

// Partition is one partition's replica assignment and leadership, as the
// controller last decided it.
type Partition struct {
	Leader      int32 // NoLeader when offline
	LeaderEpoch int32 // bumped on every leader change
	// PartitionEpoch is bumped on every change of the partition record
	// (leader, ISR or replicas); an AlterPartition from a leader must name
	// the current one, so a stale request is rejected.
	PartitionEpoch   int32
	Replicas         []int32 // assigned replicas, preferred leader first
	ISR              []int32
	AddingReplicas   []int32 // during a reassignment
	RemovingReplicas []int32 // during a reassignment
}

// Offline reports whether the partition has no leader.
func (p *Partition) Offline() bool { return p.Leader == NoLeader }

// InISR reports whether broker id is in the ISR.
func (p *Partition) InISR(id int32) bool { return slices.Contains(p.ISR, id) }

// HasReplica reports whether broker id is an assigned replica.
func (p *Partition) HasReplica(id int32) bool { return slices.Contains(p.Replicas, id) }

// Topic is a topic and its partitions, indexed by partition number.
type Topic struct {
	Name       string
	ID         TopicID
	Internal   bool
	Configs    map[string]string // overrides only; defaults resolve in the broker config
	Partitions []Partition
}

// Image is one consistent view of the cluster metadata. Never modify an
// Image or anything reachable from it after it has been published.
type Image struct {
	ClusterID string
	// Offset is the metadata log offset (raft index) this image reflects.
	Offset int64
	// ControllerID is the node id of the active controller, -1 if unknown.
	ControllerID int32
	Brokers      map[int32]*Broker
	Topics       map[string]*Topic
	ByID         map[TopicID]*Topic
}

// Empty returns an image with no brokers or topics.
func Empty(clusterID string) *Image {
	return &Image{ClusterID: clusterID, ControllerID: -1, Brokers: map[int32]*Broker{},
		Topics: map[string]*Topic{}, ByID: map[TopicID]*Topic{}}
}

// Topic returns the named topic or nil.
func (im *Image) Topic(name string) *Topic { return im.Topics[name] }

// TopicByID returns the topic with id or nil.
func (im *Image) TopicByID(id TopicID) *Topic { return im.ByID[id] }

// Partition returns a partition or nil if the topic or index is unknown.
func (im *Image) Partition(topic string, idx int32) *Partition {
	t := im.Topics[topic]
	if t == nil || idx < 0 || int(idx) >= len(t.Partitions) {
		return nil
	}
	return &t.Partitions[idx]
}

// TopicNames returns the topic names in order.
func (im *Image) TopicNames() []string {
	names := make([]string, 0, len(im.Topics))
	for n := range im.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BrokerIDs returns the registered broker ids in order.
func (im *Image) BrokerIDs() []int32 {
	ids := make([]int32, 0, len(im.Brokers))
	for id := range im.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Live reports whether broker id is registered and not fenced.
func (im *Image) Live(id int32) bool {
	b := im.Brokers[id]
	return b != nil && !b.Fenced
}
