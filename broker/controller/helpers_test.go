package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// listeners binds n loopback listeners on free ports; the controllers take
// them over (Config.Listener), so no port is released and re-bound.
func listeners(t *testing.T, n int) []net.Listener {
	t.Helper()
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns = append(lns, ln)
	}
	return lns
}

type node struct {
	cfg  Config
	ctl  *Controller
	pub  *metadata.Publisher
	self metadata.Broker

	mu      sync.Mutex
	history map[int64]*metadata.Image // every published image by offset
}

func (n *node) imageAt(off int64) *metadata.Image {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.history[off]
}

type cluster struct {
	t      *testing.T
	voters map[int32]string
	nodes  map[int32]*node
}

func testConfig(id int32, voters map[int32]string, dir string) Config {
	return Config{
		NodeID: id, Roles: Roles{Broker: true, Controller: true}, Voters: voters, DataDir: dir,
		ClusterID: "test-cluster", SessionTimeout: 3 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
		RaftHeartbeatTimeout: 500 * time.Millisecond, RaftElectionTimeout: 500 * time.Millisecond,
		Logger: testLogger(id),
	}
}

// testLogger is nil (discard) unless KOBS_TEST_LOGS is set, as in the
// broker tests: a flake's raft elections and fencing are then on stderr.
func testLogger(id int32) *slog.Logger {
	if os.Getenv("KOBS_TEST_LOGS") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", id)
}

// newCluster starts n nodes with both roles on loopback.
func newCluster(t *testing.T, n int, tweak func(*Config)) *cluster {
	t.Helper()
	lns := listeners(t, n)
	cl := &cluster{t: t, voters: map[int32]string{}, nodes: map[int32]*node{}}
	for i := range n {
		cl.voters[int32(i+1)] = lns[i].Addr().String()
	}
	for i := range n {
		id := int32(i + 1)
		cfg := testConfig(id, cl.voters, t.TempDir())
		cfg.Listener = lns[i]
		if tweak != nil {
			tweak(&cfg)
		}
		cl.start(id, cfg)
	}
	return cl
}

func (cl *cluster) start(id int32, cfg Config) *node {
	cl.t.Helper()
	pub := metadata.NewPublisher(metadata.Empty(cfg.ClusterID))
	nd := &node{cfg: cfg, pub: pub, history: map[int64]*metadata.Image{}}
	pub.Subscribe(func(_, next *metadata.Image) {
		nd.mu.Lock()
		nd.history[next.Offset] = next
		nd.mu.Unlock()
	})
	ctl, err := New(cfg, pub)
	if err != nil {
		cl.t.Fatalf("node %d: %v", id, err)
	}
	self := metadata.Broker{ID: id, Endpoints: []metadata.Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: 9000 + id}}}
	if err := ctl.Start(self); err != nil {
		cl.t.Fatalf("node %d start: %v", id, err)
	}
	nd.ctl, nd.self = ctl, self
	cl.nodes[id] = nd
	cl.t.Cleanup(func() { _ = ctl.Close() })
	return nd
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// active returns the active controller's node.
func (cl *cluster) active() (*node, error) {
	for _, n := range cl.nodes {
		if n.ctl.active.Load() {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no active controller")
}

// waitLive waits until every given broker is registered and unfenced in
// every running node's image.
func (cl *cluster) waitLive(ids ...int32) {
	cl.t.Helper()
	eventually(cl.t, 20*time.Second, func() error {
		for nid, n := range cl.nodes {
			img := n.pub.Load()
			for _, id := range ids {
				if !img.Live(id) {
					return fmt.Errorf("node %d: broker %d not live (brokers %v)", nid, id, describeBrokers(img))
				}
			}
		}
		return nil
	})
}

func describeBrokers(img *metadata.Image) string {
	var sb strings.Builder
	for _, id := range img.BrokerIDs() {
		b := img.Brokers[id]
		fmt.Fprintf(&sb, "%d(epoch %d fenced %v) ", id, b.Epoch, b.Fenced)
	}
	return sb.String()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}
