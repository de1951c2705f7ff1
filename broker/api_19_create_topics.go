package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/controller"
	"github.com/kobs-dev/kobs/broker/wire"
)

// CreateTopics: v0-7
//
// Behavior:
//   - Names follow Kafka's rules (INVALID_TOPIC_EXCEPTION), including the
//     '.'/'_' collision check; an existing name is TOPIC_ALREADY_EXISTS; a
//     name given twice in one request is INVALID_REQUEST for both.
//   - NumPartitions/ReplicationFactor -1 take num.partitions and
//     default.replication.factor; a factor above the live broker count is
//     INVALID_REPLICATION_FACTOR; a manual assignment must list partitions
//     0..n-1 once each with the same number of distinct replicas, on
//     registered brokers (INVALID_REPLICA_ASSIGNMENT).
//   - The topic is created by the controller quorum (reached from any
//     broker), which places replicas round-robin from a random start and
//     elects leaders; the answer goes out once this broker's metadata has
//     the topic. If this broker then cannot open one of its replicas
//     (file descriptors, a broken disk) the topic is deleted again and the
//     answer is KAFKA_STORAGE_ERROR naming the partitions and the cause
//     (admin.go rollBackUnopened); a half-made directory is removed.
//   - Config overrides are validated against the topic config table
//     (INVALID_CONFIG, with the reason in ErrorMessage).
//   - Limits (broker/limits.go): a request adding more than 10,000 topics
//     plus partitions is refused as a whole with POLICY_VIOLATION, as
//     Kafka's controller refuses an operation of more than 10,000 records;
//     a topic whose replicas would pass kobs.max.partitions.per.broker on
//     the live brokers gets POLICY_VIOLATION naming the limit. A request
//     of more than 10,000 topics, assignments and configs is refused from
//     its wire bytes (decode_bounds.go): only its first 10,000 topic names
//     are decoded, and answered.
//   - ValidateOnly checks everything and creates nothing.
//
// Version notes: v1 ValidateOnly and ErrorMessage, v5 returns partitions,
// replication factor and the effective configs, v5 flexible, v7 topic id.
func (b *Broker) handleCreateTopics(r *wire.Request) {
	if o, ok := r.Msg.(*oversizedCreateTopics); ok {
		b.refuseOversizedCreateTopics(r, o)
		return
	}
	req := r.Msg.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	tooLarge := b.createTopicsTooLarge(req)
	if tooLarge != "" {
		b.log.Warn("create topics refused: request too large", "topics", len(req.Topics), "reason", tooLarge)
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		if tooLarge != "" {
			// The whole request, as Kafka's controller refuses the whole
			// operation; logged once above, not per topic.
			st.ErrorCode, st.ErrorMessage = kerr.PolicyViolation.Code, strp(tooLarge)
			st.NumPartitions, st.ReplicationFactor = -1, -1
			resp.Topics = append(resp.Topics, st)
			continue
		}
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

// refuseOversizedCreateTopics answers a request that decodeCreateTopics
// refused from its wire bytes: POLICY_VIOLATION for each topic whose name
// was decoded (the first maxRecordsPerRequest), as Kafka answers each
// topic of an operation past MAX_RECORDS_PER_USER_OP. The topics beyond
// are not answered: echoing millions of names would make the answer
// larger than the request.
func (b *Broker) refuseOversizedCreateTopics(r *wire.Request, o *oversizedCreateTopics) {
	resp := o.ResponseKind().(*kmsg.CreateTopicsResponse)
	msg := oversizedMessage(o.topics, o.elements, len(o.Topics), "topics, partition assignments and configs")
	b.log.Warn("create topics refused: request too large, refused before decoding it whole",
		"topics", o.topics, "elements_counted", o.elements, "answered", len(o.Topics), "bytes", r.Size, "client", r.Header.ClientID)
	for _, rt := range o.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.ErrorCode, st.ErrorMessage = kerr.PolicyViolation.Code, &msg
		st.NumPartitions, st.ReplicationFactor = -1, -1
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}

// createTopicsTooLarge says why a request adds more than
// maxRecordsPerRequest topics and partitions, or "".
func (b *Broker) createTopicsTooLarge(req *kmsg.CreateTopicsRequest) string {
	records := int64(0)
	for _, rt := range req.Topics {
		n := int64(rt.NumPartitions)
		switch {
		case len(rt.ReplicaAssignment) > 0:
			n = int64(len(rt.ReplicaAssignment))
		case n == -1:
			n = int64(b.cfg.NumPartitions)
		}
		records += 1 + max(0, n)
	}
	if records <= maxRecordsPerRequest {
		return ""
	}
	return fmt.Sprintf("Unable to perform excessively large batch operation: %d topics with %d partitions in one request, at most %d topics plus partitions",
		len(req.Topics), records-int64(len(req.Topics)), maxRecordsPerRequest)
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
	var assignment [][]int32
	if len(rt.ReplicaAssignment) > 0 {
		if n != -1 || rf != -1 {
			fail(kerr.InvalidRequest.Code, "both numPartitions or replicationFactor and replicasAssignments were set; both cannot be used at the same time")
			return
		}
		var err error
		if assignment, err = b.checkAssignment(rt.ReplicaAssignment); err != nil {
			fail(kerr.InvalidReplicaAssignment.Code, err.Error())
			return
		}
		n, rf = int32(len(assignment)), int16(len(assignment[0]))
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
	img := b.pub.Load()
	live := 0
	for _, br := range img.Brokers {
		if !br.Fenced {
			live++
		}
	}
	if int(rf) > live {
		fail(kerr.InvalidReplicationFactor.Code, fmt.Sprintf("Replication factor: %d larger than available brokers: %d.", rf, live))
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
	if img.Topic(rt.Topic) != nil {
		fail(kerr.TopicAlreadyExists.Code, fmt.Sprintf("Topic '%s' already exists.", rt.Topic))
		return
	}
	for _, other := range img.TopicNames() {
		if collisionName(other) == collisionName(rt.Topic) {
			fail(kerr.InvalidTopicException.Code, fmt.Sprintf("topic %q collides with existing topic %q", rt.Topic, other))
			return
		}
	}
	if msg := b.checkPartitionLimit(img, int(n)*int(rf)); msg != "" {
		fail(kerr.PolicyViolation.Code, msg)
		return
	}
	var id TopicID
	if !req.ValidateOnly {
		ctx, cancel := b.adminCtx(req.TimeoutMillis)
		t, err := b.createTopic(ctx, controller.TopicSpec{Name: rt.Topic, Partitions: n, ReplicationFactor: rf,
			Assignment: assignment, Configs: configs})
		cancel()
		if err != nil {
			fail(kafkaCode(err))
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

// checkAssignment checks a manual assignment's shape: partitions 0..n-1
// once each, the same number of distinct replicas for each. Whether the
// brokers exist is the controller's to say.
func (b *Broker) checkAssignment(as []kmsg.CreateTopicsRequestTopicReplicaAssignment) ([][]int32, error) {
	out := make([][]int32, len(as))
	for _, a := range as {
		if a.Partition < 0 || int(a.Partition) >= len(as) || out[a.Partition] != nil {
			return nil, fmt.Errorf("partitions must be numbered 0..%d, each once", len(as)-1)
		}
		if len(a.Replicas) == 0 || len(a.Replicas) != len(as[0].Replicas) {
			return nil, fmt.Errorf("partition %d: replicas %v: every partition needs the same number of replicas", a.Partition, a.Replicas)
		}
		seen := map[int32]bool{}
		for _, r := range a.Replicas {
			if seen[r] {
				return nil, fmt.Errorf("partition %d: replicas %v: broker %d listed twice", a.Partition, a.Replicas, r)
			}
			seen[r] = true
		}
		out[a.Partition] = a.Replicas
	}
	return out, nil
}
