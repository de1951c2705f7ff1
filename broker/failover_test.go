package broker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestKillLeaderUnderLoad is issue 9's failover acceptance over three
// `kobs broker` processes (each a voter): kill -9 the partition leader
// under continuous idempotent acks=all produce (min.insync.replicas=2). A
// new leader takes over within seconds; every acknowledged record is read
// back exactly once; the old leader restarts, truncates what it had not
// committed and rejoins the ISR with the same log.
func TestKillLeaderUnderLoad(t *testing.T) {
	c := testcluster.StartCluster(t, 3,
		testcluster.Prop("broker.session.timeout.ms", "2000"),
		testcluster.Prop("broker.heartbeat.interval.ms", "300"),
		testcluster.Prop("replica.lag.time.max.ms", "3000"),
		testcluster.Prop("replica.fetch.wait.max.ms", "100"),
		testcluster.Prop("replica.fetch.backoff.ms", "100"))
	const topic = "failover"
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(60*time.Second))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	testcluster.Eventually(t, 30*time.Second, func() error {
		for _, id := range c.IDs() {
			one, err := kgo.NewClient(kgo.SeedBrokers(c.Node(id).Addr()))
			if err != nil {
				return err
			}
			req := kmsg.NewPtrMetadataRequest()
			mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := req.RequestWith(mctx, one.SeedBrokers()[0])
			cancel()
			one.Close()
			if err != nil {
				return err
			}
			if len(resp.Brokers) != 3 {
				return fmt.Errorf("broker %d lists %d brokers: %+v", id, len(resp.Brokers), resp.Brokers)
			}
		}
		return nil
	})
	minISR := "2"
	res, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
	require.NoError(t, err)
	require.NoError(t, res.Err)

	partition := func() (kadm.PartitionDetail, error) {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		md, err := adm.Metadata(mctx, topic)
		if err != nil {
			return kadm.PartitionDetail{}, err
		}
		p, ok := md.Topics[topic].Partitions[0]
		if !ok {
			return kadm.PartitionDetail{}, errors.New("no partition 0")
		}
		return p, nil
	}
	var leader int32
	testcluster.Eventually(t, 20*time.Second, func() error {
		p, err := partition()
		if err != nil {
			return err
		}
		if len(p.ISR) != 3 || p.Leader < 0 {
			return fmt.Errorf("leader %d isr %v", p.Leader, p.ISR)
		}
		leader = p.Leader
		return nil
	})

	// The producer goroutine only records outcomes; the test goroutine
	// asserts.
	var mu sync.Mutex
	acked := map[string]bool{}
	var lastAck time.Time
	var produceErrs []error
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("r-%d", i)
			pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			err := cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).FirstErr()
			cancel()
			mu.Lock()
			if err == nil {
				acked[v] = true
				lastAck = time.Now()
			} else {
				produceErrs = append(produceErrs, err)
			}
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	testcluster.Eventually(t, 20*time.Second, func() error {
		if n := count(); n < 200 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	killed := time.Now()
	c.Node(leader).Kill()
	before := count()
	// A new leader, and writes acknowledged again.
	var newLeader int32
	testcluster.Eventually(t, 30*time.Second, func() error {
		mu.Lock()
		ok := lastAck.After(killed) && len(acked) > before
		mu.Unlock()
		if !ok {
			return errors.New("no acknowledgement since the kill")
		}
		return nil
	})
	mu.Lock()
	failover := lastAck.Sub(killed)
	mu.Unlock()
	testcluster.Eventually(t, 10*time.Second, func() error {
		p, err := partition()
		if err != nil {
			return err
		}
		if p.Leader == leader || p.Leader < 0 {
			return fmt.Errorf("leader %d", p.Leader)
		}
		newLeader = p.Leader
		return nil
	})
	t.Logf("leader %d killed; %d leads; first acknowledgement after the kill within %v", leader, newLeader, failover)
	require.Less(t, failover, 15*time.Second)

	// The old leader comes back as a follower and catches up.
	c.Node(leader).Restart()
	testcluster.Eventually(t, 20*time.Second, func() error {
		if n := count(); n < before+200 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	close(stop)
	<-done
	testcluster.Eventually(t, 30*time.Second, func() error {
		p, err := partition()
		if err != nil {
			return err
		}
		isr := slices.Clone(p.ISR)
		slices.Sort(isr)
		if !slices.Equal(isr, []int32{1, 2, 3}) {
			return fmt.Errorf("isr %v", p.ISR)
		}
		return nil
	})

	// Every acknowledged record, once.
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cons.Close()
	ends, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	end, _ := ends.Lookup(topic, 0)
	seen := map[string]int{}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for read := int64(0); read < end.Offset; {
		fs := cons.PollFetches(cctx)
		require.NoError(t, cctx.Err(), "read %d of %d", read, end.Offset)
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; read++ })
	}
	mu.Lock()
	defer mu.Unlock()
	for v := range acked {
		require.Equal(t, 1, seen[v], "acknowledged record %s read %d times", v, seen[v])
	}
	for v, n := range seen {
		require.Equal(t, 1, n, "record %s read %d times", v, n)
	}
	t.Logf("acknowledged %d, read back %d distinct of %d records, %d produce errors", want, len(seen), end.Offset, len(produceErrs))
}
