package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// DeleteTopics: v0-6
//
// Behavior:
//   - delete.topic.enable=false refuses with TOPIC_DELETION_DISABLED.
//   - Unknown names are UNKNOWN_TOPIC_OR_PARTITION, unknown ids (v6)
//     UNKNOWN_TOPIC_ID; internal topics cannot be deleted (INVALID_REQUEST).
//   - The topic disappears from metadata at once and its partition
//     directories are removed; parked fetches on it wake and see it gone.
//
// Version notes: v5 ErrorMessage, v4 flexible, v6 topics by name or id.
func (b *Broker) handleDeleteTopics(r *wire.Request) {
	req := r.Msg.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	targets := req.Topics
	if req.Version < 6 {
		targets = nil
		for _, n := range req.TopicNames {
			targets = append(targets, kmsg.DeleteTopicsRequestTopic{Topic: strp(n)})
		}
	}
	for _, rt := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		b.mu.RLock()
		var t *topic
		if rt.Topic != nil {
			t = b.topics[*rt.Topic]
		} else {
			t = b.byID[TopicID(rt.TopicID)]
		}
		b.mu.RUnlock()
		switch {
		case !b.cfg.DeleteTopicEnable:
			st.ErrorCode = kerr.TopicDeletionDisabled.Code
		case t == nil && rt.Topic == nil:
			st.ErrorCode = kerr.UnknownTopicID.Code
		case t == nil:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case t.internal:
			st.ErrorCode = kerr.InvalidRequest.Code
			st.ErrorMessage = strp("internal topics cannot be deleted")
		default:
			st.Topic, st.TopicID = strp(t.name), t.id
			if err := b.deleteTopic(t); err != nil {
				b.log.Error("delete topic left files behind", "topic", t.name, "err", err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}
