package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/broker"
	"github.com/kobs-dev/kobs/broker/group"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// ctlCluster is N in-process brokers that are also the voters of one
// metadata quorum (process.roles=broker,controller), on loopback TCP.
type ctlCluster struct {
	t      *testing.T
	voters string
	props  map[string]string
	mu     sync.Mutex
	nodes  map[int32]*ctlNode
}

type ctlNode struct {
	id      int32
	dir     string
	ctlAddr string
	port    string
	b       *broker.Broker
}

func startCtlCluster(t *testing.T, n int, props map[string]string) *ctlCluster {
	c := &ctlCluster{t: t, nodes: map[int32]*ctlNode{}, props: props}
	var vs []string
	lns := map[int32]net.Listener{}
	for id := int32(1); id <= int32(n); id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns[id] = ln
		c.nodes[id] = &ctlNode{id: id, dir: t.TempDir(), ctlAddr: ln.Addr().String()}
		vs = append(vs, fmt.Sprintf("%d@%s", id, ln.Addr()))
	}
	c.voters = strings.Join(vs, ",")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for id := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.startNode(id, lns[id])
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for id := range c.nodes {
			c.stop(id)
		}
	})
	// Start returns before the quorum has formed; wait until every broker
	// sees all of them registered and unfenced.
	testcluster.Eventually(t, 30*time.Second, func() error {
		for id := range c.nodes {
			img := c.broker(id).Metadata().Load()
			live := 0
			for _, br := range img.Brokers {
				if !br.Fenced {
					live++
				}
			}
			if live != n {
				return fmt.Errorf("broker %d sees %d live brokers", id, live)
			}
		}
		return nil
	})
	return c
}

// startNode starts one node; ln is its bound controller listener (nil:
// bind its address again, after a stop).
func (c *ctlCluster) startNode(id int32, ln net.Listener) error {
	n := c.nodes[id]
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", n.ctlAddr); err != nil {
			return err
		}
	}
	p := broker.NewProperties()
	for k, v := range c.props {
		p.Set(k, v)
	}
	port := n.port
	if port == "" {
		port = "0"
	}
	p.Set("node.id", strconv.Itoa(int(id)))
	p.Set("process.roles", "broker,controller")
	p.Set("controller.quorum.voters", c.voters)
	p.Set("controller.listener.names", "CONTROLLER")
	p.Set("listeners", "PLAINTEXT://127.0.0.1:"+port+",CONTROLLER://"+n.ctlAddr)
	p.Set("log.dirs", n.dir)
	p.Set("cluster.id", "ctl-cluster-test-id0")
	cfg, err := broker.NewConfig(p)
	if err != nil {
		return err
	}
	cfg.ControllerNetListener = ln
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("KOBS_TEST_LOGS") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", id)
	}
	b, err := broker.New(cfg, logger)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	c.mu.Lock()
	n.b = b
	_, n.port, _ = net.SplitHostPort(b.Addrs()[0])
	c.mu.Unlock()
	return nil
}

func (c *ctlCluster) stop(id int32) {
	c.mu.Lock()
	b := c.nodes[id].b
	c.nodes[id].b = nil
	c.mu.Unlock()
	if b != nil {
		_ = b.Close()
	}
}

func (c *ctlCluster) broker(id int32) *broker.Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id].b
}

func (c *ctlCluster) addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range c.nodes {
		if n.b != nil {
			out = append(out, n.b.Addrs()[0])
		}
	}
	return out
}

// partitionOn is topic partition 0 as broker id's Metadata answers.
func (c *ctlCluster) partitionOn(t *testing.T, id int32, topic string) kadm.PartitionDetail {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.broker(id).Addrs()[0]))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	require.NoError(t, err)
	return md.Topics[topic].Partitions[0]
}

func sorted(s []int32) []int32 { s = slices.Clone(s); slices.Sort(s); return s }

// TestClusterRF3: three brokers that are also the three voters of the
// metadata quorum. A topic with replication factor 3 created through any
// broker shows the same leader, 3 replicas and ISR 3 on every broker;
// acks=all records are on all three logs; a follower stopped leaves the
// ISR and rejoins it after a restart (caught up, IsrExpandsPerSec); the
// leader stopped under idempotent acks=all produce: a new leader takes
// over and every acknowledged record is read back exactly once; a
// group's committed offsets survive the failover of its coordinator.
func TestClusterRF3(t *testing.T) {
	c := startCtlCluster(t, 3, map[string]string{
		"replica.lag.time.max.ms":          "2000",
		"replica.fetch.wait.max.ms":        "100",
		"replica.fetch.backoff.ms":         "50",
		"broker.session.timeout.ms":        "3000",
		"broker.heartbeat.interval.ms":     "300",
		"kobs.http.listener":               "",
		"offsets.topic.num.partitions":     "3",
		"group.initial.rebalance.delay.ms": "0",
		"log.retention.check.interval.ms":  "300000",
		"min.insync.replicas":              "2",
	})
	const topic = "rf3"
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	createReplicated(t, adm, topic, 3, nil)

	var leader int32
	testcluster.Eventually(t, 10*time.Second, func() error {
		leader = -1
		for id := int32(1); id <= 3; id++ {
			p := c.partitionOn(t, id, topic)
			if len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader < 0 {
				return fmt.Errorf("broker %d: leader %d replicas %v isr %v", id, p.Leader, p.Replicas, p.ISR)
			}
			if leader >= 0 && p.Leader != leader {
				return fmt.Errorf("broker %d says leader %d, another %d", id, p.Leader, leader)
			}
			leader = p.Leader
		}
		return nil
	})

	// kcat (librdkafka) sees the same through each broker.
	if kcat := needTool(t, "kcat"); kcat != "" {
		for id := int32(1); id <= 3; id++ {
			out, err := exec.Command(kcat, "-L", "-J", "-b", c.broker(id).Addrs()[0], "-t", topic).Output()
			require.NoError(t, err)
			var md struct {
				Brokers []struct{ ID int32 } `json:"brokers"`
				Topics  []struct {
					Partitions []struct {
						Leader   int32                `json:"leader"`
						Replicas []struct{ ID int32 } `json:"replicas"`
						ISRs     []struct{ ID int32 } `json:"isrs"`
					} `json:"partitions"`
				} `json:"topics"`
			}
			require.NoError(t, json.Unmarshal(out, &md), "%s", out)
			require.Len(t, md.Brokers, 3, "kcat -L via broker %d: %s", id, out)
			p := md.Topics[0].Partitions[0]
			require.Equal(t, leader, p.Leader, "kcat -L via broker %d", id)
			require.Len(t, p.Replicas, 3)
			require.Len(t, p.ISRs, 3)
		}
	}

	var mu sync.Mutex
	acked := map[string]int{}
	produce := func(prefix string, n int) {
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s-%d", prefix, i)
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).FirstErr()
			cancel()
			require.NoError(t, err)
			mu.Lock()
			acked[v]++
			mu.Unlock()
		}
	}
	produce("a", 50)
	// Every broker gets every acknowledged record (waited for: a follower
	// slowed past replica.lag.time.max.ms is acknowledged without and
	// catches up after).
	testcluster.Eventually(t, 20*time.Second, func() error {
		for id := int32(1); id <= 3; id++ {
			if n := leo(c.broker(id), topic); n != 50 {
				return fmt.Errorf("broker %d holds %d of the 50 acknowledged records", id, n)
			}
		}
		return nil
	})

	// A follower stops and comes back.
	follower := int32(1)
	if follower == leader {
		follower = 2
	}
	c.stop(follower)
	testcluster.Eventually(t, 15*time.Second, func() error {
		if p := c.partitionOn(t, leader, topic); len(p.ISR) != 2 {
			return fmt.Errorf("isr %v", p.ISR)
		}
		return nil
	})
	// Metadata answers from the image as soon as it is published; the
	// leader's replica state (the gauge) follows from the same image.
	waitGauge(t, c.broker(leader), "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions", 1)
	produce("b", 20)
	require.NoError(t, c.startNode(follower, nil))
	testcluster.Eventually(t, 20*time.Second, func() error {
		if p := c.partitionOn(t, leader, topic); !slices.Equal(sorted(p.ISR), []int32{1, 2, 3}) {
			return fmt.Errorf("isr %v, follower log end %d", p.ISR, leo(c.broker(follower), topic))
		}
		return nil
	})
	require.Equal(t, int64(70), leo(c.broker(follower), topic))
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n := gauge(t, c.broker(leader), "kafka.server:type=ReplicaManager,name=IsrExpandsPerSec"); n < 1 {
			return fmt.Errorf("IsrExpandsPerSec %d", n)
		}
		return nil
	})

	// Groups whose coordinator is the partition leader about to go: a
	// franz-go commit and a kcat (librdkafka) balanced consumer that reads
	// what is there and commits on exit.
	warm := kadm.Offsets{}
	warm.Add(kadm.Offset{Topic: topic, Partition: 0, At: 0, LeaderEpoch: -1})
	_, err = adm.CommitOffsets(ctx, "g-warmup", warm) // creates __consumer_offsets
	require.NoError(t, err)
	var coordinated []string
	testcluster.Eventually(t, 10*time.Second, func() error {
		coordinated = nil
		ot := c.broker(leader).Metadata().Load().Topic("__consumer_offsets")
		if ot == nil {
			return fmt.Errorf("no offsets topic yet")
		}
		for i := 0; len(coordinated) < 2 && i < 1000; i++ {
			name := fmt.Sprintf("g-failover-%d", i)
			if ot.Partitions[group.PartitionFor(name, int32(len(ot.Partitions)))].Leader == leader {
				coordinated = append(coordinated, name)
			}
		}
		if len(coordinated) < 2 {
			return fmt.Errorf("broker %d leads no offsets partition", leader)
		}
		return nil
	})
	grp, kcatGroup := coordinated[0], coordinated[1]
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 42, LeaderEpoch: -1})
	cr, err := adm.CommitOffsets(ctx, grp, offs)
	require.NoError(t, err)
	require.NoError(t, cr.Error())
	kcat := needTool(t, "kcat")
	kcatGroupRead := func() []string {
		out, err := exec.Command(kcat, "-b", strings.Join(c.addrs(), ","), "-G", kcatGroup, "-X", "auto.offset.reset=earliest",
			"-e", "-q", "-f", "%s\n", topic).Output()
		require.NoError(t, err)
		return strings.Fields(string(out))
	}
	if kcat != "" {
		require.Len(t, kcatGroupRead(), 70, "kcat -G reads the topic once")
		// It committed its position on the way out.
		testcluster.Eventually(t, 10*time.Second, func() error {
			r, err := adm.FetchOffsets(ctx, kcatGroup)
			if err != nil {
				return err
			}
			if o, ok := r.Lookup(topic, 0); !ok || o.At != 70 {
				return fmt.Errorf("kcat group committed %+v", o)
			}
			return nil
		})
	}

	// The leader stops once the "c" records are under way (ten of them
	// acknowledged), so the change lands in the middle of the produce.
	mu.Lock()
	ackedBefore := len(acked)
	mu.Unlock()
	stopDone := make(chan struct{})
	go func() {
		defer close(stopDone)
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= ackedBefore+10 {
				break
			}
			time.Sleep(5 * time.Millisecond) // poll interval
		}
		c.stop(leader)
	}()
	produce("c", 100) // idempotent acks=all across the leader change
	<-stopDone
	var newLeader int32
	testcluster.Eventually(t, 15*time.Second, func() error {
		for id := int32(1); id <= 3; id++ {
			if id == leader {
				continue
			}
			p := c.partitionOn(t, id, topic)
			if p.Leader < 0 || p.Leader == leader {
				return fmt.Errorf("leader %d", p.Leader)
			}
			newLeader = p.Leader
		}
		return nil
	})
	t.Logf("leader %d -> %d", leader, newLeader)

	// Every acknowledged record is there exactly once.
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cons.Close()
	seen := map[string]int{}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for total := 0; total < 170; {
		fs := cons.PollFetches(cctx)
		require.NoError(t, cctx.Err(), "read %d of 170", total)
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
	}
	for v, n := range acked {
		require.Equal(t, n, seen[v], "record %s", v)
	}
	require.Len(t, seen, 170)

	// The groups' offsets, from the broker that coordinates them now.
	acl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs()...))
	require.NoError(t, err)
	defer acl.Close()
	testcluster.Eventually(t, 20*time.Second, func() error {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		r, err := kadm.NewClient(acl).FetchOffsets(fctx, grp)
		if err != nil {
			return err
		}
		if o, ok := r.Lookup(topic, 0); !ok || o.At != 42 {
			return fmt.Errorf("committed offset %+v", o)
		}
		return nil
	})
	if kcat != "" {
		// kcat resumes where it committed: only the 100 new records.
		got := kcatGroupRead()
		require.Len(t, got, 100)
		require.Equal(t, "c-0", got[0])
	}
}

// needTool returns the path of an external tool; missing, it fails under
// make test (KOBS_REQUIRE_INTEROP) and is skipped ("") otherwise.
func needTool(t *testing.T, name string) string {
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("KOBS_REQUIRE_INTEROP") != "" {
		t.Fatalf("%s not found (run scripts/install-test-deps.sh)", name)
	}
	t.Logf("%s not installed: part of the test skipped", name)
	return ""
}
