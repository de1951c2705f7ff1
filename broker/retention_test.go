package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

func produceN(t *testing.T, cl *kgo.Client, topic string, n int, ts time.Time) {
	t.Helper()
	var rs []*kgo.Record
	for i := 0; i < n; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Value: make([]byte, 1000), Timestamp: ts})
	}
	require.NoError(t, cl.ProduceSync(context.Background(), rs...).FirstErr())
}

func startOffset(t *testing.T, adm *kadm.Client, topic string) int64 {
	t.Helper()
	so, err := adm.ListStartOffsets(context.Background(), topic)
	require.NoError(t, err)
	o, ok := so.Lookup(topic, 0)
	require.True(t, ok)
	require.NoError(t, o.Err)
	return o.Offset
}

// fetchAt fetches one partition at offset over the wire and returns the
// partition error code and the first offset it got back.
func fetchAt(t *testing.T, cl *kgo.Client, topic string, offset int64) int16 {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.MaxBytes = 1 << 20
	req.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{FetchOffset: offset, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}}}
	resp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	return resp.Topics[0].Partitions[0].ErrorCode
}

// TestRetention checks time and size retention and DeleteRecords: old
// segments go, the log start offset advances, ListOffsets earliest says so,
// and fetching below it is OFFSET_OUT_OF_RANGE.
func TestRetention(t *testing.T) {
	b := testcluster.Start(t, testcluster.Prop("log.retention.check.interval.ms", "100"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerBatchMaxBytes(8<<10), kgo.DisableIdempotentWrite(),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	str := func(s string) *string { return &s }

	t.Run("retention.ms", func(t *testing.T) {
		const topic = "ret-time"
		_, err := adm.CreateTopic(context.Background(), 1, 1, map[string]*string{
			"segment.bytes": str("16384"), "retention.ms": str("3600000"),
		}, topic)
		require.NoError(t, err)
		produceN(t, cl, topic, 100, time.Now().Add(-2*time.Hour)) // past retention
		produceN(t, cl, topic, 40, time.Now())                    // fresh
		testcluster.Eventually(t, 20*time.Second, func() error {
			if so := startOffset(t, adm, topic); so < 100 || so > 140 {
				return fmt.Errorf("log start offset %d, want the old records gone", so)
			}
			return nil
		})
		so := startOffset(t, adm, topic)
		require.Equal(t, kerr.OffsetOutOfRange.Code, fetchAt(t, cl, topic, 0))
		require.Zero(t, fetchAt(t, cl, topic, so))
	})

	t.Run("retention.bytes", func(t *testing.T) {
		const topic = "ret-bytes"
		_, err := adm.CreateTopic(context.Background(), 1, 1, map[string]*string{
			"segment.bytes": str("16384"), "retention.bytes": str("40000"),
		}, topic)
		require.NoError(t, err)
		produceN(t, cl, topic, 200, time.Now())
		testcluster.Eventually(t, 20*time.Second, func() error {
			dirs, err := adm.DescribeAllLogDirs(context.Background(), nil)
			if err != nil {
				return err
			}
			var size int64
			for _, ds := range dirs {
				if p, ok := ds.LookupPartition(topic, 0); ok {
					size += p.Size
				}
			}
			// Whole segments go, so the log stays within the limit
			// plus the active segment.
			if size > 40000+16384 {
				return fmt.Errorf("size %d still over retention.bytes", size)
			}
			if so := startOffset(t, adm, topic); so == 0 {
				return fmt.Errorf("log start offset still 0")
			}
			return nil
		})
		require.Equal(t, kerr.OffsetOutOfRange.Code, fetchAt(t, cl, topic, 0))
	})

	t.Run("DeleteRecords", func(t *testing.T) {
		const topic = "delete-records"
		_, err := adm.CreateTopic(context.Background(), 1, 1, map[string]*string{"segment.bytes": str("16384")}, topic)
		require.NoError(t, err)
		produceN(t, cl, topic, 100, time.Now())
		offs := kadm.Offsets{}
		offs.AddOffset(topic, 0, 57, -1)
		res, err := adm.DeleteRecords(context.Background(), offs)
		require.NoError(t, err)
		r, _ := res.Lookup(topic, 0)
		require.NoError(t, r.Err)
		require.Equal(t, int64(57), r.LowWatermark)
		require.Equal(t, int64(57), startOffset(t, adm, topic))
		require.Equal(t, kerr.OffsetOutOfRange.Code, fetchAt(t, cl, topic, 56))
		require.Zero(t, fetchAt(t, cl, topic, 57))

		// Beyond the high watermark is refused.
		offs = kadm.Offsets{}
		offs.AddOffset(topic, 0, 1000, -1)
		res, err = adm.DeleteRecords(context.Background(), offs)
		require.NoError(t, err)
		r, _ = res.Lookup(topic, 0)
		require.ErrorIs(t, r.Err, kerr.OffsetOutOfRange)
	})
}
