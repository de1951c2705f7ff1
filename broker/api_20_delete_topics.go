package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/metadata"
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
		img := b.pub.Load()
		var t *metadata.Topic
		if rt.Topic != nil {
			t = img.Topic(*rt.Topic)
		} else {
			t = img.TopicByID(TopicID(rt.TopicID))
		}
		switch {
		case !b.cfg.DeleteTopicEnable:
			st.ErrorCode = kerr.TopicDeletionDisabled.Code
		case t == nil && rt.Topic == nil:
			st.ErrorCode = kerr.UnknownTopicID.Code
		case t == nil:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case t.Internal:
			st.ErrorCode = kerr.InvalidRequest.Code
			st.ErrorMessage = strp("internal topics cannot be deleted")
		default:
			st.Topic, st.TopicID = strp(t.Name), t.ID
			if err := b.deleteTopic(t.Name); err != nil {
				b.log.Error("delete topic left files behind", "topic", t.Name, "err", err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}
