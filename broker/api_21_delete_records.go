package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/wire"
)

// DeleteRecords: v0-2
//
// Behavior:
//   - Advances the log start offset to Offset (-1 means the high
//     watermark); segments wholly below it are deleted. An offset above the
//     high watermark is OFFSET_OUT_OF_RANGE. The answer is the new low
//     watermark.
//
// Version notes: v2 flexible.
func (b *Broker) handleDeleteRecords(r *wire.Request) {
	req := r.Msg.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	moved := false
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			t, p := b.lookup(rt.Topic, rp.Partition)
			switch {
			case t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p == nil || !p.State().IsLeader():
				// Kafka deletes on the leader only (the followers
				// follow its log start offset).
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				off := rp.Offset
				hw := p.HighWatermark()
				if off == -1 {
					off = hw
				}
				if off < 0 || off > hw {
					sp.ErrorCode = kerr.OffsetOutOfRange.Code
					break
				}
				low, err := p.Log().DeleteRecordsBefore(off)
				switch {
				case errors.Is(err, klog.ErrOffsetOutOfRange):
					sp.ErrorCode = kerr.OffsetOutOfRange.Code
				case err != nil:
					sp.ErrorCode = kerr.KafkaStorageError.Code
					b.log.Error("delete records failed", "topic", rt.Topic, "partition", rp.Partition, "err", err)
				default:
					sp.LowWatermark = low
					moved = true
					b.log.Info("deleted records", "topic", rt.Topic, "partition", rp.Partition, "log_start_offset", low)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	// Persist the new log start offsets now rather than at the next
	// periodic checkpoint, so a crash cannot resurrect deleted records.
	if moved {
		if err := b.writeCheckpoints(); err != nil {
			b.log.Error("checkpoint after delete records failed", "err", err)
		}
	}
	r.Respond(resp)
}
