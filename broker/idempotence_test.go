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

func initProducerID(t *testing.T, cl *kgo.Client) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	req.ProducerID, req.ProducerEpoch = -1, -1
	resp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	require.Zero(t, resp.ErrorCode, kerr.ErrorForCode(resp.ErrorCode))
	return resp.ProducerID, resp.ProducerEpoch
}

func endOffset(t *testing.T, adm *kadm.Client, topic string) int64 {
	t.Helper()
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	require.NoError(t, err)
	o, _ := ends.Lookup(topic, 0)
	require.NoError(t, o.Err)
	return o.Offset
}

// TestIdempotentProducer replays produce requests by hand the way a retrying
// idempotent producer does: a replay gets the original offsets and is stored
// once, a gap is refused, an old epoch is fenced, and all of it still holds
// after a clean restart and after kill -9.
func TestIdempotentProducer(t *testing.T) {
	p := testcluster.StartProcess(t)
	const topic = "idempotence"
	connect := func() (*kgo.Client, *kadm.Client) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
		require.NoError(t, err)
		t.Cleanup(cl.Close)
		return cl, kadm.NewClient(cl)
	}
	cl, adm := connect()
	_, err := adm.CreateTopic(context.Background(), 1, 1, nil, topic)
	require.NoError(t, err)

	pid, epoch := initProducerID(t, cl)
	pid2, _ := initProducerID(t, cl)
	require.NotEqual(t, pid, pid2, "every InitProducerId gets a new id")

	b0 := makeIdempotentBatch(5, 10, pid, epoch, 0)
	sp := produceRaw(t, cl, topic, b0)
	require.Zero(t, sp.ErrorCode)
	require.Equal(t, int64(0), sp.BaseOffset)
	b1 := makeIdempotentBatch(3, 10, pid, epoch, 5)
	sp = produceRaw(t, cl, topic, b1)
	require.Zero(t, sp.ErrorCode)
	require.Equal(t, int64(5), sp.BaseOffset)

	check := func(t *testing.T, cl *kgo.Client, adm *kadm.Client) {
		t.Helper()
		// Replays of both batches: original offsets, nothing appended.
		sp := produceRaw(t, cl, topic, b0)
		require.Zero(t, sp.ErrorCode)
		require.Equal(t, int64(0), sp.BaseOffset)
		sp = produceRaw(t, cl, topic, b1)
		require.Zero(t, sp.ErrorCode)
		require.Equal(t, int64(5), sp.BaseOffset)
		require.Equal(t, int64(8), endOffset(t, adm, topic), "duplicates must not be stored")
		// A gap: sequence 9 where 8 is next.
		sp = produceRaw(t, cl, topic, makeIdempotentBatch(1, 10, pid, epoch, 9))
		require.Equal(t, kerr.OutOfOrderSequenceNumber.Code, sp.ErrorCode, kerr.ErrorForCode(sp.ErrorCode))
		require.Equal(t, int64(8), endOffset(t, adm, topic))
	}
	check(t, cl, adm)

	// DescribeProducers shows the producer's last sequence.
	req := kmsg.NewPtrDescribeProducersRequest()
	req.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: topic, Partitions: []int32{0}}}
	dp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	require.Len(t, dp.Topics[0].Partitions[0].ActiveProducers, 1)
	require.Equal(t, int32(7), dp.Topics[0].Partitions[0].ActiveProducers[0].LastSequence)

	p.Stop()
	p.Restart()
	cl, adm = connect()
	check(t, cl, adm)

	// The next batch in sequence is accepted, then the broker dies
	// without a clean stop: the state must be rebuilt from the log.
	sp = produceRaw(t, cl, topic, makeIdempotentBatch(2, 10, pid, epoch, 8))
	require.Zero(t, sp.ErrorCode)
	require.Equal(t, int64(8), sp.BaseOffset)
	p.Kill()
	p.Restart()
	cl, adm = connect()
	sp = produceRaw(t, cl, topic, makeIdempotentBatch(2, 10, pid, epoch, 8))
	require.Zero(t, sp.ErrorCode)
	require.Equal(t, int64(8), sp.BaseOffset, "duplicate caught after kill -9")
	require.Equal(t, int64(10), endOffset(t, adm, topic))

	// A new id from the broker after restart is not one handed out before.
	pid3, _ := initProducerID(t, cl)
	require.Greater(t, pid3, pid2)

	// An older epoch of the same producer is fenced.
	sp = produceRaw(t, cl, topic, makeIdempotentBatch(1, 10, pid, epoch+1, 0))
	require.Zero(t, sp.ErrorCode, "a new epoch starts at sequence 0")
	sp = produceRaw(t, cl, topic, makeIdempotentBatch(1, 10, pid, epoch, 10))
	require.Equal(t, kerr.InvalidProducerEpoch.Code, sp.ErrorCode)
}

// TestIdempotentFranzGo runs franz-go with its default idempotent producer
// (which calls InitProducerId) and checks that every record lands once.
func TestIdempotentFranzGo(t *testing.T) {
	b := testcluster.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("idem-franz"), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	defer cl.Close()
	var rs []*kgo.Record
	for i := 0; i < 5000; i++ {
		rs = append(rs, &kgo.Record{Value: []byte("v")})
	}
	require.NoError(t, cl.ProduceSync(context.Background(), rs...).FirstErr())
	require.GreaterOrEqual(t, rs[0].ProducerID, int64(0), "franz-go must have used a producer id")
	require.Equal(t, int64(5000), endOffset(t, kadm.NewClient(cl), "idem-franz"))
}

// TestProducerIDExpiration: a producer idle for producer.id.expiration.ms is
// forgotten (DescribeProducers no longer lists it), as in Kafka.
func TestProducerIDExpiration(t *testing.T) {
	// The first DescribeProducers must come within the expiration of the
	// batch's timestamp: 2 s leaves room for a stall of the produce and
	// describe round trips on a loaded machine (500 ms left about 0.4 s).
	b := testcluster.Start(t, testcluster.Prop("producer.id.expiration.ms", "2000"),
		testcluster.Prop("producer.id.expiration.check.interval.ms", "100"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	_, err = kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, nil, "expiry")
	require.NoError(t, err)
	pid, epoch := initProducerID(t, cl)
	require.Zero(t, produceRaw(t, cl, "expiry", makeIdempotentBatch(1, 10, pid, epoch, 0)).ErrorCode)
	active := func() int {
		req := kmsg.NewPtrDescribeProducersRequest()
		req.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "expiry", Partitions: []int32{0}}}
		resp, err := req.RequestWith(context.Background(), cl)
		require.NoError(t, err)
		return len(resp.Topics[0].Partitions[0].ActiveProducers)
	}
	require.Equal(t, 1, active())
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n := active(); n != 0 {
			return fmt.Errorf("%d active producers", n)
		}
		return nil
	})
}
