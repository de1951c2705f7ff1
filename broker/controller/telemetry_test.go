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
	// raft-metrics (every node), broker-metadata-metrics (broker role),
	// MetadataLoader CurrentControllerId.
	act, err := cl.active()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		for id, reg := range regs {
			a := beanAttrs(reg, telemetry.Name("kafka.server", "raft-metrics", ""))
			state := "follower"
			if id == act.cfg.NodeID {
				state = "leader"
			}
			if a["current-state"] != state || a["current-leader"] != float64(act.cfg.NodeID) || num(a, "high-watermark") < 1 ||
				num(a, "log-end-offset") < num(a, "high-watermark") || num(a, "current-epoch") < 1 {
				return fmt.Errorf("node %d raft-metrics %v", id, a)
			}
			if id == act.cfg.NodeID && (num(a, "append-records-rate") <= 0 || num(a, "commit-latency-avg") <= 0) {
				return fmt.Errorf("leader raft-metrics %v", a)
			}
			if id != act.cfg.NodeID && num(a, "fetch-records-rate") <= 0 {
				return fmt.Errorf("follower %d raft-metrics %v", id, a)
			}
			b := beanAttrs(reg, telemetry.Name("kafka.server", "broker-metadata-metrics", ""))
			if id == 3 {
				if b != nil {
					return fmt.Errorf("controller-only node has broker-metadata-metrics %v", b)
				}
			} else if num(b, "last-applied-record-offset") < 1 || num(b, "last-applied-record-timestamp") < 1 {
				return fmt.Errorf("node %d broker-metadata-metrics %v", id, b)
			}
			if g, ok := reg.Get(telemetry.Name("kafka.server", "MetadataLoader", "CurrentControllerId")); !ok {
				return fmt.Errorf("node %d: no CurrentControllerId", id)
			} else if v, _ := g.Attr(telemetry.AttrValue); v.Int64() != int64(act.cfg.NodeID) {
				return fmt.Errorf("node %d CurrentControllerId %d", id, v.Int64())
			}
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

// beanAttrs reads a Kafka Metrics bean's attributes (nil if absent).
func beanAttrs(reg *telemetry.Registry, name telemetry.ObjectName) map[string]any {
	snap, ok := reg.Get(name)
	if !ok {
		return nil
	}
	out := map[string]any{}
	for i := range snap.Len() {
		a := snap.At(i)
		if a.Value.Kind() == telemetry.ValueString {
			out[a.Name] = a.Value.String()
		} else {
			f, _ := a.Value.Float64()
			out[a.Name] = f
		}
	}
	return out
}

func num(m map[string]any, k string) float64 {
	f, _ := m[k].(float64)
	return f
}
