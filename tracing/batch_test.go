package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBatchEventsMapToOffsets: a traced producer writes one produce event
// per acknowledged batch; every message id a batch event lists is the
// kobs-msg-id header of the record the broker holds at the event's base
// offset plus its index (read back from the broker), the event's records
// add up to what was produced, and every journey is complete through batch
// events: by message id, by topic/partition/offset, by key and by trace id,
// consumed by a group; by position also before any consume event exists.
// Per-record produce events written by an earlier
// version, in the same daily index, which was created with the mapping
// that version used (no batch fields), are still read, beside batch events.
func TestBatchEventsMapToOffsets(t *testing.T) {
	const n = 3000
	const topic = "batched"
	b := newBroker(t)
	ts := startTraceStore(t)
	es := ts.es(t)
	// Today's index as an older shipper created it: without the batch
	// fields, which the shipper must add.
	oldMapping := regexp.MustCompile(`(?s),\s*"records".*"record_ts_delta_ms": \{[^}]*\}`).ReplaceAllString(Mapping, "")
	require.NotContains(t, oldMapping, "msg_ids")
	today := IndexName(IndexPrefix, time.Now().UnixMilli())
	putIndex(t, ts.URL, today, oldMapping)
	startShipper(t, b.Addr(), ts.URL)

	ph, err := NewProducerHook()
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(topic), kgo.ClientID("batcher"),
		// Manual flushing: every partition's records go out in large
		// batches however slow the machine is.
		kgo.AllowAutoTopicCreation(), kgo.ManualFlushing(), kgo.WithHooks(ph))
	require.NoError(t, err)
	ctx := context.Background()
	const upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var failed atomic.Int64
	sent := make([]*kgo.Record, n)
	for i := range n {
		r := &kgo.Record{Value: bytes.Repeat([]byte{'v'}, 50+i%7)} // sizes vary within batches
		if i%3 == 0 {
			r.Key = fmt.Appendf(nil, "key-%d", i)
		}
		if i == 1000 {
			r.Headers = []kgo.RecordHeader{{Key: HeaderTraceparent, Value: []byte(upstream)}}
		}
		sent[i] = r
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	require.NoError(t, cl.Flush(ctx))
	require.Zero(t, failed.Load())
	cl.Close()
	ph.Close()
	require.Equal(t, Stats{Emitted: n, Written: n}, ph.Stats())

	// Per-record events as an earlier version wrote them, for two records
	// produced without the hook.
	plain, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(topic))
	require.NoError(t, err)
	defer plain.Close()
	var old []*kgo.Record
	for i := range 2 {
		r := &kgo.Record{Key: fmt.Appendf(nil, "old-%d", i), Value: []byte("old"),
			Headers: []kgo.RecordHeader{{Key: HeaderMsgID, Value: fmt.Appendf(nil, "old-msg-%d", i)}}}
		require.NoError(t, plain.ProduceSync(ctx, r).FirstErr())
		old = append(old, r)
		e := Event{Type: TypeProduce, MsgID: header(r, HeaderMsgID), TraceID: fmt.Sprintf("%032d", i+1), Topic: topic,
			Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Size: 3, ClientID: "old-app",
			TS: time.Now().UnixMilli(), SendTS: time.Now().UnixMilli() - 1, RecordTS: r.Timestamp.UnixMilli(), LatencyUS: 900}
		require.NoError(t, plain.ProduceSync(ctx, &kgo.Record{Topic: DefaultTopic, Value: e.Marshal()}).FirstErr())
	}

	waitHops(t, es, n+2, ingestWait)

	// What the broker holds, read without a hook (no consume events yet:
	// a journey by position must be found from the produce events).
	rd, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	var got []*kgo.Record
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	for len(got) < n+2 {
		fs := rd.PollFetches(rctx)
		require.NoError(t, rctx.Err(), "read %d of %d records", len(got), n+2)
		got = append(got, fs.Records()...)
	}
	cancel()
	rd.Close()
	atOffset := map[[2]int64]*kgo.Record{}
	for _, r := range got {
		atOffset[[2]int64{int64(r.Partition), r.Offset}] = r
	}
	require.Len(t, atOffset, n+2)

	// The batch events, read back as stored.
	res, err := es.Search(IndexPrefix + "2*").Query(elastic.NewBoolQuery().Filter(
		elastic.NewTermQuery("type", TypeProduce), elastic.NewTermQuery("topic", topic), elastic.NewRangeQuery("records").Gte(1))).
		Size(10000).Do(ctx)
	require.NoError(t, err)
	var records, multi int64
	var batches []Event
	for _, h := range res.Hits.Hits {
		var e Event
		require.NoError(t, json.Unmarshal(h.Source, &e))
		require.True(t, e.Batch())
		if len(e.MsgIDs) > 1 {
			multi++
			batches = append(batches, e)
		}
		records += e.Records
		for i, id := range e.MsgIDs {
			r := atOffset[[2]int64{int64(e.Partition), e.Offset + int64(i)}]
			require.NotNil(t, r, "no record at %d/%d", e.Partition, e.Offset+int64(i))
			require.Equal(t, header(r, HeaderMsgID), id, "message %d of the batch at %d/%d", i, e.Partition, e.Offset)
			per := e.record(i)
			require.Equal(t, string(r.Key), per.Key)
			require.Equal(t, len(r.Value), per.Size)
			require.Equal(t, r.Timestamp.UnixMilli(), per.RecordTS)
		}
	}
	require.Equal(t, int64(n), records, "every acknowledged record is in exactly one batch event")
	require.Positive(t, multi, "records were acknowledged in batches")
	// A run closes when an acknowledgement comes more than ackSpan (1 ms)
	// after its first: a slow or preempted hook (-race: 39 events seen,
	// ~5 on a quiet machine) splits runs, which is exact, only less compact.
	require.Less(t, len(res.Hits.Hits), n/10, "far fewer events than records")
	t.Logf("%d records in %d batch produce events", n, len(res.Hits.Hits))

	qr, err := NewQuerier(ts.URL, "")
	require.NoError(t, err)
	consumed := 0 // consume events expected per journey
	check := func(name string, q Query, r *kgo.Record) Journey {
		t.Helper()
		js, err := qr.Journeys(ctx, q)
		require.NoError(t, err, name)
		require.Len(t, js, 1, name)
		j := js[0]
		require.Equal(t, header(r, HeaderMsgID), j.MsgID, name)
		require.NotNil(t, j.Produced, name)
		require.NotNil(t, j.Stored, name)
		require.Equal(t, r.Partition, j.Stored.Partition, name)
		require.Equal(t, r.Offset, j.Stored.Offset, name)
		require.Len(t, j.Consumed, consumed, name)
		if consumed > 0 {
			require.Equal(t, "g1", j.Consumed[0].Group, name)
		}
		require.False(t, j.Incomplete, name)
		return j
	}
	// By position, from produce events alone: the first, a middle and the
	// last record of batches.
	for _, e := range batches[:min(len(batches), 20)] {
		for _, off := range []int64{e.Offset, e.Offset + e.Records/2, e.LastOffset} {
			r := atOffset[[2]int64{int64(e.Partition), off}]
			check("offset in batch", Query{Topic: topic, Partition: e.Partition, Offset: off}, r)
		}
	}

	ch, err := NewConsumerHook()
	require.NoError(t, err)
	consumeGroup(t, b.Addr(), "g1", topic, n+2, ch)
	ch.Close()
	require.Equal(t, int64(n+2), ch.Stats().Written)
	waitHops(t, es, n+2+n+2, ingestWait)
	consumed = 1
	byMsg := map[string]*kgo.Record{}
	for _, r := range got {
		byMsg[header(r, HeaderMsgID)] = r
	}
	// Every journey, from one topic page (a query per message would be
	// thousands of requests on a loaded machine), then each selector on
	// a sample.
	q := NewQuery()
	q.Topic, q.Limit = topic, n+10
	page, err := qr.Journeys(ctx, q)
	require.NoError(t, err)
	require.Len(t, page, n+2, "every message once, old and new")
	sentByMsg := map[string]*kgo.Record{}
	for _, s := range sent {
		sentByMsg[header(s, HeaderMsgID)] = s
	}
	for _, j := range page {
		r := byMsg[j.MsgID]
		require.NotNil(t, r, j.MsgID)
		require.NotNil(t, j.Produced, j.MsgID)
		require.NotNil(t, j.Stored, j.MsgID)
		require.Equal(t, r.Partition, j.Stored.Partition, j.MsgID)
		require.Equal(t, r.Offset, j.Stored.Offset, j.MsgID)
		require.Equal(t, string(r.Key), j.Key, j.MsgID)
		require.Equal(t, len(r.Value), j.Size, j.MsgID)
		require.Len(t, j.Consumed, 1, j.MsgID)
		require.NotEmpty(t, j.Consumed[0].Member, j.MsgID)
		require.Equal(t, "consumer-g1", j.Consumed[0].ClientID, j.MsgID)
		require.Positive(t, j.Consumed[0].E2EUS, j.MsgID)
		require.False(t, j.Incomplete, j.MsgID)
		if s := sentByMsg[j.MsgID]; s != nil {
			require.Equal(t, "batcher", j.Produced.ClientID)
			require.Positive(t, j.Produced.LatencyUS)
			require.False(t, j.Produced.SentAt.After(j.Produced.AckedAt))
		}
	}
	for i := 0; i < n; i += 97 {
		s := sent[i]
		r := byMsg[header(s, HeaderMsgID)]
		j := check("msg_id", Query{MsgID: header(s, HeaderMsgID)}, r)
		check("offset", Query{Topic: topic, Partition: r.Partition, Offset: r.Offset}, r)
		check("trace_id", Query{TraceID: j.TraceID, Partition: -1, Offset: -1}, r)
		if len(s.Key) > 0 {
			check("key", Query{Key: string(s.Key), Topic: topic, Partition: -1, Offset: -1}, r)
		}
	}
	// The upstream trace id is kept for its record.
	j := check("upstream", Query{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Partition: -1, Offset: -1}, byMsg[header(sent[1000], HeaderMsgID)])
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", j.TraceID)
	// The earlier version's per-record events, beside batch events.
	for _, s := range old {
		r := byMsg[header(s, HeaderMsgID)]
		require.NotNil(t, r)
		j := check("old msg_id", Query{MsgID: header(s, HeaderMsgID)}, r)
		require.Equal(t, "old-app", j.Produced.ClientID)
		check("old offset", Query{Topic: topic, Partition: r.Partition, Offset: r.Offset}, r)
		check("old key", Query{Key: string(s.Key), Topic: topic, Partition: -1, Offset: -1}, r)
	}
	// Consume events came in batches too.
	res, err = es.Search(IndexPrefix + "2*").Query(elastic.NewBoolQuery().Filter(
		elastic.NewTermQuery("type", TypeConsume), elastic.NewTermQuery("topic", topic))).Size(10000).Do(ctx)
	require.NoError(t, err)
	require.Less(t, len(res.Hits.Hits), (n+2)/2, "far fewer consume events than records")
	var text strings.Builder
	require.NoError(t, WriteText(&text, page[:3]))
	require.Equal(t, 3, strings.Count(text.String(), "consumed  group g1"), "%s", text.String())
}
