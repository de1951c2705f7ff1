package controller

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// Voters stop (hard) and restart while writes go on: every acknowledged
// CreateTopics survives, and all nodes end with the same image.
func TestVoterChurnKeepsAcknowledgedWrites(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	cfgs := map[int32]Config{}
	for id, n := range cl.nodes {
		c := n.cfg
		c.Listener = nil
		cfgs[id] = c
	}
	var acked []string
	seq := 0
	create := func(n *node, k int) {
		for range k {
			name := fmt.Sprintf("churn-%d", seq)
			seq++
			if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: name, Partitions: 1, ReplicationFactor: 1}}); errs[0] == nil {
				acked = append(acked, name)
			}
		}
	}
	for round := range 4 {
		victim := int32(round%3 + 1)
		if round%2 == 0 {
			if act, err := cl.active(); err == nil {
				victim = act.cfg.NodeID // every other round the active controller
			}
		}
		cl.hardStop(victim)
		create(cl.anyLive(victim), 5)
		cl.start(victim, cfgs[victim])
		create(cl.anyLive(), 5)
	}
	if len(acked) < 20 {
		t.Fatalf("only %d of 40 creates acknowledged", len(acked))
	}
	eventually(t, 20*time.Second, func() error {
		var ref *node
		for _, n := range cl.nodes {
			if ref == nil || n.pub.Load().Offset > ref.pub.Load().Offset {
				ref = n
			}
		}
		want := ref.pub.Load()
		for _, name := range acked {
			if want.Topic(name) == nil {
				return fmt.Errorf("acknowledged topic %s lost", name)
			}
		}
		for id, n := range cl.nodes {
			img := n.pub.Load()
			if img.Offset != want.Offset || !reflect.DeepEqual(img.Topics, want.Topics) {
				return fmt.Errorf("node %d at offset %d, node %d at %d", id, img.Offset, ref.cfg.NodeID, want.Offset)
			}
		}
		return nil
	})
}
