package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

var channelBean = telemetry.Name("kafka.server", "raft-channel-metrics", "")

// raft-channel-metrics measure each node's client side of the quorum: the
// active controller's raft RPCs to the two other voters, the broker-only
// node's log fetches. Metadata written through the quorum shows up as
// bytes on both.
func TestRaftChannelMetrics(t *testing.T) {
	regs := map[int32]*telemetry.Registry{}
	cl := newCluster(t, 3, func(c *Config) {
		regs[c.NodeID] = telemetry.New()
		c.Registry = regs[c.NodeID]
	})
	cl.waitLive(1, 2, 3)
	obs := testConfig(4, cl.voters, "")
	obs.Roles = Roles{Broker: true}
	regs[4] = telemetry.New()
	obs.Registry = regs[4]
	n4 := cl.start(4, obs)
	cl.waitLive(4)
	act, err := cl.active()
	if err != nil {
		t.Fatal(err)
	}
	leader := act.cfg.NodeID

	want := []string{"connection-count", "connection-creation-total", "connection-close-total", "request-total",
		"response-total", "outgoing-byte-total", "incoming-byte-total"}
	for id, reg := range regs {
		a := beanAttrs(reg, channelBean)
		for _, k := range want {
			if _, ok := a[k]; !ok {
				t.Fatalf("node %d raft-channel-metrics lacks %s: %v", id, k, a)
			}
		}
	}
	active := func(id int32, a map[string]any, minConns float64) error {
		if num(a, "connection-count") < minConns || num(a, "connection-creation-total") < num(a, "connection-count") ||
			num(a, "request-total") <= 0 || num(a, "response-total") <= 0 || num(a, "response-total") > num(a, "request-total") ||
			num(a, "outgoing-byte-total") <= 0 || num(a, "incoming-byte-total") <= 0 {
			return fmt.Errorf("node %d raft-channel-metrics %v", id, a)
		}
		return nil
	}
	eventually(t, 10*time.Second, func() error {
		// The leader dials each follower (raft's pool may hold more
		// than one connection per follower while it pipelines); the
		// broker-only node the voters it fetched from.
		if err := active(leader, beanAttrs(regs[leader], channelBean), 2); err != nil {
			return err
		}
		return active(4, beanAttrs(regs[4], channelBean), 1)
	})

	// 40 topics with 249-character names: each name travels in raft
	// entries from the leader to both followers and in fetch responses
	// to the broker-only node.
	before := map[int32]map[string]any{leader: beanAttrs(regs[leader], channelBean), 4: beanAttrs(regs[4], channelBean)}
	var specs []TopicSpec
	for i := range 40 {
		specs = append(specs, TopicSpec{Name: fmt.Sprintf("%03d%s", i, strings.Repeat("t", 246)), Assignment: [][]int32{{1}}})
	}
	for i, err := range n4.ctl.CreateTopics(ctx(t), specs) {
		if err != nil {
			t.Fatalf("topic %d: %v", i, err)
		}
	}
	const payload = 40 * 249
	eventually(t, 10*time.Second, func() error {
		if n4.pub.Load().Topic(specs[39].Name) == nil {
			return fmt.Errorf("broker-only node has not applied the topics")
		}
		l, o := beanAttrs(regs[leader], channelBean), beanAttrs(regs[4], channelBean)
		if d := num(l, "outgoing-byte-total") - num(before[leader], "outgoing-byte-total"); d < 2*payload {
			return fmt.Errorf("leader sent %.0f bytes for %d bytes of names to 2 followers", d, payload)
		}
		if d := num(o, "incoming-byte-total") - num(before[4], "incoming-byte-total"); d < payload {
			return fmt.Errorf("broker-only node read %.0f bytes for %d bytes of names", d, payload)
		}
		if num(o, "request-total") <= num(before[4], "request-total") || num(o, "response-total") <= num(before[4], "response-total") {
			return fmt.Errorf("broker-only node fetched nothing: %v then %v", before[4], o)
		}
		return nil
	})

	// A closed node's bean goes with it.
	if err := n4.ctl.Close(); err != nil {
		t.Fatal(err)
	}
	delete(cl.nodes, 4)
	if a := beanAttrs(regs[4], channelBean); a != nil {
		t.Fatalf("closed node still exports raft-channel-metrics %v", a)
	}
}
