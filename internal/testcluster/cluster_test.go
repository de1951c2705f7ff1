package testcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiVersions asks addr for ApiVersions within timeout.
func apiVersions(addr string, timeout time.Duration) (*kmsg.ApiVersionsResponse, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.RetryTimeout(timeout))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
}

func TestBinaryIsOnePathPerCheckout(t *testing.T) {
	bin := Binary(t)
	if !strings.HasPrefix(filepath.Base(filepath.Dir(bin)), "kobs-testcluster-") || filepath.Dir(filepath.Dir(bin)) != filepath.Clean(os.TempDir()) {
		t.Fatalf("binary at %s, want <tmp>/kobs-testcluster-<hash>/kobs", bin)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(bin), "kobs-build-*"))
	for _, f := range left {
		// Another test binary may be building right now; only a stale
		// leftover (older than a build can take) is a leak.
		if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) > 10*time.Minute {
			t.Fatalf("stale build file %s left behind", f)
		}
	}
}

// Three processes with generated quorum configs start, answer, and can be
// paused, resumed, killed, restarted on the same address and stopped.
func TestClusterProcessLifecycle(t *testing.T) {
	c := StartCluster(t, 3)
	for _, id := range c.IDs() {
		if _, err := apiVersions(c.Node(id).Addr(), 10*time.Second); err != nil {
			t.Fatalf("node %d: %v\n%s", id, err, c)
		}
		if !strings.Contains(c.Voters, fmt.Sprintf("%d@%s", id, c.ControllerAddr(id))) {
			t.Fatalf("voters %s lack node %d", c.Voters, id)
		}
	}
	n2 := c.Node(2)
	n2.Pause()
	if _, err := apiVersions(n2.Addr(), 500*time.Millisecond); err == nil {
		t.Fatal("a paused broker answered")
	}
	if _, err := apiVersions(c.Node(1).Addr(), 10*time.Second); err != nil {
		t.Fatalf("node 1 while node 2 is paused: %v", err)
	}
	n2.Resume()
	if _, err := apiVersions(n2.Addr(), 10*time.Second); err != nil {
		t.Fatalf("resumed broker: %v", err)
	}

	n3 := c.Node(3)
	addr := n3.Addr()
	n3.Kill()
	if _, err := apiVersions(addr, 500*time.Millisecond); err == nil {
		t.Fatal("a killed broker answered")
	}
	if got := c.Addrs(); len(got) != 2 || slices.Contains(got, addr) {
		t.Fatalf("Addrs after a kill: %v", got)
	}
	n3.Restart()
	if n3.Addr() != addr {
		t.Fatalf("restarted on %s, was %s", n3.Addr(), addr)
	}
	if _, err := apiVersions(addr, 10*time.Second); err != nil {
		t.Fatalf("restarted broker: %v", err)
	}

	n1 := c.Node(1)
	n1.Pause()
	n1.Stop() // a paused broker is resumed to act on SIGTERM
	if err := n1.ExitErr(); err != nil {
		t.Fatalf("clean stop: %v\n%s", err, n1.Logs())
	}
}

// The controller at process level: registration, CreateTopics with RF 3,
// kill -9 of the active controller, another takes over. This needs the
// broker to run its controller; until broker.go routes DescribeQuorum the
// test says so and skips.
func TestClusterControllerFailover(t *testing.T) {
	c := StartCluster(t, 3, Prop("broker.session.timeout.ms", "3000"), Prop("broker.heartbeat.interval.ms", "500"))
	v, err := apiVersions(c.Node(1).Addr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(v.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool { return k.ApiKey == kmsg.DescribeQuorum.Int16() }) {
		t.Skip("this broker build does not serve DescribeQuorum: the controller is not wired into broker.go yet")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Every node's own Metadata lists the three brokers (asked one by one,
	// so a failure names the node whose image lags).
	Eventually(t, 30*time.Second, func() error {
		for _, id := range c.IDs() {
			ids, err := brokersSeenBy(c.Node(id).Addr())
			if err != nil {
				return fmt.Errorf("node %d: %w", id, err)
			}
			if len(ids) != 3 {
				return fmt.Errorf("node %d's Metadata lists brokers %v", id, ids)
			}
		}
		return nil
	})
	create := func(name string, rf int16) error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		res, err := adm.CreateTopic(ctx, 3, rf, nil, name)
		if err != nil {
			return err
		}
		return res.Err
	}
	// Replicas on every broker need all of them unfenced at that moment:
	// a heartbeat stalled past the session on a loaded machine fences one
	// for a moment (INVALID_REPLICATION_FACTOR), so the creation is
	// retried; a retry of one that went through meets TOPIC_ALREADY_EXISTS.
	Eventually(t, 30*time.Second, func() error {
		if err := create("before", 3); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return err
		}
		return nil
	})
	leader := func(addr string) (int32, error) {
		one, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
		if err != nil {
			return -1, err
		}
		defer one.Close()
		req := kmsg.NewPtrDescribeQuorumRequest()
		rt := kmsg.NewDescribeQuorumRequestTopic()
		rt.Topic = "__cluster_metadata"
		rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
		req.Topics = append(req.Topics, rt)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := req.RequestWith(ctx, one)
		if err != nil {
			return -1, err
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			return -1, fmt.Errorf("describe quorum error %d", p.ErrorCode)
		}
		return p.LeaderID, nil
	}
	old, err := leader(c.Node(1).Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Node(old).Kill()
	var survivor int32
	for _, id := range c.IDs() {
		if id != old {
			survivor = id
			break
		}
	}
	Eventually(t, 30*time.Second, func() error {
		l, err := leader(c.Node(survivor).Addr())
		if err != nil {
			return err
		}
		if l == old || l < 0 {
			return fmt.Errorf("leader still %d", l)
		}
		return nil
	})
	// RF 2: the killed node is fenced once its session runs out, and then
	// RF 3 has too few live brokers (as in Kafka).
	Eventually(t, 30*time.Second, func() error { return create("after", 2) })
}

// In-process cluster: each broker starts with its controller listener
// already bound by the test and handed over, so the broker itself must not
// bind that address (it would fail with "address already in use").
func TestInProcessCluster(t *testing.T) {
	c := StartInProcess(t, 3)
	if len(c.Brokers) != 3 || strings.Count(c.Voters, "@") != 3 {
		t.Fatalf("cluster %+v", c)
	}
	for i, b := range c.Brokers {
		if b.NodeID() != int32(i+1) {
			t.Fatalf("broker %d has node.id %d", i, b.NodeID())
		}
		for _, a := range b.Addrs() {
			if strings.Contains(c.Voters, a) {
				t.Fatalf("broker %d serves Kafka on its controller address %s", i+1, a)
			}
		}
		if _, err := apiVersions(b.Addr(), 10*time.Second); err != nil {
			t.Fatalf("broker %d: %v", i+1, err)
		}
	}
}

// brokersSeenBy asks one broker for Metadata and returns the broker ids it
// lists.
func brokersSeenBy(addr string) ([]int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	var ids []int32
	for _, b := range resp.Brokers {
		ids = append(ids, b.NodeID)
	}
	slices.Sort(ids)
	return ids, nil
}

// describeQuorum asks addr (a broker) for DescribeQuorum and returns the
// leader and the voter ids.
func describeQuorum(addr string) (int32, []int32, error) {
	one, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		return -1, nil, err
	}
	defer one.Close()
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, one)
	if err != nil {
		return -1, nil, err
	}
	if resp.ErrorCode != 0 || len(resp.Topics) == 0 || len(resp.Topics[0].Partitions) == 0 {
		return -1, nil, fmt.Errorf("describe quorum error %d", resp.ErrorCode)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		return -1, nil, fmt.Errorf("describe quorum partition error %d", p.ErrorCode)
	}
	var voters []int32
	for _, v := range p.CurrentVoters {
		voters = append(voters, v.ReplicaID)
	}
	slices.Sort(voters)
	return p.LeaderID, voters, nil
}

// Dedicated controllers: three process.roles=controller voters and two
// broker-only brokers. Clients see the brokers only (Metadata lists 1 and
// 2 and names one of them controller, as KRaft does); the quorum is the
// three controllers; the active controller killed, another takes over
// and the brokers go on creating topics; a controller restarts on its
// port. (Brokers down with the quorum whole: agent's
// TestFailingISRDedicatedControllers.)
func TestClusterDedicatedControllers(t *testing.T) {
	c := StartCluster(t, 2, DedicatedControllers(3),
		Prop("broker.session.timeout.ms", "3000"), Prop("broker.heartbeat.interval.ms", "500"))
	if got := c.IDs(); !slices.Equal(got, []int32{1, 2}) {
		t.Fatalf("broker ids %v", got)
	}
	ctrls := c.ControllerIDs()
	if want := []int32{ControllerIDBase + 1, ControllerIDBase + 2, ControllerIDBase + 3}; !slices.Equal(ctrls, want) {
		t.Fatalf("controller ids %v, want %v", ctrls, want)
	}
	for _, id := range ctrls {
		if c.Node(id).Addr() != "" || c.Node(id).Pid() == 0 || !strings.Contains(c.Voters, fmt.Sprintf("%d@%s", id, c.ControllerAddr(id))) {
			t.Fatalf("controller %d: kafka addr %q pid %d, voters %s\n%s", id, c.Node(id).Addr(), c.Node(id).Pid(), c.Voters, c)
		}
	}
	// A dedicated controller has no Kafka listener: its CONTROLLER port
	// does not speak the Kafka protocol.
	if _, err := apiVersions(c.ControllerAddr(ctrls[0]), 300*time.Millisecond); err == nil {
		t.Fatalf("controller %d answered ApiVersions on its controller listener", ctrls[0])
	}
	if len(c.Addrs()) != 2 {
		t.Fatalf("bootstrap addrs %v", c.Addrs())
	}
	Eventually(t, 30*time.Second, func() error {
		for _, id := range c.IDs() {
			ids, err := brokersSeenBy(c.Node(id).Addr())
			if err != nil {
				return fmt.Errorf("broker %d: %w", id, err)
			}
			if !slices.Equal(ids, []int32{1, 2}) {
				return fmt.Errorf("broker %d's Metadata lists brokers %v (controllers must not be listed)", id, ids)
			}
		}
		return nil
	})
	// Each controller serves its telemetry: the raft leader is the one
	// active controller, and every log dir (the metadata log's) is
	// online. Waited for, not read once: a raft leader becomes the
	// active controller only after its barrier, so an election (raft's
	// 1 s timeouts can run out on a loaded machine) leaves a window with
	// no active controller, or one that is not yet the leader named.
	var leader int32
	Eventually(t, 30*time.Second, func() error {
		l, voters, err := describeQuorum(c.Node(1).Addr())
		if err != nil {
			return err
		}
		if !slices.Equal(voters, ctrls) || !slices.Contains(ctrls, l) {
			return fmt.Errorf("quorum: leader %d voters %v, want one of %v", l, voters, ctrls)
		}
		var active []int32
		for _, id := range ctrls {
			m, err := controllerMetrics(c.Node(id).Logs())
			if err != nil {
				return fmt.Errorf("controller %d: %w", id, err)
			}
			if off, ok := m["kafka_log_logmanager_offlinelogdirectorycount"]; !ok || off != 0 {
				return fmt.Errorf("controller %d: offline log dirs %v (present %v)", id, off, ok)
			}
			switch v := m["kafka_controller_kafkacontroller_activecontrollercount"]; v {
			case 0:
			case 1:
				active = append(active, id)
			default:
				return fmt.Errorf("controller %d: ActiveControllerCount %v", id, v)
			}
		}
		if !slices.Equal(active, []int32{l}) {
			return fmt.Errorf("active controllers %v, raft leader %d", active, l)
		}
		leader = l
		return nil
	})

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Node(1).Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	md, err := adm.BrokerMetadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if md.Controller != 1 && md.Controller != 2 {
		t.Fatalf("Metadata controller id %d: clients must be sent to a broker", md.Controller)
	}
	create := func(name string, rf int16) error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		res, err := adm.CreateTopic(ctx, 1, rf, nil, name)
		if err != nil {
			return err
		}
		return res.Err
	}
	// Both brokers must be unfenced (see TestClusterControllerFailover).
	Eventually(t, 30*time.Second, func() error {
		if err := create("both", 2); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return err
		}
		return nil
	})
	c.Node(leader).Kill()
	Eventually(t, 30*time.Second, func() error {
		l, _, err := describeQuorum(c.Node(1).Addr())
		if err != nil {
			return err
		}
		if l == leader || l < 0 {
			return fmt.Errorf("leader still %d", l)
		}
		return create("after-controller-failover", 1)
	})
	// Restarted on its port and data, it rejoins as a voter (ready means
	// an active controller acknowledged it).
	c.Node(leader).Restart()
	if c.Node(leader).Pid() == 0 {
		t.Fatalf("controller %d did not restart", leader)
	}
}

// controllerMetrics scrapes the /metrics named on a dedicated
// controller's ready line and returns the unlabelled samples.
func controllerMetrics(logs string) (map[string]float64, error) {
	var url string
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "kobs controller ready") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "telemetry="); ok {
				for _, u := range strings.Split(v, ",") {
					if strings.HasSuffix(u, "/metrics") {
						url = u
					}
				}
			}
		}
	}
	if url == "" {
		return nil, fmt.Errorf("no telemetry address on the ready line:\n%s", logs)
	}
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}
