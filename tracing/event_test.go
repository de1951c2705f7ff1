package tracing

import (
	"encoding/json"
	"errors"
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

// The producer hook encodes its events without building an Event; the
// bytes must be exactly what the Event would encode to.
func TestProduceEventEncodingMatchesEvent(t *testing.T) {
	h, err := NewProducerHook(ClientID("app"), Host("host-1"))
	require.NoError(t, err)
	defer h.Close()
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'k'
	}
	for name, tc := range map[string]struct {
		key     []byte
		err     error
		headers []kgo.RecordHeader
	}{
		"plain":      {key: []byte("customer-7")},
		"no key":     {},
		"odd key":    {key: []byte("q\"\\\x00\xff☃")},
		"long key":   {key: long},
		"failed":     {key: []byte("k"), err: errors.New(`broker said "no"`)},
		"upstream":   {headers: []kgo.RecordHeader{{Key: HeaderTraceparent, Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}},
		"own msg id": {headers: []kgo.RecordHeader{{Key: HeaderMsgID, Value: []byte("my-id")}}},
	} {
		r := &kgo.Record{Topic: "orders", Key: tc.key, Value: make([]byte, 10), Headers: tc.headers}
		h.OnProduceRecordBuffered(r)
		st, ok := r.Context.(*sendState)
		require.True(t, ok, name)
		r.Partition, r.Offset, r.Timestamp = 2, 9, time.UnixMilli(1700000000123)
		st.r, st.now, st.err = r, st.start.Add(1500*time.Microsecond), tc.err
		want := Event{Type: TypeProduce, MsgID: header(r, HeaderMsgID), Topic: "orders", Partition: 2, Offset: 9,
			Key: keyString(tc.key), Size: 10, ClientID: "app", Host: "host-1",
			TS: st.now.UnixMilli(), SendTS: st.start.UnixMilli(), RecordTS: 1700000000123, LatencyUS: 1500}
		want.TraceID, want.SpanID, _ = parseTraceparent([]byte(header(r, HeaderTraceparent)))
		if tc.err != nil {
			want.Error, want.Partition, want.Offset, want.RecordTS = tc.err.Error(), -1, -1, 0
		}
		require.Equal(t, string(want.Marshal()), string(st.appendEvent(nil)), name)
		_, err := ParseEvent(st.appendEvent(nil))
		require.NoError(t, err, name)
	}
}
