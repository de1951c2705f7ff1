package broker_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// fetchAll sends one Fetch v12 of partition 0 from offset with the
// largest MaxBytes and PartitionMaxBytes a client can ask for.
func fetchAll(t *testing.T, cl *kgo.Client, topic string, offset int64) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID = -1
	req.MaxBytes = 1<<31 - 1
	req.MaxWaitMillis = 0
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, offset, 1<<31-1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	require.Len(t, resp.Topics, 1)
	require.Len(t, resp.Topics[0].Partitions, 1)
	p := resp.Topics[0].Partitions[0]
	require.Zero(t, p.ErrorCode)
	return p
}

// TestFetchMaxBytesCapsResponse: the broker's fetch.max.bytes caps a Fetch
// whatever MaxBytes the client asks for, but still returns the first batch
// when it alone is larger (KIP-74), as Kafka does.
func TestFetchMaxBytesCapsResponse(t *testing.T) {
	const capBytes = 4096
	b := testcluster.Start(t, testcluster.Prop("fetch.max.bytes", "4096"), testcluster.Prop("message.max.bytes", "100000"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(context.Background(), 1, 1, nil, "capped")
	require.NoError(t, err)

	// 40 batches of ~1 KB: ten times the cap.
	stored := 0
	for range 40 {
		batch := makeBatch(1, 1000)
		stored += len(batch)
		require.Zero(t, produceRaw(t, cl, "capped", batch).ErrorCode)
	}
	p := fetchAll(t, cl, "capped", 0)
	t.Logf("partition holds %d bytes, fetch with MaxBytes 2^31-1 returned %d bytes (fetch.max.bytes %d)", stored, len(p.RecordBatches), capBytes)
	require.NotEmpty(t, p.RecordBatches)
	require.LessOrEqual(t, len(p.RecordBatches), capBytes)
	require.Greater(t, stored, 2*capBytes)

	// A first batch larger than the cap is still returned, alone.
	big := makeBatch(1, 3*capBytes)
	resp := produceRaw(t, cl, "capped", big)
	require.Zero(t, resp.ErrorCode)
	require.Zero(t, produceRaw(t, cl, "capped", makeBatch(1, 100)).ErrorCode)
	p = fetchAll(t, cl, "capped", resp.BaseOffset)
	require.Len(t, p.RecordBatches, len(big), "the oversized first batch, and nothing after it")
	require.Equal(t, resp.BaseOffset, int64(binary.BigEndian.Uint64(p.RecordBatches)))
	require.Equal(t, big[61:], p.RecordBatches[61:], "the same records")
}
