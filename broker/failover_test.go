package broker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestKillLeaderUnderLoad is issue 9's failover acceptance over three
// `kobs broker` processes (each a voter): kill -9 the partition leader
// under continuous idempotent acks=all produce (min.insync.replicas=2). A
// new leader takes over within seconds; every acknowledged record is read
// back exactly once; the old leader restarts, truncates what it had not
// committed and rejoins the ISR with the same log.
func TestKillLeaderUnderLoad(t *testing.T) {
	c := testcluster.StartCluster(t, 3, fastFailover()...)
	const topic = "failover"
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(60*time.Second))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	minISR := "2"
	createReplicated(t, adm, topic, 3, map[string]*string{"min.insync.replicas": &minISR})

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

	prod := startLoadProducer(ctx, cl, topic)
	testcluster.Eventually(t, 20*time.Second, func() error {
		if n := prod.count(); n < 200 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	killed := time.Now()
	c.Node(leader).Kill()
	before := prod.count()
	// A new leader, and writes acknowledged again.
	var newLeader int32
	testcluster.Eventually(t, 30*time.Second, func() error {
		if !prod.ackedSince(killed, before) {
			return errors.New("no acknowledgement since the kill")
		}
		return nil
	})
	failover := prod.lastAcked().Sub(killed)
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
		if n := prod.count(); n < before+200 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	prod.halt()
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
	seen, end := readPartition0(ctx, t, adm, c.Addrs(), topic)
	for v := range prod.acked {
		require.Equal(t, 1, seen[v], "acknowledged record %s read %d times", v, seen[v])
	}
	for v, n := range seen {
		require.Equal(t, 1, n, "record %s read %d times", v, n)
	}
	t.Logf("acknowledged %d, read back %d distinct of %d records, %d produce errors", len(prod.acked), len(seen), end, len(prod.errs))
}
