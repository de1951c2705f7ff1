package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// CreateTopics: v0-7
//
// Behavior:
//   - Names follow Kafka's rules (INVALID_TOPIC_EXCEPTION), including the
//     '.'/'_' collision check; an existing name is TOPIC_ALREADY_EXISTS; a
//     name given twice in one request is INVALID_REQUEST for both.
//   - NumPartitions/ReplicationFactor -1 take num.partitions and
//     default.replication.factor; a factor above the live broker count (one)
//     is INVALID_REPLICATION_FACTOR; a manual assignment must name only this
//     broker, once per partition, for partitions 0..n-1
//     (INVALID_REPLICA_ASSIGNMENT).
//   - Config overrides are validated against the topic config table
//     (INVALID_CONFIG, with the reason in ErrorMessage).
//   - ValidateOnly checks everything and creates nothing.
//
// Version notes: v1 ValidateOnly and ErrorMessage, v5 returns partitions,
// replication factor and the effective configs, v5 flexible, v7 topic id.
func (b *Broker) handleCreateTopics(r *wire.Request) {
	req := r.Msg.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		if seen[rt.Topic] > 1 {
			st.ErrorCode = kerr.InvalidRequest.Code
			st.ErrorMessage = strp("topic named more than once in the request")
		} else {
			b.createOne(req, rt, &st)
		}
		if st.ErrorCode != 0 && st.ErrorCode != kerr.TopicAlreadyExists.Code { // an existing topic is no news (Kafka logs it at debug)
			b.log.Info("create topic refused", "topic", rt.Topic, "error", kerr.ErrorForCode(st.ErrorCode), "reason", derefOr(st.ErrorMessage, ""))
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}

func derefOr(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}

func (b *Broker) createOne(req *kmsg.CreateTopicsRequest, rt kmsg.CreateTopicsRequestTopic, st *kmsg.CreateTopicsResponseTopic) {
	fail := func(code int16, msg string) {
		st.ErrorCode = code
		st.ErrorMessage = strp(msg)
		st.NumPartitions, st.ReplicationFactor = -1, -1
	}
	if err := validateTopicName(rt.Topic); err != nil {
		fail(kerr.InvalidTopicException.Code, err.Error())
		return
	}
	n, rf := rt.NumPartitions, rt.ReplicationFactor
	if len(rt.ReplicaAssignment) > 0 {
		if n != -1 || rf != -1 {
			fail(kerr.InvalidRequest.Code, "both numPartitions or replicationFactor and replicasAssignments were set; both cannot be used at the same time")
			return
		}
		if err := b.checkAssignment(rt.ReplicaAssignment); err != nil {
			fail(kerr.InvalidReplicaAssignment.Code, err.Error())
			return
		}
		n, rf = int32(len(rt.ReplicaAssignment)), int16(len(rt.ReplicaAssignment[0].Replicas))
	}
	if n == -1 {
		n = b.cfg.NumPartitions
	}
	if rf == -1 {
		rf = b.cfg.DefaultReplicationFactor
	}
	if n <= 0 {
		fail(kerr.InvalidPartitions.Code, "number of partitions must be larger than 0")
		return
	}
	if rf <= 0 {
		fail(kerr.InvalidReplicationFactor.Code, "replication factor must be larger than 0")
		return
	}
	if rf > 1 {
		fail(kerr.InvalidReplicationFactor.Code, fmt.Sprintf("replication factor: %d larger than available brokers: 1", rf))
		return
	}
	configs := map[string]string{}
	for _, c := range rt.Configs {
		if c.Value == nil {
			continue // null means "use the default"
		}
		configs[c.Name] = *c.Value
	}
	if err := validateTopicConfigs(configs); err != nil {
		fail(kerr.InvalidConfig.Code, err.Error())
		return
	}
	b.mu.Lock()
	_, exists := b.topics[rt.Topic]
	collision := b.checkCollision(rt.Topic)
	b.mu.Unlock()
	if exists {
		fail(kerr.TopicAlreadyExists.Code, fmt.Sprintf("Topic '%s' already exists.", rt.Topic))
		return
	}
	if collision != nil {
		fail(kerr.InvalidTopicException.Code, collision.Error())
		return
	}
	var id TopicID
	if !req.ValidateOnly {
		t, err := b.createTopic(rt.Topic, n, configs)
		switch {
		case errors.Is(err, errTopicExists):
			fail(kerr.TopicAlreadyExists.Code, fmt.Sprintf("Topic '%s' already exists.", rt.Topic))
			return
		case errors.Is(err, errInvalidTopic):
			fail(kerr.InvalidTopicException.Code, err.Error())
			return
		case err != nil:
			fail(kerr.KafkaStorageError.Code, err.Error())
			return
		}
		id = t.ID
	}
	st.TopicID = id
	st.NumPartitions, st.ReplicationFactor = n, rf
	for _, rc := range b.cfg.resolveTopicConfigs(configs) {
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name, c.Value, c.Source = rc.def.name, strp(rc.value), int8(rc.source)
		st.Configs = append(st.Configs, c)
	}
}

// checkAssignment accepts only assignments this single broker can host.
func (b *Broker) checkAssignment(as []kmsg.CreateTopicsRequestTopicReplicaAssignment) error {
	seen := map[int32]bool{}
	for _, a := range as {
		if a.Partition < 0 || int(a.Partition) >= len(as) || seen[a.Partition] {
			return fmt.Errorf("partitions must be numbered 0..%d, each once", len(as)-1)
		}
		seen[a.Partition] = true
		if len(a.Replicas) != 1 || a.Replicas[0] != b.cfg.NodeID {
			return fmt.Errorf("partition %d: replicas %v: only broker %d exists", a.Partition, a.Replicas, b.cfg.NodeID)
		}
	}
	return nil
}
