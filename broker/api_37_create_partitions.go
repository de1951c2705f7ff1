package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// CreatePartitions: v0-3
//
// Behavior:
//   - Count is the new total and must exceed the current count
//     (INVALID_PARTITIONS); an explicit assignment gives the replicas of
//     each new partition, checked by the controller quorum, which also
//     places replicas when none is given (INVALID_REPLICA_ASSIGNMENT).
//   - More than 10,000 new partitions in one request is POLICY_VIOLATION
//     for every topic (Kafka's controller batch limit); new replicas that
//     would pass kobs.max.partitions.per.broker are POLICY_VIOLATION. A
//     request of more than 10,000 topics and assignments is refused from
//     its wire bytes (decode_bounds.go), answered for its first 10,000
//     topics.
//   - ValidateOnly checks and changes nothing. A topic named twice in one
//     request is INVALID_REQUEST.
//
// Version notes: v2 flexible; v3 same as v2.
func (b *Broker) handleCreatePartitions(r *wire.Request) {
	if o, ok := r.Msg.(*oversizedCreatePartitions); ok {
		resp := o.ResponseKind().(*kmsg.CreatePartitionsResponse)
		msg := oversizedMessage(o.topics, o.elements, len(o.Topics), "topics and partition assignments")
		b.log.Warn("create partitions refused: request too large, refused before decoding it whole",
			"topics", o.topics, "elements_counted", o.elements, "answered", len(o.Topics), "bytes", r.Size, "client", r.Header.ClientID)
		for _, rt := range o.Topics {
			st := kmsg.NewCreatePartitionsResponseTopic()
			st.Topic, st.ErrorCode, st.ErrorMessage = rt.Topic, kerr.PolicyViolation.Code, &msg
			resp.Topics = append(resp.Topics, st)
		}
		r.Respond(resp)
		return
	}
	req := r.Msg.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := map[string]int{}
	added := int64(0)
	img := b.pub.Load()
	for _, rt := range req.Topics {
		seen[rt.Topic]++
		if t := img.Topic(rt.Topic); t != nil {
			added += max(0, int64(rt.Count)-int64(len(t.Partitions)))
		}
	}
	tooLarge := ""
	if added > maxRecordsPerRequest {
		tooLarge = fmt.Sprintf("Unable to perform excessively large batch operation: %d new partitions in one request, at most %d", added, maxRecordsPerRequest)
		b.log.Warn("create partitions refused: request too large", "topics", len(req.Topics), "reason", tooLarge)
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		if tooLarge != "" {
			st.ErrorCode, st.ErrorMessage = kerr.PolicyViolation.Code, strp(tooLarge)
		} else if seen[rt.Topic] > 1 {
			st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, strp("topic named more than once in the request")
		} else if code, msg := b.addPartitions(rt, req.ValidateOnly, req.TimeoutMillis); code != 0 {
			st.ErrorCode, st.ErrorMessage = code, strp(msg)
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}

func (b *Broker) addPartitions(rt kmsg.CreatePartitionsRequestTopic, validateOnly bool, timeoutMs int32) (int16, string) {
	t := b.pub.Load().Topic(rt.Topic)
	if t == nil {
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %s does not exist", rt.Topic)
	}
	if t.Internal {
		// The group coordinator maps groups to partitions by count;
		// more partitions would orphan committed offsets.
		return kerr.InvalidRequest.Code, "cannot add partitions to internal topic " + t.Name
	}
	cur := int32(len(t.Partitions))
	if rt.Count <= cur {
		return kerr.InvalidPartitions.Code, fmt.Sprintf("topic currently has %d partitions, which is higher than the requested %d", cur, rt.Count)
	}
	if msg := b.checkPartitionLimit(b.pub.Load(), int(rt.Count-cur)*len(t.Partitions[0].Replicas)); msg != "" {
		b.log.Info("create partitions refused", "topic", t.Name, "error", kerr.PolicyViolation, "reason", msg)
		return kerr.PolicyViolation.Code, msg
	}
	var assignment [][]int32
	if rt.Assignment != nil {
		if int32(len(rt.Assignment)) != rt.Count-cur {
			return kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("%d assignments given for %d new partitions", len(rt.Assignment), rt.Count-cur)
		}
		for _, a := range rt.Assignment {
			assignment = append(assignment, a.Replicas)
		}
	}
	if validateOnly {
		return 0, ""
	}
	if b.ctl == nil {
		return kafkaCode(errNoController)
	}
	ctx, cancel := b.adminCtx(timeoutMs)
	defer cancel()
	if err := b.ctl.CreatePartitions(ctx, rt.Topic, rt.Count, assignment); err != nil {
		return kafkaCode(err)
	}
	b.log.Info("added partitions", "topic", t.Name, "from", cur, "to", rt.Count)
	return 0, ""
}
