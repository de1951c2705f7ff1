package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// loadProducer writes r-0, r-1, ... to partition 0 of a topic, one
// record at a time, until halted. Its goroutine only records outcomes; the
// test goroutine asserts on them.
type loadProducer struct {
	mu      sync.Mutex
	acked   map[string]bool
	lastAck time.Time
	errs    []error
	stop    chan struct{}
	done    chan struct{}
}

func startLoadProducer(ctx context.Context, cl *kgo.Client, topic string) *loadProducer {
	p := &loadProducer{acked: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			v := fmt.Sprintf("r-%d", i)
			pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			err := cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).FirstErr()
			cancel()
			p.mu.Lock()
			if err == nil {
				p.acked[v] = true
				p.lastAck = time.Now()
			} else {
				p.errs = append(p.errs, err)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *loadProducer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// ackedSince: a record was acknowledged after since, and more than n in all.
func (p *loadProducer) ackedSince(since time.Time, n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastAck.After(since) && len(p.acked) > n
}

func (p *loadProducer) lastAcked() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastAck
}

// halt stops the producer and waits for its last record's outcome.
func (p *loadProducer) halt() {
	close(p.stop)
	<-p.done
}

// readPartition0 reads partition 0 of topic from its start to its end
// offset and returns how often each value was read, and the end offset.
func readPartition0(ctx context.Context, t *testing.T, adm *kadm.Client, addrs []string, topic string) (map[string]int, int64) {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	end, _ := ends.Lookup(topic, 0)
	require.NoError(t, end.Err)
	cons, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cons.Close()
	seen := map[string]int{}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for read := int64(0); read < end.Offset; {
		fs := cons.PollFetches(cctx)
		require.NoError(t, cctx.Err(), "read %d of %d", read, end.Offset)
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; read++ })
	}
	return seen, end.Offset
}

// fastFailover are the process-cluster settings of the failover tests: a
// dead or paused broker is fenced within 2 s and dropped from the ISR
// within 3 s, and followers notice a new leader within 100 ms.
func fastFailover() []testcluster.Opt {
	return []testcluster.Opt{
		testcluster.Prop("broker.session.timeout.ms", "2000"),
		testcluster.Prop("broker.heartbeat.interval.ms", "300"),
		testcluster.Prop("replica.lag.time.max.ms", "3000"),
		testcluster.Prop("replica.fetch.wait.max.ms", "100"),
		testcluster.Prop("replica.fetch.backoff.ms", "100"),
	}
}

// createReplicated creates topic with one partition of rf replicas,
// retrying for up to 30 s: with a replica on every broker, all of them
// must be unfenced at that moment, and a broker whose heartbeats stalled
// past its session on a loaded machine (2 s with fastFailover) is fenced
// for a while (INVALID_REPLICATION_FACTOR). A retried creation that went
// through meets TOPIC_ALREADY_EXISTS, which is success.
func createReplicated(t *testing.T, adm *kadm.Client, topic string, rf int16, configs map[string]*string) {
	t.Helper()
	testcluster.Eventually(t, 30*time.Second, func() error {
		res, err := adm.CreateTopic(context.Background(), 1, rf, configs, topic)
		if err == nil {
			err = res.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		return err
	})
}
