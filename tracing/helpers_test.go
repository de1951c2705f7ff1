package tracing

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
	"github.com/kobs-dev/kobs/tracing/store"
)

// traceStore is a tracing/store served over real HTTP, restartable on the
// same directory and port (to test a store outage).
type traceStore struct {
	t    testing.TB
	dir  string
	addr string
	URL  string
	stop func()
}

func startTraceStore(t testing.TB) *traceStore {
	t.Helper()
	ts := &traceStore{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	ts.start()
	t.Cleanup(ts.Stop)
	return ts
}

func (ts *traceStore) start() {
	t := ts.t
	t.Helper()
	s, err := store.Open(store.Config{Dir: ts.dir})
	require.NoError(t, err)
	var ln net.Listener
	// After a stop the port is rebound; another process could take it in
	// between in theory, so retry briefly rather than flake on TIME_WAIT.
	for i := 0; ; i++ {
		if ln, err = net.Listen("tcp", ts.addr); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, err)
	ts.addr = ln.Addr().String()
	ts.URL = "http://" + ts.addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, s.Close())
	}
}

// Stop shuts the store down (clients get connection refused).
func (ts *traceStore) Stop() { ts.stop() }

// Restart starts it again on the same data and address.
func (ts *traceStore) Restart() { ts.stop(); ts.start() }

func (ts *traceStore) es(t testing.TB) *elastic.Client {
	t.Helper()
	es, err := newESClient(ts.URL)
	require.NoError(t, err)
	return es
}

// countEvents counts documents in the daily trace indexes.
func countEvents(t testing.TB, es *elastic.Client) int64 {
	t.Helper()
	n, err := es.Count(IndexPrefix + "2*").IgnoreUnavailable(true).AllowNoIndices(true).Do(context.Background())
	if err != nil {
		return -1
	}
	return n
}

// storedHops counts the message hops the daily trace indexes hold: a batch
// produce event counts its records, any other document (a per-record
// event, a drop event) counts 1. It is the number of documents the store
// would hold if every event were per record, so a test's expectation reads
// in events per message however the hooks packed them.
func storedHops(t testing.TB, es *elastic.Client) int64 {
	t.Helper()
	res, err := es.Search(IndexPrefix+"2*").Size(0).
		Aggregation("hops", elastic.NewSumAggregation().Field("records").Missing(1)).
		IgnoreUnavailable(true).AllowNoIndices(true).Do(context.Background())
	if err != nil {
		return -1
	}
	sum, ok := res.Aggregations.Sum("hops")
	if !ok || sum.Value == nil {
		return 0
	}
	return int64(*sum.Value)
}

func waitHops(t testing.TB, es *elastic.Client, want int64, timeout time.Duration) {
	t.Helper()
	testcluster.Eventually(t, timeout, func() error {
		if n := storedHops(t, es); n != want {
			return fmt.Errorf("store holds %d trace event hops, want %d", n, want)
		}
		return nil
	})
}

func newBroker(t testing.TB) *testcluster.Broker {
	return testcluster.Start(t, testcluster.Prop("num.partitions", "3"))
}

// startShipper runs an in-process shipper until the test ends.
func startShipper(t testing.TB, brokers, url string) *Shipper {
	t.Helper()
	s, err := NewShipper(ShipperConfig{Brokers: []string{brokers}, URL: url, MaxBackoff: time.Second,
		ConsumerOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return s
}

// ingestWait bounds waits for the store to ingest what a test shipped. The
// embedded store ingests thousands of events per second on an idle 2-core
// machine, but make test shares those cores, so the bound is generous: a
// passing test returns as soon as its condition holds.
const ingestWait = 3 * time.Minute

func waitCount(t testing.TB, es *elastic.Client, want int64, timeout time.Duration) {
	t.Helper()
	testcluster.Eventually(t, timeout, func() error {
		if n := countEvents(t, es); n != want {
			return fmt.Errorf("store holds %d trace documents, want %d", n, want)
		}
		return nil
	})
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}
