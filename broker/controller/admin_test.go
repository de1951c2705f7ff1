package controller

import (
	"slices"
	"testing"
)

// CreatePartitions, AlterConfigs and DeleteTopics on a 3-node quorum,
// issued on a node that is not necessarily the active controller.
func TestCreatePartitionsConfigsDelete(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	n := cl.nodes[2]
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "p", Partitions: 3, ReplicationFactor: 2, Configs: map[string]string{"retention.ms": "1", "segment.ms": "2"}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if err := n.ctl.CreatePartitions(ctx(t), "p", 3, nil); !isErr(err, ErrInvalidPartitions) {
		t.Fatalf("same count: %v", err)
	}
	if err := n.ctl.CreatePartitions(ctx(t), "p", 2, nil); !isErr(err, ErrInvalidPartitions) {
		t.Fatalf("fewer: %v", err)
	}
	if err := n.ctl.CreatePartitions(ctx(t), "p", 5, [][]int32{{1, 2}}); !isErr(err, ErrInvalidReplicaAssignment) {
		t.Fatalf("short assignment: %v", err)
	}
	if err := n.ctl.CreatePartitions(ctx(t), "p", 5, [][]int32{{1, 2}, {3, 9}}); !isErr(err, ErrInvalidReplicaAssignment) {
		t.Fatalf("unknown broker: %v", err)
	}
	if err := n.ctl.CreatePartitions(ctx(t), "nope", 5, nil); !isErr(err, ErrUnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v", err)
	}
	if err := n.ctl.CreatePartitions(ctx(t), "p", 6, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.ctl.CreatePartitions(ctx(t), "p", 7, [][]int32{{3, 1}}); err != nil {
		t.Fatal(err)
	}
	tp := n.pub.Load().Topic("p")
	if len(tp.Partitions) != 7 || !slices.Equal(tp.Partitions[6].Replicas, []int32{3, 1}) || tp.Partitions[6].Leader != 3 {
		t.Fatalf("partitions %+v", tp.Partitions)
	}
	for i, p := range tp.Partitions {
		if len(p.Replicas) != 2 || p.Replicas[0] == p.Replicas[1] || len(p.ISR) != 2 {
			t.Fatalf("partition %d: %+v", i, p)
		}
	}

	one := "10"
	if err := n.ctl.AlterConfigs(ctx(t), "p", map[string]*string{"retention.ms": &one, "segment.ms": nil}, false); err != nil {
		t.Fatal(err)
	}
	if c := n.pub.Load().Topic("p").Configs; c["retention.ms"] != "10" || len(c) != 1 {
		t.Fatalf("incremental: %v", c)
	}
	if err := n.ctl.AlterConfigs(ctx(t), "p", map[string]*string{"cleanup.policy": strp("compact")}, true); err != nil {
		t.Fatal(err)
	}
	if c := n.pub.Load().Topic("p").Configs; c["cleanup.policy"] != "compact" || len(c) != 1 {
		t.Fatalf("replace: %v", c)
	}
	if err := n.ctl.AlterConfigs(ctx(t), "nope", nil, true); !isErr(err, ErrUnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v", err)
	}

	errs := n.ctl.DeleteTopics(ctx(t), []string{"p", "nope"})
	if errs[0] != nil || !isErr(errs[1], ErrUnknownTopicOrPartition) {
		t.Fatalf("delete: %v", errs)
	}
	if n.pub.Load().Topic("p") != nil {
		t.Fatal("deleted topic still in the image")
	}
	// The name is free again, with a new id.
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "p", Partitions: 1, ReplicationFactor: 3}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "p_x"}, {Name: "p.x"}}); errs[0] != nil || !isErr(errs[1], ErrInvalidTopic) {
		t.Fatalf("colliding names: %v", errs)
	}
}

func strp(s string) *string { return &s }

// Kafka's rack-unaware placement: leaders spread evenly from the start
// index, followers at a shift, never the same broker twice.
func TestPlaceReplicas(t *testing.T) {
	brokers := []int32{1, 2, 3, 4, 5}
	a := placeReplicas(brokers, 10, 3, 0, 0)
	leaders := map[int32]int{}
	for i, reps := range a {
		if len(reps) != 3 || len(slices.Compact(slices.Sorted(slices.Values(reps)))) != 3 {
			t.Fatalf("partition %d: %v", i, reps)
		}
		if reps[0] != brokers[i%5] {
			t.Fatalf("partition %d leader %d, want %d", i, reps[0], brokers[i%5])
		}
		leaders[reps[0]]++
	}
	for b, n := range leaders {
		if n != 2 {
			t.Fatalf("broker %d leads %d of 10", b, n)
		}
	}
}
