package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// BenchmarkCountErrors is the per-response cost of ErrorsPerSec (a
// reflection walk over the response) for a 6-partition produce and fetch.
func BenchmarkCountErrors(b *testing.B) {
	m := newMetrics(telemetry.New(), 8)
	produce := kmsg.NewPtrProduceResponse()
	fetch := kmsg.NewPtrFetchResponse()
	pt, ft := kmsg.NewProduceResponseTopic(), kmsg.NewFetchResponseTopic()
	for p := int32(0); p < 6; p++ {
		pp, fp := kmsg.NewProduceResponseTopicPartition(), kmsg.NewFetchResponseTopicPartition()
		pp.Partition, fp.Partition = p, p
		fp.RecordBatches = make([]byte, 1<<20)
		pt.Partitions, ft.Partitions = append(pt.Partitions, pp), append(ft.Partitions, fp)
	}
	produce.Topics, fetch.Topics = []kmsg.ProduceResponseTopic{pt}, []kmsg.FetchResponseTopic{ft}
	for _, c := range []struct {
		name string
		resp kmsg.Response
	}{{"request=Produce", produce}, {"request=Fetch", fetch}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.countErrors("X", c.resp)
			}
		})
	}
}
