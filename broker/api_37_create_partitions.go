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
//     (INVALID_PARTITIONS); an explicit assignment must list only this
//     broker for each new partition (INVALID_REPLICA_ASSIGNMENT).
//   - ValidateOnly checks and changes nothing. A topic named twice in one
//     request is INVALID_REQUEST.
//
// Version notes: v2 flexible; v3 same as v2.
func (b *Broker) handleCreatePartitions(r *wire.Request) {
	req := r.Msg.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		if seen[rt.Topic] > 1 {
			st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, strp("topic named more than once in the request")
		} else if code, msg := b.addPartitions(rt, req.ValidateOnly); code != 0 {
			st.ErrorCode, st.ErrorMessage = code, strp(msg)
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}

func (b *Broker) addPartitions(rt kmsg.CreatePartitionsRequestTopic, validateOnly bool) (int16, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[rt.Topic]
	if t == nil {
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %s does not exist", rt.Topic)
	}
	if t.internal {
		// The group coordinator maps groups to partitions by count;
		// more partitions would orphan committed offsets.
		return kerr.InvalidRequest.Code, "cannot add partitions to internal topic " + t.name
	}
	cur := t.partitions
	if rt.Count <= cur {
		return kerr.InvalidPartitions.Code, fmt.Sprintf("topic currently has %d partitions, which is higher than the requested %d", cur, rt.Count)
	}
	if rt.Assignment != nil {
		if int32(len(rt.Assignment)) != rt.Count-cur {
			return kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("%d assignments given for %d new partitions", len(rt.Assignment), rt.Count-cur)
		}
		for _, a := range rt.Assignment {
			if len(a.Replicas) != 1 || a.Replicas[0] != b.cfg.NodeID {
				return kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("replicas %v: only broker %d exists", a.Replicas, b.cfg.NodeID)
			}
		}
	}
	if validateOnly {
		return 0, ""
	}
	// The new partitions' directories are created before they are
	// published; produce and fetch never wait for it.
	for i := cur; i < rt.Count; i++ {
		if _, err := b.replicas.Create(t.name, t.id, i, t.configs); err != nil {
			for j := cur; j < i; j++ {
				_ = b.replicas.Delete(t.name, j)
			}
			return kerr.KafkaStorageError.Code, err.Error()
		}
	}
	t.partitions = rt.Count
	if err := b.persistTopics(); err != nil {
		return kerr.KafkaStorageError.Code, err.Error()
	}
	b.publishLocked()
	b.log.Info("added partitions", "topic", t.name, "from", cur, "to", rt.Count)
	return 0, ""
}
