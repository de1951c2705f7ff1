package broker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestPauseLeaderUnderLoad is issue 9's "pause (SIGSTOP) the leader
// instead: after resuming it acknowledges nothing it wrote after losing
// leadership", over three `kobs broker` processes: RF 3,
// min.insync.replicas=2, a continuous idempotent acks=all producer. The
// leader is stopped with SIGSTOP; the controller fences it and elects
// another; while it is still stopped an acks=all produce is queued on its
// socket, and it is resumed with the old image. It must not acknowledge
// that write (it waits for followers that now follow someone else, then
// learns it was deposed: NOT_LEADER_OR_FOLLOWER); it rejoins as a follower,
// truncating whatever it appended meanwhile, so every replica holds the
// same bytes; every acknowledged record is read back exactly once and the
// stale write is nowhere.
func TestPauseLeaderUnderLoad(t *testing.T) {
	c := testcluster.StartCluster(t, 3, fastFailover()...)
	const topic = "paused"
	ctx := context.Background()
	// A produce parked on the stopped leader fails the connection after
	// ProduceRequestTimeout + RequestTimeoutOverhead; the idempotent
	// producer then retries the same sequence numbers at the new leader.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(60*time.Second),
		kgo.ProduceRequestTimeout(3*time.Second), kgo.RequestTimeoutOverhead(2*time.Second),
		kgo.MetadataMinAge(100*time.Millisecond))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := "2"
	createReplicated(t, adm, topic, 3, map[string]*string{"min.insync.replicas": &minISR})

	// partitionVia asks broker id itself (the client's own choice might
	// be the stopped broker).
	partitionVia := func(id int32) (kmsg.MetadataResponseTopicPartition, error) {
		one, err := kgo.NewClient(kgo.SeedBrokers(c.Node(id).Addr()))
		if err != nil {
			return kmsg.MetadataResponseTopicPartition{}, err
		}
		defer one.Close()
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		resp, err := req.RequestWith(mctx, one.SeedBrokers()[0])
		if err != nil {
			return kmsg.MetadataResponseTopicPartition{}, err
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return kmsg.MetadataResponseTopicPartition{}, fmt.Errorf("broker %d: %+v", id, resp.Topics)
		}
		return resp.Topics[0].Partitions[0], nil
	}
	sortedISR := func(p kmsg.MetadataResponseTopicPartition) []int32 {
		isr := slices.Clone(p.ISR)
		slices.Sort(isr)
		return isr
	}
	var leader int32
	testcluster.Eventually(t, 20*time.Second, func() error {
		p, err := partitionVia(1)
		if err != nil {
			return err
		}
		if !slices.Equal(sortedISR(p), []int32{1, 2, 3}) || p.Leader < 0 {
			return fmt.Errorf("leader %d isr %v", p.Leader, p.ISR)
		}
		leader = p.Leader
		return nil
	})
	var other int32 = 1
	if other == leader {
		other = 2
	}

	prod := startLoadProducer(ctx, cl, topic)
	testcluster.Eventually(t, 20*time.Second, func() error {
		if n := prod.count(); n < 200 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})

	c.Node(leader).Pause()
	paused := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			c.Node(leader).Resume()
		}
	}()
	before := prod.count()
	var newLeader int32
	testcluster.Eventually(t, 30*time.Second, func() error {
		p, err := partitionVia(other)
		if err != nil {
			return err
		}
		if p.Leader == leader || p.Leader < 0 {
			return fmt.Errorf("leader %d isr %v", p.Leader, p.ISR)
		}
		newLeader = p.Leader
		return nil
	})
	testcluster.Eventually(t, 30*time.Second, func() error {
		if !prod.ackedSince(paused, before+10) {
			return errors.New("no acknowledgement since the pause")
		}
		return nil
	})
	t.Logf("leader %d paused; %d leads; acknowledgements resumed %v after the pause", leader, newLeader, time.Since(paused))

	// An acks=all write waits in the deposed leader's socket while it is
	// still stopped; it reads it on resuming, before or after it learns
	// the news.
	const staleSize = 37 // "v" x 37: no producer value looks like it
	conn, err := net.Dial("tcp", c.Node(leader).Addr())
	require.NoError(t, err)
	defer conn.Close()
	stale := kmsg.NewPtrProduceRequest()
	stale.Version, stale.Acks, stale.TimeoutMillis = 7, -1, 10000
	stale.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: makeBatch(1, staleSize)}}}}
	_, err = conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("stale")).AppendRequest(nil, stale, 1))
	require.NoError(t, err)
	c.Node(leader).Resume()
	resumed = true
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	var size [4]byte
	_, err = io.ReadFull(conn, size[:])
	require.NoError(t, err, "the resumed broker answers the queued produce")
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(conn, body)
	require.NoError(t, err)
	require.Equal(t, int32(1), int32(binary.BigEndian.Uint32(body)), "correlation id")
	sresp := stale.ResponseKind().(*kmsg.ProduceResponse)
	sresp.Version = stale.Version
	require.NoError(t, sresp.ReadFrom(body[4:]))
	sp := sresp.Topics[0].Partitions[0]
	require.Equal(t, kerr.NotLeaderForPartition.Code, sp.ErrorCode,
		"the deposed leader answered an acks=all write with %v", kerr.ErrorForCode(sp.ErrorCode))

	// Writes go on; the old leader follows, catches up and rejoins.
	testcluster.Eventually(t, 30*time.Second, func() error {
		if n := prod.count(); n < before+400 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	prod.halt()
	testcluster.Eventually(t, 30*time.Second, func() error {
		p, err := partitionVia(leader)
		if err != nil {
			return err
		}
		if p.Leader == leader || !slices.Equal(sortedISR(p), []int32{1, 2, 3}) {
			return fmt.Errorf("leader %d isr %v", p.Leader, p.ISR)
		}
		return nil
	})
	truncated := strings.Contains(c.Node(leader).Logs(), "truncating divergent log tail")
	t.Logf("old leader %d truncated a divergent tail: %v", leader, truncated)

	// Every replica holds the same bytes: nothing the old leader wrote
	// after losing leadership survived on it.
	testcluster.Eventually(t, 20*time.Second, func() error {
		dirs, err := adm.DescribeAllLogDirs(ctx, kadm.TopicsSet{topic: {0: {}}})
		if err != nil {
			return err
		}
		sizes := map[int32]int64{}
		for id, ds := range dirs {
			ds.EachPartition(func(p kadm.DescribedLogDirPartition) {
				if p.Topic == topic && p.Partition == 0 {
					sizes[id] = p.Size
				}
			})
		}
		if len(sizes) != 3 || sizes[1] != sizes[2] || sizes[2] != sizes[3] || sizes[1] == 0 {
			return fmt.Errorf("log sizes by broker %v", sizes)
		}
		return nil
	})

	// Every acknowledged record once; nothing else, and not the stale one.
	seen, end := readPartition0(ctx, t, adm, c.Addrs(), topic)
	for v := range prod.acked {
		require.Equal(t, 1, seen[v], "acknowledged record %s read %d times", v, seen[v])
	}
	for v, n := range seen {
		require.True(t, strings.HasPrefix(v, "r-"), "a record nobody's producer sent is in the log: %q", v)
		require.Equal(t, 1, n, "record %s read %d times", v, n)
	}
	t.Logf("acknowledged %d, read back %d distinct of %d records, %d produce errors", len(prod.acked), len(seen), end, len(prod.errs))
}
