package controller

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Reassignment (KIP-455 bookkeeping): adding replicas join, and once they
// are in the ISR the removed ones leave; preferred leader election then
// moves leadership to the new first replica. Cancel reverts.
func TestReassignmentAndPreferredElection(t *testing.T) {
	cl := newCluster(t, 4, func(c *Config) {
		c.AutoLeaderRebalance = false
	})
	cl.waitLive(1, 2, 3, 4)
	n := cl.nodes[4]
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "m", Assignment: [][]int32{{1, 2}, {2, 3}}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	waitPart := func(idx int32, ok func(replicas, isr []int32, leader int32) bool) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			p := n.pub.Load().Partition("m", idx)
			if p == nil || !ok(p.Replicas, p.ISR, p.Leader) {
				return fmt.Errorf("m-%d: %+v", idx, p)
			}
			return nil
		})
	}
	waitPart(0, func(r, _ []int32, _ int32) bool { return len(r) == 2 })
	if errs := n.ctl.AlterReassignments(ctx(t), []Reassignment{{"m", 0, []int32{3, 4}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	waitPart(0, func(r, isr []int32, l int32) bool { return slices.Equal(r, []int32{3, 4, 1, 2}) && l == 1 })
	ls := n.ctl.ListReassignments(nil)
	if len(ls) != 1 || !slices.Equal(ls[0].Adding, []int32{3, 4}) || !slices.Equal(ls[0].Removing, []int32{1, 2}) {
		t.Fatalf("ListReassignments: %+v", ls)
	}
	// The leader reports 3 caught up: not complete yet (4 missing).
	p := *n.pub.Load().Partition("m", 0)
	got, err := n.ctl.AlterPartition(ctx(t), AlterPartitionRequest{Topic: "m", Partition: 0, LeaderID: 1, BrokerEpoch: -1, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{1, 2, 3}})
	if err != nil || len(got.AddingReplicas) != 2 {
		t.Fatalf("partial catch-up: %v %+v", err, got)
	}
	got, err = n.ctl.AlterPartition(ctx(t), AlterPartitionRequest{Topic: "m", Partition: 0, LeaderID: 1, BrokerEpoch: -1, LeaderEpoch: got.LeaderEpoch, PartitionEpoch: got.PartitionEpoch, NewISR: []int32{1, 2, 3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Replicas, []int32{3, 4}) || !slices.Equal(got.ISR, []int32{3, 4}) || got.Leader != 3 || len(got.AddingReplicas)+len(got.RemovingReplicas) != 0 || got.LeaderEpoch != p.LeaderEpoch+1 {
		t.Fatalf("completed reassignment: %+v", got)
	}
	if ls := n.ctl.ListReassignments(nil); len(ls) != 0 {
		t.Fatalf("reassignment still listed: %+v", ls)
	}

	// Cancel: m-1 from [2,3] to [4,1], then cancel.
	if errs := n.ctl.AlterReassignments(ctx(t), []Reassignment{{"m", 1, []int32{4, 1}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if errs := n.ctl.AlterReassignments(ctx(t), []Reassignment{{"m", 1, nil}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	waitPart(1, func(r, isr []int32, l int32) bool {
		return slices.Equal(r, []int32{2, 3}) && slices.Equal(isr, []int32{2, 3}) && l == 2
	})
	if errs := n.ctl.AlterReassignments(ctx(t), []Reassignment{{"m", 1, nil}}); !isErr(errs[0], ErrNoReassignmentInProgress) {
		t.Fatalf("second cancel: %v", errs[0])
	}

	// Preferred election: move m-1's leadership to 3 by fencing... simpler:
	// the leader shrinks the ISR and a preferred election is refused, then
	// after the expand it moves leadership back.
	if errs := n.ctl.ElectLeaders(ctx(t), ElectPreferred, []TopicPartition{{"m", 1}}); !isErr(errs[0], ErrElectionNotNeeded) {
		t.Fatalf("election on a preferred leader: %v", errs[0])
	}
	if errs := n.ctl.AlterReassignments(ctx(t), []Reassignment{{"m", 1, []int32{3, 2}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	// A reorder completes at once (both in the ISR); leader stays 2.
	waitPart(1, func(r, _ []int32, l int32) bool { return slices.Equal(r, []int32{3, 2}) && l == 2 })
	if errs := n.ctl.ElectLeaders(ctx(t), ElectPreferred, []TopicPartition{{"m", 1}, {"m", 9}}); errs[0] != nil || !isErr(errs[1], ErrUnknownTopicOrPartition) {
		t.Fatalf("preferred election: %v", errs)
	}
	waitPart(1, func(_, _ []int32, l int32) bool { return l == 3 })
}

// auto.leader.rebalance.enable moves leadership back to the preferred
// replica after leader.imbalance.check.interval.seconds.
func TestAutoLeaderRebalance(t *testing.T) {
	cl := newCluster(t, 3, func(c *Config) {
		c.AutoLeaderRebalance = true
		c.LeaderImbalanceCheckInterval = 300 * time.Millisecond
	})
	cl.waitLive(1, 2, 3)
	n := cl.nodes[1]
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "b", Assignment: [][]int32{{2, 3}}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if errs := n.ctl.AlterReassignments(ctx(t), []Reassignment{{"b", 0, []int32{3, 2}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	eventually(t, 10*time.Second, func() error {
		p := n.pub.Load().Partition("b", 0)
		if p.Leader != 3 || !slices.Equal(p.Replicas, []int32{3, 2}) {
			return fmt.Errorf("b-0: %+v", p)
		}
		return nil
	})
}
