package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/controller"
)

// ElectLeaders: v0-2
//
// Behavior:
//   - Pure controller work: the elections run on the active controller,
//     reached from any broker (controller.Controller forwards).
//   - Preferred (0): the first replica becomes leader if it is live and in
//     the ISR; ELECTION_NOT_NEEDED where it already leads,
//     PREFERRED_LEADER_NOT_AVAILABLE where it cannot.
//   - Unclean (1): only for partitions without a leader: an ISR member if
//     one is live, else any live replica (counted in
//     UncleanLeaderElectionsPerSec); ELIGIBLE_LEADERS_NOT_AVAILABLE if none.
//   - Null topics elects every partition and, as Kafka, leaves out the
//     partitions that answered ELECTION_NOT_NEEDED.
//   - TimeoutMillis bounds the wait for the controller (REQUEST_TIMED_OUT).
//
// Version notes: v1 election type and top-level error code; v2 flexible.
func electLeaders(ctx context.Context, ctl *controller.Controller, req *kmsg.ElectLeadersRequest) *kmsg.ElectLeadersResponse {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	resp.SetVersion(req.Version)
	typ := controller.ElectionType(req.ElectionType)
	if req.Version == 0 {
		typ = controller.ElectPreferred
	}
	if typ != controller.ElectPreferred && typ != controller.ElectUnclean {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	all := req.Topics == nil
	var parts []controller.TopicPartition
	if all {
		img := ctl.Image()
		for _, name := range img.TopicNames() {
			for i := range img.Topics[name].Partitions {
				parts = append(parts, controller.TopicPartition{Topic: name, Partition: int32(i)})
			}
		}
	} else {
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				parts = append(parts, controller.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	errs := ctl.ElectLeaders(ctx, typ, parts)
	byTopic := map[string]int{}
	for i, tp := range parts {
		if all && errors.Is(errs[i], controller.ErrElectionNotNeeded) {
			continue
		}
		idx, ok := byTopic[tp.Topic]
		if !ok {
			t := kmsg.NewElectLeadersResponseTopic()
			t.Topic = tp.Topic
			resp.Topics = append(resp.Topics, t)
			idx = len(resp.Topics) - 1
			byTopic[tp.Topic] = idx
		}
		p := kmsg.NewElectLeadersResponseTopicPartition()
		p.Partition = tp.Partition
		if errs[i] != nil {
			p.ErrorCode = controller.KafkaError(errs[i]).Code
			msg := errs[i].Error()
			p.ErrorMessage = &msg
		}
		resp.Topics[idx].Partitions = append(resp.Topics[idx].Partitions, p)
	}
	return resp
}

// requestTimeout bounds a controller call by a request's TimeoutMillis
// (at least one second, so a zero timeout from an old client still gets
// an answer from a healthy controller).
func requestTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(time.Duration(ms)*time.Millisecond, time.Second))
}
