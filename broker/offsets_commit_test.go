package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestOffsetCommitWaitsForISRShrink: the coordinator commits offsets of
// partitions hosted on other brokers (it once answered
// UNKNOWN_TOPIC_OR_PARTITION for any partition it held no replica of), and
// an offset commit waits up to
// offsets.commit.timeout.ms for the in-sync replicas of its
// __consumer_offsets partition. With a follower paused, the commit is
// committed once the leader drops the follower from the ISR
// (replica.lag.time.max.ms, 8 s here), which is inside the 30 s commit
// timeout; a commit timeout fixed at Kafka's default 5 s would answer
// REQUEST_TIMED_OUT instead.
func TestOffsetCommitWaitsForISRShrink(t *testing.T) {
	c := testcluster.StartCluster(t, 3,
		testcluster.Prop("offsets.topic.num.partitions", "1"),
		testcluster.Prop("offsets.topic.replication.factor", "2"),
		testcluster.Prop("offsets.commit.timeout.ms", "30000"),
		testcluster.Prop("replica.lag.time.max.ms", "8000"),
		testcluster.Prop("replica.fetch.wait.max.ms", "100"))
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Three single-replica partitions: spread over the three brokers, so
	// at least two live away from the group's coordinator.
	_, err = adm.CreateTopic(ctx, 3, 1, nil, "orders")
	require.NoError(t, err)

	commit := func(at int64) error {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		var o kadm.Offsets
		for p := range int32(3) {
			o.AddOffset("orders", p, at, -1)
		}
		resp, err := adm.CommitOffsets(cctx, "g", o)
		if err != nil {
			return err
		}
		return resp.Error()
	}
	// The first commit creates __consumer_offsets (RF 2) and commits on
	// both replicas.
	testcluster.Eventually(t, 30*time.Second, func() error { return commit(10) })
	var leader, follower int32 = -1, -1
	testcluster.Eventually(t, 30*time.Second, func() error {
		md, err := adm.Metadata(ctx, "__consumer_offsets", "orders")
		if err != nil {
			return err
		}
		elsewhere := 0
		for _, op := range md.Topics["orders"].Partitions {
			if op.Leader != md.Topics["__consumer_offsets"].Partitions[0].Leader {
				elsewhere++
			}
		}
		if elsewhere == 0 {
			return fmt.Errorf("every partition of orders on the coordinator: %+v", md.Topics["orders"].Partitions)
		}
		p := md.Topics["__consumer_offsets"].Partitions[0]
		if len(p.ISR) != 2 {
			return fmt.Errorf("ISR %v", p.ISR)
		}
		leader = p.Leader
		for _, r := range p.Replicas {
			if r != leader {
				follower = r
			}
		}
		return nil
	})

	c.Node(follower).Pause()
	defer c.Node(follower).Resume()
	require.NoError(t, commit(20), "commit with follower %d paused (leader %d)", follower, leader)
	fetched, err := adm.FetchOffsets(ctx, "g")
	require.NoError(t, err)
	for p := range int32(3) {
		o, ok := fetched.Lookup("orders", p)
		require.True(t, ok, "partition %d", p)
		require.Equal(t, int64(20), o.At, "partition %d", p)
	}
}
