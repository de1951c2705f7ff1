package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker"
	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/broker/replica"
	"github.com/kobs-dev/kobs/broker/telemetry"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// repCluster is several real brokers in this process, talking over
// loopback TCP, whose metadata images the test publishes, standing in for
// the controller: it applies AlterPartition requests (checking leader and
// partition epochs) by publishing the next image to every running broker.
type repCluster struct {
	t     *testing.T
	props map[string]string

	mu    sync.Mutex
	nodes map[int32]*repNode
	img   *metadata.Image
}

type repNode struct {
	id   int32
	dir  string
	port string
	b    *broker.Broker // nil while stopped
}

const lagTime = 1500 * time.Millisecond

func newRepCluster(t *testing.T, n int) *repCluster {
	c := &repCluster{t: t, nodes: map[int32]*repNode{}, img: metadata.Empty("rep-cluster")}
	c.img.Offset = 1
	c.props = map[string]string{
		"replica.lag.time.max.ms":          strconv.Itoa(int(lagTime.Milliseconds())),
		"replica.fetch.wait.max.ms":        "100",
		"replica.fetch.backoff.ms":         "50",
		"log.retention.check.interval.ms":  "300000",
		"kobs.http.listener":               "",
		"group.initial.rebalance.delay.ms": "0",
	}
	for id := int32(1); id <= int32(n); id++ {
		c.nodes[id] = &repNode{id: id, dir: t.TempDir()}
		c.start(id)
	}
	t.Cleanup(func() {
		for id := range c.nodes {
			c.stop(id)
		}
	})
	return c
}

func (c *repCluster) start(id int32) {
	c.t.Helper()
	n := c.nodes[id]
	p := broker.NewProperties()
	for k, v := range c.props {
		p.Set(k, v)
	}
	port := n.port
	if port == "" {
		port = "0"
	}
	p.Set("node.id", strconv.Itoa(int(id)))
	p.Set("listeners", "PLAINTEXT://127.0.0.1:"+port)
	p.Set("log.dirs", n.dir)
	p.Set("cluster.id", "rep-cluster")
	cfg, err := broker.NewConfig(p)
	require.NoError(c.t, err)
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("KOBS_TEST_LOGS") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", id)
	}
	b, err := broker.New(cfg, logger, broker.WithExternalMetadata(c.alterPartition))
	require.NoError(c.t, err)
	require.NoError(c.t, b.Start())
	_, n.port, _ = net.SplitHostPort(b.Addrs()[0])
	c.mu.Lock()
	n.b = b
	img := c.nextLocked(func(img *metadata.Image) {
		pt, _ := strconv.Atoi(n.port)
		img.Brokers[id] = &metadata.Broker{ID: id, Endpoints: []metadata.Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: int32(pt)}}}
	})
	c.publishLocked(img, nil)
	c.mu.Unlock()
}

func (c *repCluster) stop(id int32) {
	c.mu.Lock()
	n := c.nodes[id]
	b := n.b
	n.b = nil
	c.mu.Unlock()
	if b != nil {
		require.NoError(c.t, b.Close())
	}
}

func (c *repCluster) broker(id int32) *broker.Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id].b
}

// nextLocked copies the current image (deeply enough for edit to change
// brokers and partitions) with the next offset.
func (c *repCluster) nextLocked(edit func(*metadata.Image)) *metadata.Image {
	img := metadata.Empty(c.img.ClusterID)
	img.Offset = c.img.Offset + 1
	img.ControllerID = c.img.ControllerID
	for id, b := range c.img.Brokers {
		nb := *b // edit may change it; the published one is being read
		img.Brokers[id] = &nb
	}
	for name, t := range c.img.Topics {
		nt := *t
		nt.Partitions = slices.Clone(t.Partitions)
		img.Topics[name], img.ByID[t.ID] = &nt, &nt
	}
	edit(img)
	return img
}

// publishLocked publishes img to every running broker, or only those in
// to when it is not nil.
func (c *repCluster) publishLocked(img *metadata.Image, to []int32) {
	c.img = img
	for id, n := range c.nodes {
		if n.b != nil && (to == nil || slices.Contains(to, id)) {
			n.b.Metadata().Publish(img)
		}
	}
}

// publishTo publishes an edited image to some brokers only (a network
// partition as far as metadata goes); publish to all.
func (c *repCluster) publishTo(to []int32, edit func(*metadata.Image)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.publishLocked(c.nextLocked(edit), to)
}

func (c *repCluster) publish(edit func(*metadata.Image)) { c.publishTo(nil, edit) }

func (c *repCluster) createTopic(name string, configs map[string]string, leader int32, replicas ...int32) {
	c.publish(func(img *metadata.Image) {
		t := &metadata.Topic{Name: name, ID: metadata.NewTopicID(), Configs: configs,
			Partitions: []metadata.Partition{{Leader: leader, LeaderEpoch: 1, PartitionEpoch: 1,
				Replicas: slices.Clone(replicas), ISR: slices.Clone(replicas)}}}
		img.Topics[name], img.ByID[t.ID] = t, t
	})
}

func (c *repCluster) partition(topic string) metadata.Partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.img.Topics[topic].Partitions[0]
}

// alterPartition is the controller's AlterPartition check: the request
// must name the current leader, leader epoch and partition epoch.
func (c *repCluster) alterPartition(_ context.Context, req replica.AlterPartitionRequest) (metadata.Partition, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.img.Topics[req.Topic]
	if t == nil || int(req.Partition) >= len(t.Partitions) {
		return metadata.Partition{}, errors.New("unknown partition")
	}
	cur := t.Partitions[req.Partition]
	if req.LeaderID != cur.Leader || req.LeaderEpoch != cur.LeaderEpoch {
		return metadata.Partition{}, fmt.Errorf("fenced leader epoch: %d/%d, current %d/%d", req.LeaderID, req.LeaderEpoch, cur.Leader, cur.LeaderEpoch)
	}
	if req.PartitionEpoch != cur.PartitionEpoch {
		return metadata.Partition{}, fmt.Errorf("invalid update version %d, current %d", req.PartitionEpoch, cur.PartitionEpoch)
	}
	var np metadata.Partition
	img := c.nextLocked(func(img *metadata.Image) {
		p := &img.Topics[req.Topic].Partitions[req.Partition]
		p.ISR = slices.Clone(req.NewISR)
		p.PartitionEpoch++
		np = *p
	})
	c.publishLocked(img, nil)
	return np, nil
}

func (c *repCluster) addrs() []string {
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

func (c *repCluster) client(opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0)}, opts...)...)
	require.NoError(c.t, err)
	c.t.Cleanup(cl.Close)
	return cl
}

func gauge(t *testing.T, b *broker.Broker, name string) int64 {
	t.Helper()
	s, ok := b.Registry().Get(telemetry.MustParseObjectName(name))
	require.True(t, ok, "no bean %s", name)
	attr := "Value"
	if s.Kind() == telemetry.KindMeter {
		attr = "Count"
	}
	v, ok := s.Attr(attr)
	require.True(t, ok, "no %s in %s", attr, name)
	return v.Int64()
}

// waitGauge waits until bean name's value (a meter's Count) is want: for
// what the broker updates just after the state a test waited for.
func waitGauge(t *testing.T, b *broker.Broker, name string, want int64) {
	t.Helper()
	testcluster.Eventually(t, 10*time.Second, func() error {
		if v := gauge(t, b, name); v != want {
			return fmt.Errorf("%s = %d, want %d", name, v, want)
		}
		return nil
	})
}

func leo(b *broker.Broker, topic string) int64 {
	p := b.Replicas().Partition(topic, 0)
	if p == nil {
		return -1
	}
	return p.Log().LogEndOffset()
}

func produceValues0(t *testing.T, cl *kgo.Client, topic, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("%s-%d", prefix, i))})
	}
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
}

func consumeValues(t *testing.T, c *repCluster, topic string, n int) []string {
	t.Helper()
	cl := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consumed %d of %d", len(out), n)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

func isrOf(c *repCluster, topic string) []int32 {
	isr := slices.Clone(c.partition(topic).ISR)
	slices.Sort(isr)
	return isr
}

// TestReplicationISR: RF 3, leader on broker 1. acks=all records are on
// all three logs when acknowledged; a stopped follower leaves the ISR
// after replica.lag.time.max.ms (UnderReplicatedPartitions 1,
// IsrShrinksPerSec 1) and rejoins it once restarted and caught up; the
// high watermark and leader epochs are checkpointed in Kafka's files.
func TestReplicationISR(t *testing.T) {
	c := newRepCluster(t, 3)
	const topic = "rep"
	c.createTopic(topic, nil, 1, 1, 2, 3)
	cl := c.client()

	produceValues0(t, cl, topic, "a", 100)
	// Every broker gets every acknowledged record (waited for: a follower
	// slowed past replica.lag.time.max.ms is acknowledged without and
	// catches up after).
	testcluster.Eventually(t, 10*lagTime, func() error {
		for id := int32(1); id <= 3; id++ {
			if n := leo(c.broker(id), topic); n != 100 {
				return fmt.Errorf("broker %d holds %d of the 100 acknowledged records", id, n)
			}
		}
		return nil
	})
	require.Equal(t, int64(100), c.broker(1).Replicas().Partition(topic, 0).HighWatermark())
	got := consumeValues(t, c, topic, 100)
	require.Equal(t, "a-0", got[0])
	require.Equal(t, "a-99", got[99])
	leader := c.broker(1)
	require.Zero(t, gauge(t, leader, "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions"))
	require.Equal(t, int64(1), gauge(t, leader, "kafka.server:type=ReplicaManager,name=LeaderCount"))
	require.Equal(t, int64(3), gauge(t, leader, "kafka.cluster:type=Partition,name=InSyncReplicasCount,topic=rep,partition=0"))
	require.Zero(t, gauge(t, c.broker(2), "kafka.server:type=ReplicaManager,name=LeaderCount"))
	require.Equal(t, int64(1), gauge(t, c.broker(2), "kafka.server:type=ReplicaManager,name=PartitionCount"))

	// Followers learn the high watermark from their next fetch.
	testcluster.Eventually(t, 5*time.Second, func() error {
		if hw := c.broker(3).Replicas().Partition(topic, 0).HighWatermark(); hw != 100 {
			return fmt.Errorf("follower high watermark %d", hw)
		}
		return nil
	})
	// Stop follower 3: after replica.lag.time.max.ms the leader drops it.
	stopped := time.Now()
	c.stop(3)
	hwFile, err := os.ReadFile(filepath.Join(c.nodes[3].dir, replica.HWCheckpointFile))
	require.NoError(t, err)
	require.Contains(t, string(hwFile), "rep 0 100", "the follower's high watermark is checkpointed")
	epochs, err := os.ReadFile(filepath.Join(c.nodes[3].dir, "rep-0", replica.EpochCheckpointFile))
	require.NoError(t, err)
	require.Equal(t, "0\n1\n1 0\n", string(epochs), "leader epoch 1 starts at offset 0")

	testcluster.Eventually(t, 10*lagTime, func() error {
		if isr := isrOf(c, topic); !slices.Equal(isr, []int32{1, 2}) {
			return fmt.Errorf("isr %v", isr)
		}
		return nil
	})
	require.GreaterOrEqual(t, time.Since(stopped), lagTime, "not before replica.lag.time.max.ms")
	require.Equal(t, int64(1), gauge(t, leader, "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions"))
	// The leader marks the meter once the controller's answer is back,
	// which can be just after the new image is published.
	waitGauge(t, leader, "kafka.server:type=ReplicaManager,name=IsrShrinksPerSec", 1)
	require.Equal(t, int64(1), gauge(t, leader, "kafka.cluster:type=Partition,name=UnderReplicated,topic=rep,partition=0"))
	require.Equal(t, int64(2), gauge(t, leader, "kafka.cluster:type=Partition,name=InSyncReplicasCount,topic=rep,partition=0"))

	// acks=all goes on with two in-sync replicas.
	produceValues0(t, cl, topic, "b", 50)
	require.Equal(t, int64(150), leo(c.broker(2), topic))

	// Restart it on the same data: it catches up and is back in the ISR.
	c.start(3)
	testcluster.Eventually(t, 10*lagTime, func() error {
		if isr := isrOf(c, topic); !slices.Equal(isr, []int32{1, 2, 3}) {
			return fmt.Errorf("isr %v, follower log end %d", isr, leo(c.broker(3), topic))
		}
		return nil
	})
	require.Equal(t, int64(150), leo(c.broker(3), topic))
	waitGauge(t, leader, "kafka.server:type=ReplicaManager,name=IsrExpandsPerSec", 1)
	require.Zero(t, gauge(t, leader, "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions"))
	testcluster.Eventually(t, 5*time.Second, func() error {
		if hw := c.broker(3).Replicas().Partition(topic, 0).HighWatermark(); hw != 150 {
			return fmt.Errorf("follower high watermark %d", hw)
		}
		return nil
	})
}

// TestReplicationMinISR: with min.insync.replicas=2 and only the leader
// in the ISR, acks=all is refused before the append while acks=1 works.
func TestReplicationMinISR(t *testing.T) {
	c := newRepCluster(t, 3)
	const topic = "minisr"
	c.createTopic(topic, map[string]string{"min.insync.replicas": "2"}, 1, 1, 2, 3)
	cl := c.client()
	produceValues0(t, cl, topic, "a", 10)
	leader := c.broker(1)
	require.Zero(t, gauge(t, leader, "kafka.server:type=ReplicaManager,name=AtMinIsrPartitionCount"))

	c.stop(2)
	c.stop(3)
	testcluster.Eventually(t, 10*lagTime, func() error {
		if isr := isrOf(c, topic); !slices.Equal(isr, []int32{1}) {
			return fmt.Errorf("isr %v", isr)
		}
		return nil
	})
	require.Equal(t, int64(1), gauge(t, leader, "kafka.server:type=ReplicaManager,name=UnderMinIsrPartitionCount"))
	require.Equal(t, int64(1), gauge(t, leader, "kafka.cluster:type=Partition,name=UnderMinIsr,topic=minisr,partition=0"))

	all := c.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := all.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("refused")}).FirstErr()
	require.ErrorIs(t, err, kerr.NotEnoughReplicas)
	require.Equal(t, int64(10), leo(leader, topic), "nothing appended")

	one := c.client(kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	require.NoError(t, one.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("acks=1")}).FirstErr())
	require.Equal(t, int64(11), leo(leader, topic))
}

// TestReplicationLeaderChange: broker 1 leads at epoch 1 and is cut off
// (the others learn of leader 2 at epoch 2 first): what it appends then is
// never acknowledged to acks=all, it answers NOT_LEADER_OR_FOLLOWER once
// deposed, and as a follower it truncates the uncommitted tail found by
// OffsetForLeaderEpoch and copies the new leader's log.
func TestReplicationLeaderChange(t *testing.T) {
	c := newRepCluster(t, 3)
	const topic = "failover"
	c.createTopic(topic, nil, 1, 1, 2, 3)
	produceValues0(t, c.client(), topic, "a", 10)

	// Brokers 2 and 3 learn that 2 leads at epoch 2; broker 1 does not.
	c.publishTo([]int32{2, 3}, func(img *metadata.Image) {
		p := &img.Topics[topic].Partitions[0]
		p.Leader, p.LeaderEpoch, p.PartitionEpoch, p.ISR = 2, 2, p.PartitionEpoch+1, []int32{2, 3}
	})
	// Raw produce requests to broker 1 only; kgo sends its configured acks.
	old1, err := kgo.NewClient(kgo.SeedBrokers(c.broker(1).Addrs()[0]), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	require.NoError(t, err)
	defer old1.Close()
	oldAll, err := kgo.NewClient(kgo.SeedBrokers(c.broker(1).Addrs()[0]))
	require.NoError(t, err)
	defer oldAll.Close()
	// acks=1 on the deposed leader is appended locally (it still thinks
	// it leads)...
	sp := produceAcks(t, old1, topic, 1, makeBatch(5, 10))
	require.Zero(t, sp.ErrorCode, "%v", sp.ErrorMessage)
	require.Equal(t, int64(15), leo(c.broker(1), topic))
	// ...but acks=all is never acknowledged: it waits for followers that
	// left, and fails once the image reaches broker 1.
	res := make(chan kmsg.ProduceResponseTopicPartition, 1)
	go func() { res <- produceAcks(t, oldAll, topic, -1, makeBatch(1, 10)) }()
	testcluster.Eventually(t, 5*time.Second, func() error {
		if l := leo(c.broker(1), topic); l != 16 {
			return fmt.Errorf("deposed leader log end %d", l)
		}
		return nil
	})
	select {
	case r := <-res:
		t.Fatalf("deposed leader answered acks=all: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	// The new leader takes writes meanwhile. The client knows broker 2
	// only: broker 1 still names itself leader, and a client that learned
	// that would park its acks=all produce there beside the one above.
	produceValues0(t, c.client(kgo.SeedBrokers(c.broker(2).Addrs()[0])), topic, "b", 7)
	require.Equal(t, int64(17), leo(c.broker(2), topic))

	c.publish(func(*metadata.Image) {}) // broker 1 learns the news
	r := <-res
	require.Equal(t, kerr.NotLeaderForPartition.Code, r.ErrorCode)

	// Broker 1 truncates its 6 uncommitted records back to offset 10 and
	// copies offsets 10..16 from broker 2.
	testcluster.Eventually(t, 10*time.Second, func() error {
		if l := leo(c.broker(1), topic); l != 17 {
			return fmt.Errorf("old leader log end %d", l)
		}
		return nil
	})
	// Counted where an operator looks: one truncation of 6 offsets.
	require.Equal(t, int64(1), gauge(t, c.broker(1), "kafka.server:type=ReplicaFetcherManager,name=TruncationsPerSec,clientId=Replica"))
	require.Equal(t, int64(6), gauge(t, c.broker(1), "kafka.server:type=ReplicaFetcherManager,name=TruncatedMessagesPerSec,clientId=Replica"))
	require.Zero(t, gauge(t, c.broker(3), "kafka.server:type=ReplicaFetcherManager,name=TruncationsPerSec,clientId=Replica"))
	got := consumeValues(t, c, topic, 17)
	require.Equal(t, "a-9", got[9])
	require.Equal(t, "b-0", got[10], "the deposed leader's records are gone")
	// Every log holds the same records at the same offsets.
	want := readAll(t, c.broker(2), topic)
	for _, id := range []int32{1, 3} {
		testcluster.Eventually(t, 10*time.Second, func() error {
			if got := readAll(t, c.broker(id), topic); string(got) != string(want) {
				return fmt.Errorf("broker %d log differs from the leader's", id)
			}
			return nil
		})
	}
	testcluster.Eventually(t, 10*lagTime, func() error {
		if isr := isrOf(c, topic); !slices.Equal(isr, []int32{1, 2, 3}) {
			return fmt.Errorf("isr %v", isr)
		}
		return nil
	})
	epochs, err := os.ReadFile(filepath.Join(c.nodes[1].dir, "failover-0", replica.EpochCheckpointFile))
	require.NoError(t, err)
	require.Equal(t, "0\n2\n1 0\n2 10\n", string(epochs))

	// A follower fetching with a stale epoch is fenced.
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis = 3, 0
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.CurrentLeaderEpoch, rp.PartitionMaxBytes = 0, 1, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	lc, err := kgo.NewClient(kgo.SeedBrokers(c.broker(2).Addrs()[0]))
	require.NoError(t, err)
	defer lc.Close()
	fr, err := req.RequestWith(context.Background(), lc.SeedBrokers()[0])
	require.NoError(t, err)
	require.Equal(t, kerr.FencedLeaderEpoch.Code, fr.Topics[0].Partitions[0].ErrorCode)
	// And a broker that does not lead answers NOT_LEADER_OR_FOLLOWER.
	sp = produceAcks(t, old1, topic, 1, makeBatch(1, 10))
	require.Equal(t, kerr.NotLeaderForPartition.Code, sp.ErrorCode)
}

// produceAcks sends one raw produce to the client's seed broker (kgo sets
// Acks to the client's configured acks; acks says which is expected).
func produceAcks(t *testing.T, cl *kgo.Client, topic string, acks int16, records []byte) kmsg.ProduceResponseTopicPartition {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = acks
	req.TimeoutMillis = 30000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: records}}}}
	resp, err := req.RequestWith(context.Background(), cl.SeedBrokers()[0])
	if err != nil {
		return kmsg.ProduceResponseTopicPartition{ErrorCode: -1, ErrorMessage: kmsg.StringPtr(err.Error())}
	}
	return resp.Topics[0].Partitions[0]
}

func readAll(t *testing.T, b *broker.Broker, topic string) []byte {
	p := b.Replicas().Partition(topic, 0)
	if p == nil {
		return nil
	}
	data, err := p.Log().Read(0, 1<<30, p.Log().LogEndOffset(), true)
	if err != nil {
		return []byte(err.Error())
	}
	return data
}

// TestReplicationFencedFollowerStaysOutOfISR: a follower the controller
// fenced (and dropped from the ISR) that still fetches and catches up is
// not proposed for the ISR (Kafka's isReplicaIsrEligible); once unfenced,
// its next fetch brings it back.
func TestReplicationFencedFollowerStaysOutOfISR(t *testing.T) {
	c := newRepCluster(t, 3)
	const topic = "fenced"
	c.createTopic(topic, nil, 1, 1, 2, 3)
	cl := c.client()
	produceValues0(t, cl, topic, "a", 10)
	// Broker 3 is not told: it keeps fetching as a follower.
	c.publishTo([]int32{1, 2}, func(img *metadata.Image) {
		img.Brokers[3].Fenced = true
		p := &img.Topics[topic].Partitions[0]
		p.ISR, p.PartitionEpoch = []int32{1, 2}, p.PartitionEpoch+1
	})
	// Two rounds in which broker 3 fetches up to the high watermark: the
	// second starts after the leader has seen a caught-up fetch from it.
	for round, end := range []int64{15, 20} {
		produceValues0(t, cl, topic, fmt.Sprintf("b%d", round), 5)
		testcluster.Eventually(t, 10*time.Second, func() error {
			if l := leo(c.broker(3), topic); l != end {
				return fmt.Errorf("fenced follower log end %d, want %d", l, end)
			}
			return nil
		})
	}
	require.Equal(t, []int32{1, 2}, isrOf(c, topic), "a fenced broker was proposed for the ISR")
	require.Zero(t, gauge(t, c.broker(1), "kafka.server:type=ReplicaManager,name=IsrExpandsPerSec"))

	c.publish(func(img *metadata.Image) { img.Brokers[3].Fenced = false })
	testcluster.Eventually(t, 10*lagTime, func() error {
		if isr := isrOf(c, topic); !slices.Equal(isr, []int32{1, 2, 3}) {
			return fmt.Errorf("isr %v", isr)
		}
		return nil
	})
}

// TestReplicationFailedIsrUpdateCounted: an ISR change the controller
// refuses (here: the partition epoch moved on without the leader hearing
// of it) is counted in FailedIsrUpdatesPerSec, Kafka's meter, and leaves
// the ISR as the controller has it.
func TestReplicationFailedIsrUpdateCounted(t *testing.T) {
	c := newRepCluster(t, 3)
	const topic = "refused"
	c.createTopic(topic, nil, 1, 1, 2, 3)
	produceValues0(t, c.client(), topic, "a", 10)
	// The controller's partition epoch moves on; no broker is told.
	c.publishTo([]int32{}, func(img *metadata.Image) {
		img.Topics[topic].Partitions[0].PartitionEpoch++
	})
	c.stop(3) // the leader's shrink of the ISR names the old epoch
	name := "kafka.server:type=ReplicaManager,name=FailedIsrUpdatesPerSec"
	testcluster.Eventually(t, 10*lagTime, func() error {
		if n := gauge(t, c.broker(1), name); n < 1 {
			return fmt.Errorf("%s %d", name, n)
		}
		return nil
	})
	require.Equal(t, []int32{1, 2, 3}, isrOf(c, topic))
	require.Zero(t, gauge(t, c.broker(1), "kafka.server:type=ReplicaManager,name=IsrShrinksPerSec"))
}
