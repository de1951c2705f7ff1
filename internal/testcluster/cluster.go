package testcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker"
	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/exporters"
)

// Cluster is N kobs brokers, each a `kobs broker` process, forming one
// cluster: a generated cluster.id and controller.quorum.voters naming every
// voter's CONTROLLER listener on loopback. Broker ids are 1..N. By default
// every broker is also a voter (process.roles=broker,controller); with
// DedicatedControllers(k) the voters are k controller-only processes with
// node ids ControllerIDBase+1.. and the brokers are broker-only, given
// the controllers as controller.quorum.bootstrap.servers.
type Cluster struct {
	t         testing.TB
	ClusterID string
	Voters    string // controller.quorum.voters
	nodes     map[int32]*Process
}

// ControllerIDBase is added to 1..k for the node ids of dedicated
// controllers (DedicatedControllers), so broker ids stay 1..N.
const ControllerIDBase = 1000

// DedicatedControllers makes StartCluster run k controller-only processes
// (process.roles=controller) as the metadata quorum and the n brokers as
// broker-only nodes (process.roles=broker), as production KRaft clusters
// are run: brokers can then be killed without touching the quorum. Other
// starters ignore it.
func DedicatedControllers(k int) Opt { return func(c *cfg) { c.controllers = k } }

// StartCluster starts n brokers (and the dedicated controllers, if any)
// in parallel and waits until each serves and every broker lists all n in
// its Metadata answer: a broker says "ready" once registered, but it is
// fenced until its first heartbeat, and a CreateTopics with replication
// factor n sent in that window fails with INVALID_REPLICATION_FACTOR (as
// it would on Kafka; its test harness waits the same way). opts apply to every node (Prop
// for server.properties keys, e.g. a short broker.session.timeout.ms);
// node.id, listeners, process.roles, controller.quorum.voters and
// cluster.id are set by the cluster, and a Dir option is ignored (each
// node gets its own directory).
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
	// Built first, on the test goroutine: Binary fails the test with
	// t.Fatalf when the build fails, which must not happen in the start
	// goroutines below (FailNow would end only that goroutine and the
	// start would go on without the node), and a first build (tens of
	// seconds) must not sit between releasing the reserved controller
	// ports and the processes binding them.
	Binary(t)
	c := &Cluster{t: t, ClusterID: metadata.NewTopicID().String(), nodes: map[int32]*Process{}}
	probe := cfg{props: map[string]string{}}
	for _, o := range opts {
		o(&probe)
	}
	dedicated := probe.controllers
	// Voters: the brokers themselves, or the dedicated controllers.
	var voterIDs []int32
	for i := range n {
		voterIDs = append(voterIDs, int32(i+1))
	}
	if dedicated > 0 {
		voterIDs = voterIDs[:0]
		for i := range dedicated {
			voterIDs = append(voterIDs, int32(ControllerIDBase+i+1))
		}
	}
	var lns []net.Listener
	var voters []string
	for _, id := range voterIDs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		voters = append(voters, strconv.Itoa(int(id))+"@"+ln.Addr().String())
	}
	c.Voters = strings.Join(voters, ",")
	ids := make([]int32, 0, n+dedicated)
	for i := range n {
		ids = append(ids, int32(i+1))
	}
	if dedicated > 0 {
		ids = append(ids, voterIDs...)
	}
	procs := make([]*Process, len(ids))
	for i, id := range ids {
		cf := newCfg(t, clusterOpts(n, opts))
		cf.dir = t.TempDir()
		cf.props["log.dirs"] = cf.dir
		cf.props["node.id"] = strconv.Itoa(int(id))
		cf.props["controller.quorum.voters"] = c.Voters
		cf.props["controller.listener.names"] = "CONTROLLER"
		cf.props["cluster.id"] = c.ClusterID
		p := &Process{t: t, c: cf, logs: &syncBuffer{}}
		switch {
		case dedicated == 0:
			cf.props["process.roles"] = "broker,controller"
			p.controller = lns[i].Addr().String()
		case id > ControllerIDBase:
			cf.props["process.roles"] = "controller"
			p.controller, p.controllerOnly = lns[i-n].Addr().String(), true
		default:
			// As Kafka 4's broker.properties: the brokers learn the
			// voters from controller.quorum.bootstrap.servers.
			cf.props["process.roles"] = "broker"
			delete(cf.props, "controller.quorum.voters")
			var addrs []string
			for _, ln := range lns {
				addrs = append(addrs, ln.Addr().String())
			}
			cf.props["controller.quorum.bootstrap.servers"] = strings.Join(addrs, ",")
		}
		procs[i] = p
	}
	for _, ln := range lns {
		ln.Close()
	}
	errs := make([]error, len(procs))
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
		id := ids[i]
		c.nodes[id] = p
		t.Cleanup(func() {
			p.Kill()
			if t.Failed() {
				t.Logf("node %d (process.roles=%s) log:\n%s", id, p.c.props["process.roles"], p.Logs())
			}
		})
	}
	c.WaitBrokersListed(t)
	return c, nil
}

// WaitBrokersListed waits until every running broker of c lists all of c's
// running brokers in its own Metadata answer (registered and unfenced):
// what a client needs before it asks for replication factor len(Addrs()).
func (c *Cluster) WaitBrokersListed(t testing.TB) {
	t.Helper()
	want := len(c.Addrs())
	Eventually(t, 30*time.Second, func() error {
		var errs []error
		for _, id := range c.IDs() {
			if c.Node(id).Pid() == 0 {
				continue
			}
			one, err := kgo.NewClient(kgo.SeedBrokers(c.Node(id).Addr()))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, one.SeedBrokers()[0])
			cancel()
			one.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("broker %d: %w", id, err))
				continue
			}
			if len(resp.Brokers) != want {
				var ids []int32
				for _, b := range resp.Brokers {
					ids = append(ids, b.NodeID)
				}
				errs = append(errs, fmt.Errorf("broker %d lists brokers %v, want %d", id, ids, want))
			}
		}
		return errors.Join(errs...)
	})
}

// Node returns node id's process (a broker or a dedicated controller).
func (c *Cluster) Node(id int32) *Process {
	p := c.nodes[id]
	if p == nil {
		c.t.Fatalf("testcluster: no node %d", id)
	}
	return p
}

// IDs are the broker ids in order (dedicated controllers excluded).
func (c *Cluster) IDs() []int32 {
	return c.idsWhere(func(p *Process) bool { return !p.controllerOnly })
}

// ControllerIDs are the voters' node ids in order: the dedicated
// controllers, or every broker when they are also controllers.
func (c *Cluster) ControllerIDs() []int32 {
	return c.idsWhere(func(p *Process) bool { return p.controller != "" })
}

func (c *Cluster) idsWhere(keep func(*Process) bool) []int32 {
	ids := make([]int32, 0, len(c.nodes))
	for id, p := range c.nodes {
		if keep(p) {
			ids = append(ids, id)
		}
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
	// As StartCluster: every node's image shows every node unfenced.
	Eventually(t, 30*time.Second, func() error {
		for _, b := range c.Brokers {
			im := b.Metadata().Load()
			for _, o := range c.Brokers {
				if !im.Live(o.NodeID()) {
					return fmt.Errorf("node %d does not see node %d live", b.NodeID(), o.NodeID())
				}
			}
		}
		return nil
	})
	return c
}

// String lists the nodes, for failure messages.
func (c *Cluster) String() string {
	var sb strings.Builder
	for _, id := range c.idsWhere(func(*Process) bool { return true }) {
		p := c.nodes[id]
		fmt.Fprintf(&sb, "node %d (process.roles=%s): kafka %s controller %s pid %d\n", id, p.c.props["process.roles"], p.Addr(), p.controller, p.Pid())
	}
	return sb.String()
}

// clusterOpts puts the replicated defaults of an n-node cluster before the
// test's own options (which win): offsets.topic.replication.factor
// min(n, 3), so groups get a coordinator once every node is up.
func clusterOpts(n int, opts []Opt) []Opt {
	return append([]Opt{Prop("offsets.topic.replication.factor", strconv.Itoa(min(n, 3)))}, opts...)
}
