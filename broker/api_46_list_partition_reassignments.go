package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/controller"
)

// ListPartitionReassignments: v0
//
// Behavior:
//   - Answered from this broker's metadata image (the controller's log as
//     applied here): every partition with adding or removing replicas, of
//     the named partitions or (null topics) of all. Partitions not being
//     reassigned are left out; an unknown topic fails the request with
//     UNKNOWN_TOPIC_OR_PARTITION, as Kafka.
func listPartitionReassignments(ctl *controller.Controller, req *kmsg.ListPartitionReassignmentsRequest) *kmsg.ListPartitionReassignmentsResponse {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	resp.SetVersion(req.Version)
	var parts []controller.TopicPartition
	if req.Topics != nil {
		img := ctl.Image()
		parts = []controller.TopicPartition{}
		for _, t := range req.Topics {
			if img.Topic(t.Topic) == nil {
				resp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				msg := "topic " + t.Topic + " does not exist"
				resp.ErrorMessage = &msg
				return resp
			}
			for _, p := range t.Partitions {
				parts = append(parts, controller.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	byTopic := map[string]int{}
	for _, r := range ctl.ListReassignments(parts) {
		idx, ok := byTopic[r.Topic]
		if !ok {
			t := kmsg.NewListPartitionReassignmentsResponseTopic()
			t.Topic = r.Topic
			resp.Topics = append(resp.Topics, t)
			idx = len(resp.Topics) - 1
			byTopic[r.Topic] = idx
		}
		p := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		p.Partition, p.Replicas, p.AddingReplicas, p.RemovingReplicas = r.Partition, r.Replicas, r.Adding, r.Removing
		if p.AddingReplicas == nil {
			p.AddingReplicas = []int32{}
		}
		if p.RemovingReplicas == nil {
			p.RemovingReplicas = []int32{}
		}
		resp.Topics[idx].Partitions = append(resp.Topics[idx].Partitions, p)
	}
	return resp
}
