package controller

import (
	"slices"
	"testing"
)

// TestAlterPartitionsOneEntry: a broker's batch of ISR changes, sent
// through any node, is decided in order and committed as one metadata log
// entry, each change answered on its own (a second change of the same
// partition with the old partition epoch is refused).
func TestAlterPartitionsOneEntry(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	const parts = 200
	assign := make([][]int32, parts)
	for i := range assign {
		assign[i] = []int32{1, 2, 3}
	}
	n := cl.nodes[2]
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "ap", Assignment: assign}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	var reqs []AlterPartitionRequest
	for p := range int32(parts) {
		reqs = append(reqs, AlterPartitionRequest{Topic: "ap", Partition: p, LeaderID: 1, BrokerEpoch: -1, NewISR: []int32{1, 2}})
	}
	reqs = append(reqs, AlterPartitionRequest{Topic: "ap", Partition: 7, LeaderID: 1, BrokerEpoch: -1, NewISR: []int32{1}})
	before := n.ctl.Image().Offset
	got, errs := n.ctl.AlterPartitions(ctx(t), reqs)
	if entries := n.ctl.Image().Offset - before; entries != 1 {
		t.Fatalf("%d ISR changes took %d metadata log entries, want 1", len(reqs), entries)
	}
	for i := range parts {
		if errs[i] != nil || got[i].PartitionEpoch != 1 || !slices.Equal(got[i].ISR, []int32{1, 2}) {
			t.Fatalf("change %d: %v %+v", i, errs[i], got[i])
		}
	}
	if !isErr(errs[parts], ErrInvalidUpdateVersion) || got[parts].PartitionEpoch != 1 {
		t.Fatalf("the stale second change of partition 7: %v %+v", errs[parts], got[parts])
	}
	// The forwarding node applied the entry before answering.
	if p7 := n.ctl.Image().Partition("ap", 7); !slices.Equal(p7.ISR, []int32{1, 2}) {
		t.Fatalf("partition 7 in the image: %+v", p7)
	}
}
