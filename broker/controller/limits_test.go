package controller

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPartitionLimitDecidedByTheController: kobs.max.partitions.per.broker
// is checked where creations are committed, one at a time, so two
// creations racing through different nodes cannot pass it together (the
// receiving broker's own check saw neither), and internal topics count.
func TestPartitionLimitDecidedByTheController(t *testing.T) {
	cl := newCluster(t, 3, func(c *Config) { c.MaxPartitionsPerBroker = 10 })
	cl.waitLive(1, 2, 3)

	// Each topic puts 6 replicas on every broker: one fits, two do not.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, via := range []int32{2, 3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cl.nodes[via].ctl.CreateTopics(ctx(t), []TopicSpec{{Name: []string{"a", "b"}[i], Partitions: 6, ReplicationFactor: 3}})[0]
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case isErr(err, ErrPolicyViolation) && strings.Contains(err.Error(), "kobs.max.partitions.per.broker=10"):
			refused++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("racing creations: %d created, %d refused (%v); want one each", ok, refused, errs)
	}
	n := cl.nodes[1]
	eventually(t, 10*time.Second, func() error { return checkHeld(n, 6) })

	created := "a"
	if errs[0] != nil {
		created = "b"
	}
	if err := n.ctl.CreatePartitions(ctx(t), created, 11, nil); !isErr(err, ErrPolicyViolation) {
		t.Fatalf("CreatePartitions past the limit: %v", err)
	}
	if err := n.ctl.CreatePartitions(ctx(t), created, 10, nil); err != nil {
		t.Fatalf("CreatePartitions up to the limit: %v", err)
	}
	err := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "__consumer_offsets", Partitions: 1, ReplicationFactor: 1, Internal: true}})[0]
	if !isErr(err, ErrPolicyViolation) {
		t.Fatalf("internal topic on full brokers: %v", err)
	}
	if n.pub.Load().Topic("__consumer_offsets") != nil {
		t.Fatal("__consumer_offsets created past the limit")
	}
}

// checkHeld says whether every broker holds want partition replicas in
// n's image.
func checkHeld(n *node, want int) error {
	held := map[int32]int{}
	for _, tp := range n.pub.Load().Topics {
		for _, p := range tp.Partitions {
			for _, r := range p.Replicas {
				held[r]++
			}
		}
	}
	for _, id := range []int32{1, 2, 3} {
		if held[id] != want {
			return fmt.Errorf("broker %d holds %d replicas, want %d (%v)", id, held[id], want, held)
		}
	}
	return nil
}
