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

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rcrowley/go-metrics"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceAll produces n records of size bytes as fast as the client takes
// them and returns them once all are acknowledged; errors are counted and
// asserted on the test goroutine.
func produceAll(t *testing.T, addr, topic, clientID string, n, size int, hook kgo.Hook) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ClientID(clientID),
		kgo.AllowAutoTopicCreation(), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.WithHooks(hook))
	require.NoError(t, err)
	defer cl.Close()
	var failed atomic.Int64
	recs := make([]*kgo.Record, n)
	val := bytes.Repeat([]byte{'v'}, size)
	for i := range n {
		recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k-%d", i), Value: val}
		cl.Produce(context.Background(), recs[i], func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	require.NoError(t, cl.Flush(context.Background()))
	require.Zero(t, failed.Load(), "records failed")
	return recs
}

// TestNoDropsAtFullSpeedWithDefaults: the default buffer holds a traced
// producer at full speed over TCP (1 KiB records, acks=1) without a drop.
func TestNoDropsAtFullSpeedWithDefaults(t *testing.T) {
	const n = 60000
	b := newBroker(t)
	reg := metrics.NewRegistry()
	h, err := NewProducerHook(Metrics(reg))
	require.NoError(t, err)
	produceAll(t, b.Addr(), "fast", "fast-app", n, 1024, h)
	h.Close()
	st := h.Stats()
	require.Equal(t, Stats{Emitted: n, Written: n}, st)
	require.Equal(t, int64(n), reg.Get("kobs-trace-events-written").(metrics.Gauge).Snapshot().Value())
	require.Equal(t, int64(0), reg.Get("kobs-trace-events-dropped").(metrics.Gauge).Snapshot().Value())
}

// TestDropsAreRecordedAndJourneysSayIncomplete: with a tiny buffer events
// are dropped; every drop is counted (stats and the client's metrics),
// recorded in drop events that reach the store, and every message whose
// produce event was dropped answers "incomplete" naming the client, while
// the others have full journeys. The record is still found in Kafka.
func TestDropsAreRecordedAndJourneysSayIncomplete(t *testing.T) {
	const n = 1500 // below maxDropIDs, so every dropped id is named
	const topic = "lossy"
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)
	shipper := startShipper(t, b.Addr(), ts.URL)

	reg := metrics.NewRegistry()
	h, err := NewProducerHook(MaxBufferedEvents(3), Metrics(reg), DropWindow(50*time.Millisecond))
	require.NoError(t, err)
	recs := produceAll(t, b.Addr(), topic, "lossy-app", n, 100, h)
	h.Close()
	st := h.Stats()
	require.Positive(t, st.Dropped, "a 3-event buffer must overflow")
	require.Equal(t, int64(n), st.Written+st.Dropped, "every event is written or counted as dropped")
	require.Positive(t, st.DropEvents, "drops are shipped as drop events")
	require.Equal(t, st.Dropped, reg.Get("kobs-trace-events-dropped").(metrics.Gauge).Snapshot().Value())

	waitHops(t, es, st.Written+st.DropEvents, ingestWait)
	// Every drop event is stored, so the shipper has read them all: its
	// counter holds every drop, under the client's id.
	drops := scrapeDrops(t, shipper)
	require.Equal(t, map[string]float64{`client="lossy-app",reason="buffer_full",tier="producer"`: float64(st.Dropped)},
		nonZero(drops))
	// The client's other reasons are there at 0, so the alert's
	// increase() sees their first drop too.
	for _, r := range dropReasons {
		require.Contains(t, drops, `client="lossy-app",reason="`+r+`",tier="producer"`)
	}

	qr, err := NewQuerier(ts.URL, "")
	require.NoError(t, err)
	ctx := context.Background()
	incomplete, complete := 0, 0
	for _, r := range recs {
		q := NewQuery()
		q.MsgID = header(r, HeaderMsgID)
		js, err := qr.Journeys(ctx, q)
		require.NoError(t, err)
		require.Len(t, js, 1, "every message is known: by its events or by a drop event")
		j := js[0]
		if j.Produced == nil {
			incomplete++
			require.True(t, j.Incomplete, q.MsgID)
			require.NotEmpty(t, j.Gaps)
			require.Equal(t, "lossy-app", j.Gaps[0].ClientID)
			require.Equal(t, topic, j.Gaps[0].Topic)
			require.Equal(t, reasonBufferFull, j.Gaps[0].Reason)
			var text strings.Builder
			require.NoError(t, WriteText(&text, js))
			require.Contains(t, text.String(), "trace incomplete: events dropped by lossy-app@")
		} else {
			complete++
			require.False(t, j.Incomplete, q.MsgID)
			require.Equal(t, r.Offset, j.Stored.Offset)
		}
	}
	require.Equal(t, int(st.Dropped), incomplete)
	require.Equal(t, int(st.Written), complete)

	// A dropped record is still in Kafka, with its headers.
	var lost *kgo.Record
	for _, r := range recs {
		q := NewQuery()
		q.Topic, q.Partition, q.Offset = topic, r.Partition, r.Offset
		js, err := qr.Journeys(ctx, q)
		require.NoError(t, err)
		if len(js) == 0 {
			lost = r
			break
		}
	}
	require.NotNil(t, lost, "some record has no produce event")
	got, err := FetchRecord(ctx, []string{b.Addr()}, topic, lost.Partition, lost.Offset)
	require.NoError(t, err)
	require.Equal(t, header(lost, HeaderMsgID), header(got, HeaderMsgID))
	gaps, err := qr.GapsNear(ctx, topic, got.Timestamp, time.Minute)
	require.NoError(t, err)
	require.NotEmpty(t, gaps)
	// Past the end of the log there is no record, and the error says so.
	_, err = FetchRecord(ctx, []string{b.Addr()}, topic, lost.Partition, 1<<40)
	var nf *NoRecordError
	require.ErrorAs(t, err, &nf)
	require.Contains(t, err.Error(), "offset outside the log")

	// HTTP: unknown ids are 404; /v1/trace/ lists the endpoints; a
	// dropped message's journey says incomplete.
	srv := httptest.NewServer(qr.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, body := get("/v1/trace/msg/00000000000000000000000000000000")
	require.Equal(t, http.StatusNotFound, code, body)
	require.Contains(t, body, "no trace events and no drop record")
	code, body = get("/v1/trace/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "/v1/trace/msg/{msg_id}")
	code, _ = get("/v1/trace/nope")
	require.Equal(t, http.StatusNotFound, code)
	code, body = get("/v1/trace/msg/" + header(lost, HeaderMsgID))
	require.Equal(t, http.StatusOK, code)
	var ans struct{ Journeys []Journey }
	require.NoError(t, json.Unmarshal([]byte(body), &ans))
	require.Len(t, ans.Journeys, 1)
	require.True(t, ans.Journeys[0].Incomplete)
}

// TestBlockWhenFullWaitsInsteadOfDropping: with BlockWhenFull the same
// tiny buffer loses nothing; the traced client waits instead.
func TestBlockWhenFullWaitsInsteadOfDropping(t *testing.T) {
	const n = 2000
	b := newBroker(t)
	h, err := NewProducerHook(MaxBufferedEvents(3), BlockWhenFull(10*time.Second))
	require.NoError(t, err)
	produceAll(t, b.Addr(), "patient", "patient-app", n, 100, h)
	h.Close()
	st := h.Stats()
	require.Zero(t, st.Dropped)
	require.Equal(t, int64(n), st.Written)
	require.Positive(t, st.Blocked, "some events had to wait for room")
}

// TestConsumerDropsNameTheGroup: consume events dropped by a consumer
// hook are recorded with the group, and the journeys concerned say
// incomplete while still showing the produce side.
func TestConsumerDropsNameTheGroup(t *testing.T) {
	const n = 1000
	const topic = "lossy-consume"
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)
	shipper := startShipper(t, b.Addr(), ts.URL)
	ph, err := NewProducerHook()
	require.NoError(t, err)
	produceAll(t, b.Addr(), topic, "producer-app", n, 100, ph)
	ph.Close()
	require.Equal(t, int64(n), ph.Stats().Written)

	ch, err := NewConsumerHook(MaxBufferedEvents(2), DropWindow(50*time.Millisecond))
	require.NoError(t, err)
	got := consumeGroup(t, b.Addr(), "slow-readers", topic, n, ch)
	require.Len(t, got, n)
	ch.Close()
	st := ch.Stats()
	require.Positive(t, st.Dropped)
	require.Equal(t, int64(n), st.Written+st.Dropped)
	waitHops(t, es, n+st.Written+st.DropEvents, ingestWait)
	require.Equal(t, map[string]float64{`client="consumer-slow-readers",reason="buffer_full",tier="consumer"`: float64(st.Dropped)},
		nonZero(scrapeDrops(t, shipper)))

	qr, err := NewQuerier(ts.URL, "")
	require.NoError(t, err)
	incomplete := 0
	for _, r := range got {
		q := NewQuery()
		q.MsgID = header(r, HeaderMsgID)
		js, err := qr.Journeys(context.Background(), q)
		require.NoError(t, err)
		require.Len(t, js, 1)
		j := js[0]
		require.NotNil(t, j.Produced, "the produce side is complete")
		if len(j.Consumed) == 0 {
			incomplete++
			require.True(t, j.Incomplete)
			require.Equal(t, "slow-readers", j.Gaps[0].Group)
			require.Equal(t, "consumer-slow-readers", j.Gaps[0].ClientID)
		} else {
			require.False(t, j.Incomplete)
		}
	}
	require.Equal(t, int(st.Dropped), incomplete)
}

// scrapeDrops scrapes the shipper's /metrics over HTTP and returns the
// kobs_trace_events_dropped_total series (labels rendered sorted) and values.
func scrapeDrops(t *testing.T, s *Shipper) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(s.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	mf := mfs["kobs_trace_events_dropped_total"]
	require.NotNil(t, mf, "no kobs_trace_events_dropped_total in the scrape")
	require.Equal(t, dto.MetricType_COUNTER, mf.GetType())
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		out[strings.Join(ls, ",")] = m.GetCounter().GetValue()
	}
	// The shipper's own counters are there too.
	require.Contains(t, mfs, "kobs_trace_shipper_events_total")
	return out
}

// nonZero keeps the series that counted a drop.
func nonZero(series map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range series {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func TestDropReasonLabel(t *testing.T) {
	for reason, want := range map[string]string{
		reasonBufferFull: "buffer_full", reasonNotStarted: "not_started", reasonClosed: "closed",
		reasonWriteFailed + "NOT_LEADER_FOR_PARTITION: ...": "write_failed", "something new": "other", "": "other",
	} {
		require.Equal(t, want, dropReasonLabel(reason), reason)
		require.Contains(t, dropReasons, want, "a label value without its zero series")
	}
}
