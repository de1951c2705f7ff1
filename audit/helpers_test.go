package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// Small buckets so the suite runs in seconds: a bucket closes 1s after it
// ends plus 2s of grace.
const (
	testBucket = time.Second
	testGrace  = 2 * time.Second
)

func startBroker(t *testing.T, opts ...testcluster.Opt) *testcluster.Broker {
	return testcluster.Start(t, append([]testcluster.Opt{
		testcluster.Prop("group.initial.rebalance.delay.ms", "0"),
		testcluster.Prop("offsets.topic.num.partitions", "3"),
		testcluster.Prop("log.retention.check.interval.ms", "100"),
	}, opts...)...)
}

type runningReconciler struct {
	*Reconciler
	url  string
	stop func()
}

// startReconciler runs a reconciler on addr with its HTTP API on a free
// port; stop (also run at cleanup) ends it and waits for its final save.
func startReconciler(t *testing.T, addr, stateDir string) *runningReconciler {
	t.Helper()
	r, err := New(Config{
		Brokers: []string{addr}, Bucket: testBucket, Grace: testGrace, SampleInterval: 100 * time.Millisecond,
		SaveInterval: 200 * time.Millisecond, StateDir: stateDir,
	})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: r.Handler()}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("reconciler: %v", err)
			}
			_ = srv.Close()
		})
	}
	t.Cleanup(stop)
	return &runningReconciler{Reconciler: r, url: "http://" + ln.Addr().String(), stop: stop}
}

func createTopic(t *testing.T, addr, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, configs, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Err)
}

// counts is records per bucket start (ms).
type counts map[int64]int64

func (c counts) total() (n int64) {
	for _, v := range c {
		n += v
	}
	return n
}

// produceAudited produces n records to topic through an audited producer,
// paced over about d so they span a few buckets, and returns the
// acknowledged records per bucket of their timestamps.
func produceAudited(t *testing.T, addr, topic string, n int, d time.Duration) counts {
	t.Helper()
	got, err := produceAuditedErr(addr, topic, n, d)
	require.NoError(t, err)
	return got
}

func produceAuditedErr(addr, topic string, n int, d time.Duration) (counts, error) {
	hook, err := NewProducerHook(Bucket(testBucket))
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("audit-test-producer"), kgo.WithHooks(hook),
		kgo.ProducerLinger(2*time.Millisecond), kgo.ProducerBatchMaxBytes(8<<10))
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		got  = counts{}
		errs []error
	)
	const batches = 50
	per := max(1, n/batches)
	start := time.Now()
	// Incompressible values, so retention.bytes sees real sizes.
	values := make([]byte, 40*1024)
	_, _ = rand.Read(values)
	for i := 0; i < n; i++ {
		if i%per == 0 {
			if wait := time.Until(start.Add(time.Duration(i/per) * d / batches)); wait > 0 {
				time.Sleep(wait) // pacing the load, not waiting for a condition
			}
		}
		cl.Produce(context.Background(), &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: values[i%1000*40 : i%1000*40+40]}, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			got[bucketOf(r.Timestamp.UnixMilli(), testBucket.Milliseconds())]++
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		errs = append(errs, err)
	}
	cl.Close()
	hook.Close()
	st := hook.Stats()
	if st.Counted != int64(n) || st.Unflushed+st.Dropped != 0 {
		errs = append(errs, fmt.Errorf("hook stats %+v", st))
	}
	return got, errors.Join(errs...)
}

// consumer is an audited group member that polls exactly what it is asked
// for and commits exactly that.
type consumer struct {
	cl   *kgo.Client
	hook *Hook
	got  counts
}

func newConsumer(t *testing.T, addr, topic, group string) *consumer {
	t.Helper()
	hook, err := NewConsumerHook(Bucket(testBucket))
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(hook))
	require.NoError(t, err)
	return &consumer{cl: cl, hook: hook, got: counts{}}
}

// poll reads n records and commits them.
func (c *consumer) poll(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for read := 0; read < n; {
		fs := c.cl.PollRecords(ctx, n-read)
		require.NoError(t, ctx.Err(), "polled %d of %d", read, n)
		fs.EachError(func(_ string, _ int32, err error) { require.NoError(t, err) })
		fs.EachRecord(func(r *kgo.Record) {
			read++
			c.got[bucketOf(r.Timestamp.UnixMilli(), testBucket.Milliseconds())]++
		})
	}
	require.NoError(t, c.cl.CommitUncommittedOffsets(ctx))
}

func (c *consumer) close() {
	c.cl.Close()
	c.hook.Close()
}

func consumeAudited(t *testing.T, addr, topic, group string, n int) counts {
	t.Helper()
	c := newConsumer(t, addr, topic, group)
	c.poll(t, n)
	c.close()
	return c.got
}

// waitReport waits until every bucket of want is closed and check accepts
// the report of topic.
func waitReport(t *testing.T, r *runningReconciler, topic string, timeout time.Duration, check func(byBucket map[int64]BucketReport) error) []BucketReport {
	t.Helper()
	var last []BucketReport
	testcluster.Eventually(t, timeout, func() error {
		last = r.Report(topic, time.Now().Add(-time.Hour))
		m := map[int64]BucketReport{}
		for _, b := range last {
			m[b.Bucket] = b
		}
		return check(m)
	})
	return last
}

func group(b BucketReport, g string) (GroupReport, error) {
	for _, gr := range b.Groups {
		if gr.Group == g {
			return gr, nil
		}
	}
	return GroupReport{}, fmt.Errorf("bucket %v: no group %s", b.Start, g)
}

func val(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("KOBS_REQUIRE_INTEROP") != "" {
		t.Fatalf("%s not found (run scripts/install-test-deps.sh)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "%s %s\nstderr:\n%s", name, strings.Join(args, " "), errb.String())
	return out.String()
}
