package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// OffsetForLeaderEpoch: v0-4
//
// Behavior:
//   - Answered by the partition's leader from its leader epoch cache
//     (leader-epoch-checkpoint): for the requested epoch, the largest epoch
//     <= it that the log knows and the offset where that epoch ended (the
//     next epoch's start offset, or the log end offset for the latest
//     epoch); epoch and offset -1 when the requested epoch is older than
//     every epoch in the log. Followers use it to truncate a divergent tail
//     after a leader change (KIP-101, KIP-279); consumers to detect
//     truncation (KIP-320).
//   - CurrentLeaderEpoch (v2+) older than the partition's is
//     FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH; a broker that does
//     not lead the partition answers NOT_LEADER_OR_FOLLOWER.
//
// Version notes: v1 returns the leader epoch, v2 current leader epoch and
// throttle, v3 replica id, v4 flexible.
func (b *Broker) handleOffsetForLeaderEpoch(r *wire.Request) {
	req := r.Msg.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition, sp.LeaderEpoch, sp.EndOffset = rp.Partition, -1, -1
			t, p := b.lookup(rt.Topic, rp.Partition)
			switch {
			case t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p == nil:
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				ps := p.State()
				cur := rp.CurrentLeaderEpoch
				if req.Version < 2 {
					cur = -1
				}
				if code := leaderEpochError(cur, ps.LeaderEpoch); code != 0 {
					sp.ErrorCode = code
					break
				}
				if !ps.IsLeader() {
					sp.ErrorCode = kerr.NotLeaderForPartition.Code
					break
				}
				sp.LeaderEpoch, sp.EndOffset = p.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}
