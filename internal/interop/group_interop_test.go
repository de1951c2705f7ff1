package interop_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// groupClient consumes topic as a member of group until n records arrived,
// committing what it read, then leaves; it returns the values read.
type groupClient struct {
	name    string
	consume func(t *testing.T, addr, topic, group string, n int) []string
}

// TestGroupInterop has each foreign client consume a three-partition topic
// through the group protocol (FindCoordinator, Join/Sync, Heartbeat,
// OffsetCommit/Fetch, LeaveGroup at the versions it speaks), commit, exit;
// then the broker restarts and each client, restarted with the same group,
// must resume exactly at its committed offsets.
func TestGroupInterop(t *testing.T) {
	kcat := need(t, "kcat")
	python := debianPython(t)
	props := []testcluster.Opt{
		testcluster.Prop("group.initial.rebalance.delay.ms", "0"),
		testcluster.Prop("offsets.topic.num.partitions", "5"),
	}
	dir := t.TempDir()
	b := testcluster.Start(t, append(props, testcluster.Dir(dir))...)

	clients := []groupClient{
		{"kcat", func(t *testing.T, addr, topic, group string, n int) []string {
			out := run(t, "", kcat, "-b", addr, "-G", group, "-e", "-f", "%s\n", "-q",
				"-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=100", topic)
			return strings.Fields(out)
		}},
		{"kafka-python", func(t *testing.T, addr, topic, group string, n int) []string {
			return strings.Fields(run(t, "", python, "testdata/group_clients.py", "kafka-python", addr, topic, group, fmt.Sprint(n)))
		}},
		{"confluent", func(t *testing.T, addr, topic, group string, n int) []string {
			return strings.Fields(run(t, "", python, "testdata/group_clients.py", "confluent", addr, topic, group, fmt.Sprint(n)))
		}},
		{"sarama", saramaGroupConsume},
	}

	produce := func(t *testing.T, addr, client, topic, prefix string, n int) {
		if client == "confluent" {
			// confluent-kafka produces its own records, idempotently
			// (InitProducerId + sequence numbers).
			run(t, "", python, "testdata/group_clients.py", "confluent-produce", addr, topic, prefix, fmt.Sprint(n), "true")
			return
		}
		// Uncompressed: kafka-python has no snappy library here.
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchCompression(kgo.NoCompression()))
		require.NoError(t, err)
		defer cl.Close()
		recs := make([]*kgo.Record, n)
		for i, v := range values(prefix, n) {
			recs[i] = &kgo.Record{Topic: topic, Key: []byte(v), Value: []byte(v)}
		}
		require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
	}
	checkCommitted := func(t *testing.T, addr, topic, group string) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		require.NoError(t, err)
		defer cl.Close()
		adm := kadm.NewClient(cl)
		ends, err := adm.ListEndOffsets(context.Background(), topic)
		require.NoError(t, err)
		offs, err := adm.FetchOffsets(context.Background(), group)
		require.NoError(t, err)
		require.NoError(t, offs.Error())
		ends.Each(func(lo kadm.ListedOffset) {
			o, ok := offs.Lookup(topic, lo.Partition)
			require.True(t, ok, "%s: no committed offset for partition %d", group, lo.Partition)
			require.Equal(t, lo.Offset, o.At, "%s: committed offset of partition %d", group, lo.Partition)
		})
	}
	sameSet := func(t *testing.T, want, got []string, what string) {
		t.Helper()
		w, g := append([]string(nil), want...), append([]string(nil), got...)
		sort.Strings(w)
		sort.Strings(g)
		require.Equal(t, w, g, what)
	}

	const first, second = 300, 200
	for _, c := range clients {
		t.Run(c.name+"/first", func(t *testing.T) {
			topic, group := "grp-"+c.name, "g-"+c.name
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
			require.NoError(t, err)
			_, err = kadm.NewClient(cl).CreateTopic(context.Background(), 3, 1, nil, topic)
			cl.Close()
			require.NoError(t, err)
			produce(t, b.Addr(), c.name, topic, c.name+"1", first)
			got := c.consume(t, b.Addr(), topic, group, first)
			sameSet(t, values(c.name+"1", first), got, c.name+": first run")
			checkCommitted(t, b.Addr(), topic, group)
		})
	}

	// Restart the broker on the same data: the offsets come back from
	// __consumer_offsets.
	require.NoError(t, b.Close())
	b = testcluster.Start(t, append(props, testcluster.Dir(dir))...)

	for _, c := range clients {
		t.Run(c.name+"/resume", func(t *testing.T) {
			topic, group := "grp-"+c.name, "g-"+c.name
			produce(t, b.Addr(), c.name, topic, c.name+"2", second)
			got := c.consume(t, b.Addr(), topic, group, second)
			sameSet(t, values(c.name+"2", second), got, c.name+": resumed run read other records than the new ones")
			checkCommitted(t, b.Addr(), topic, group)
		})
	}
}

// saramaGroupConsume runs a sarama ConsumerGroup (its default protocol
// versions, negotiated through ApiVersions) until n records arrived.
func saramaGroupConsume(t *testing.T, addr, topic, group string, n int) []string {
	t.Helper()
	cfg := saramaConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	require.NoError(t, err)
	h := &saramaHandler{want: n, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	select {
	case <-h.done:
	case err := <-errc:
		t.Fatalf("sarama consumer group: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatalf("sarama read %d of %d records", len(h.got), n)
	}
	cancel()
	require.NoError(t, <-errc)
	require.NoError(t, cg.Close()) // commits the marked offsets and leaves
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got
}

type saramaHandler struct {
	mu   sync.Mutex
	got  []string
	want int
	done chan struct{}
	once sync.Once
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.mu.Lock()
			h.got = append(h.got, string(m.Value))
			if len(h.got) >= h.want {
				h.once.Do(func() { close(h.done) })
			}
			h.mu.Unlock()
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}
