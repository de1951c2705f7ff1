package controller

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// A voter that was down while the others compacted their logs catches up
// from the leader's snapshot (raft InstallSnapshot -> Restore) and ends
// with the same image; a broker-only node too far behind for the in-memory
// tail gets the whole state over the fetch RPC.
func TestCatchUpFromSnapshot(t *testing.T) {
	old := tailEntries
	tailEntries = 4
	t.Cleanup(func() { tailEntries = old })

	cl := newCluster(t, 3, func(c *Config) { c.TrailingLogs = 2 })
	cl.waitLive(1, 2, 3)
	n3 := cl.nodes[3]
	cfg3 := n3.cfg
	cfg3.Listener = nil
	cl.hardStop(3)

	obs := testConfig(4, cl.voters, "")
	obs.Roles = Roles{Broker: true}
	n4 := cl.start(4, obs)
	cl.waitLive(4)
	n4.ctl.Close() // controlled shutdown: fenced, then far behind
	delete(cl.nodes, 4)

	live := cl.anyLive(3, 4)
	for i := range 12 {
		if errs := live.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: fmt.Sprintf("c%d", i), Partitions: 1, ReplicationFactor: 2}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	act, err := cl.active()
	if err != nil {
		t.Fatal(err)
	}
	if err := act.ctl.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := act.ctl.store.FirstIndex(); first <= 3 {
		t.Fatalf("leader log not compacted (first index %d)", first)
	}
	snapAt := act.pub.Load().Offset

	back := cl.start(3, cfg3)
	obsBack := cl.start(4, obs)
	eventually(t, 20*time.Second, func() error {
		for _, n := range []*node{back, obsBack} {
			img, ref := n.pub.Load(), act.pub.Load()
			if img.Topic("c11") == nil {
				return fmt.Errorf("node %d at offset %d lacks c11", n.cfg.NodeID, img.Offset)
			}
			if img.Offset == ref.Offset && !reflect.DeepEqual(img.Topics, ref.Topics) {
				return fmt.Errorf("node %d differs at offset %d", n.cfg.NodeID, img.Offset)
			}
		}
		return nil
	})
	cl.waitLive(1, 2, 3, 4)
	// Both skipped entries: they got state, not the entries, up to the
	// snapshot (the voter replays what it had before, then jumps).
	for _, n := range []*node{back, obsBack} {
		skipped := 0
		for off := int64(1); off < snapAt; off++ {
			if act.imageAt(off) != nil && n.imageAt(off) == nil {
				skipped++
			}
		}
		if skipped == 0 {
			t.Fatalf("node %d applied every entry up to %d: no snapshot was used", n.cfg.NodeID, snapAt)
		}
	}
}
