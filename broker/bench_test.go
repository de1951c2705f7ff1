package broker_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// BenchmarkProduceTelemetry measures produce throughput (1 KiB records,
// acks=1, 6 partitions) against an in-process broker with telemetry on and
// off, in one process. The machine is noisy, so compare with benchstat over
// several counts:
//
//	go test -run '^$' -bench ProduceTelemetry -count 6 ./broker/ | tee /tmp/t.txt
//	benchstat -col /telemetry /tmp/t.txt
func BenchmarkProduceTelemetry(b *testing.B) {
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("telemetry=%v", on), func(b *testing.B) {
			br := testcluster.Start(b, testcluster.Prop("kobs.telemetry.enable", fmt.Sprint(on)))
			cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.DefaultProduceTopic("bench"),
				kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(time.Millisecond),
				kgo.ProducerBatchCompression(kgo.NoCompression()))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 6, 1, nil, "bench"); err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 1024)
			_, _ = rand.Read(value)
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			ctx := context.Background()
			errs := make(chan error, 1)
			start := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			select {
			case err := <-errs:
				b.Fatal(err)
			default:
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
