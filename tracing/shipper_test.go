package tracing

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// tracedLoad produces n traced records at about rate/s in the background
// and returns a function that waits for the end and returns the number of
// trace events written to the trace topic.
func tracedLoad(t *testing.T, addr, topic string, n, rate int) func() int64 {
	t.Helper()
	ph, err := NewProducerHook()
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.WithHooks(ph), kgo.ProducerLinger(time.Millisecond))
	require.NoError(t, err)
	var failed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		per := max(1, rate/100)
		for i := 0; i < n; {
			<-tick.C
			for j := 0; j < per && i < n; j, i = j+1, i+1 {
				cl.Produce(context.Background(), &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")},
					func(_ *kgo.Record, err error) {
						if err != nil {
							failed.Add(1)
						}
					})
			}
		}
		_ = cl.Flush(context.Background())
	}()
	return func() int64 {
		<-done
		cl.Close()
		ph.Close()
		require.Zero(t, failed.Load())
		st := ph.Stats()
		require.Equal(t, int64(n), st.Written, "%+v", st)
		return st.Written
	}
}

// shipperProcess runs "kobs trace ship" as its own process.
type shipperProcess struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{} // closed when the process exited; err is then set
	err  error
}

func (p *shipperProcess) wait() error { <-p.done; return p.err }

func startShipperProcess(t *testing.T, addr, url string) *shipperProcess {
	t.Helper()
	bin := testcluster.Binary(t)
	p := &shipperProcess{logs: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "trace", "ship", "--bootstrap-server", addr, "--url", url, "--batch", "500", "--session-timeout", "6s")
	w := &lockedWriter{w: p.logs}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done })
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestShipperKill9 kills the shipper process mid-stream and restarts it:
// the events it shipped but did not commit are shipped again onto the same
// document ids, so the store ends with exactly one document per event.
func TestShipperKill9(t *testing.T) {
	const n = 30000
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)
	wait := tracedLoad(t, b.Addr(), "kill9", n, 10000)

	first := startShipperProcess(t, b.Addr(), ts.URL)
	testcluster.Eventually(t, 30*time.Second, func() error {
		if c := countEvents(t, es); c < 3000 {
			return fmt.Errorf("%d events shipped so far", c)
		}
		return nil
	})
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	require.Error(t, first.wait(), "killed")
	atKill := countEvents(t, es)
	t.Logf("killed the shipper with %d events in the store", atKill)
	require.Less(t, atKill, int64(n), "the kill must happen mid-stream")

	second := startShipperProcess(t, b.Addr(), ts.URL)
	written := wait()
	waitCount(t, es, written, 60*time.Second)
	// Nothing more arrives later (no duplicate stragglers).
	time.Sleep(time.Second)
	require.Equal(t, written, countEvents(t, es))
	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.wait(), "%s", second.logs)
	require.Contains(t, second.logs.String(), "trace shipper stopped")
}

// TestShipperStoreOutage stops the store during traced load and starts it
// again: the shipper retries without committing, and no event is lost.
func TestShipperStoreOutage(t *testing.T) {
	const n = 20000
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)
	s := startShipper(t, b.Addr(), ts.URL)
	wait := tracedLoad(t, b.Addr(), "outage", n, 5000)

	testcluster.Eventually(t, 30*time.Second, func() error {
		if c := countEvents(t, es); c < 1000 {
			return fmt.Errorf("%d events shipped so far", c)
		}
		return nil
	})
	ts.Stop()
	time.Sleep(2 * time.Second)
	ts.start()
	written := wait()
	waitCount(t, es, written, 60*time.Second)
	require.Positive(t, s.Stats().Retries, "the outage must have been noticed")
	require.Zero(t, s.Stats().Corrupt)
	require.Zero(t, s.Stats().Rejected)
}

// TestShipperCorruptAndFull: corrupt trace-topic records are counted and
// skipped; while the store answers 429 (disk full) nothing is committed,
// and once it accepts again everything arrives.
func TestShipperCorruptAndFull(t *testing.T) {
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)

	// A proxy that answers bulks with Elasticsearch's flood-stage 429
	// while full is set.
	var full atomic.Bool
	full.Store(true)
	target, _ := url.Parse(ts.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if full.Load() && strings.HasSuffix(r.URL.Path, "/_bulk") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"root_cause":[{"type":"cluster_block_exception","reason":"disk full"}],"type":"cluster_block_exception","reason":"disk full"},"status":429}`))
			return
		}
		rp.ServeHTTP(w, r)
	})}
	pln := listen(t)
	go func() { _ = proxy.Serve(pln) }()
	t.Cleanup(func() { _ = proxy.Close() })

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(DefaultTopic), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()
	var good int
	for i := range 100 {
		var v []byte
		switch i % 10 {
		case 3:
			v = []byte("not json")
		case 7:
			v = []byte(`{"type":"produce","topic":"x","ts":1}`) // no msg_id
		default:
			e := Event{Type: TypeProduce, MsgID: fmt.Sprintf("m%d", i), Topic: "t", TS: time.Now().UnixMilli()}
			v = e.Marshal()
			good++
		}
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr())
	}

	s := startShipper(t, b.Addr(), "http://"+pln.Addr().String())
	adm := kadm.NewClient(cl)
	testcluster.Eventually(t, 20*time.Second, func() error {
		if s.Stats().Retries < 3 {
			return fmt.Errorf("retries %d", s.Stats().Retries)
		}
		return nil
	})
	offs, err := adm.FetchOffsets(ctx, "kobs-trace-shipper")
	require.NoError(t, err)
	committed := int64(0)
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	require.Zero(t, committed, "nothing may be committed while the store refuses the bulk")
	require.Zero(t, countEvents(t, es))

	full.Store(false)
	waitCount(t, es, int64(good), 30*time.Second)
	require.Equal(t, int64(20), s.Stats().Corrupt)
	testcluster.Eventually(t, 10*time.Second, func() error {
		offs, err := adm.FetchOffsets(ctx, "kobs-trace-shipper")
		if err != nil {
			return err
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		if sum != 100 {
			return fmt.Errorf("committed %d of 100", sum)
		}
		return nil
	})
}
