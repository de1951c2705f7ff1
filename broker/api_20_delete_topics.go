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
//   - A request naming more than 10,000 topics is refused from its wire
//     bytes with POLICY_VIOLATION for its first 10,000 (decode_bounds.go),
//     as Kafka's controller refuses deleting more than 10,000 topics in
//     one operation.
//   - Sent to the controller quorum (from any broker); once the deletion is
//     in this broker's metadata the answer goes out. Every replica deletes
//     its partition directories as it applies the change; parked fetches
//     on it wake and see it gone.
//
// Version notes: v5 ErrorMessage, v4 flexible, v6 topics by name or id.
func (b *Broker) handleDeleteTopics(r *wire.Request) {
	if o, ok := r.Msg.(*oversizedDeleteTopics); ok {
		b.refuseOversizedDeleteTopics(r, o)
		return
	}
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

// refuseOversizedDeleteTopics answers a request that decodeDeleteTopics
// refused from its wire bytes, for the topics it decoded.
func (b *Broker) refuseOversizedDeleteTopics(r *wire.Request, o *oversizedDeleteTopics) {
	resp := o.ResponseKind().(*kmsg.DeleteTopicsResponse)
	targets := o.Topics
	for _, n := range o.TopicNames {
		targets = append(targets, kmsg.DeleteTopicsRequestTopic{Topic: strp(n)})
	}
	msg := oversizedMessage(o.topics, o.topics, len(targets), "topics")
	b.log.Warn("delete topics refused: request too large, refused before decoding it whole",
		"topics", o.topics, "answered", len(targets), "bytes", r.Size, "client", r.Header.ClientID)
	for _, rt := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		st.ErrorCode, st.ErrorMessage = kerr.PolicyViolation.Code, &msg
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}
