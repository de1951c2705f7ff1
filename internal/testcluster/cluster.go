package testcluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kobs-dev/kobs/broker"
	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/exporters"
)

// Cluster is N kobs brokers, each a `kobs broker` process with both
// process.roles, forming one cluster: a generated cluster.id and
// controller.quorum.voters naming every node's CONTROLLER listener on
// loopback. Node ids are 1..N.
type Cluster struct {
	t         testing.TB
	ClusterID string
	Voters    string // controller.quorum.voters
	nodes     map[int32]*Process
}

// StartCluster starts n brokers in parallel and waits until each serves.
// opts apply to every node (Prop for server.properties keys, e.g. a short
// broker.session.timeout.ms); node.id, listeners, process.roles,
// controller.quorum.voters and cluster.id are set by the cluster, and a
// Dir option is ignored (each node gets its own directory).
//
// The controller ports must be named in every node's config before any
// node starts, so they are reserved by binding :0 and released just before
// the processes start; if another process takes one in that window the
// node fails with "address already in use", and the whole start is
// retried on new ports (up to 3 times) instead of failing the test.
func StartCluster(t testing.TB, n int, opts ...Opt) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("testcluster: %d brokers", n)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := tryStartCluster(t, n, opts)
		if err == nil {
			return c
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("testcluster: start %d brokers: %v", n, lastErr)
	return nil
}

func tryStartCluster(t testing.TB, n int, opts []Opt) (*Cluster, error) {
	c := &Cluster{t: t, ClusterID: metadata.NewTopicID().String(), nodes: map[int32]*Process{}}
	var lns []net.Listener
	var voters []string
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		voters = append(voters, strconv.Itoa(i+1)+"@"+ln.Addr().String())
	}
	c.Voters = strings.Join(voters, ",")
	procs := make([]*Process, n)
	for i := range n {
		id := int32(i + 1)
		cf := newCfg(t, clusterOpts(n, opts))
		cf.dir = t.TempDir()
		cf.props["log.dirs"] = cf.dir
		cf.props["node.id"] = strconv.Itoa(int(id))
		cf.props["process.roles"] = "broker,controller"
		cf.props["controller.quorum.voters"] = c.Voters
		cf.props["controller.listener.names"] = "CONTROLLER"
		cf.props["cluster.id"] = c.ClusterID
		procs[i] = &Process{t: t, c: cf, logs: &syncBuffer{}, controller: lns[i].Addr().String()}
	}
	for _, ln := range lns {
		ln.Close()
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.startErr()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range procs {
			p.Kill()
		}
		return nil, err
	}
	for i, p := range procs {
		id := int32(i + 1)
		c.nodes[id] = p
		t.Cleanup(func() {
			p.Kill()
			if t.Failed() {
				t.Logf("broker %d log:\n%s", id, p.Logs())
			}
		})
	}
	return c, nil
}

// Node returns broker id's process.
func (c *Cluster) Node(id int32) *Process {
	p := c.nodes[id]
	if p == nil {
		c.t.Fatalf("testcluster: no broker %d", id)
	}
	return p
}

// IDs are the node ids in order.
func (c *Cluster) IDs() []int32 {
	ids := make([]int32, 0, len(c.nodes))
	for id := range c.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Addrs are the bootstrap addresses of the brokers that run now.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, id := range c.IDs() {
		if p := c.nodes[id]; p.Pid() != 0 {
			out = append(out, p.Addr())
		}
	}
	return out
}

// ControllerAddr is node id's CONTROLLER listener (its voter address).
func (c *Cluster) ControllerAddr(id int32) string { return c.Node(id).controller }

// InProcessCluster is N brokers in this process forming one cluster, each
// with its controller listener bound by the test before the broker starts
// (broker.Config.ControllerNetListener), so no port changes hands.
type InProcessCluster struct {
	ClusterID string
	Voters    string
	Brokers   []*Broker // index i is node i+1
}

// StartInProcess starts n brokers in this process as one cluster (node
// ids 1..n), with both process.roles; opts apply to every node.
func StartInProcess(t testing.TB, n int, opts ...Opt) *InProcessCluster {
	t.Helper()
	c := &InProcessCluster{ClusterID: metadata.NewTopicID().String()}
	var lns []net.Listener
	var voters []string
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns = append(lns, ln)
		voters = append(voters, strconv.Itoa(i+1)+"@"+ln.Addr().String())
	}
	c.Voters = strings.Join(voters, ",")
	for i := range n {
		cf := newCfg(t, clusterOpts(n, opts))
		cf.dir = t.TempDir()
		cf.props["log.dirs"] = cf.dir
		cf.props["node.id"] = strconv.Itoa(i + 1)
		cf.props["process.roles"] = "broker,controller"
		cf.props["controller.quorum.voters"] = c.Voters
		cf.props["listeners"] = "PLAINTEXT://127.0.0.1:0,CONTROLLER://" + lns[i].Addr().String()
		cf.props["cluster.id"] = c.ClusterID
		conf, err := broker.NewConfig(cf.properties())
		if err != nil {
			t.Fatalf("testcluster: node %d config: %v", i+1, err)
		}
		conf.ControllerNetListener = lns[i]
		logger := slog.New(slog.DiscardHandler)
		if cf.log != nil {
			logger = slog.New(slog.NewTextHandler(cf.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i+1)
		}
		b, err := broker.New(conf, logger)
		if err != nil {
			t.Fatalf("testcluster: node %d: %v", i+1, err)
		}
		b.MountHTTP(exporters.NewHandler(b.Registry()))
		if err := b.Start(); err != nil {
			t.Fatalf("testcluster: node %d start: %v", i+1, err)
		}
		t.Cleanup(func() { _ = b.Close() })
		c.Brokers = append(c.Brokers, &Broker{Broker: b, Dir: cf.dir})
	}
	return c
}

// String lists the nodes, for failure messages.
func (c *Cluster) String() string {
	var sb strings.Builder
	for _, id := range c.IDs() {
		p := c.nodes[id]
		fmt.Fprintf(&sb, "node %d: kafka %s controller %s pid %d\n", id, p.Addr(), p.controller, p.Pid())
	}
	return sb.String()
}

// clusterOpts puts the replicated defaults of an n-node cluster before the
// test's own options (which win): offsets.topic.replication.factor
// min(n, 3), so groups get a coordinator once every node is up.
func clusterOpts(n int, opts []Opt) []Opt {
	return append([]Opt{Prop("offsets.topic.replication.factor", strconv.Itoa(min(n, 3)))}, opts...)
}
