package controller

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/broker/telemetry"
)

// anyLive returns a running node other than the excluded ones.
func (cl *cluster) anyLive(except ...int32) *node {
	for _, id := range sortedIDs(cl.nodes) {
		if !slices.Contains(except, id) {
			return cl.nodes[id]
		}
	}
	return nil
}

// hardStop stops a node without a controlled shutdown: no fencing request,
// no leadership transfer (what a crash looks like to the others).
func (cl *cluster) hardStop(id int32) {
	cl.t.Helper()
	_ = cl.nodes[id].ctl.stop()
	delete(cl.nodes, id)
}

// A broker that stops heartbeating is fenced after the session timeout; it
// leaves the ISRs and the partitions it led get a leader from the live ISR.
func TestFencingElectsFromLiveISR(t *testing.T) {
	// With broker 3 stopped the leader keeps its lease only through the one
	// other voter: raft's lease is half the heartbeat timeout, and the
	// package's 250 ms was overrun by scheduling stalls on a loaded
	// machine (the leader stepped down: "no active controller" below).
	// 1 s timeouts (a 500 ms lease) cost about half a second here.
	cl := newCluster(t, 3, func(c *Config) { c.RaftHeartbeatTimeout, c.RaftElectionTimeout = time.Second, time.Second })
	cl.waitLive(1, 2, 3)
	n1 := cl.nodes[1]
	if errs := n1.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "f", Assignment: [][]int32{{3, 2, 1}, {1, 2, 3}}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	eventually(t, 5*time.Second, func() error {
		if p := n1.pub.Load().Partition("f", 0); p == nil || p.Leader != 3 {
			return fmt.Errorf("partition f-0 %+v", p)
		}
		return nil
	})
	cl.hardStop(3)
	eventually(t, 20*time.Second, func() error {
		img := n1.pub.Load()
		if !img.Brokers[3].Fenced {
			return fmt.Errorf("broker 3 not fenced")
		}
		return nil
	})
	fenced := time.Now()
	// Not before a whole session without a heartbeat: measured from the
	// last one the fencing controller saw, not from the stop (heartbeats
	// are an interval plus a round trip apart, more on a loaded machine,
	// so the last one can be well over an interval before the stop).
	act, err := cl.active()
	if err != nil {
		t.Fatal(err)
	}
	act.ctl.hbMu.Lock()
	s := act.ctl.sessions[3]
	var lastSeen time.Time
	if s != nil {
		lastSeen = s.lastSeen
	}
	act.ctl.hbMu.Unlock()
	if s == nil {
		t.Fatalf("active controller %d has no session for broker 3", act.cfg.NodeID)
	}
	if el := fenced.Sub(lastSeen); el < n1.cfg.SessionTimeout {
		t.Fatalf("broker fenced %v after its last heartbeat, before the session timeout %v", el, n1.cfg.SessionTimeout)
	}
	img := n1.pub.Load()
	p0, p1 := img.Partition("f", 0), img.Partition("f", 1)
	if p0.Leader != 2 || !slices.Equal(p0.ISR, []int32{2, 1}) || p0.LeaderEpoch != 1 {
		t.Fatalf("f-0 after fencing its leader: %+v", p0)
	}
	if p1.Leader != 1 || !slices.Equal(p1.ISR, []int32{1, 2}) || p1.LeaderEpoch != 0 || p1.PartitionEpoch != 1 {
		t.Fatalf("f-1 after fencing a follower: %+v", p1)
	}
	// The survivors agree.
	eventually(t, 5*time.Second, func() error {
		a, b := cl.nodes[1].pub.Load(), cl.nodes[2].pub.Load()
		if a.Offset != b.Offset || !slices.Equal(a.Partition("f", 0).ISR, b.Partition("f", 0).ISR) {
			return fmt.Errorf("nodes at %d and %d", a.Offset, b.Offset)
		}
		return nil
	})
}

// With the ISR down to the leader, fencing it leaves the partition offline
// (no unclean election) until unclean.leader.election.enable is set on the
// topic; that election is counted.
func TestNoUncleanElectionUnlessEnabled(t *testing.T) {
	regs := map[int32]*telemetry.Registry{}
	cl := newCluster(t, 3, func(c *Config) {
		regs[c.NodeID] = telemetry.New()
		c.Registry = regs[c.NodeID]
	})
	cl.waitLive(1, 2, 3)
	n1 := cl.nodes[1]
	if errs := n1.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "u", Assignment: [][]int32{{3, 1}}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	var p metadata.Partition
	eventually(t, 5*time.Second, func() error {
		if pp := n1.pub.Load().Partition("u", 0); pp != nil {
			p = *pp
			return nil
		}
		return errors.New("no partition")
	})
	// Leader 3 shrinks the ISR to itself.
	got, err := n1.ctl.AlterPartition(ctx(t), AlterPartitionRequest{Topic: "u", Partition: 0, LeaderID: 3, BrokerEpoch: -1,
		LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{3}})
	if err != nil || !slices.Equal(got.ISR, []int32{3}) {
		t.Fatalf("shrink: %v %+v", err, got)
	}
	cl.hardStop(3)
	eventually(t, 20*time.Second, func() error {
		if !n1.pub.Load().Brokers[3].Fenced {
			return errors.New("broker 3 not fenced")
		}
		return nil
	})
	off := n1.pub.Load().Partition("u", 0)
	if !off.Offline() || !slices.Equal(off.ISR, []int32{3}) {
		t.Fatalf("partition after its only ISR member was fenced: %+v", off)
	}
	// The auto-election on unfence does not help: 1 is not in the ISR.
	if errs := n1.ctl.ElectLeaders(ctx(t), ElectPreferred, []TopicPartition{{"u", 0}}); !isErr(errs[0], ErrPreferredLeaderNotAvailable) {
		t.Fatalf("preferred election: %v", errs[0])
	}
	v := "true"
	if err := n1.ctl.AlterConfigs(ctx(t), "u", map[string]*string{"unclean.leader.election.enable": &v}, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		pp := n1.pub.Load().Partition("u", 0)
		if pp.Leader != 1 || !slices.Equal(pp.ISR, []int32{1}) {
			return fmt.Errorf("after enabling unclean election: %+v", pp)
		}
		return nil
	})
	// The active controller that decided counts it: one in the cluster.
	var unclean int64
	for _, reg := range regs {
		if snap, ok := reg.Get(telemetry.Name("kafka.controller", "ControllerStats", "UncleanLeaderElectionsPerSec")); ok {
			c, _ := snap.Attr(telemetry.AttrCount)
			unclean += c.Int64()
		}
	}
	if unclean != 1 {
		t.Fatalf("UncleanLeaderElectionsPerSec Count summed over the nodes = %d, want 1", unclean)
	}
}

// AlterPartition is checked against the leader epoch and the partition
// epoch; a stale one is refused and changes nothing.
func TestAlterPartitionEpochs(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	n := cl.nodes[2]
	if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "ap", Assignment: [][]int32{{1, 2, 3}}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	req := AlterPartitionRequest{Topic: "ap", Partition: 0, LeaderID: 1, BrokerEpoch: -1, LeaderEpoch: 0, PartitionEpoch: 0, NewISR: []int32{1, 2}}
	got, err := n.ctl.AlterPartition(ctx(t), req)
	if err != nil || got.PartitionEpoch != 1 || !slices.Equal(got.ISR, []int32{1, 2}) {
		t.Fatalf("shrink: %v %+v", err, got)
	}
	// The same request again carries a stale partition epoch.
	req.NewISR = []int32{1}
	got, err = n.ctl.AlterPartition(ctx(t), req)
	if !isErr(err, ErrInvalidUpdateVersion) || got.PartitionEpoch != 1 || !slices.Equal(got.ISR, []int32{1, 2}) {
		t.Fatalf("stale partition epoch: %v %+v", err, got)
	}
	req.PartitionEpoch, req.LeaderEpoch = 1, -1
	if _, err = n.ctl.AlterPartition(ctx(t), req); !isErr(err, ErrFencedLeaderEpoch) {
		t.Fatalf("stale leader epoch: %v", err)
	}
	req.LeaderEpoch, req.LeaderID = 0, 2
	if _, err = n.ctl.AlterPartition(ctx(t), req); !isErr(err, ErrNotLeaderOrFollower) {
		t.Fatalf("not the leader: %v", err)
	}
	req.LeaderID, req.NewISR = 1, []int32{2, 3}
	if _, err = n.ctl.AlterPartition(ctx(t), req); !isErr(err, ErrInvalidRequest) {
		t.Fatalf("ISR without the leader: %v", err)
	}
	req.NewISR = []int32{1, 2, 3}
	if got, err = n.ctl.AlterPartition(ctx(t), req); err != nil || got.PartitionEpoch != 2 || len(got.ISR) != 3 {
		t.Fatalf("expand: %v %+v", err, got)
	}
}
