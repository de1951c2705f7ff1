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
//   - Sent to the controller quorum (from any broker); once the deletion is
//     in this broker's metadata the answer goes out. Every replica deletes
//     its partition directories as it applies the change; parked fetches
//     on it wake and see it gone.
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
			ctx, cancel := b.adminCtx(req.TimeoutMillis)
			err := b.deleteTopic(ctx, t.Name)
			cancel()
			if err != nil {
				code, msg := kafkaCode(err)
				st.ErrorCode, st.ErrorMessage = code, strp(msg)
				b.log.Warn("delete topic failed", "topic", t.Name, "err", err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}
