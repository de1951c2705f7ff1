package broker

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// DescribeProducers: v0
//
// Behavior:
//   - Lists each partition's active idempotent producers: id, epoch, last
//     sequence and last timestamp. Without transactions CoordinatorEpoch and
//     CurrentTxnStartOffset are -1.
//
// Version notes: v0 is flexible.
func (b *Broker) handleDescribeProducers(r *wire.Request) {
	req := r.Msg.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		for _, idx := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = idx
			t, p := b.lookup(rt.Topic, idx)
			if t == nil || idx < 0 || int(idx) >= len(t.Partitions) {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if p == nil || !p.State().IsLeader() {
				// Kafka answers from the leader's producer state only.
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			producers := p.Producers()
			sort.Slice(producers, func(i, j int) bool { return producers[i].ID < producers[j].ID })
			for _, pr := range producers {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID, ap.ProducerEpoch = pr.ID, int32(pr.Epoch)
				ap.LastSequence, ap.LastTimestamp = pr.LastSeq(), pr.LastTimestamp()
				ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = -1, -1
				sp.ActiveProducers = append(sp.ActiveProducers, ap)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.Respond(resp)
}
