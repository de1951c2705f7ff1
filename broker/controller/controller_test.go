package controller

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kobs-dev/kobs/broker/metadata"
)

func TestSingleNodeCreateAndRestart(t *testing.T) {
	cl := newCluster(t, 1, nil)
	cl.waitLive(1)
	n := cl.nodes[1]
	errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "a", Partitions: 3, ReplicationFactor: 1, Configs: map[string]string{"retention.ms": "1000"}}})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	img := n.pub.Load()
	tp := img.Topic("a")
	if tp == nil || len(tp.Partitions) != 3 || tp.Configs["retention.ms"] != "1000" {
		t.Fatalf("topic a: %+v", tp)
	}
	for i, p := range tp.Partitions {
		if p.Leader != 1 || !slices.Equal(p.ISR, []int32{1}) || !slices.Equal(p.Replicas, []int32{1}) {
			t.Fatalf("partition %d: %+v", i, p)
		}
	}
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "a", Partitions: 1, ReplicationFactor: 1}}); !isErr(errs[0], ErrTopicExists) {
		t.Fatalf("second create: %v", errs[0])
	}
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "b", Partitions: 1, ReplicationFactor: 2}}); !isErr(errs[0], ErrInvalidReplicationFactor) {
		t.Fatalf("rf 2 on one broker: %v", errs[0])
	}
	// validateOnly checks and creates nothing.
	off := n.pub.Load().Offset
	errs = n.ctl.ValidateCreateTopics(ctx(t), []TopicSpec{{Name: "v", Partitions: 2, ReplicationFactor: 1}, {Name: "a", Partitions: 1, ReplicationFactor: 1}, {Name: "bad/name", Partitions: 1, ReplicationFactor: 1}})
	if errs[0] != nil || !isErr(errs[1], ErrTopicExists) || !isErr(errs[2], ErrInvalidTopic) {
		t.Fatalf("validate only: %v", errs)
	}
	if err := n.ctl.ValidateCreatePartitions(ctx(t), "a", 2, nil); !isErr(err, ErrInvalidPartitions) {
		t.Fatalf("validate partitions: %v", err)
	}
	if n.pub.Load().Topic("v") != nil || n.pub.Load().Offset != off {
		t.Fatal("validateOnly wrote to the log")
	}
	if err := n.ctl.Close(); err != nil {
		t.Fatal(err)
	}
	// Close was a controlled shutdown: the fence is in the log.
	before := n.pub.Load()
	if !before.Brokers[1].Fenced || before.Partition("a", 0).Leader != metadata.NoLeader {
		t.Fatalf("after controlled shutdown: broker %+v partition %+v", before.Brokers[1], before.Partition("a", 0))
	}
	// The restarted node replays the log; capture its image at the offset
	// the first run ended with.
	pub := metadata.NewPublisher(metadata.Empty(""))
	replayed := make(chan *metadata.Image, 1)
	pub.Subscribe(func(_, next *metadata.Image) {
		if next.Offset == before.Offset {
			replayed <- next
		}
	})
	n.cfg.Listener = nil // the first run's listener is closed: bind the address again
	ctl, err := New(n.cfg, pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(n.self); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	select {
	case img := <-replayed:
		if !reflect.DeepEqual(img.Topics, before.Topics) || !reflect.DeepEqual(img.Brokers, before.Brokers) {
			t.Fatalf("replayed image differs:\n%+v\n%+v", img.Topics["a"], before.Topics["a"])
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("restarted node did not reach offset %d (at %d)", before.Offset, pub.Load().Offset)
	}
	// It registers again, is unfenced and leads its partitions again.
	eventually(t, 10*time.Second, func() error {
		img := pub.Load()
		if p := img.Partition("a", 2); p.Leader != 1 || img.Brokers[1].Fenced || p.LeaderEpoch != 2 {
			return fmt.Errorf("partition %+v broker %+v", p, img.Brokers[1])
		}
		return nil
	})
	if got := pub.Load().ClusterID; got != "test-cluster" {
		t.Fatalf("cluster id %q", got)
	}
}

func isErr(err, target error) bool {
	if err == nil {
		return false
	}
	k := KafkaError(err)
	return k == target
}
