package broker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestReassignAndPreferredElection is issue 9's "reassign a partition's
// replicas with kadm; preferred leader election moves leadership back",
// over three `kobs broker` processes and nothing but kadm for the admin
// side: an RF 2 partition on brokers {1,2} holding records moves to {2,3}
// (AlterPartitionAssignments); while broker 3 is down the move stays in
// progress (ListPartitionReassignments: adding [3], removing [1]); once
// it is back Metadata shows replicas [2,3] and ISR {2,3}, broker 1 has deleted
// its copy and broker 3 serves every record by itself once broker 2 is
// stopped. Broker 2, the preferred leader, comes back as a follower;
// ElectLeaders(preferred) gives it the leadership again.
func TestReassignAndPreferredElection(t *testing.T) {
	c := testcluster.StartCluster(t, 3, append(fastFailover(),
		// Only the ElectLeaders request may move leadership back.
		testcluster.Prop("auto.leader.rebalance.enable", "false"))...)
	const topic = "moved"
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(30*time.Second),
		// kadm answers Metadata from the client's cache while it is
		// younger than this (default 5s): the test waits for changes.
		kgo.MetadataMinAge(50*time.Millisecond))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(10000)

	partition := func() (kadm.PartitionDetail, error) {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		md, err := adm.Metadata(mctx, topic)
		if err != nil {
			return kadm.PartitionDetail{}, err
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil {
			return kadm.PartitionDetail{}, fmt.Errorf("topic %s: %v", topic, td.Err)
		}
		p, ok := td.Partitions[0]
		if !ok {
			return kadm.PartitionDetail{}, errors.New("no partition 0")
		}
		return p, nil
	}
	waitPartition := func(what string, ok func(p kadm.PartitionDetail) bool) kadm.PartitionDetail {
		t.Helper()
		var got kadm.PartitionDetail
		testcluster.Eventually(t, 30*time.Second, func() error {
			p, err := partition()
			if err != nil {
				return err
			}
			if !ok(p) {
				return fmt.Errorf("%s: leader %d replicas %v isr %v", what, p.Leader, p.Replicas, p.ISR)
			}
			got = p
			return nil
		})
		return got
	}
	sortedEq := func(s []int32, want ...int32) bool {
		s = slices.Clone(s)
		slices.Sort(s)
		return slices.Equal(s, want)
	}

	create := kmsg.NewPtrCreateTopicsRequest()
	create.TimeoutMillis = 10000
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{1, 2}
	ct.ReplicaAssignment = append(ct.ReplicaAssignment, ra)
	create.Topics = append(create.Topics, ct)
	cresp, err := create.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Len(t, cresp.Topics, 1)
	require.Zero(t, cresp.Topics[0].ErrorCode, "create: %v", cresp.Topics[0].ErrorMessage)
	waitPartition("created on {1,2}", func(p kadm.PartitionDetail) bool {
		return slices.Equal(p.Replicas, []int32{1, 2}) && sortedEq(p.ISR, 1, 2) && p.Leader == 1
	})

	const records = 500
	produce := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).FirstErr()
			cancel()
			require.NoError(t, err, "produce %s-%d", prefix, i)
		}
	}
	produce("before", records)

	// The move, held in progress while broker 3 is down (a registered
	// broker may be a target, fenced or not, as in Kafka): 3 is added, and
	// 1 stays a replica until 3 is in the ISR.
	c.Node(3).Stop()
	c.WaitBrokersListed(t)
	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign(topic, 0, []int32{2, 3})
	ares, err := adm.AlterPartitionAssignments(ctx, req)
	require.NoError(t, err)
	require.NoError(t, ares.Error())
	ar, ok := ares[topic][0]
	require.True(t, ok, "no answer for %s-0: %+v", topic, ares)
	require.NoError(t, ar.Err)
	ls, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
	require.NoError(t, err)
	lr, ok := ls[topic][0]
	require.True(t, ok, "reassignment in progress not listed: %+v", ls)
	require.Equal(t, []int32{2, 3, 1}, lr.Replicas, "target replicas, then the ones being removed")
	require.Equal(t, []int32{3}, lr.AddingReplicas)
	require.Equal(t, []int32{1}, lr.RemovingReplicas)
	waitPartition("reassignment in progress", func(p kadm.PartitionDetail) bool {
		return slices.Equal(p.Replicas, []int32{2, 3, 1}) && sortedEq(p.ISR, 1, 2) && p.Leader == 1
	})
	produce("moving", 100)
	c.Node(3).Restart()
	moved := waitPartition("reassigned to [2,3]", func(p kadm.PartitionDetail) bool {
		return slices.Equal(p.Replicas, []int32{2, 3}) && sortedEq(p.ISR, 2, 3)
	})
	require.Equal(t, int32(2), moved.Leader, "broker 1 led and left: the first target replica in the ISR leads")
	testcluster.Eventually(t, 10*time.Second, func() error {
		ls, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
		if err != nil {
			return err
		}
		if len(ls[topic]) != 0 {
			return fmt.Errorf("still listed: %+v", ls[topic])
		}
		return nil
	})
	// Every broker answers Metadata from the same image.
	for _, id := range c.IDs() {
		one, err := kgo.NewClient(kgo.SeedBrokers(c.Node(id).Addr()))
		require.NoError(t, err)
		testcluster.Eventually(t, 10*time.Second, func() error {
			mreq := kmsg.NewPtrMetadataRequest()
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = kmsg.StringPtr(topic)
			mreq.Topics = append(mreq.Topics, mt)
			resp, err := mreq.RequestWith(ctx, one.SeedBrokers()[0])
			if err != nil {
				return err
			}
			p := resp.Topics[0].Partitions
			if len(p) != 1 || !slices.Equal(p[0].Replicas, []int32{2, 3}) || p[0].Leader != 2 {
				return fmt.Errorf("broker %d says %+v", id, p)
			}
			return nil
		})
		one.Close()
	}
	// Broker 1 deleted its replica.
	testcluster.Eventually(t, 10*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(c.Node(1).Dir(), topic+"-0")); !os.IsNotExist(err) {
			return fmt.Errorf("broker 1 still holds %s-0: %v", topic, err)
		}
		return nil
	})
	produce("after", 100)
	const total = records + 200

	// Broker 3's log holds everything: with broker 2 stopped it leads
	// alone and serves all records.
	c.Node(2).Stop()
	waitPartition("broker 3 leads alone", func(p kadm.PartitionDetail) bool {
		return p.Leader == 3 && slices.Equal(p.ISR, []int32{3})
	})
	ends, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	end, _ := ends.Lookup(topic, 0)
	require.NoError(t, end.Err)
	require.Equal(t, int64(total), end.Offset, "broker 3's end offset")
	readBack(t, c.Addrs(), topic, total)
	produce("on3", 10)

	// Broker 2, the preferred replica, comes back as a follower and
	// catches up; leadership stays with 3 until a preferred election.
	c.Node(2).Restart()
	waitPartition("broker 2 back in the ISR", func(p kadm.PartitionDetail) bool {
		return p.Leader == 3 && sortedEq(p.ISR, 2, 3)
	})
	// Over all partitions, as kafka-leader-election.sh
	// --all-topic-partitions does (a nil set is a null topic list).
	el, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, nil)
	require.NoError(t, err)
	er, ok := el[topic][0]
	require.True(t, ok, "no election answer: %+v", el)
	require.NoError(t, er.Err)
	waitPartition("preferred leader 2 leads", func(p kadm.PartitionDetail) bool {
		return p.Leader == p.Replicas[0] && p.Leader == 2 && sortedEq(p.ISR, 2, 3)
	})
	// A second election is not needed.
	el, err = adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	require.NoError(t, err)
	require.ErrorIs(t, el[topic][0].Err, kerr.ElectionNotNeeded)
	produce("back", 10)
	readBack(t, c.Addrs(), topic, total+20)
}

// readBack consumes partition 0 of topic from the start and requires n
// records, each value once.
func readBack(t *testing.T, addrs []string, topic string, n int) {
	t.Helper()
	cons, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cons.Close()
	seen := map[string]int{}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for read := 0; read < n; {
		fs := cons.PollFetches(cctx)
		require.NoError(t, cctx.Err(), "read %d of %d", read, n)
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; read++ })
	}
	require.Len(t, seen, n)
	for v, k := range seen {
		require.Equal(t, 1, k, "record %s read %d times", v, k)
	}
}
