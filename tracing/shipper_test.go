package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
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

	"github.com/olivere/elastic/v7"
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
	logs *lockedWriter // read while the process writes: always through its lock
	done chan struct{} // closed when the process exited; err is then set
	err  error
}

func (p *shipperProcess) wait() error { <-p.done; return p.err }

func startShipperProcess(t *testing.T, addr, url string) *shipperProcess {
	t.Helper()
	p := newShipperProcess(t, addr, url)
	p.start(t)
	return p
}

// newShipperProcess prepares the process without starting it, so that a
// test can hand p.cmd to whoever may kill it before it can be reached.
func newShipperProcess(t *testing.T, addr, url string) *shipperProcess {
	t.Helper()
	bin := testcluster.Binary(t)
	p := &shipperProcess{logs: &lockedWriter{w: &bytes.Buffer{}}, done: make(chan struct{})}
	// --listen on a free port: the default 8790 may be taken by another
	// shipper on this machine (make run, a parallel test run).
	p.cmd = exec.Command(bin, "trace", "ship", "--bootstrap-server", addr, "--url", url, "--batch", "500", "--session-timeout", "6s",
		"--listen", "127.0.0.1:0")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	return p
}

func (p *shipperProcess) start(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done })
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

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// killingProxy forwards to the store. The first _bulk that arrives once
// kill() holds is stored, and then, before its answer reaches the shipper,
// the shipper process is killed. The events of that bulk are in the store
// but were never acknowledged to the shipper, so their offsets cannot have
// been committed: a correct shipper must ship them again.
type killingProxy struct {
	store   string
	kill    func() bool // runs on the proxy's goroutines: no require there
	killing atomic.Bool
	victim  atomic.Pointer[exec.Cmd]
	once    sync.Once
	mu      sync.Mutex
	killed  []byte // the bulk body stored just before the kill
	killedC chan struct{}
}

func (p *killingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, _ := url.Parse(p.store)
	if !strings.HasSuffix(r.URL.Path, "/_bulk") {
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	killNow := p.killing.Load() || p.kill()
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.store+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if killNow {
		p.killing.Store(true)
		p.once.Do(func() {
			if cmd := p.victim.Load(); cmd != nil {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
			p.mu.Lock()
			p.killed = body
			p.mu.Unlock()
			close(p.killedC)
		})
		// Only the killed shipper talks to the proxy: no answer
		// leaves once the kill is decided.
		panic(http.ErrAbortHandler)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// committedOffsets sums the shipper group's committed offsets over the
// trace topic's partitions, per partition.
func committedOffsets(ctx context.Context, adm *kadm.Client) (map[int32]int64, error) {
	offs, err := adm.FetchOffsets(ctx, "kobs-trace-shipper")
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == DefaultTopic && o.Err == nil && o.At > 0 {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// TestShipperKill9 kills the shipper process mid-stream, between a bulk
// being stored and its acknowledgement, once the shipper has committed
// some offsets, and restarts it. At the kill, every event below the
// committed offsets is in the store (nothing was committed that was not
// stored). The restarted shipper ships the unacknowledged bulk again onto
// the same document ids (their _version becomes 2), and once it has
// committed everything the store holds exactly one document per event. It
// does not depend on how the shipper sizes its bulks.
func TestShipperKill9(t *testing.T) {
	const n = 30000
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	proxy := &killingProxy{store: ts.URL, killedC: make(chan struct{}), kill: func() bool {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := committedOffsets(qctx, adm)
		return err == nil && len(c) > 0
	}}
	pln := listen(t)
	psrv := &http.Server{Handler: proxy, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = psrv.Serve(pln) }()
	t.Cleanup(func() { _ = psrv.Close() })
	// A first load is shipped and committed; a second one streams while
	// the kill comes, so a bulk follows a commit however the shipper
	// sizes its bulks.
	waitA := tracedLoad(t, b.Addr(), "kill9a", n/2, 10000)
	// The proxy knows its victim before the shipper can send a bulk: set
	// after the start, a stall of this goroutine could let the deciding
	// bulk through with no one to kill, and first.wait() would never end.
	first := newShipperProcess(t, b.Addr(), "http://"+pln.Addr().String())
	proxy.victim.Store(first.cmd)
	first.start(t)
	testcluster.Eventually(t, ingestWait, func() error {
		if c, err := committedOffsets(ctx, adm); err != nil || len(c) == 0 {
			return fmt.Errorf("the shipper has not committed yet (%v); logs:\n%s", err, first.logs)
		}
		return nil
	})
	waitB := tracedLoad(t, b.Addr(), "kill9b", n/2, 10000)
	select {
	case <-proxy.killedC:
	case <-first.done:
		t.Fatalf("the shipper exited before the kill: %v; logs:\n%s", first.err, first.logs)
	case <-time.After(ingestWait):
		t.Fatalf("the shipper sent no bulk after its first commit; logs:\n%s", first.logs)
	}
	require.Error(t, first.wait(), "killed")

	// Nothing committed that was not stored: every event of the records
	// below the committed offsets has its document.
	committed, err := committedOffsets(ctx, adm)
	require.NoError(t, err)
	require.NotEmpty(t, committed, "the kill waited for a commit")
	ids := committedEventIDs(t, b.Addr(), committed)
	require.NotEmpty(t, ids)
	for i := 0; i < len(ids); i += 1000 {
		chunk := ids[i:min(i+1000, len(ids))]
		found, err := es.Count(IndexPrefix + "2*").Query(elastic.NewIdsQuery().Ids(chunk...)).Do(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(len(chunk)), found, "events below the committed offsets %v are missing from the store", committed)
	}

	// The ids of the bulk that was stored but never acknowledged.
	type docRef struct{ index, id string }
	var unacked []docRef
	proxy.mu.Lock()
	for line := range bytes.SplitSeq(proxy.killed, []byte{'\n'}) {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if json.Unmarshal(line, &action) == nil {
			if a, ok := action["index"]; ok && a.ID != "" {
				unacked = append(unacked, docRef{a.Index, a.ID})
			}
		}
	}
	proxy.mu.Unlock()
	require.NotEmpty(t, unacked)
	version := func(d docRef) int64 {
		res, err := es.Get().Index(d.index).Id(d.id).Do(ctx)
		require.NoError(t, err)
		require.True(t, res.Found)
		return *res.Version
	}
	for _, d := range unacked {
		require.Equal(t, int64(1), version(d), "stored once before the kill")
	}

	second := startShipperProcess(t, b.Addr(), ts.URL)
	written := waitA() + waitB()
	// Done means: the group committed up to the end of the trace topic.
	// After that nothing is left to ship, so the count below is final.
	testcluster.Eventually(t, ingestWait, func() error {
		ends, err := adm.ListEndOffsets(ctx, DefaultTopic)
		if err != nil {
			return err
		}
		offs, err := committedOffsets(ctx, adm)
		if err != nil {
			return err
		}
		var lag int64
		ends.Each(func(e kadm.ListedOffset) { lag += e.Offset - offs[e.Partition] })
		if lag != 0 {
			return fmt.Errorf("shipper group lags %d records", lag)
		}
		return nil
	})
	require.Equal(t, written, storedHops(t, es), "one document per event: none lost, none duplicated by re-shipping")
	for _, d := range unacked {
		require.Equal(t, int64(2), version(d), "re-shipped onto the same id after the kill")
	}
	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.wait(), "%s", second.logs)
	require.Contains(t, second.logs.String(), "trace shipper stopped")
}

// committedEventIDs reads the trace topic below the committed offsets and
// returns the document id of every event there.
func committedEventIDs(t *testing.T, addr string, committed map[int32]int64) []string {
	t.Helper()
	parts := map[int32]kgo.Offset{}
	for p := range committed {
		parts[p] = kgo.NewOffset().AtStart()
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{DefaultTopic: parts}))
	require.NoError(t, err)
	defer rd.Close()
	seen := map[string]bool{}
	var ids []string
	ctx, cancel := context.WithTimeout(context.Background(), ingestWait)
	defer cancel()
	reached := map[int32]bool{}
	for len(reached) < len(committed) {
		fs := rd.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "reading the trace topic up to the committed offsets")
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= committed[r.Partition]-1 {
				reached[r.Partition] = true
			}
			if r.Offset >= committed[r.Partition] {
				return
			}
			for raw := range bytes.SplitSeq(r.Value, []byte{'\n'}) {
				if e, err := ParseEvent(raw); err == nil && !seen[DocID(&e, raw)] {
					seen[DocID(&e, raw)] = true
					ids = append(ids, DocID(&e, raw))
				}
			}
		})
	}
	return ids
}

// waitShipping waits until the shipper has stored a first thousand events
// of a load: it is under way.
func waitShipping(t *testing.T, es *elastic.Client) {
	t.Helper()
	testcluster.Eventually(t, ingestWait, func() error {
		if c := storedHops(t, es); c < 1000 {
			return fmt.Errorf("%d events shipped so far", c)
		}
		return nil
	})
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

	waitShipping(t, es)
	ts.Stop()
	// Traced records produced during the outage: on a slow machine the
	// shipper may have shipped the first load whole before the stop, and
	// with nothing left to ship it would never notice.
	during := tracedLoad(t, b.Addr(), "outage-during", 500, 500)
	// The store stays down until the shipper has noticed (a failed bulk it
	// retries without committing), not for a fixed time.
	testcluster.Eventually(t, ingestWait, func() error {
		if s.Stats().Retries == 0 {
			return errors.New("the shipper has not noticed the outage")
		}
		return nil
	})
	ts.start()
	written := wait() + during()
	waitHops(t, es, written, ingestWait)
	require.Zero(t, s.Stats().Corrupt)
	require.Zero(t, s.Stats().Rejected)
}

// TestShipperCorruptAndFull: corrupt trace-topic records are counted and
// skipped; while the store answers 429 (disk full), for the whole bulk or
// for each item of it, nothing is committed, and once it accepts again
// everything arrives.
func TestShipperCorruptAndFull(t *testing.T) {
	for _, perItem := range []bool{false, true} {
		t.Run(fmt.Sprintf("per-item=%v", perItem), func(t *testing.T) { testShipperCorruptAndFull(t, perItem) })
	}
}

// fullBulkAnswer is Elasticsearch's answer to a _bulk while the disk is
// full: a 429 for the request, or (perItem) a 200 whose every item is a
// 429, as a node answers when its write queue is full.
func fullBulkAnswer(w http.ResponseWriter, r *http.Request, perItem bool) {
	w.Header().Set("Content-Type", "application/json")
	if !perItem {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"root_cause":[{"type":"cluster_block_exception","reason":"disk full"}],"type":"cluster_block_exception","reason":"disk full"},"status":429}`))
		return
	}
	body, _ := io.ReadAll(r.Body)
	var items []string
	for i, line := range bytes.Split(bytes.TrimSpace(body), []byte{'\n'}) {
		if i%2 == 1 {
			continue // a document
		}
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		_ = json.Unmarshal(line, &action)
		for name, a := range action {
			items = append(items, fmt.Sprintf(`{%q:{"_index":%q,"_type":"_doc","_id":%q,"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}}`, name, a.Index, a.ID))
		}
	}
	_, _ = fmt.Fprintf(w, `{"took":1,"errors":true,"items":[%s]}`, strings.Join(items, ","))
}

func testShipperCorruptAndFull(t *testing.T, perItem bool) {
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)

	// A proxy that answers bulks with 429s while full is set.
	var full atomic.Bool
	full.Store(true)
	target, _ := url.Parse(ts.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if full.Load() && strings.HasSuffix(r.URL.Path, "/_bulk") {
			fullBulkAnswer(w, r, perItem)
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
	waitCount(t, es, int64(good), ingestWait)
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

// TestShipperRebalance: a second shipper joins the group during traced
// load and leaves again once it owns partitions. The partitions handed over are flushed and
// committed by the shipper giving them up (OnPartitionsRevoked); every
// event is stored once and the group ends with nothing left to ship.
func TestShipperRebalance(t *testing.T) {
	const n = 20000
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)
	first := startShipper(t, b.Addr(), ts.URL)
	wait := tracedLoad(t, b.Addr(), "rebalance", n, 5000)
	waitShipping(t, es)
	ctx, cancel := context.WithCancel(context.Background())
	second, err := NewShipper(ShipperConfig{Brokers: []string{b.Addr()}, URL: ts.URL, MaxBackoff: time.Second,
		ConsumerOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)}})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	stopSecond := sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { _ = stopSecond() })
	// Both shippers own partitions: the first one gave some up.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	testcluster.Eventually(t, ingestWait, func() error {
		groups, err := adm.DescribeGroups(context.Background(), "kobs-trace-shipper")
		if err != nil {
			return err
		}
		g := groups["kobs-trace-shipper"]
		if g.State != "Stable" || len(g.Members) != 2 {
			return fmt.Errorf("group %s with %d members", g.State, len(g.Members))
		}
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 || len(a.Topics[0].Partitions) == 0 {
				return fmt.Errorf("member %s has no partition yet", m.MemberID)
			}
		}
		return nil
	})
	written := wait()
	waitHops(t, es, written, ingestWait)
	require.NoError(t, stopSecond())

	// The first shipper takes every partition back and the group catches
	// up with the end of the trace topic.
	testcluster.Eventually(t, ingestWait, func() error {
		ends, err := adm.ListEndOffsets(context.Background(), DefaultTopic)
		if err != nil {
			return err
		}
		offs, err := committedOffsets(context.Background(), adm)
		if err != nil {
			return err
		}
		var lag int64
		ends.Each(func(e kadm.ListedOffset) { lag += e.Offset - offs[e.Partition] })
		if lag != 0 {
			return fmt.Errorf("shipper group lags %d records", lag)
		}
		return nil
	})
	require.Equal(t, written, storedHops(t, es))
	require.Zero(t, first.Stats().Rejected+second.Stats().Rejected)
	require.Zero(t, first.Stats().Corrupt+second.Stats().Corrupt)
}
