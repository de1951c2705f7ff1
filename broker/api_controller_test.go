package broker

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/controller"
	"github.com/kobs-dev/kobs/broker/metadata"
)

// startQuorum starts n controllers (both roles) on loopback and waits
// until every broker is live in node 1's image.
func startQuorum(t *testing.T, n int) []*controller.Controller {
	t.Helper()
	voters := map[int32]string{}
	var lns []net.Listener
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		voters[int32(i+1)] = ln.Addr().String()
	}
	var out []*controller.Controller
	for i := range n {
		id := int32(i + 1)
		c, err := controller.New(controller.Config{
			NodeID: id, Roles: controller.Roles{Broker: true, Controller: true}, Voters: voters, DataDir: t.TempDir(),
			ClusterID: "api-test", SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
			RaftHeartbeatTimeout: 300 * time.Millisecond, RaftElectionTimeout: 300 * time.Millisecond,
			Listener: lns[i],
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(metadata.Broker{ID: id, Endpoints: []metadata.Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: 9000 + id}}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	for _, c := range out {
		select {
		case <-c.Ready():
		case <-time.After(20 * time.Second):
			t.Fatal("controller not ready")
		}
	}
	return out
}

func TestControllerAdminAPIs(t *testing.T) {
	ctls := startQuorum(t, 3)
	c := ctls[2]
	ctx := context.Background()
	if errs := c.CreateTopics(ctx, []controller.TopicSpec{{Name: "t", Assignment: [][]int32{{1, 2}, {2, 3}}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}

	// Reassign t-0 to [2,1] (reorder: completes at once), t-1 to [1,2,3]
	// (3 stays, 1 is added: in progress), an unknown partition fails.
	ar := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	ar.Version = 1
	ar.AllowReplicationFactorChange = true
	at := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	at.Topic = "t"
	for _, p := range []struct {
		idx  int32
		reps []int32
	}{{0, []int32{2, 1}}, {1, []int32{1, 2, 3}}, {7, []int32{1}}} {
		ap := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		ap.Partition, ap.Replicas = p.idx, p.reps
		at.Partitions = append(at.Partitions, ap)
	}
	ar.Topics = append(ar.Topics, at)
	aresp := alterPartitionReassignments(ctx, c, ar)
	codes := []int16{}
	for _, p := range aresp.Topics[0].Partitions {
		codes = append(codes, p.ErrorCode)
	}
	if !slices.Equal(codes, []int16{0, 0, kerr.UnknownTopicOrPartition.Code}) {
		t.Fatalf("alter reassignments codes %v", codes)
	}
	// v1 without AllowReplicationFactorChange: RF change refused.
	ar.AllowReplicationFactorChange = false
	ar.Topics[0].Partitions = ar.Topics[0].Partitions[:1]
	ar.Topics[0].Partitions[0].Replicas = []int32{1, 2, 3}
	if resp := alterPartitionReassignments(ctx, c, ar); resp.Topics[0].Partitions[0].ErrorCode != kerr.InvalidReplicationFactor.Code {
		t.Fatalf("RF change without permission: %+v", resp.Topics[0].Partitions[0])
	}

	lr := kmsg.NewPtrListPartitionReassignmentsRequest()
	lresp := listPartitionReassignments(c, lr)
	if len(lresp.Topics) != 1 || len(lresp.Topics[0].Partitions) != 1 {
		t.Fatalf("list reassignments: %+v", lresp.Topics)
	}
	lp := lresp.Topics[0].Partitions[0]
	if lp.Partition != 1 || !slices.Equal(lp.Replicas, []int32{1, 2, 3}) || !slices.Equal(lp.AddingReplicas, []int32{1}) || len(lp.RemovingReplicas) != 0 {
		t.Fatalf("listed %+v", lp)
	}
	lt := kmsg.NewListPartitionReassignmentsRequestTopic()
	lt.Topic = "nope"
	lr.Topics = append(lr.Topics, lt)
	if resp := listPartitionReassignments(c, lr); resp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: %d", resp.ErrorCode)
	}

	// t-0 is now [2,1] led by 1: a preferred election over all partitions
	// moves it to 2; t-1's preferred replica 1 is still being added (not in
	// the ISR).
	er := kmsg.NewPtrElectLeadersRequest()
	er.Version = 2
	eresp := electLeaders(ctx, c, er)
	if len(eresp.Topics) != 1 || len(eresp.Topics[0].Partitions) != 2 || eresp.Topics[0].Partitions[0].ErrorCode != 0 ||
		eresp.Topics[0].Partitions[1].ErrorCode != kerr.PreferredLeaderNotAvailable.Code {
		t.Fatalf("elect all: %+v", eresp.Topics)
	}
	// Cancel t-1's move: now an election over all leaves both out (not
	// needed anywhere).
	ar.Topics[0].Partitions[0].Partition, ar.Topics[0].Partitions[0].Replicas = 1, nil
	if resp := alterPartitionReassignments(ctx, c, ar); resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("cancel: %+v", resp.Topics[0].Partitions[0])
	}
	if resp := electLeaders(ctx, c, er); len(resp.Topics) != 0 {
		t.Fatalf("elect all when balanced: %+v", resp.Topics)
	}
	if p := c.Image().Partition("t", 0); p.Leader != 2 {
		t.Fatalf("t-0 after preferred election: %+v", p)
	}
	et := kmsg.NewElectLeadersRequestTopic()
	et.Topic, et.Partitions = "t", []int32{0}
	er.Topics = append(er.Topics, et)
	if resp := electLeaders(ctx, c, er); resp.Topics[0].Partitions[0].ErrorCode != kerr.ElectionNotNeeded.Code {
		t.Fatalf("second election: %+v", resp.Topics[0].Partitions[0])
	}

	qr := kmsg.NewPtrDescribeQuorumRequest()
	qr.Version = 2
	qt := kmsg.NewDescribeQuorumRequestTopic()
	qt.Topic = "__cluster_metadata"
	qt.Partitions = append(qt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	qr.Topics = append(qr.Topics, qt)
	var qp kmsg.DescribeQuorumResponseTopicPartition
	// Voters report their log end with heartbeats: wait until all have.
	deadline := time.Now().Add(10 * time.Second)
	for {
		qresp := describeQuorum(ctx, c, qr)
		qp = qresp.Topics[0].Partitions[0]
		ok := qp.ErrorCode == 0 && len(qp.CurrentVoters) == 3 && len(qresp.Nodes) == 3
		for _, v := range qp.CurrentVoters {
			ok = ok && v.LogEndOffset > 0 && v.LastFetchTimestamp > 0
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("describe quorum: %+v nodes %+v", qp, qresp.Nodes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if qp.LeaderID < 1 || qp.LeaderEpoch < 1 || qp.HighWatermark < 1 || len(qp.Observers) != 0 {
		t.Fatalf("describe quorum: %+v", qp)
	}
	qr.Topics[0].Topic = "other"
	if resp := describeQuorum(ctx, c, qr); resp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("other topic: %+v", resp.Topics[0].Partitions[0])
	}
}
