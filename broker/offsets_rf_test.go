package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestOffsetsTopicWaitsForReplicationFactor: __consumer_offsets is created
// with offsets.topic.replication.factor replicas or not at all. With one of
// three brokers down, FindCoordinator answers COORDINATOR_NOT_AVAILABLE
// (Kafka's controller refuses the creation the same way), the topic does
// not exist and the broker says why in its log; once the third broker is
// back the topic is created with 3 replicas per partition and the group
// gets its coordinator.
func TestOffsetsTopicWaitsForReplicationFactor(t *testing.T) {
	c := testcluster.StartCluster(t, 3,
		testcluster.Prop("broker.session.timeout.ms", "2000"),
		testcluster.Prop("broker.heartbeat.interval.ms", "300"),
		testcluster.Prop("offsets.topic.num.partitions", "3"),
		testcluster.Prop("offsets.topic.replication.factor", "3"))
	c.Node(3).Stop()
	c.WaitBrokersListed(t) // 3 is fenced: two listed

	ctx := context.Background()
	via := func(id int32) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Node(id).Addr()))
		require.NoError(t, err)
		t.Cleanup(cl.Close)
		return cl
	}
	one := via(1)
	// kgo sends the newest version both sides know (v4: keys batched).
	findCoordinator := func() (kmsg.FindCoordinatorResponseCoordinator, error) {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorKeys = "rf-group", []string{"rf-group"}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := req.RequestWith(fctx, one.SeedBrokers()[0])
		if err != nil {
			return kmsg.FindCoordinatorResponseCoordinator{}, err
		}
		if resp.Version < 4 {
			return kmsg.FindCoordinatorResponseCoordinator{Key: req.CoordinatorKey, NodeID: resp.NodeID,
				ErrorCode: resp.ErrorCode, ErrorMessage: resp.ErrorMessage}, nil
		}
		require.Len(t, resp.Coordinators, 1)
		return resp.Coordinators[0], nil
	}
	offsetsTopic := func() *kmsg.MetadataResponseTopic {
		req := kmsg.NewPtrMetadataRequest()
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := req.RequestWith(mctx, one.SeedBrokers()[0])
		require.NoError(t, err)
		for i := range resp.Topics {
			if tp := resp.Topics[i].Topic; tp != nil && *tp == "__consumer_offsets" {
				return &resp.Topics[i]
			}
		}
		return nil
	}

	resp, err := findCoordinator()
	require.NoError(t, err)
	require.Equal(t, kerr.CoordinatorNotAvailable.Code, resp.ErrorCode, "FindCoordinator with 2 of 3 brokers live: %+v", resp)
	require.Contains(t, *resp.ErrorMessage, "offsets.topic.replication.factor")
	require.Nil(t, offsetsTopic(), "__consumer_offsets created with fewer replicas than offsets.topic.replication.factor")
	// The broker logs before it answers, but its stderr reaches Logs()
	// through a pipe and the harness's reader goroutine, which may not
	// have run yet when the answer is in.
	const warning = "fewer live brokers than offsets.topic.replication.factor"
	testcluster.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(c.Node(1).Logs(), warning) {
			return fmt.Errorf("broker 1 did not log %q", warning)
		}
		return nil
	})
	// Asked again at once: still refused, and the warning is not repeated.
	resp, err = findCoordinator()
	require.NoError(t, err)
	require.Equal(t, kerr.CoordinatorNotAvailable.Code, resp.ErrorCode)
	require.Equal(t, 1, strings.Count(c.Node(1).Logs(), warning))

	c.Node(3).Restart()
	c.WaitBrokersListed(t)
	testcluster.Eventually(t, 20*time.Second, func() error {
		resp, err := findCoordinator()
		if err != nil {
			return err
		}
		if resp.ErrorCode != 0 {
			return fmt.Errorf("FindCoordinator: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		return nil
	})
	tp := offsetsTopic()
	require.NotNil(t, tp)
	require.Len(t, tp.Partitions, 3)
	for _, p := range tp.Partitions {
		require.Len(t, p.Replicas, 3, "__consumer_offsets-%d replicas", p.Partition)
	}
}
