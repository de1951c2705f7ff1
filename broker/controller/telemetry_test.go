package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

func gauge(reg *telemetry.Registry, name string) int64 {
	snap, ok := reg.Get(telemetry.Name("kafka.controller", "KafkaController", name))
	if !ok {
		return -999
	}
	v, _ := snap.Attr(telemetry.AttrValue)
	return v.Int64()
}

// KafkaController gauges on every controller (a controller-only voter
// too): exactly one ActiveControllerCount, counts from the image. The
// controller-only voter is no broker but reports its log progress.
func TestControllerGaugesAndControllerOnlyVoter(t *testing.T) {
	regs := map[int32]*telemetry.Registry{}
	cl := newCluster(t, 3, func(c *Config) {
		regs[c.NodeID] = telemetry.New()
		c.Registry = regs[c.NodeID]
		if c.NodeID == 3 {
			c.Roles = Roles{Controller: true}
		}
	})
	cl.waitLive(1, 2)
	n := cl.nodes[3]
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "g", Assignment: [][]int32{{1, 2}, {2, 1}, {1, 2}}}, {Name: "g1", Assignment: [][]int32{{1}}}}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if _, registered := n.pub.Load().Brokers[3]; registered {
		t.Fatal("controller-only node registered as a broker")
	}
	eventually(t, 10*time.Second, func() error {
		active := int64(0)
		for id, reg := range regs {
			active += gauge(reg, "ActiveControllerCount")
			for name, want := range map[string]int64{"GlobalTopicCount": 2, "GlobalPartitionCount": 4, "ActiveBrokerCount": 2,
				"FencedBrokerCount": 0, "OfflinePartitionsCount": 0, "PreferredReplicaImbalanceCount": 0} {
				if got := gauge(reg, name); got != want {
					return fmt.Errorf("node %d %s = %d, want %d", id, name, got, want)
				}
			}
		}
		if active != 1 {
			return fmt.Errorf("ActiveControllerCount summed = %d", active)
		}
		return nil
	})
	// Broker 1 goes away: g1-0 (only on 1) is offline, g-0 and g-2 have a
	// non-preferred leader (and g1-0 none).
	if err := cl.nodes[1].ctl.Close(); err != nil {
		t.Fatal(err)
	}
	delete(cl.nodes, 1)
	eventually(t, 10*time.Second, func() error {
		for _, id := range []int32{2, 3} {
			reg := regs[id]
			for name, want := range map[string]int64{"ActiveBrokerCount": 1, "FencedBrokerCount": 1, "OfflinePartitionsCount": 1, "PreferredReplicaImbalanceCount": 3} {
				if got := gauge(reg, name); got != want {
					return fmt.Errorf("node %d %s = %d, want %d", id, name, got, want)
				}
			}
		}
		return nil
	})
	if gauge(regs[1], "ActiveControllerCount") != -999 {
		t.Fatal("a closed controller still exports its gauges")
	}
	// After the failover the new active controller learns each voter's
	// progress from its next heartbeat.
	eventually(t, 10*time.Second, func() error {
		q, err := n.ctl.Quorum(ctx(t))
		if err != nil {
			return err
		}
		for _, v := range q.Voters {
			if v.ID != 1 && (v.LogEndOffset <= 0 || v.LastFetchTimestamp <= 0) {
				return fmt.Errorf("voter %d progress unknown: %+v", v.ID, q)
			}
		}
		return nil
	})
}
