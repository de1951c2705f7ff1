package broker

import (
	"errors"
	"math/rand/v2"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/controller"
	"github.com/kobs-dev/kobs/broker/metadata"
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
//     that is not a valid topic name gets INVALID_TOPIC_EXCEPTION. One
//     request auto-creates at most kobs.max.auto.created.topics.per.request
//     topics; the others get THROTTLING_QUOTA_EXCEEDED (retriable: the
//     client's next request creates the next share), and a topic that
//     would pass kobs.max.partitions.per.broker POLICY_VIOLATION (what
//     Kafka passes on when its create policy refuses an auto-creation).
//     Refusals are logged once per request and counted in ErrorsPerSec.
//   - A request naming more than 200,000 topics (a null list, all topics,
//     is not bounded) is refused from its wire bytes (decode_bounds.go):
//     its first 10,000 topics are answered INVALID_REQUEST and the broker
//     logs why. Kafka has no such bound; decoding 35 million names of a
//     100 MB request took 1.6 GB.
//   - Brokers, leaders, leader epochs, replicas, ISR and the controller come
//     from the current metadata image; replicas on brokers that are not
//     live (fenced or unregistered) are listed as offline (v5+).
//
// Version notes: v1 controller id, internal flag, null = all topics; v2
// cluster id; v4 AllowAutoTopicCreation; v5 offline replicas; v7 leader
// epoch; v8 authorized operations; v9 flexible; v10 topic ids.
func (b *Broker) handleMetadata(r *wire.Request) {
	var req *kmsg.MetadataRequest
	oversized := 0
	switch m := r.Msg.(type) {
	case *oversizedMetadata:
		req, oversized = m.MetadataRequest, m.topics
	default:
		req = m.(*kmsg.MetadataRequest)
	}
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	img := b.pub.Load()

	for _, id := range img.BrokerIDs() {
		mb := img.Brokers[id]
		if mb.Fenced {
			continue // Kafka lists only unfenced brokers
		}
		host, port, ok := b.brokerEndpoint(mb, r.Listener)
		if !ok {
			continue
		}
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID, br.Host, br.Port = id, host, port
		if mb.Rack != "" {
			br.Rack = strp(mb.Rack)
		}
		resp.Brokers = append(resp.Brokers, br)
	}
	resp.ClusterID = strp(b.clusterID)
	resp.ControllerID = clientControllerID(img)

	if oversized > 0 {
		b.log.Warn("metadata request refused: it names too many topics, refused before decoding it whole",
			"topics", oversized, "max", maxMetadataTopics, "answered_invalid_request", len(req.Topics), "bytes", r.Size, "client", r.Header.ClientID)
		for _, rt := range req.Topics {
			st := kmsg.NewMetadataResponseTopic()
			st.Topic, st.TopicID, st.ErrorCode = rt.Topic, rt.TopicID, kerr.InvalidRequest.Code
			resp.Topics = append(resp.Topics, st)
		}
		r.Respond(resp)
		return
	}
	allowCreate := req.Version < 4 || req.AllowAutoTopicCreation
	var names []string
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		names = img.TopicNames()
	} else {
		for _, rt := range req.Topics {
			if rt.Topic != nil {
				names = append(names, *rt.Topic)
				continue
			}
			// v10+ may name a topic by id only.
			t := img.TopicByID(TopicID(rt.TopicID))
			if t == nil {
				st := kmsg.NewMetadataResponseTopic()
				st.TopicID = rt.TopicID
				st.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, st)
				continue
			}
			names = append(names, t.Name)
		}
	}
	ac := &autoCreations{left: b.cfg.MaxAutoCreatedTopicsPerRequest}
	for _, name := range names {
		resp.Topics = append(resp.Topics, b.topicMetadata(img, name, allowCreate && !all, ac))
	}
	if ac.capped > 0 || ac.limited > 0 {
		b.log.Warn("metadata request: auto-creation refused for some topics", "topics", len(names), "created", ac.created,
			"refused_per_request", ac.capped, "kobs.max.auto.created.topics.per.request", b.cfg.MaxAutoCreatedTopicsPerRequest,
			"refused_partition_limit", ac.limited, "kobs.max.partitions.per.broker", b.maxPartitions)
	}
	r.Respond(resp)
}

// autoCreations counts one Metadata request's topic auto-creations
// against kobs.max.auto.created.topics.per.request.
type autoCreations struct {
	left    int // creations this request may still make
	created int
	capped  int // refused: the request made its share (THROTTLING_QUOTA_EXCEEDED)
	limited int // refused: kobs.max.partitions.per.broker (POLICY_VIOLATION)
}

func (b *Broker) topicMetadata(img *metadata.Image, name string, create bool, ac *autoCreations) kmsg.MetadataResponseTopic {
	st := kmsg.NewMetadataResponseTopic()
	st.Topic = strp(name)
	t := img.Topic(name)
	if t == nil {
		if err := validateTopicName(name); err != nil {
			st.ErrorCode = kerr.InvalidTopicException.Code
			return st
		}
		if !create || !b.cfg.AutoCreateTopics {
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
			return st
		}
		if ac.left <= 0 {
			// Retriable: the client asks again and the next request
			// creates the next share, each request bounded.
			ac.capped++
			st.ErrorCode = kerr.ThrottlingQuotaExceeded.Code
			return st
		}
		ac.left--
		cur := b.pub.Load()
		if cur.Topic(name) == nil && b.checkPartitionLimit(cur, int(b.cfg.NumPartitions)*int(b.cfg.DefaultReplicationFactor)) != "" {
			ac.limited++
			st.ErrorCode = kerr.PolicyViolation.Code
			return st
		}
		ctx, cancel := b.adminCtx(0)
		var err error
		if name == offsetsTopic {
			// As Kafka's AutoTopicCreationManager: an internal topic gets
			// its own layout (offsets.topic.num.partitions, compacted),
			// never num.partitions. Burrow asks for it before any group.
			if err = b.ensureOffsetsTopic(); err == nil {
				err = controller.ErrTopicExists
			}
		} else {
			t, err = b.createTopic(ctx, controller.TopicSpec{Name: name, Partitions: b.cfg.NumPartitions, ReplicationFactor: -1})
		}
		cancel()
		switch {
		case errors.Is(err, controller.ErrTopicExists): // created concurrently
			t = b.pub.Load().Topic(name)
		case errors.Is(err, controller.ErrInvalidTopic):
			st.ErrorCode = kerr.InvalidTopicException.Code
			return st
		case err != nil:
			if !errors.Is(err, errOffsetsTopicRF) { // logged by ensureOffsetsTopic
				b.log.Error("auto-create topic failed", "topic", name, "err", err)
			}
			// Kafka answers LEADER_NOT_AVAILABLE while it cannot
			// create (too few brokers, no controller); clients retry.
			st.ErrorCode = kerr.LeaderNotAvailable.Code
			return st
		}
		if t == nil {
			st.ErrorCode = kerr.LeaderNotAvailable.Code
			return st
		}
		ac.created++
		img = b.pub.Load()
	}
	st.TopicID = t.ID
	st.IsInternal = t.Internal
	for i := range t.Partitions {
		mp := &t.Partitions[i]
		sp := kmsg.NewMetadataResponseTopicPartition()
		sp.Partition = int32(i)
		sp.Leader = mp.Leader
		sp.LeaderEpoch = mp.LeaderEpoch
		sp.Replicas = slices.Clone(mp.Replicas)
		sp.ISR = slices.Clone(mp.ISR)
		sp.OfflineReplicas = []int32{}
		for _, id := range mp.Replicas {
			if !img.Live(id) {
				sp.OfflineReplicas = append(sp.OfflineReplicas, id)
			}
		}
		if mp.Offline() {
			sp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		st.Partitions = append(st.Partitions, sp)
	}
	return st
}

// endpointFor returns this broker's advertised host and port of the named
// listener, falling back to the first advertised listener.
func (b *Broker) endpointFor(listener string) (string, int32) {
	for _, l := range b.advertised {
		if l.Name == listener {
			return l.Host, l.Port
		}
	}
	return b.advertised[0].Host, b.advertised[0].Port
}

// brokerEndpoint is a broker's endpoint on the listener a request came in
// on (Kafka answers with the same listener), this broker's own from its
// bound listeners.
func (b *Broker) brokerEndpoint(mb *metadata.Broker, listener string) (string, int32, bool) {
	if mb.ID == b.cfg.NodeID {
		h, p := b.endpointFor(listener)
		return h, p, true
	}
	if e, ok := mb.Endpoint(listener); ok {
		return e.Host, e.Port, true
	}
	return "", 0, false
}

// clientControllerID is the controller id Metadata and DescribeCluster
// report to clients: the active controller when it is a live broker
// (combined process.roles, so admin requests need no forwarding hop),
// otherwise, as KRaft's KRaftMetadataCache.getControllerId, a random live
// broker. Clients cannot reach a dedicated controller (KIP-590): they send
// admin requests to that broker, which forwards them to the quorum.
func clientControllerID(img *metadata.Image) int32 {
	if img.Live(img.ControllerID) {
		return img.ControllerID
	}
	var live []int32
	for id, b := range img.Brokers {
		if !b.Fenced {
			live = append(live, id)
		}
	}
	if len(live) == 0 {
		return -1
	}
	return live[rand.IntN(len(live))]
}
