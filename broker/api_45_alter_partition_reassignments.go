package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/controller"
)

// AlterPartitionReassignments: v0-1
//
// Behavior:
//   - Pure controller work (KIP-455): a partition's replica set becomes
//     target plus the replicas being removed; the adding replicas catch up
//     as followers, and when every target replica is in the ISR the
//     controller drops the removed ones (moving leadership if the leader
//     was one of them). Null replicas cancel the reassignment in progress
//     (NO_REASSIGNMENT_IN_PROGRESS if none).
//   - Every target broker must be registered, without duplicates
//     (INVALID_REPLICA_ASSIGNMENT); unknown partitions get
//     UNKNOWN_TOPIC_OR_PARTITION.
//   - v1 AllowReplicationFactorChange=false refuses a target of another
//     size than the current replica set with INVALID_REPLICATION_FACTOR
//     (KIP-860).
//
// Version notes: v1 AllowReplicationFactorChange.
func alterPartitionReassignments(ctx context.Context, ctl *controller.Controller, req *kmsg.AlterPartitionAssignmentsRequest) *kmsg.AlterPartitionAssignmentsResponse {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.SetVersion(req.Version)
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	checkRF := req.Version >= 1 && !req.AllowReplicationFactorChange
	img := ctl.Image()

	type slot struct{ t, p int }
	var rs []controller.Reassignment
	var slots []slot
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			if cur := img.Partition(t.Topic, p.Partition); checkRF && cur != nil && p.Replicas != nil {
				target := len(cur.Replicas) - len(cur.RemovingReplicas)
				if len(p.Replicas) != target {
					rp.ErrorCode = kerr.InvalidReplicationFactor.Code
					msg := "the replication factor would change and AllowReplicationFactorChange is false"
					rp.ErrorMessage = &msg
					rt.Partitions = append(rt.Partitions, rp)
					continue
				}
			}
			rs = append(rs, controller.Reassignment{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas})
			slots = append(slots, slot{len(resp.Topics), len(rt.Partitions)})
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(rs) == 0 {
		return resp
	}
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	for i, err := range ctl.AlterReassignments(ctx, rs) {
		if err == nil {
			continue
		}
		rp := &resp.Topics[slots[i].t].Partitions[slots[i].p]
		rp.ErrorCode = controller.KafkaError(err).Code
		msg := err.Error()
		rp.ErrorMessage = &msg
	}
	return resp
}
