package broker

import (
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// Metadata: v0-12
//
// Behavior:
//   - Brokers are advertised with the endpoint of the listener the request
//     arrived on, as Kafka does for multi-listener setups.
//   - v0 with no topics, and v1+ with a null topic list, mean all topics.
//   - An unknown topic is created when auto.create.topics.enable is true and
//     the request allows it (always for v0-v3) with num.partitions; a name
//     that is not a valid topic name gets INVALID_TOPIC_EXCEPTION.
//   - This broker leads every partition with leader epoch 0 and is the
//     controller.
//
// Version notes: v1 controller id, internal flag, null = all topics; v2
// cluster id; v4 AllowAutoTopicCreation; v5 offline replicas; v7 leader
// epoch; v8 authorized operations; v9 flexible; v10 topic ids.
func (b *Broker) handleMetadata(r *wire.Request) {
	req := r.Msg.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)

	host, port := b.endpointFor(r.Listener)
	br := kmsg.NewMetadataResponseBroker()
	br.NodeID, br.Host, br.Port = b.cfg.NodeID, host, port
	resp.Brokers = append(resp.Brokers, br)
	resp.ClusterID = strp(b.clusterID)
	resp.ControllerID = b.cfg.NodeID

	allowCreate := req.Version < 4 || req.AllowAutoTopicCreation
	var names []string
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		b.mu.RLock()
		for name := range b.topics {
			names = append(names, name)
		}
		b.mu.RUnlock()
		sort.Strings(names)
	} else {
		for _, rt := range req.Topics {
			if rt.Topic != nil {
				names = append(names, *rt.Topic)
				continue
			}
			// v10+ may name a topic by id only.
			b.mu.RLock()
			t := b.byID[TopicID(rt.TopicID)]
			b.mu.RUnlock()
			if t == nil {
				st := kmsg.NewMetadataResponseTopic()
				st.TopicID = rt.TopicID
				st.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, st)
				continue
			}
			names = append(names, t.name)
		}
	}
	for _, name := range names {
		resp.Topics = append(resp.Topics, b.topicMetadata(name, allowCreate && !all))
	}
	r.Respond(resp)
}

func (b *Broker) topicMetadata(name string, create bool) kmsg.MetadataResponseTopic {
	st := kmsg.NewMetadataResponseTopic()
	st.Topic = strp(name)
	b.mu.RLock()
	t := b.topics[name]
	b.mu.RUnlock()
	if t == nil {
		if err := validateTopicName(name); err != nil {
			st.ErrorCode = kerr.InvalidTopicException.Code
			return st
		}
		if !create || !b.cfg.AutoCreateTopics {
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
			return st
		}
		var err error
		if name == offsetsTopic {
			// As Kafka's AutoTopicCreationManager: an internal topic gets
			// its own layout (offsets.topic.num.partitions, compacted),
			// never num.partitions. Burrow asks for it before any group.
			if err = b.ensureOffsetsTopic(); err == nil {
				err = errTopicExists
			}
		} else {
			t, err = b.createTopic(name, b.cfg.NumPartitions, nil)
		}
		switch {
		case errors.Is(err, errTopicExists): // created concurrently
			b.mu.RLock()
			t = b.topics[name]
			b.mu.RUnlock()
		case errors.Is(err, errInvalidTopic):
			st.ErrorCode = kerr.InvalidTopicException.Code
			return st
		case err != nil:
			b.log.Error("auto-create topic failed", "topic", name, "err", err)
			st.ErrorCode = kerr.KafkaStorageError.Code
			return st
		}
		if t == nil {
			st.ErrorCode = kerr.LeaderNotAvailable.Code
			return st
		}
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	st.TopicID = t.id
	st.IsInternal = t.internal
	for i := range t.partitions {
		sp := kmsg.NewMetadataResponseTopicPartition()
		sp.Partition = int32(i)
		sp.Leader = b.cfg.NodeID
		sp.LeaderEpoch = 0
		sp.Replicas = []int32{b.cfg.NodeID}
		sp.ISR = []int32{b.cfg.NodeID}
		sp.OfflineReplicas = []int32{}
		st.Partitions = append(st.Partitions, sp)
	}
	return st
}

// endpointFor returns the advertised host and port of the named listener,
// falling back to the first advertised listener.
func (b *Broker) endpointFor(listener string) (string, int32) {
	for _, l := range b.advertised {
		if l.Name == listener {
			return l.Host, l.Port
		}
	}
	return b.advertised[0].Host, b.advertised[0].Port
}
