package controller

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// Three voters form a quorum, register, and every node publishes the same
// image at the same offset; a write issued on a non-leader is forwarded.
func TestThreeNodesSameImagesAndForwarding(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	act, err := cl.active()
	if err != nil {
		t.Fatal(err)
	}
	var follower *node
	for id, n := range cl.nodes {
		if id != act.cfg.NodeID {
			follower = n
			break
		}
	}
	errs := follower.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "r3", Partitions: 6, ReplicationFactor: 3}})
	if errs[0] != nil {
		t.Fatalf("forwarded create: %v", errs[0])
	}
	// The calling node has applied its own write when the call returns.
	if follower.pub.Load().Topic("r3") == nil {
		t.Fatal("forwarded CreateTopics returned before the caller's image had the topic")
	}
	eventually(t, 10*time.Second, func() error {
		want := act.pub.Load()
		for id, n := range cl.nodes {
			img := n.pub.Load()
			if img.Topic("r3") == nil {
				return fmt.Errorf("node %d has no topic r3", id)
			}
			if img.Offset == want.Offset && !reflect.DeepEqual(img.Topics, want.Topics) {
				return fmt.Errorf("node %d differs at offset %d", id, img.Offset)
			}
		}
		return nil
	})
	tp := act.pub.Load().Topic("r3")
	leaders := map[int32]int{}
	for i, p := range tp.Partitions {
		if len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader != p.Replicas[0] {
			t.Fatalf("partition %d: %+v", i, p)
		}
		leaders[p.Leader]++
	}
	if len(leaders) != 3 || leaders[1] != 2 || leaders[2] != 2 || leaders[3] != 2 {
		t.Fatalf("leaders not spread round-robin: %v", leaders)
	}
	// Every image any node published is the one the others published at
	// that offset.
	last := act.pub.Load().Offset
	for _, n := range cl.nodes {
		last = min(last, n.pub.Load().Offset)
	}
	for off := int64(1); off <= last; off++ {
		ref := act.imageAt(off)
		for id, n := range cl.nodes {
			img := n.imageAt(off)
			if (ref == nil) != (img == nil) {
				t.Fatalf("offset %d published by node %d: %v, by the active controller: %v", off, id, img != nil, ref != nil)
			}
			if img != nil && (!reflect.DeepEqual(img.Topics, ref.Topics) || !reflect.DeepEqual(img.Brokers, ref.Brokers) || img.ControllerID != ref.ControllerID) {
				t.Fatalf("node %d's image at offset %d differs from the active controller's", id, off)
			}
		}
	}
	if errs := follower.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "r4", Partitions: 1, ReplicationFactor: 4}}); !isErr(errs[0], ErrInvalidReplicationFactor) {
		t.Fatalf("rf 4 on 3 brokers: %v", errs[0])
	}
}
