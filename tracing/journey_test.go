package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// consumeGroup polls topic in group until n records were returned, then
// closes the client; it returns the polled records.
func consumeGroup(t *testing.T, addr, group, topic string, n int, hook *ConsumerHook) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ClientID("consumer-"+group),
		kgo.FetchMaxWait(100*time.Millisecond), kgo.WithHooks(hook))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		// Asking for exactly what is left keeps the rest buffered and
		// unpolled, so the group consumes exactly n.
		fs := cl.PollRecords(ctx, n-len(got))
		require.NoError(t, ctx.Err(), "group %s got %d of %d", group, len(got), n)
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		got = append(got, fs.Records()...)
	}
	return got
}

// TestJourneys is the first acceptance test: a traced producer
// sends 10k records, group g1 reads all, g2 reads half; every journey shows
// produced, stored and consumed by g1, and g2 for exactly the half it read.
func TestJourneys(t *testing.T) {
	const n = 10000
	const topic = "orders"
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)
	startShipper(t, b.Addr(), ts.URL)

	// OpenTelemetry spans go to an in-memory recorder; their trace ids
	// must be the traceparent's.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ph, err := NewProducerHook(TracerProvider(tp))
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(topic), kgo.ClientID("orders-app"),
		kgo.AllowAutoTopicCreation(), kgo.WithHooks(ph))
	require.NoError(t, err)
	ctx := context.Background()
	// One record arrives with an upstream traceparent, which must be kept.
	const upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var (
		produceErrs atomic.Int64
		firstErr    atomic.Pointer[error]
	)
	for i := range n {
		r := &kgo.Record{Key: fmt.Appendf(nil, "k-%d", i), Value: bytes.Repeat([]byte{'x'}, 100)}
		if i == 0 {
			r.Headers = []kgo.RecordHeader{{Key: HeaderTraceparent, Value: []byte(upstream)}}
		}
		// The promise runs on a kgo goroutine: record the failure there and
		// assert on the test goroutine (a require here would not stop the test).
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				produceErrs.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	require.NoError(t, cl.Flush(ctx))
	if e := firstErr.Load(); e != nil {
		require.NoError(t, *e, "%d records failed", produceErrs.Load())
	}
	require.Zero(t, produceErrs.Load())
	cl.Close()
	ph.Close()
	require.Equal(t, Stats{Emitted: n, Written: n}, ph.Stats())

	c1, err := NewConsumerHook(TracerProvider(tp))
	require.NoError(t, err)
	c2, err := NewConsumerHook()
	require.NoError(t, err)
	all := consumeGroup(t, b.Addr(), "g1", topic, n, c1)
	half := consumeGroup(t, b.Addr(), "g2", topic, n/2, c2)
	c1.Close()
	c2.Close()
	require.Equal(t, int64(n), c1.Stats().Written)
	require.Equal(t, int64(n/2), c2.Stats().Written)

	byMsg := map[string]*kgo.Record{}
	for _, r := range all {
		id := header(r, HeaderMsgID)
		require.Len(t, id, 32)
		require.NotEmpty(t, header(r, HeaderTraceparent))
		byMsg[id] = r
	}
	require.Len(t, byMsg, n, "every record has its own message id")
	inG2 := map[string]bool{}
	for _, r := range half {
		inG2[header(r, HeaderMsgID)] = true
	}
	require.Len(t, inG2, n/2)

	waitHops(t, es, n+n+n/2, ingestWait)

	qr, err := NewQuerier(ts.URL, "")
	require.NoError(t, err)
	q := NewQuery()
	q.Topic, q.Limit = topic, n
	js, err := qr.Journeys(ctx, q)
	require.NoError(t, err)
	require.Len(t, js, n)
	consumedByG2 := 0
	for _, j := range js {
		r := byMsg[j.MsgID]
		require.NotNil(t, r, j.MsgID)
		require.NotNil(t, j.Produced, j.MsgID)
		require.Equal(t, "orders-app", j.Produced.ClientID)
		require.Empty(t, j.Produced.Error)
		require.Positive(t, j.Produced.LatencyUS)
		require.NotNil(t, j.Stored)
		require.Equal(t, r.Partition, j.Stored.Partition)
		require.Equal(t, r.Offset, j.Stored.Offset)
		require.Equal(t, string(r.Key), j.Key)
		tid, _, ok := parseTraceparent([]byte(header(r, HeaderTraceparent)))
		require.True(t, ok)
		require.Equal(t, tid, j.TraceID)
		groups := map[string]Consumed{}
		for _, c := range j.Consumed {
			require.NotContains(t, groups, c.Group, "one delivery per group here")
			groups[c.Group] = c
		}
		require.Contains(t, groups, "g1")
		require.NotEmpty(t, groups["g1"].Member)
		require.Positive(t, groups["g1"].E2EUS)
		if inG2[j.MsgID] {
			consumedByG2++
			require.Contains(t, groups, "g2")
			require.Empty(t, j.NotConsumedBy)
		} else {
			require.NotContains(t, groups, "g2")
			require.Equal(t, []string{"g2"}, j.NotConsumedBy)
		}
	}
	require.Equal(t, n/2, consumedByG2)

	// The other selectors find the same journeys.
	first := all[0]
	id := header(first, HeaderMsgID)
	for name, q := range map[string]Query{
		"msg_id": {MsgID: id},
		"key":    {Key: string(first.Key), Topic: topic, Partition: -1, Offset: -1},
		"offset": {Topic: topic, Partition: first.Partition, Offset: first.Offset},
	} {
		js, err := qr.Journeys(ctx, q)
		require.NoError(t, err, name)
		require.Len(t, js, 1, name)
		require.Equal(t, id, js[0].MsgID, name)
	}
	// The upstream traceparent was kept, so its trace id finds the record.
	q = NewQuery()
	q.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	js, err = qr.Journeys(ctx, q)
	require.NoError(t, err)
	require.Len(t, js, 1)
	require.Equal(t, "k-0", js[0].Key)
	// Time range: everything was produced in the last few minutes, nothing
	// an hour ago.
	q = NewQuery()
	q.Topic, q.From, q.Limit = topic, time.Now().Add(-5*time.Minute), 20
	js, err = qr.Journeys(ctx, q)
	require.NoError(t, err)
	require.Len(t, js, 20)
	q.From, q.To = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	js, err = qr.Journeys(ctx, q)
	require.NoError(t, err)
	require.Empty(t, js)

	// OpenTelemetry: one producer span per record and one consumer span per
	// g1 delivery, with the traceparent's trace id.
	spans := rec.Ended()
	require.Len(t, spans, 2*n)
	traces := map[string]int{}
	for _, s := range spans {
		traces[s.SpanContext().TraceID().String()]++
	}
	require.Equal(t, 2, traces["4bf92f3577b34da6a3ce929d0e0e4736"])
	require.Equal(t, 2, traces[js0TraceID(t, all[len(all)-1])])

	// Text and HTTP answers.
	var text strings.Builder
	var some []Journey
	for _, j := range js0(t, qr, all[:4]) {
		some = append(some, j)
	}
	require.NoError(t, WriteText(&text, some))
	require.Contains(t, text.String(), "produced")
	require.Contains(t, text.String(), "partition ")
	require.Contains(t, text.String(), "consumed  group g1")
	srv := httptest.NewServer(qr.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/trace/msg/" + id)
	require.NoError(t, err)
	var body struct{ Journeys []Journey }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Len(t, body.Journeys, 1)
	require.Equal(t, id, body.Journeys[0].MsgID)
	resp, err = http.Get(srv.URL + "/v1/trace/journeys?topic=" + topic + "&limit=3&format=text")
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, 3, strings.Count(string(raw), "message "), "%s", raw)
	resp, err = http.Get(srv.URL + "/v1/trace/journeys?partition=1")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 400, resp.StatusCode)
}

func js0TraceID(t *testing.T, r *kgo.Record) string {
	tid, _, ok := parseTraceparent([]byte(header(r, HeaderTraceparent)))
	require.True(t, ok)
	return tid
}

func js0(t *testing.T, qr *Querier, recs []*kgo.Record) []Journey {
	var out []Journey
	for _, r := range recs {
		js, err := qr.Journeys(context.Background(), Query{MsgID: header(r, HeaderMsgID)})
		require.NoError(t, err)
		out = append(out, js...)
	}
	return out
}
