package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// Special ListOffsets timestamps.
const (
	listLatest       = -1
	listEarliest     = -2
	listMaxTimestamp = -3 // v7+ (KIP-734)
)

// ListOffsets: v0-7
//
// Behavior:
//   - -2 (earliest) answers the log start offset, -1 (latest) the high
//     watermark (the last stable offset for read_committed, equal while
//     there are no transactions), -3 the record with the largest timestamp,
//     and any other timestamp the first record whose timestamp is at least
//     it (offset -1 when there is none), found through the time index.
//   - v0 answers in OldStyleOffsets, a list of at most MaxNumOffsets.
//   - A current leader epoch newer than ours is UNKNOWN_LEADER_EPOCH, an
//     older one FENCED_LEADER_EPOCH; a broker that does not lead the
//     partition answers NOT_LEADER_OR_FOLLOWER.
//
// Version notes: v1 single offset + timestamp, v2 isolation level, v4
// leader epochs, v6 flexible, v7 max timestamp.
func (b *Broker) handleListOffsets(r *wire.Request) {
	req := r.Msg.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			b.listOffset(req.Version, rt.Topic, rp, &sp)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}

func (b *Broker) listOffset(version int16, topicName string, rp kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) {
	t, p := b.lookup(topicName, rp.Partition)
	switch {
	case t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions):
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return
	case p == nil:
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	st := p.State()
	if code := leaderEpochError(rp.CurrentLeaderEpoch, st.LeaderEpoch); code != 0 {
		sp.ErrorCode = code
		return
	}
	if !st.IsLeader() {
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	offset, ts := int64(-1), int64(-1)
	switch rp.Timestamp {
	case listLatest:
		offset = p.HighWatermark()
	case listEarliest:
		offset = p.Log().LogStartOffset()
	case listMaxTimestamp:
		if version < 7 {
			sp.ErrorCode = kerr.UnsupportedVersion.Code
			return
		}
		o, t, found, err := p.Log().MaxTimestamp()
		if err != nil {
			sp.ErrorCode = kerr.KafkaStorageError.Code
			return
		}
		if found {
			offset, ts = o, t
		}
	default:
		if rp.Timestamp < 0 {
			sp.ErrorCode = kerr.InvalidRequest.Code // -4/-5 are tiered-storage specials we do not serve
			return
		}
		o, t, found, err := p.Log().OffsetForTimestamp(rp.Timestamp)
		if err != nil {
			sp.ErrorCode = kerr.KafkaStorageError.Code
			return
		}
		if found {
			offset, ts = o, t
		}
	}
	if version == 0 {
		if rp.MaxNumOffsets > 0 && offset >= 0 {
			sp.OldStyleOffsets = []int64{offset}
		}
		return
	}
	sp.Offset, sp.Timestamp = offset, ts
	if offset >= 0 {
		sp.LeaderEpoch = st.LeaderEpoch
	}
}
