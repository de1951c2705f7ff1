package tracing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
)

// Event types on the trace topic.
const (
	// TypeProduce is one produced record: sent by a producer and, unless
	// Error is set, acknowledged (stored) at Partition/Offset.
	TypeProduce = "produce"
	// TypeConsume is one record returned to a consumer by a poll.
	TypeConsume = "consume"
	// TypeDrop records trace events a client could not write (buffer full
	// or trace topic unreachable): how many, of which topic, in which time
	// window, and the message ids concerned (up to maxDropIDs per window).
	// Journeys whose events are missing say so instead of "not found".
	TypeDrop = "drop"
)

// Header names the producer hook stamps on every record.
const (
	// HeaderMsgID carries the message id that ties produce and consume
	// events of one record together.
	HeaderMsgID = "kobs-msg-id"
	// HeaderTraceparent is the W3C Trace Context header.
	HeaderTraceparent = "traceparent"
)

// Event is one trace event, as written to the trace topic (JSON) and stored
// as one document in the search store. Field names are the document's field
// names, so queries and the mapping (see Mapping) use the same strings.
//
// Times are Unix milliseconds (the store maps them as dates); latencies are
// microseconds so sub-millisecond acks on loopback are not all zero.
type Event struct {
	Type    string `json:"type"`
	MsgID   string `json:"msg_id"`
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`

	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key,omitempty"`
	Size      int    `json:"size"`

	ClientID string `json:"client_id,omitempty"`
	Host     string `json:"host,omitempty"`

	// TS is when the event happened (ack or poll time); it picks the daily
	// index.
	TS int64 `json:"ts"`
	// SendTS is when Produce was called (produce events).
	SendTS int64 `json:"send_ts,omitempty"`
	// RecordTS is the record's timestamp: after the ack that is the
	// broker's log append time for LogAppendTime topics and the producer's
	// create time otherwise.
	RecordTS int64 `json:"record_ts,omitempty"`
	// LatencyUS is the produce latency, Produce to ack (produce events).
	LatencyUS int64  `json:"latency_us,omitempty"`
	Error     string `json:"error,omitempty"`

	Group  string `json:"group,omitempty"`
	Member string `json:"member,omitempty"`
	// E2EUS is poll time minus the record timestamp (consume events).
	// A batch consume event holds one per record instead, in E2EsUS,
	// written as the array value of the same field "e2e_us": Elasticsearch
	// aggregates every value of a multi-valued field, so latency
	// percentiles stay per message.
	E2EUS  int64   `json:"e2e_us,omitempty"`
	E2EsUS []int64 `json:"-"`

	// Drop events: FirstTS..TS is the window, Dropped the number of events
	// lost in it, DroppedIDs the message ids of the first maxDropIDs of
	// them, and Error the reason.
	FirstTS    int64    `json:"first_ts,omitempty"`
	Dropped    int64    `json:"dropped,omitempty"`
	DroppedIDs []string `json:"dropped_ids,omitempty"`

	// Batch produce events (see ProducerHook): one event for Records
	// records of one partition acknowledged together, stored at offsets
	// Offset..LastOffset in the order of MsgIDs (the record at Offset+i
	// has MsgIDs[i]). MsgID is MsgIDs[0], so the event's document id and
	// per-message readers still find a message id there. TS is the
	// acknowledgement; per record, LatenciesUS[i] is Produce to
	// acknowledgement (the send time is TS minus it). The arrays below
	// are aligned with MsgIDs and omitted when uniform: Keys when no
	// record has a key, TraceIDs when every trace id equals the message
	// id (ids the hook minted), Sizes when every value has Size bytes,
	// RecordTSDeltaMS when every record timestamp equals RecordTS.
	Records         int64    `json:"records,omitempty"`
	LastOffset      int64    `json:"last_offset,omitempty"`
	MsgIDs          []string `json:"msg_ids,omitempty"`
	Keys            []string `json:"keys,omitempty"`
	TraceIDs        []string `json:"trace_ids,omitempty"`
	Sizes           []int    `json:"sizes,omitempty"`
	LatenciesUS     []int64  `json:"latencies_us,omitempty"`
	RecordTSDeltaMS []int64  `json:"record_ts_delta_ms,omitempty"`
}

// UnmarshalJSON decodes an event; "e2e_us" is a number, or an array
// (E2EsUS) in a batch consume event.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event // without this method
	var aux struct {
		*plain
		E2E json.RawMessage `json:"e2e_us"`
	}
	aux.plain = (*plain)(e)
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	e.E2EUS, e.E2EsUS = 0, nil
	switch raw := bytes.TrimSpace(aux.E2E); {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '[':
		return json.Unmarshal(raw, &e.E2EsUS)
	default:
		return json.Unmarshal(raw, &e.E2EUS)
	}
	return nil
}

// Batch reports whether e is a batch produce or consume event.
func (e *Event) Batch() bool { return len(e.MsgIDs) > 0 }

// PerRecord returns the per-record produce events a batch event stands
// for (the event itself when it is not a batch), each as the hook would
// have written it for that record alone, so journeys assemble old
// per-record events and batch events alike.
func (e *Event) PerRecord() []Event {
	if !e.Batch() {
		return []Event{*e}
	}
	out := make([]Event, len(e.MsgIDs))
	for i := range e.MsgIDs {
		out[i] = e.record(i)
	}
	return out
}

// record is the i-th record's event of a batch event.
func (e *Event) record(i int) Event {
	r := Event{Type: e.Type, MsgID: e.MsgIDs[i], TraceID: e.MsgIDs[i], Topic: e.Topic, Partition: e.Partition,
		Offset: e.Offset + int64(i), Size: e.Size, ClientID: e.ClientID, Host: e.Host, TS: e.TS, RecordTS: e.RecordTS,
		Group: e.Group, Member: e.Member}
	if len(e.E2EsUS) > 0 {
		r.E2EUS = e.E2EsUS[i]
	}
	if len(e.Keys) > 0 {
		r.Key = e.Keys[i]
	}
	if len(e.TraceIDs) > 0 && e.TraceIDs[i] != "" {
		r.TraceID = e.TraceIDs[i]
	}
	if len(e.Sizes) > 0 {
		r.Size = e.Sizes[i]
	}
	if len(e.RecordTSDeltaMS) > 0 {
		r.RecordTS += e.RecordTSDeltaMS[i]
	}
	if len(e.LatenciesUS) > 0 {
		r.LatencyUS = e.LatenciesUS[i]
		r.SendTS = e.TS - r.LatencyUS/1000
	}
	return r
}

// recordIndex returns the index in a batch event of the record at offset,
// or -1.
func (e *Event) recordIndex(offset int64) int {
	if i := offset - e.Offset; i >= 0 && i < int64(len(e.MsgIDs)) {
		return int(i)
	}
	return -1
}

// appendJSON encodes e without reflection: the hooks run on the user's
// produce and poll paths, where encoding/json's reflection would be most of
// the interceptor's cost. The output is what json.Marshal(e) produces, but
// for E2EsUS, which it writes as "e2e_us" (UnmarshalJSON reads it back).
func (e *Event) appendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, e.Type)
	b = append(b, `,"msg_id":`...)
	b = appendJSONString(b, e.MsgID)
	b = appendStr(b, "trace_id", e.TraceID)
	b = appendStr(b, "span_id", e.SpanID)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, e.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(e.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, e.Offset, 10)
	b = appendStr(b, "key", e.Key)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, int64(e.Size), 10)
	b = appendStr(b, "client_id", e.ClientID)
	b = appendStr(b, "host", e.Host)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, e.TS, 10)
	b = appendInt(b, "send_ts", e.SendTS)
	b = appendInt(b, "record_ts", e.RecordTS)
	b = appendInt(b, "latency_us", e.LatencyUS)
	b = appendStr(b, "error", e.Error)
	b = appendStr(b, "group", e.Group)
	b = appendStr(b, "member", e.Member)
	if len(e.E2EsUS) > 0 {
		b = appendInts(b, "e2e_us", e.E2EsUS)
	} else {
		b = appendInt(b, "e2e_us", e.E2EUS)
	}
	b = appendInt(b, "first_ts", e.FirstTS)
	b = appendInt(b, "dropped", e.Dropped)
	b = appendStrs(b, "dropped_ids", e.DroppedIDs)
	b = appendInt(b, "records", e.Records)
	b = appendInt(b, "last_offset", e.LastOffset)
	b = appendStrs(b, "msg_ids", e.MsgIDs)
	b = appendStrs(b, "keys", e.Keys)
	b = appendStrs(b, "trace_ids", e.TraceIDs)
	if len(e.Sizes) > 0 {
		b = append(b, `,"sizes":[`...)
		for i, v := range e.Sizes {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(v), 10)
		}
		b = append(b, ']')
	}
	b = appendInts(b, "latencies_us", e.LatenciesUS)
	b = appendInts(b, "record_ts_delta_ms", e.RecordTSDeltaMS)
	return append(b, '}')
}

// appendKey appends `,"name":` (fields after the first: the event's type
// always comes first).
func appendKey(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendList appends `,"name":[v,...]` with each value written by one;
// nothing for an empty list (the field is omitted, as omitempty).
func appendList[T any](b []byte, name string, vs []T, one func([]byte, T) []byte) []byte {
	if len(vs) == 0 {
		return b
	}
	b = append(appendKey(b, name), '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = one(b, v)
	}
	return append(b, ']')
}

func appendStrs(b []byte, name string, vs []string) []byte {
	return appendList(b, name, vs, appendJSONString)
}

func appendInts(b []byte, name string, vs []int64) []byte {
	return appendList(b, name, vs, func(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) })
}

func appendStr(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendJSONString(appendKey(b, name), v)
}

func appendInt(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendInt(appendKey(b, name), v, 10)
}

// appendJSONString quotes s as a JSON string. strconv.AppendQuote is not
// JSON (it emits \x escapes for bytes that are not UTF-8), so keys, which are
// arbitrary bytes, go through encoding/json when they need escaping.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s) // strings always marshal
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONBytes is appendJSONString for bytes, without converting them
// to a string unless they need escaping.
func appendJSONBytes(b, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(string(s)) // strings always marshal
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendEvent and dropRef let the emitter take an Event or a producer
// hook's state alike.
func (e *Event) appendEvent(b []byte) []byte { return e.appendJSON(b) }

func (e *Event) dropRef() (dropKey, int64, []string) {
	k := dropKey{client: e.ClientID, group: e.Group, topic: e.Topic}
	if e.Batch() {
		return k, e.TS, e.MsgIDs
	}
	return k, e.TS, []string{e.MsgID}
}

func (e *Event) hops() int64 {
	if e.Batch() {
		return int64(len(e.MsgIDs))
	}
	return 1
}

// Marshal returns the event's JSON encoding.
func (e *Event) Marshal() []byte { return e.appendJSON(make([]byte, 0, 320)) }

// ErrCorruptEvent marks trace-topic records that are not valid events; the
// shipper counts and skips them.
var ErrCorruptEvent = errors.New("corrupt trace event")

// ParseEvent decodes and validates one trace-topic record value.
func ParseEvent(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrCorruptEvent, err)
	}
	switch {
	case e.Type != TypeProduce && e.Type != TypeConsume && e.Type != TypeDrop:
		return e, fmt.Errorf("%w: unknown type %q", ErrCorruptEvent, e.Type)
	case e.MsgID == "":
		return e, fmt.Errorf("%w: no msg_id", ErrCorruptEvent)
	case e.Topic == "":
		return e, fmt.Errorf("%w: no topic", ErrCorruptEvent)
	case e.TS <= 0:
		return e, fmt.Errorf("%w: no ts", ErrCorruptEvent)
	case e.Type == TypeConsume && e.Group == "":
		return e, fmt.Errorf("%w: consume event without group", ErrCorruptEvent)
	case e.Type == TypeDrop && e.Dropped <= 0:
		return e, fmt.Errorf("%w: drop event without a count", ErrCorruptEvent)
	case e.Batch():
		if err := e.validateBatch(); err != nil {
			return e, fmt.Errorf("%w: batch event: %v", ErrCorruptEvent, err)
		}
	}
	return e, nil
}

// validateBatch checks that a batch event's arrays describe its records
// and offsets: a record must never be shown at another record's offset.
func (e *Event) validateBatch() error {
	n := len(e.MsgIDs)
	switch {
	case e.Type == TypeDrop:
		return fmt.Errorf("type %q", e.Type)
	case e.MsgID != e.MsgIDs[0]:
		return errors.New("msg_id is not msg_ids[0]")
	case e.Records != int64(n):
		return fmt.Errorf("records %d for %d msg_ids", e.Records, n)
	case e.Offset < 0 || e.LastOffset != e.Offset+int64(n)-1:
		return fmt.Errorf("offsets %d..%d for %d records", e.Offset, e.LastOffset, n)
	case len(e.Keys) != 0 && len(e.Keys) != n, len(e.TraceIDs) != 0 && len(e.TraceIDs) != n,
		len(e.Sizes) != 0 && len(e.Sizes) != n, len(e.LatenciesUS) != 0 && len(e.LatenciesUS) != n,
		len(e.RecordTSDeltaMS) != 0 && len(e.RecordTSDeltaMS) != n, len(e.E2EsUS) != 0 && len(e.E2EsUS) != n:
		return errors.New("arrays not aligned with msg_ids")
	}
	for _, id := range e.MsgIDs {
		if id == "" {
			return errors.New("empty message id")
		}
	}
	return nil
}

// DocID is the search document id of an event whose trace-topic value is
// raw. It is derived from the event alone (message id, type, group and a
// hash of the exact bytes), so shipping the same event twice, after a crash
// before the offset commit, overwrites one document instead of adding a
// second, while two distinct events of one message never collide.
func DocID(e *Event, raw []byte) string {
	return string(appendDocID(nil, []byte(e.MsgID), e.Type, []byte(e.Group), raw))
}

// appendDocID appends DocID's id for an event of type typ, message msgID
// and group (empty for produce and drop events) to id.
func appendDocID(id, msgID []byte, typ string, group, raw []byte) []byte {
	h := fnv.New64a()
	_, _ = h.Write(raw) // hash.Hash never fails
	start := len(id)
	id = append(id, msgID...)
	id = append(id, '.')
	id = append(id, typ[0]) // p, c or d
	if len(group) > 0 {
		id = append(id, '.')
		id = append(id, group...)
	}
	id = append(id, '.')
	id = strconv.AppendUint(id, h.Sum64(), 36)
	if len(id)-start > 512 { // Elasticsearch's _id limit; a huge group name must not make the event unshippable
		sum := fnv.New64a()
		_, _ = sum.Write(id[start:])
		id = strconv.AppendUint(append(id[:start+400], '~'), sum.Sum64(), 36)
	}
	return id
}

// IndexPrefix is the default prefix of the daily indexes.
const IndexPrefix = "kobs-trace-"

// IndexName is the daily index (prefix + YYYY.MM.DD, UTC) an event at ts
// (Unix ms) belongs to.
func IndexName(prefix string, ts int64) string {
	return prefix + time.UnixMilli(ts).UTC().Format("2006.01.02")
}

// GroupsIndex names the index of (topic, group) pairs seen in consume events,
// which answers "which groups should have consumed this topic" without
// aggregations.
func GroupsIndex(prefix string) string { return prefix + "groups" }

// Mapping is the Elasticsearch mapping of the daily indexes: identifiers are
// keywords (exact terms), positions and measurements are longs (so offset
// ranges, latency percentiles and histograms work as in Elasticsearch),
// and the event time is a date for range queries, sorting and date
// histograms. What journeys only read back (send and record times, the
// member id) stays in _source unindexed: every indexed number costs the
// store 16 terms per document.
const Mapping = `{
  "settings": {"number_of_shards": 1, "number_of_replicas": 0},
  "mappings": {
    "dynamic": false,
    "properties": ` + mappingProperties + `
  }
}`

// mappingProperties are Mapping's fields; the shipper also PUTs them on a
// daily index that exists already (created by an older version, without
// the batch fields), since "dynamic": false would leave new fields
// unsearchable there.
const mappingProperties = `{
      "type": {"type": "keyword"},
      "msg_id": {"type": "keyword"},
      "trace_id": {"type": "keyword"},
      "span_id": {"type": "keyword", "index": false, "doc_values": false},
      "topic": {"type": "keyword"},
      "partition": {"type": "long"},
      "offset": {"type": "long"},
      "key": {"type": "keyword", "ignore_above": 256},
      "size": {"type": "long", "index": false},
      "client_id": {"type": "keyword"},
      "host": {"type": "keyword"},
      "ts": {"type": "date", "format": "epoch_millis"},
      "send_ts": {"type": "date", "format": "epoch_millis", "index": false, "doc_values": false},
      "record_ts": {"type": "date", "format": "epoch_millis", "index": false, "doc_values": false},
      "latency_us": {"type": "long"},
      "error": {"type": "keyword", "ignore_above": 1024},
      "group": {"type": "keyword"},
      "member": {"type": "keyword", "index": false, "doc_values": false},
      "e2e_us": {"type": "long"},
      "first_ts": {"type": "date", "format": "epoch_millis"},
      "dropped": {"type": "long", "index": false},
      "dropped_ids": {"type": "keyword"},
      "records": {"type": "long"},
      "last_offset": {"type": "long"},
      "msg_ids": {"type": "keyword"},
      "keys": {"type": "keyword", "ignore_above": 256},
      "trace_ids": {"type": "keyword"},
      "sizes": {"type": "long", "index": false, "doc_values": false},
      "latencies_us": {"type": "long", "index": false, "doc_values": false},
      "record_ts_delta_ms": {"type": "long", "index": false, "doc_values": false}
    }`

// GroupsMapping is the mapping of GroupsIndex.
const GroupsMapping = `{
  "settings": {"number_of_shards": 1, "number_of_replicas": 0},
  "mappings": {"dynamic": false, "properties": {
    "topic": {"type": "keyword"}, "group": {"type": "keyword"}, "first_ts": {"type": "date", "format": "epoch_millis"}
  }}
}`
