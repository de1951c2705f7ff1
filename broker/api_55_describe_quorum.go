package broker

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/controller"
)

// metadataTopic is the KRaft metadata partition DescribeQuorum asks about.
const metadataTopic = "__cluster_metadata"

// DescribeQuorum: v0-2
//
// Behavior:
//   - Only __cluster_metadata-0 exists; other partitions get
//     UNKNOWN_TOPIC_OR_PARTITION.
//   - Answered by the active controller (forwarded from any broker): leader
//     id, leader epoch (the raft term), high watermark (raft commit index),
//     and per voter its raft log end offset as it reported with its last
//     heartbeat (LastFetchTimestamp is that heartbeat's time;
//     LastCaughtUpTimestamp the same when it had reached the high
//     watermark, else -1). Observers are the broker-only nodes with the
//     metadata offset they applied.
//   - No controller reachable within a few seconds: REQUEST_TIMED_OUT on
//     the partition.
//
// Version notes: v1 timestamps; v2 error messages, directory ids (zero:
// kobs has no directory ids) and the voters' controller endpoints.
func describeQuorum(ctx context.Context, ctl *controller.Controller, req *kmsg.DescribeQuorumRequest) *kmsg.DescribeQuorumResponse {
	resp := req.ResponseKind().(*kmsg.DescribeQuorumResponse)
	resp.SetVersion(req.Version)
	var q *controller.QuorumInfo
	var qerr error
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeQuorumResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDescribeQuorumResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LeaderID, rp.LeaderEpoch, rp.HighWatermark = -1, -1, -1
			if t.Topic != metadataTopic || p.Partition != 0 {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			if q == nil && qerr == nil {
				c, cancel := context.WithTimeout(ctx, 5e9)
				info, err := ctl.Quorum(c)
				cancel()
				q, qerr = &info, err
			}
			if qerr != nil {
				rp.ErrorCode = controller.KafkaError(qerr).Code
				if req.Version >= 2 {
					msg := qerr.Error()
					rp.ErrorMessage = &msg
				}
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			rp.LeaderID, rp.LeaderEpoch, rp.HighWatermark = q.LeaderID, q.LeaderEpoch, q.HighWatermark
			conv := func(rs []controller.ReplicaInfo) []kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
				out := make([]kmsg.DescribeQuorumResponseTopicPartitionReplicaState, 0, len(rs))
				for _, r := range rs {
					s := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
					s.ReplicaID, s.LogEndOffset, s.LastFetchTimestamp, s.LastCaughtUpTimestamp = r.ID, r.LogEndOffset, r.LastFetchTimestamp, r.LastCaughtUpTimestamp
					out = append(out, s)
				}
				return out
			}
			rp.CurrentVoters, rp.Observers = conv(q.Voters), conv(q.Observers)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if req.Version >= 2 && q != nil && qerr == nil {
		name := ctl.ListenerName()
		for _, id := range ctl.VoterIDs() {
			host, port, err := net.SplitHostPort(ctl.VoterAddr(id))
			if err != nil {
				continue
			}
			n := kmsg.NewDescribeQuorumResponseNode()
			n.NodeID = id
			l := kmsg.NewDescribeQuorumResponseNodeListener()
			pn, _ := strconv.ParseUint(port, 10, 16)
			l.Name, l.Host, l.Port = name, host, uint16(pn)
			n.Listeners = append(n.Listeners, l)
			resp.Nodes = append(resp.Nodes, n)
		}
	}
	return resp
}
