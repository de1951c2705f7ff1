package controller

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// Killing the active controller, by Close and by a hard stop: another voter
// takes over and CreateTopics works again (issued on a surviving node).
func TestControllerFailover(t *testing.T) {
	for _, mode := range []string{"close", "hard"} {
		t.Run(mode, func(t *testing.T) {
			cl := newCluster(t, 3, nil)
			cl.waitLive(1, 2, 3)
			old, err := cl.active()
			if err != nil {
				t.Fatal(err)
			}
			oldID := old.cfg.NodeID
			if mode == "close" {
				if err := old.ctl.Close(); err != nil {
					t.Fatal(err)
				}
				delete(cl.nodes, oldID)
			} else {
				cl.hardStop(oldID)
			}
			var next *node
			eventually(t, 15*time.Second, func() error {
				n, err := cl.active()
				if err != nil {
					return err
				}
				next = n
				return nil
			})
			if next.cfg.NodeID == oldID {
				t.Fatalf("active controller still %d", oldID)
			}
			errs := cl.anyLive().ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "after-" + mode, Partitions: 2, ReplicationFactor: 2}})
			if errs[0] != nil {
				t.Fatalf("CreateTopics after failover: %v", errs[0])
			}
			eventually(t, 10*time.Second, func() error {
				for id, n := range cl.nodes {
					img := n.pub.Load()
					if img.Topic("after-"+mode) == nil {
						return fmt.Errorf("node %d lacks the topic", id)
					}
					if img.ControllerID != next.cfg.NodeID {
						return fmt.Errorf("node %d: image controller %d, want %d", id, img.ControllerID, next.cfg.NodeID)
					}
				}
				return nil
			})
			// Replicas go only to live brokers: the old controller's broker
			// is fenced (at once on Close, after the session on a crash)
			// or the placement would have refused RF 2... it has 2 others.
			for _, p := range next.pub.Load().Topic("after-" + mode).Partitions {
				if slices.Contains(p.Replicas, oldID) && mode == "close" {
					t.Fatalf("replica placed on the shut-down broker %d: %+v", oldID, p)
				}
			}
		})
	}
}

// A restart loads the newest snapshot and replays only the log after it;
// the result is the image the node had before.
func TestRestartFromSnapshotAndTail(t *testing.T) {
	cl := newCluster(t, 1, func(c *Config) { c.TrailingLogs = 1 })
	cl.waitLive(1)
	n := cl.nodes[1]
	for i := range 10 {
		if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: fmt.Sprintf("s%d", i), Partitions: 2, ReplicationFactor: 1}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	if err := n.ctl.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	snapAt := n.pub.Load().Offset
	for i := 10; i < 13; i++ {
		if errs := n.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: fmt.Sprintf("s%d", i), Partitions: 1, ReplicationFactor: 1}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	if errs := n.ctl.DeleteTopics(ctx(t), []string{"s3"}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	// Hard stop: no shutdown record, the last image is the one to match.
	cl.hardStop(1)
	before := n.pub.Load()
	snaps, _ := filepath.Glob(filepath.Join(n.cfg.DataDir, "snapshots", "*"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot on disk")
	}

	pub := metadata.NewPublisher(metadata.Empty(""))
	var first *metadata.Image
	applied := 0
	reached := make(chan *metadata.Image, 1)
	pub.Subscribe(func(prev, next *metadata.Image) {
		if prev == nil {
			return
		}
		if first == nil {
			first = next
		}
		applied++
		if next.Offset == before.Offset {
			reached <- next
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
	case img := <-reached:
		if !reflect.DeepEqual(img.Topics, before.Topics) || !reflect.DeepEqual(img.Brokers, before.Brokers) || img.ControllerID != before.ControllerID {
			t.Fatal("image after restart differs from the image before")
		}
		if first.Offset < snapAt {
			t.Fatalf("restart started at offset %d, before the snapshot at %d: the snapshot was not used", first.Offset, snapAt)
		}
		if applied > 1+int(before.Offset-snapAt) {
			t.Fatalf("restart applied %d images for a tail of %d entries", applied, before.Offset-snapAt)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("restart did not reach offset %d (at %d)", before.Offset, pub.Load().Offset)
	}
	if pub.Load().Topic("s3") != nil || pub.Load().Topic("s12") == nil {
		t.Fatal("tail entries not applied")
	}
}

// A broker-only node follows the log by fetching from the voters, gets the
// same images, registers, and its writes reach the active controller.
func TestBrokerOnlyNodeFollowsAndForwards(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	cfg := testConfig(4, cl.voters, t.TempDir())
	cfg.Roles = Roles{Broker: true}
	cfg.DataDir = ""
	n4 := cl.start(4, cfg)
	cl.waitLive(4)
	if errs := n4.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "from4", Assignment: [][]int32{{4, 1}}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	eventually(t, 10*time.Second, func() error {
		a, b := cl.nodes[1].pub.Load(), n4.pub.Load()
		if b.Topic("from4") == nil || a.Offset != b.Offset || !reflect.DeepEqual(a.Topics, b.Topics) || !reflect.DeepEqual(a.Brokers, b.Brokers) {
			return fmt.Errorf("observer at %d, voter at %d", b.Offset, a.Offset)
		}
		return nil
	})
	q, err := n4.ctl.Quorum(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Voters) != 3 || len(q.Observers) != 1 || q.Observers[0].ID != 4 || q.LeaderID < 1 || q.HighWatermark <= 0 {
		t.Fatalf("quorum: %+v", q)
	}
	if rm := n4.ctl.RaftMetrics(); rm.CurrentState != "observer" || rm.CurrentLeader != int64(q.LeaderID) {
		t.Fatalf("observer raft metrics: %+v", rm)
	}
	act, _ := cl.active()
	if rm := act.ctl.RaftMetrics(); rm.CurrentState != "leader" || rm.CurrentVote != int64(act.cfg.NodeID) || rm.LogEndOffset < rm.HighWatermark || rm.AppendRecordsRate <= 0 {
		t.Fatalf("leader raft metrics: %+v", rm)
	}
}

// Misconfigurations are refused at start with the key named.
func TestMisconfigurationRefused(t *testing.T) {
	lns := listeners(t, 2)
	addrs := []string{lns[0].Addr().String(), lns[1].Addr().String()}
	voters := map[int32]string{1: addrs[0], 2: addrs[1]}
	cases := []struct {
		name, key string
		mod       func(*Config)
	}{
		{"controller not a voter", "controller.quorum.voters", func(c *Config) { c.NodeID = 3 }},
		{"broker-only voter", "controller.quorum.voters", func(c *Config) { c.Roles = Roles{Broker: true} }},
		{"no cluster id", "cluster.id", func(c *Config) { c.ClusterID = "" }},
		{"broker-only without cluster id", "cluster.id", func(c *Config) { c.NodeID, c.Roles, c.ClusterID = 5, Roles{Broker: true}, "" }},
		{"heartbeat above session", "broker.heartbeat.interval.ms", func(c *Config) { c.HeartbeatInterval = 10 * time.Second }},
	}
	for _, tc := range cases {
		cfg := testConfig(1, voters, t.TempDir())
		tc.mod(&cfg)
		_, err := New(cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: err %v, want one naming %s", tc.name, err, tc.key)
		}
	}
	for _, bad := range []string{"1@a:1,1@b:2", "x@a:1", "1@nohost", "1@a:1,2@a:1", "", "1@a:0"} {
		if _, err := ParseVoters(bad); err == nil || !strings.Contains(err.Error(), "controller.quorum.voters") {
			t.Errorf("ParseVoters(%q): %v", bad, err)
		}
	}
	if _, err := ParseRoles("broker,zookeeper"); err == nil || !strings.Contains(err.Error(), "process.roles") {
		t.Errorf("ParseRoles: %v", err)
	}

	// A data dir of another cluster.
	dir := t.TempDir()
	one := map[int32]string{1: addrs[0]}
	cfg := testConfig(1, one, dir)
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	cfg.ClusterID = "another-cluster"
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "cluster.id") {
		t.Fatalf("other cluster's data dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}
}

// A second live process with a node.id already registered by a live one
// is refused (Fatal names node.id); the first keeps its registration.
func TestNodeIDClash(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cfg := testConfig(4, cl.voters, "")
	cfg.Roles = Roles{Broker: true}
	cl.start(4, cfg)
	cl.waitLive(1, 2, 3, 4)
	epoch := cl.nodes[1].pub.Load().Brokers[4].Epoch
	dup, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := dup.Start(metadata.Broker{ID: 4}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dup.Close() })
	select {
	case err := <-dup.Fatal():
		if !strings.Contains(err.Error(), "node.id") || !errors.Is(err, ErrDuplicateBrokerRegistration) {
			t.Fatalf("fatal error %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("duplicate node.id not refused")
	}
	if b := cl.nodes[1].pub.Load().Brokers[4]; b.Epoch != epoch || b.Fenced {
		t.Fatalf("original broker 4 disturbed: %+v (epoch was %d)", b, epoch)
	}
}

// Editing controller.quorum.voters does not change a formed quorum's
// membership: a restart with another voter list is refused, naming it.
func TestChangedVoterListRefused(t *testing.T) {
	lns := listeners(t, 2)
	dir := t.TempDir()
	cfg := testConfig(1, map[int32]string{1: lns[0].Addr().String()}, dir)
	cfg.Listener = lns[0]
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(metadata.Broker{ID: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	c.Close()

	cfg.Listener = nil
	cfg.Voters = map[int32]string{1: lns[0].Addr().String(), 2: lns[1].Addr().String()}
	c2, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Start(metadata.Broker{ID: 1}); err == nil || !strings.Contains(err.Error(), "controller.quorum.voters") {
		t.Fatalf("restart with another voter list: %v", err)
	}
}

// A fenced broker that restarts is registered again even while its session
// looks fresh: a controller that has just become active gives every
// registered broker a full session, fenced ones included, and refusing the
// restart as a "duplicate" made the broker give up ("node.id clash") for
// good. Kafka's hasValidSession is false for a fenced broker. Seen in
// TestCatchUpFromSnapshot (a restart within a session of a failover).
func TestFencedBrokerRestartsWithinFreshSession(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cfg := testConfig(4, cl.voters, "")
	cfg.Roles = Roles{Broker: true}
	cl.start(4, cfg)
	cl.waitLive(1, 2, 3, 4)
	cl.hardStop(4)
	var act *node
	eventually(t, 30*time.Second, func() error {
		var err error
		if act, err = cl.active(); err != nil {
			return err
		}
		if b := act.pub.Load().Brokers[4]; b == nil || !b.Fenced {
			return fmt.Errorf("broker 4 not fenced: %+v", b)
		}
		return nil
	})
	// What becoming active does to every registered broker's session, done
	// again and again while the old incarnation is the registered one: the
	// restart must not depend on that session running out.
	oldEpoch := act.pub.Load().Brokers[4].Epoch
	refresh := func() {
		if b := act.pub.Load().Brokers[4]; b != nil && b.Epoch == oldEpoch {
			act.ctl.hbMu.Lock()
			act.ctl.sessions[4] = &session{lastSeen: time.Now()}
			act.ctl.hbMu.Unlock()
		}
	}
	refresh()
	again := cl.start(4, cfg)
	eventually(t, 30*time.Second, func() error {
		refresh()
		select {
		case err := <-again.ctl.Fatal():
			t.Fatalf("the restarted broker gave up: %v", err)
		default:
		}
		if !act.pub.Load().Live(4) {
			return fmt.Errorf("broker 4 not registered again: %s", describeBrokers(act.pub.Load()))
		}
		return nil
	})
}
