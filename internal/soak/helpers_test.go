//go:build soak

package soak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// loadavg is the 1/5/15-minute load average, printed next to each number
// because the machine is shared.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load ?"
	}
	f := strings.Fields(string(b))
	return "load " + strings.Join(f[:3], " ")
}

// report prints a result line to stdout, where scripts/soak.sh picks it
// up for the summary.
func report(t *testing.T, format string, args ...any) {
	line := fmt.Sprintf(format, args...) + "  [" + loadavg() + "]"
	fmt.Println("SOAK: " + line)
}

// producer keeps an idempotent acks=all producer running, recording every
// acknowledged value and the time of each acknowledgement.
type producer struct {
	cl     *kgo.Client
	topic  string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	acked   map[string]int // value -> times acknowledged (must be 1)
	failed  int            // records whose promise returned an error
	lastErr error
	stopped int         // records cancelled by stop (never sent or never answered): not failures
	ackTime []time.Time // every ack, in callback order
	sent    int
}

// rate is the producer's target records/s.
const rate = 5000

func startProducer(t *testing.T, addrs []string, topic string, prefix string) *producer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is on by default
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(2000),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(100*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{cl: cl, topic: topic, cancel: cancel, acked: map[string]int{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		// Paced to about rate records/s, so that a long soak keeps its
		// acknowledged set (held in memory) small and failover is
		// measured at a fine grain.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		per := max(1, rate/1000)
		for i := 0; ctx.Err() == nil; i++ {
			if i%per == 0 {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
			v := fmt.Sprintf("%s-%09d", prefix, i)
			p.mu.Lock()
			p.sent++
			p.mu.Unlock()
			// Produce blocks while MaxBufferedRecords are in flight, which
			// paces the loop to what the cluster acknowledges.
			p.cl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				now := time.Now()
				p.mu.Lock()
				defer p.mu.Unlock()
				if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
					p.stopped++
					return
				}
				if err != nil {
					p.failed++
					p.lastErr = err
					return
				}
				p.acked[string(r.Value)]++
				p.ackTime = append(p.ackTime, now)
			})
		}
	}()
	return p
}

// firstAckAfter waits until an acknowledgement arrives after since and
// returns its time.
func (p *producer) firstAckAfter(t *testing.T, since time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.ackTime)
		i := sort.Search(n, func(i int) bool { return p.ackTime[i].After(since) })
		var at time.Time
		if i < n {
			at = p.ackTime[i]
		}
		p.mu.Unlock()
		if !at.IsZero() {
			return at.Sub(since), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no acknowledged produce within %v of the kill", timeout)
}

func (p *producer) ackCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ackTime)
}

// stop stops producing, waits for every in-flight record's outcome, and
// returns the acknowledged values.
func (p *producer) stop(t *testing.T) map[string]int {
	p.cancel()
	p.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.cl.Flush(ctx); err != nil {
		t.Errorf("flush: %v", err)
	}
	p.cl.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// readBack consumes topic from the start until every partition's high
// watermark and counts each value.
func readBack(t *testing.T, addrs []string, topic string) map[string]int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var ends kadm.ListedOffsets
	testcluster.Eventually(t, 60*time.Second, func() error {
		ends, err = adm.ListEndOffsets(context.Background(), topic)
		if err != nil {
			return err
		}
		return ends.Error()
	})
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	parts := map[string]map[int32]kgo.Offset{topic: {}}
	for p := range want {
		parts[topic][p] = kgo.NewOffset().AtStart()
	}
	got := map[string]int{}
	if len(want) == 0 {
		return got
	}
	cl2, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for len(want) > 0 {
		fs := cl2.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Errorf("read back %s: timed out with partitions %v not at their end", topic, want)
			return got
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)]++
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return got
}

// compare counts acknowledged against read back; missing acknowledged
// records and duplicates fail the test.
func compare(t *testing.T, part string, acked, read map[string]int, p *producer) {
	var missing, dups, ackDups, extra int
	var firstMissing []string
	for v, n := range acked {
		if n > 1 {
			ackDups++
		}
		if read[v] == 0 {
			missing++
			if len(firstMissing) < 5 {
				firstMissing = append(firstMissing, v)
			}
		}
	}
	total := 0
	for v, n := range read {
		total += n
		if n > 1 {
			dups += n - 1
		}
		if acked[v] == 0 {
			extra++ // written but its ack was lost: allowed (at-least-once from the client's view)
		}
	}
	sort.Strings(firstMissing)
	report(t, "%s: acknowledged %d, read back %d records (%d distinct), missing %d %v, duplicates %d, unacknowledged-but-written %d, producer errors %d (last: %v), cancelled at stop %d",
		part, len(acked), total, len(read), missing, firstMissing, dups, extra, p.failed, p.lastErr, p.stopped)
	if missing > 0 || dups > 0 || ackDups > 0 {
		t.Errorf("%s: LOSS/DUPLICATES: %d acknowledged records missing, %d duplicates read, %d values acknowledged twice", part, missing, dups, ackDups)
	}
}

// admin is a kadm client on the running brokers.
func admin(t *testing.T, addrs []string) (*kadm.Client, func()) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return kadm.NewClient(cl), cl.Close
}

// partitionState is leader and ISR of topic/0 as broker addr reports it.
func partitionState(addr, topic string, p int32) (leader int32, isr []int32, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		return -1, nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		return -1, nil, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return -1, nil, fmt.Errorf("topic %s: %v", topic, td.Err)
	}
	pd, ok := td.Partitions[p]
	if !ok {
		return -1, nil, fmt.Errorf("no partition %d", p)
	}
	return pd.Leader, pd.ISR, pd.Err
}

func createTopic(t *testing.T, addrs []string, topic string, partitions int32, rf int16, configs map[string]*string) {
	adm, done := admin(t, addrs)
	defer done()
	testcluster.Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		res, err := adm.CreateTopic(ctx, partitions, rf, configs, topic)
		if err != nil {
			return err
		}
		if res.Err != nil && !strings.Contains(res.Err.Error(), "TOPIC_ALREADY_EXISTS") {
			return res.Err
		}
		return nil
	})
}

func strp(s string) *string { return &s }

// quorumLeader is the active controller (the raft leader of
// __cluster_metadata) as broker addr reports it, -1 when unknown.
func quorumLeader(addr string) int32 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		return -1
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) == 0 || len(resp.Topics[0].Partitions) == 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		return -1
	}
	return resp.Topics[0].Partitions[0].LeaderID
}
