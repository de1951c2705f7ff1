package tracing

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scanSeeds are events and near-events: every field kind, nulls, duplicate
// members, wrong types, batch events good and bad.
func scanSeeds() []string {
	base := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	var seeds []string
	for i := range 3 {
		e := benchEvent(i, base)
		seeds = append(seeds, string(e.Marshal()))
	}
	batch := Event{Type: TypeProduce, MsgID: "a", Topic: "t", TS: 1, Offset: 5, LastOffset: 6, Records: 2, MsgIDs: []string{"a", "b"},
		Keys: []string{"k1", ""}, TraceIDs: []string{"x", "y"}, Sizes: []int{1, 2}, LatenciesUS: []int64{3, 4}, RecordTSDeltaMS: []int64{0, 1}}
	seeds = append(seeds, string(batch.Marshal()))
	consume := Event{Type: TypeConsume, MsgID: "a", Topic: "t", TS: 1, Offset: 5, LastOffset: 6, Records: 2, MsgIDs: []string{"a", "b"},
		Group: "g\u00e9", E2EsUS: []int64{7, 8}}
	seeds = append(seeds, string(consume.Marshal()))
	drop := Event{Type: TypeDrop, MsgID: "m", Topic: "t", TS: 9, FirstTS: 8, Dropped: 3, DroppedIDs: []string{"m", "n"}, Error: reasonBufferFull, ClientID: "c"}
	seeds = append(seeds, string(drop.Marshal()))
	return append(seeds,
		``, `{`, `[]`, `"x"`, `null`, `{}`, ` {"type":"produce","msg_id":"m","topic":"t","ts":1} `,
		`{"type":"produce","msg_id":"m","topic":"t","ts":1}x`,
		`{"type":"produce","msg_id":"m","topic":"t","ts":"1"}`, `{"type":"produce","msg_id":"m","topic":"t","ts":1.0}`,
		`{"type":"produce","msg_id":"m","topic":"t","ts":1,"partition":2147483648}`,
		`{"type":"produce","msg_id":"m","topic":"t","ts":1,"partition":-2147483648}`,
		`{"type":"produce","msg_id":"m","topic":"t","ts":1,"msg_id":null}`,
		`{"type":"produce","msg_id":"m","topic":"t","ts":1,"type":"drop"}`,
		`{"type":"produce","msg_id":"m","topic":"t","ts":1,"other":{"a":[1,{"b":null}]}}`,
		`{"type":"produce","msg_id":"\u006d\n","topic":"t","ts":1,"key":"\ud800"}`,
		`{"type":"consume","msg_id":"m","topic":"t","ts":1,"group":"g","e2e_us":null}`,
		`{"type":"consume","msg_id":"m","topic":"t","ts":1,"group":"g","e2e_us":[1,null]}`,
		`{"type":"consume","msg_id":"m","topic":"t","ts":1,"group":"g","e2e_us":"1"}`,
		`{"type":"produce","msg_id":"a","topic":"t","ts":1,"offset":0,"last_offset":1,"records":2,"msg_ids":["a",null]}`,
		`{"type":"produce","msg_id":"a","topic":"t","ts":1,"offset":0,"last_offset":1,"records":2,"msg_ids":["a","b"],"keys":null}`,
		`{"type":"produce","msg_id":"a","topic":"t","ts":1,"offset":0,"last_offset":1,"records":2,"msg_ids":["a","b"],"sizes":[1]}`,
		`{"type":"produce","msg_id":"a","topic":"t","ts":1,"offset":0,"last_offset":1,"records":2,"msg_ids":["a","b"],"msg_ids":null}`,
		`{"type":"produce","msg_id":"a","topic":"t","ts":1,"msg_ids":"a"}`,
		`{"type":"drop","msg_id":"m","topic":"t","ts":1,"dropped":0}`,
		`{"type":"produce","msg_id":"m","topic":"t","ts":1,"size":1e2}`,
		"{\"type\":\"produce\",\"msg_id\":\"m\xff\",\"topic\":\"t\",\"ts\":1}",
	)
}

func TestScanEventMatchesParseEvent(t *testing.T) {
	for _, s := range scanSeeds() {
		checkScanEvent(t, []byte(s))
	}
}

func FuzzScanEvent(f *testing.F) {
	for _, s := range scanSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkScanEvent(t, b) })
}

// checkScanEvent: scanEvent accepts what ParseEvent accepts, and the
// routing fields and document id are the decoded event's.
func checkScanEvent(t *testing.T, raw []byte) {
	if foldedKey(raw) {
		return // encoding/json matches "Type" to "type"; scanEvent, like the store, does not
	}
	want, werr := ParseEvent(raw)
	got, gerr := scanEvent(raw)
	require.Equal(t, werr == nil, gerr == nil, "%q: ParseEvent %v, scanEvent %v", raw, werr, gerr)
	if gerr != nil {
		require.ErrorIs(t, gerr, ErrCorruptEvent)
		return
	}
	require.Equal(t, want.Type, got.typ, "%q", raw)
	require.Equal(t, want.MsgID, string(got.msgID), "%q", raw)
	require.Equal(t, want.Topic, string(got.topic), "%q", raw)
	require.Equal(t, want.Group, string(got.group), "%q", raw)
	require.Equal(t, want.ClientID, string(got.clientID), "%q", raw)
	require.Equal(t, want.Error, string(got.reason), "%q", raw)
	require.Equal(t, want.TS, got.ts, "%q", raw)
	require.Equal(t, want.Dropped, got.dropped, "%q", raw)
	require.Equal(t, DocID(&want, raw), string(appendDocID(nil, got.msgID, got.typ, got.group, raw)), "%q", raw)
}

// foldedKey reports whether raw is an object with a member whose name is
// not an Event field's but matches one case-insensitively.
func foldedKey(raw []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	names := map[string]bool{}
	rt := reflect.TypeFor[Event]()
	for i := range rt.NumField() {
		if n, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); n != "" && n != "-" {
			names[n] = true
		}
	}
	for k := range m {
		if names[k] {
			continue
		}
		for n := range names {
			if strings.EqualFold(k, n) {
				return true
			}
		}
	}
	return false
}
