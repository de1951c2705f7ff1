package controller

import (
	"slices"
	"sync"
	"testing"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// TestAlterPartitionGroupCommit: ISR changes sent at once (a restarted
// broker's leaders expanding hundreds of ISRs) are committed in far fewer
// metadata log entries than requests, each answered with its own result.
func TestAlterPartitionGroupCommit(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	n := cl.nodes[1]
	const parts = 200
	assign := make([][]int32, parts)
	for i := range assign {
		assign[i] = []int32{1, 2, 3}
	}
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "gc", Assignment: assign}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	before := n.ctl.Image().Offset
	errs := make([]error, parts+1)
	got := make([]metadata.Partition, parts+1)
	var wg sync.WaitGroup
	for i := range parts + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The last request names partition 0 again with its old
			// partition epoch: exactly one of the two may win.
			p := int32(i % parts)
			got[i], errs[i] = n.ctl.AlterPartition(ctx(t), AlterPartitionRequest{Topic: "gc", Partition: p, LeaderID: 1, BrokerEpoch: -1,
				LeaderEpoch: 0, PartitionEpoch: 0, NewISR: []int32{1, 2}})
		}()
	}
	wg.Wait()
	for i := 1; i < parts; i++ {
		if errs[i] != nil || got[i].PartitionEpoch != 1 || !slices.Equal(got[i].ISR, []int32{1, 2}) {
			t.Fatalf("partition %d: %v %+v", i, errs[i], got[i])
		}
	}
	if (errs[0] == nil) == (errs[parts] == nil) {
		t.Fatalf("partition 0 twice with the same epoch: %v and %v", errs[0], errs[parts])
	}
	for _, err := range []error{errs[0], errs[parts]} {
		if err != nil && !isErr(err, ErrInvalidUpdateVersion) {
			t.Fatalf("the losing request: %v", err)
		}
	}
	entries := n.ctl.Image().Offset - before
	t.Logf("%d ISR changes in %d metadata log entries", parts+1, entries)
	if entries >= parts/2 {
		t.Fatalf("%d ISR changes took %d metadata log entries: not grouped", parts+1, entries)
	}
}
