package tracing

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestEventJSONMatchesEncodingJSON(t *testing.T) {
	for _, e := range []Event{
		{Type: TypeProduce, MsgID: "m1", Topic: "t", TS: 1},
		{Type: TypeConsume, MsgID: "m\"2", TraceID: "ab", SpanID: "cd", Topic: "t.x", Partition: 3, Offset: 99,
			Key: "k\x00\xff\n☃", Size: 10, ClientID: "c", Host: "h", TS: 5, SendTS: 4, RecordTS: 3,
			LatencyUS: 7, Error: "boom \"x\"", Group: "g", Member: "m", E2EUS: 12},
	} {
		want, err := json.Marshal(e)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(e.Marshal()))
		back, err := ParseEvent(e.Marshal())
		require.NoError(t, err)
		wantBack := e
		wantBack.Key = string([]rune(e.Key)) // invalid UTF-8 becomes U+FFFD, as with encoding/json
		require.Equal(t, wantBack, back)
	}
}

func TestParseEventRejectsCorrupt(t *testing.T) {
	for _, raw := range []string{
		``, `{`, `[]`, `"x"`, `{"type":"produce"}`, `{"type":"nope","msg_id":"m","topic":"t","ts":1}`,
		`{"type":"produce","msg_id":"m","topic":"t"}`, `{"type":"consume","msg_id":"m","topic":"t","ts":1}`,
		`{"type":"produce","msg_id":"m","topic":"t","ts":"x"}`,
	} {
		_, err := ParseEvent([]byte(raw))
		require.ErrorIs(t, err, ErrCorruptEvent, raw)
	}
	_, err := ParseEvent([]byte(`{"type":"produce","msg_id":"m","topic":"t","ts":1}`))
	require.NoError(t, err)
}

func TestDocIDStableAndDistinct(t *testing.T) {
	p := Event{Type: TypeProduce, MsgID: "m", Topic: "t", TS: 1}
	c1 := Event{Type: TypeConsume, MsgID: "m", Topic: "t", TS: 2, Group: "g1"}
	c2 := Event{Type: TypeConsume, MsgID: "m", Topic: "t", TS: 2, Group: "g2"}
	c1again := Event{Type: TypeConsume, MsgID: "m", Topic: "t", TS: 3, Group: "g1"} // redelivery after a rebalance
	ids := map[string]bool{}
	for _, e := range []Event{p, c1, c2, c1again} {
		raw := e.Marshal()
		id := DocID(&e, raw)
		require.Equal(t, id, DocID(&e, append([]byte(nil), raw...)), "same bytes, same id")
		require.False(t, ids[id], "distinct events must not share %s", id)
		ids[id] = true
		require.LessOrEqual(t, len(id), 512)
	}
	long := Event{Type: TypeConsume, MsgID: "m", Topic: "t", TS: 2, Group: string(make([]byte, 2000))}
	require.LessOrEqual(t, len(DocID(&long, long.Marshal())), 512)
	require.Equal(t, "kobs-trace-2026.11.25", IndexName(IndexPrefix, time.Date(2026, 11, 25, 23, 59, 0, 0, time.UTC).UnixMilli()))
}

func TestSamplingDeterministic(t *testing.T) {
	s := newSampler(0.25)
	n := 0
	for i := range 40000 {
		id := []byte(fmt.Sprintf("%032x", i*7919))
		a := s.sampled(id)
		require.Equal(t, a, newSampler(0.25).sampled(id), "producer and consumer must agree")
		if a {
			n++
		}
	}
	require.InDelta(t, 10000, n, 600)
	require.True(t, newSampler(1).sampled([]byte("x")))
	require.False(t, newSampler(0).sampled([]byte("x")))
}

func TestTraceparent(t *testing.T) {
	tid, sid := newID(), newSpanID()
	tp := traceparent(tid, sid)
	gotT, gotS, ok := parseTraceparent(tp)
	require.True(t, ok)
	require.Equal(t, fmt.Sprintf("%x", tid), gotT)
	require.Equal(t, fmt.Sprintf("%x", sid), gotS)
	for _, bad := range []string{"", "00-zz", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
		"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"} {
		_, _, ok := parseTraceparent([]byte(bad))
		require.False(t, ok, bad)
	}
}

func TestParseQuery(t *testing.T) {
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	_, err := ParseQuery(get(nil))
	require.ErrorIs(t, err, ErrBadQuery)
	_, err = ParseQuery(get(map[string]string{"topic": "t", "offset": "3"}))
	require.ErrorIs(t, err, ErrBadQuery)
	q, err := ParseQuery(get(map[string]string{"topic": "t", "partition": "1", "offset": "3", "from": "-15m"}))
	require.NoError(t, err)
	require.Equal(t, int32(1), q.Partition)
	require.Equal(t, int64(3), q.Offset)
	require.False(t, q.From.IsZero())
	_, err = ParseQuery(get(map[string]string{"topic": "t", "from": "yesterday"}))
	require.Error(t, err)
}

func TestTraceparentLayout(t *testing.T) {
	var tid [16]byte
	var sid [8]byte
	for i := range tid {
		tid[i] = byte(i)
	}
	for i := range sid {
		sid[i] = byte(0xa0 + i)
	}
	tp := appendTraceparent([]byte("prefix"), tid, sid)[len("prefix"):]
	require.Equal(t, "00-000102030405060708090a0b0c0d0e0f-a0a1a2a3a4a5a6a7-01", string(tp))
	require.Equal(t, "a0a1a2a3a4a5a6a7", string(tp[36:52]), "the span id slice the producer hook keeps")
	gotT, gotS, ok := parseTraceparent(tp)
	require.True(t, ok)
	require.Equal(t, "000102030405060708090a0b0c0d0e0f", gotT)
	require.Equal(t, "a0a1a2a3a4a5a6a7", gotS)
}

// The producer hook encodes its batch events without building an Event;
// the bytes must be exactly what the Event would encode to, and the event
// must expand to each record's own produce event: its message id at its
// offset, its key, trace id, size, record time and latency.
func TestBatchEventEncodingMatchesEvent(t *testing.T) {
	h, err := NewProducerHook(ClientID("app"), Host("host-1"))
	require.NoError(t, err)
	defer h.Close()
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'k'
	}
	type rec struct {
		key     []byte
		size    int
		tsDelta int64
		headers []kgo.RecordHeader
	}
	upstream := []kgo.RecordHeader{{Key: HeaderTraceparent, Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}
	for name, recs := range map[string][]rec{
		"one":      {{size: 10}},
		"uniform":  {{size: 10}, {size: 10}, {size: 10}},
		"keys":     {{size: 10}, {key: []byte("customer-7"), size: 10}, {size: 10}},
		"odd key":  {{key: []byte("q\"\\\x00\xff☃,"), size: 10}, {key: long, size: 10}},
		"sizes":    {{size: 10}, {size: 10}, {size: 2000}},
		"times":    {{size: 10}, {size: 10, tsDelta: 3}, {size: 10, tsDelta: 1}},
		"upstream": {{size: 10}, {size: 10, headers: upstream}},
		"own ids":  {{size: 10, headers: []kgo.RecordHeader{{Key: HeaderMsgID, Value: []byte(`my-id,"1"`)}}}, {size: 10}},
	} {
		ack := time.UnixMilli(1700000000123).Add(700 * time.Microsecond)
		run := &ackRun{typ: TypeProduce, clientID: "app", host: "host-1"}
		var want []Event
		for i, tc := range recs {
			r := &kgo.Record{Topic: "orders", Key: tc.key, Value: make([]byte, tc.size), Headers: tc.headers}
			h.OnProduceRecordBuffered(r)
			r.Partition, r.Offset, r.Timestamp = 2, 40+int64(i), time.UnixMilli(1700000000000+tc.tsDelta)
			msgID := []byte(header(r, HeaderMsgID))
			tp := []byte(header(r, HeaderTraceparent))
			start := ack.Add(-time.Duration(1500+i) * time.Microsecond)
			_, own := r.Context.(*sendState)
			run.add(r, msgID, traceIDOf(tp, msgID), !own, start.UnixMilli(), max(1, ack.Sub(start).Microseconds()), ack)
			w := Event{Type: TypeProduce, MsgID: string(msgID), Topic: "orders", Partition: 2, Offset: 40 + int64(i),
				Key: keyString(tc.key), Size: tc.size, ClientID: "app", Host: "host-1", TS: ack.UnixMilli(),
				SendTS: ack.UnixMilli() - int64(1500+i)/1000, RecordTS: r.Timestamp.UnixMilli(), LatencyUS: int64(1500 + i)}
			w.TraceID, _, _ = parseTraceparent(tp)
			want = append(want, w)
		}
		// The Event the run stands for, encoded by Event.appendJSON.
		e := Event{Type: TypeProduce, MsgID: want[0].MsgID, Topic: "orders", Partition: 2, Offset: 40, Size: recs[0].size,
			ClientID: "app", Host: "host-1", TS: ack.UnixMilli(), SendTS: want[len(want)-1].SendTS, RecordTS: want[0].RecordTS,
			LatencyUS: want[len(want)-1].LatencyUS, Records: int64(len(recs)), LastOffset: 40 + int64(len(recs)) - 1}
		var keys, traces []string
		var sizes []int
		var lats, deltas []int64
		anyKey, anyTrace, sizesVary, rtsVary := false, false, false, false
		for _, w := range want {
			e.MsgIDs = append(e.MsgIDs, w.MsgID)
			keys = append(keys, w.Key)
			anyKey = anyKey || w.Key != ""
			tr := w.TraceID
			if tr == w.MsgID {
				tr = ""
			}
			traces = append(traces, tr)
			anyTrace = anyTrace || tr != ""
			sizes = append(sizes, w.Size)
			sizesVary = sizesVary || w.Size != want[0].Size
			lats = append(lats, w.LatencyUS)
			deltas = append(deltas, w.RecordTS-want[0].RecordTS)
			rtsVary = rtsVary || w.RecordTS != want[0].RecordTS
		}
		e.LatenciesUS = lats
		if anyKey {
			e.Keys = keys
		}
		if anyTrace {
			e.TraceIDs = traces
		}
		if sizesVary {
			e.Sizes, e.Size = sizes, 0
		}
		if rtsVary {
			e.RecordTSDeltaMS = deltas
		}
		got := run.appendEvent(nil)
		require.Equal(t, string(e.Marshal()), string(got), name)
		back, err := ParseEvent(got)
		require.NoError(t, err, name)
		require.True(t, back.Batch(), name)
		per := back.PerRecord()
		require.Len(t, per, len(want), name)
		for i := range want {
			w := want[i]
			w.Key = string([]rune(w.Key)) // invalid UTF-8 becomes U+FFFD, as with encoding/json
			require.Equal(t, w, per[i], "%s: record %d", name, i)
			require.Equal(t, i, back.recordIndex(w.Offset), name)
		}
		_, _, ids := run.dropRef()
		require.Equal(t, e.MsgIDs, ids, name)
	}
}

// A batch consume event encodes like the equivalent Event, its per-record
// end-to-end latencies as the array value of "e2e_us", and expands to each
// record's consume event.
func TestBatchConsumeEventEncodingMatchesEvent(t *testing.T) {
	poll := time.UnixMilli(1700000000500)
	run := &ackRun{typ: TypeConsume, clientID: "c", host: "h", group: "g", member: "m-1"}
	var want []Event
	ids := []string{"0123456789abcdef0123456789abcdef", "user id \"2\"", "fedcba9876543210fedcba9876543210"}
	for i, id := range ids {
		r := &kgo.Record{Topic: "t", Partition: 4, Offset: 7 + int64(i), Value: make([]byte, 5), Timestamp: time.UnixMilli(1700000000000 + int64(i))}
		e2e := poll.Sub(r.Timestamp).Microseconds()
		run.add(r, []byte(id), []byte(id), false, 0, e2e, poll)
		want = append(want, Event{Type: TypeConsume, MsgID: id, TraceID: id, Topic: "t", Partition: 4, Offset: r.Offset, Size: 5,
			ClientID: "c", Host: "h", TS: poll.UnixMilli(), RecordTS: r.Timestamp.UnixMilli(), Group: "g", Member: "m-1", E2EUS: e2e})
	}
	e := Event{Type: TypeConsume, MsgID: ids[0], Topic: "t", Partition: 4, Offset: 7, Size: 5, ClientID: "c", Host: "h",
		TS: poll.UnixMilli(), RecordTS: 1700000000000, Group: "g", Member: "m-1", E2EsUS: []int64{500000, 499000, 498000},
		Records: 3, LastOffset: 9, MsgIDs: ids, RecordTSDeltaMS: []int64{0, 1, 2}}
	got := run.appendEvent(nil)
	require.Equal(t, string(e.Marshal()), string(got))
	require.Contains(t, string(got), `"e2e_us":[500000,499000,498000]`)
	back, err := ParseEvent(got)
	require.NoError(t, err)
	require.Equal(t, e, back)
	require.Equal(t, want, back.PerRecord())
	_, _, dropped := run.dropRef()
	require.Equal(t, ids, dropped)
	// A per-record consume event still reads its scalar.
	one, err := ParseEvent(want[0].Marshal())
	require.NoError(t, err)
	require.Equal(t, want[0], one)
}

func TestParseEventRejectsBadBatches(t *testing.T) {
	good := Event{Type: TypeProduce, MsgID: "a", Topic: "t", TS: 1, Offset: 5, LastOffset: 6, Records: 2, MsgIDs: []string{"a", "b"}}
	_, err := ParseEvent(good.Marshal())
	require.NoError(t, err)
	for name, mod := range map[string]func(e *Event){
		"last offset":  func(e *Event) { e.LastOffset = 7 },
		"records":      func(e *Event) { e.Records = 3 },
		"msg_id":       func(e *Event) { e.MsgID = "b" },
		"keys":         func(e *Event) { e.Keys = []string{"k"} },
		"latencies":    func(e *Event) { e.LatenciesUS = []int64{1, 2, 3} },
		"drop":         func(e *Event) { e.Type, e.Dropped = TypeDrop, 2 },
		"empty id":     func(e *Event) { e.MsgIDs = []string{"a", ""} },
		"offset below": func(e *Event) { e.Offset, e.LastOffset = -1, 0 },
	} {
		e := good
		mod(&e)
		_, err := ParseEvent(e.Marshal())
		require.ErrorIs(t, err, ErrCorruptEvent, name)
	}
}

func TestTimedID(t *testing.T) {
	now := time.Now()
	id := newTimedID(now)
	got, ok := timedIDTime(hex.AppendEncode(nil, id[:]))
	require.True(t, ok)
	require.Equal(t, now.UnixMicro(), got.UnixMicro())
	require.NotEqual(t, id, newTimedID(now), "the random part differs")
	_, ok = timedIDTime([]byte("not-a-timed-id"))
	require.False(t, ok)
}
