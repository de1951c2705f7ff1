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

// TestOffsetCommitWaitsForISRShrink: the coordinator commits offsets of
// partitions hosted on other brokers (it once answered
// UNKNOWN_TOPIC_OR_PARTITION for any partition it held no replica of), and
// an offset commit waits up to
// offsets.commit.timeout.ms for the in-sync replicas of its
// __consumer_offsets partition. With a follower paused, the commit is
// committed once the leader drops the follower from the ISR
// (replica.lag.time.max.ms, 6 s here), which is inside the 30 s commit
// timeout; a commit timeout fixed at Kafka's default 5 s would answer
// REQUEST_TIMED_OUT instead.
func TestOffsetCommitWaitsForISRShrink(t *testing.T) {
	c := testcluster.StartCluster(t, 3,
		testcluster.Prop("offsets.topic.num.partitions", "1"),
		testcluster.Prop("offsets.topic.replication.factor", "2"),
		testcluster.Prop("offsets.commit.timeout.ms", "30000"),
		testcluster.Prop("replica.lag.time.max.ms", "6000"),
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

// TestLeaderOnlyRequestsOnOtherBrokers: DeleteRecords and
// DescribeProducers sent to a broker that is not the partition's leader
// (a follower, or a broker with no replica) answer
// NOT_LEADER_OR_FOLLOWER, so the client refreshes its metadata, as Kafka
// does; a follower never moves its own log start offset. A partition that
// does not exist answers UNKNOWN_TOPIC_OR_PARTITION.
func TestLeaderOnlyRequestsOnOtherBrokers(t *testing.T) {
	c := testcluster.StartCluster(t, 2)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	createReplicated(t, adm, "pair", 2, nil)
	var leader, follower int32
	testcluster.Eventually(t, 30*time.Second, func() error {
		md, err := adm.Metadata(ctx, "pair")
		if err != nil {
			return err
		}
		p := md.Topics["pair"].Partitions[0]
		if len(p.ISR) != 2 {
			return fmt.Errorf("ISR %v", p.ISR)
		}
		leader, follower = p.Leader, 3-p.Leader
		return nil
	})
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("pair"))
	require.NoError(t, err)
	defer prod.Close()
	for range 5 {
		require.NoError(t, prod.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr())
	}
	// Asked of broker id directly, not routed by kgo to the leader.
	direct := func(id int32, req kmsg.Request) kmsg.Response {
		one, err := kgo.NewClient(kgo.SeedBrokers(c.Node(id).Addr()))
		require.NoError(t, err)
		defer one.Close()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := one.SeedBrokers()[0].Request(rctx, req)
		require.NoError(t, err)
		return resp
	}
	deleteRecords := func(id int32, topic string) (int16, int64) {
		req := kmsg.NewPtrDeleteRecordsRequest()
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Offset = 2
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 5000
		p := direct(id, req).(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0]
		return p.ErrorCode, p.LowWatermark
	}
	describeProducers := func(id int32, topic string) int16 {
		req := kmsg.NewPtrDescribeProducersRequest()
		rt := kmsg.NewDescribeProducersRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		req.Topics = append(req.Topics, rt)
		return direct(id, req).(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0].ErrorCode
	}
	code, _ := deleteRecords(follower, "pair")
	require.Equal(t, kerr.NotLeaderForPartition.Code, code, "DeleteRecords on the follower")
	require.Equal(t, kerr.NotLeaderForPartition.Code, describeProducers(follower, "pair"), "DescribeProducers on the follower")
	code, _ = deleteRecords(follower, "missing")
	require.Equal(t, kerr.UnknownTopicOrPartition.Code, code)
	require.Equal(t, kerr.UnknownTopicOrPartition.Code, describeProducers(follower, "missing"))
	code, low := deleteRecords(leader, "pair")
	require.Equal(t, int16(0), code)
	require.Equal(t, int64(2), low)
	require.Equal(t, int16(0), describeProducers(leader, "pair"))

	// A broker with no replica at all: a single-replica topic placed on
	// the leader only.
	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "solo", -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{leader}
	ct.ReplicaAssignment = append(ct.ReplicaAssignment, ra)
	create.Topics = append(create.Topics, ct)
	create.TimeoutMillis = 10000
	cresp, err := create.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, int16(0), cresp.Topics[0].ErrorCode, "%v", cresp.Topics[0].ErrorMessage)
	testcluster.Eventually(t, 30*time.Second, func() error {
		if code, _ := deleteRecords(follower, "solo"); code != kerr.NotLeaderForPartition.Code {
			return fmt.Errorf("DeleteRecords on a broker without a replica: %v", kerr.ErrorForCode(code))
		}
		return nil
	})
	require.Equal(t, kerr.NotLeaderForPartition.Code, describeProducers(follower, "solo"))
}
