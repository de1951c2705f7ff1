package tracing

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// One produce event per acknowledged batch.
//
// franz-go finishes a produce batch by calling the unbuffered hook of each
// of its records in offset order (offset = base offset + index), back to
// back on the client's single promise goroutine, before moving on to the
// next batch. HookProduceBatchWritten is no help here: it runs on a
// goroutine of its own, after or before the records' hooks, and carries no
// base offset. So the hook keeps one open batch event (ackRun) and appends
// each acknowledged record to it while the record continues it: same topic
// and partition, the next offset, and acknowledged within ackSpan of the
// run's first record (so TS is every record's acknowledgement to within
// ackSpan). Anything else, maxRunRecords (MaxBufferedEvents if smaller,
// so an event always fits the buffer) or maxRunBytes, or batchLinger
// without a new acknowledgement, closes the event and hands it to the
// Emitter. Two consecutive batches of one partition acknowledged within
// ackSpan thus share an event, which is as exact: offsets are contiguous
// and every record keeps its own latency.
//
// The event's message ids are in offset order because the record at
// Offset+i is the i-th record appended, and a record is appended only at
// the offset right after the previous one.
const (
	ackSpan       = time.Millisecond
	maxRunRecords = 1000
	maxRunBytes   = 48 << 10
)

// The consumer hook does the same with the records a poll returns: one
// consume event per run of consecutive offsets of a partition polled
// within ackSpan, each record with its own end-to-end latency.

// batcher owns a hook's open batch event.
type batcher struct {
	em *Emitter
	// max is maxRunRecords, or the emitter's MaxBufferedEvents when
	// smaller: an event never holds more hops than the buffer does.
	max   int
	mu    sync.Mutex
	run   ackRun
	armed bool
	timer *time.Timer
}

func (b *batcher) init(em *Emitter, typ string) {
	b.em, b.run.typ = em, typ
	b.max = min(maxRunRecords, em.cfg.maxBuffered)
	b.timer = time.AfterFunc(time.Hour, b.lingerFlush)
	b.timer.Stop()
}

// runNamer names the client of a run (and, for consume events, the group and
// member); it is called when a run opens.
type runNamer func(a *ackRun)

// ackRun is the open batch event: the records' fields already encoded as
// JSON array elements, so closing it is a few appends.
type ackRun struct {
	typ                           string // TypeProduce or TypeConsume
	clientID, host, group, member string
	topic                         string
	partition                     int32
	base                          int64
	n                             int
	ack                           time.Time // the first record's acknowledgement (or poll)
	firstSend                     int64     // unix ms, earliest send (produce)
	maxLat                        int64
	recordTS                      int64 // unix ms of the first record

	ids, lats []byte // `"id","id"`, `12,15` (latencies, or end-to-end latencies)
	// Arrays omitted while uniform; once a record differs, the earlier
	// records' entries are back-filled.
	keys, traces, sizes, rtsDeltas []byte
	anyKey, anyTrace, sizesVary    bool
	rtsVary                        bool
	size                           int // the first record's value size
}

// add appends an acknowledged (or polled) record to the open batch event,
// closing the event first when the record does not continue it. minted
// says msgID is hex the hook minted: it needs no JSON escaping. lat is the
// record's latency (produce) or end-to-end latency (consume); sendMS its
// send time (produce).
func (b *batcher) add(r *kgo.Record, msgID, traceID []byte, minted bool, sendMS, lat int64, now time.Time, name runNamer) {
	b.mu.Lock()
	run := &b.run
	if run.n > 0 && (r.Offset != run.base+int64(run.n) || r.Partition != run.partition || r.Topic != run.topic ||
		now.Sub(run.ack) > ackSpan) {
		b.em.emit(run)
		run.reset()
	}
	if run.n == 0 {
		name(run)
	}
	run.add(r, msgID, traceID, minted, sendMS, lat, now)
	if run.n >= b.max || len(run.ids)+len(run.keys)+len(run.traces) >= maxRunBytes {
		b.em.emit(run)
		run.reset()
	} else if run.n == 1 && !b.armed {
		b.armed = true
		b.timer.Reset(batchLinger)
	}
	b.mu.Unlock()
}

// lingerFlush closes the open batch event once acknowledgements pause.
func (b *batcher) lingerFlush() {
	b.mu.Lock()
	b.armed = false
	if b.run.n > 0 {
		if time.Since(b.run.ack) < batchLinger {
			// A run opened after the timer was armed: give it its time.
			b.armed = true
			b.timer.Reset(batchLinger)
		} else {
			b.em.emit(&b.run)
			b.run.reset()
		}
	}
	b.mu.Unlock()
}

// flush hands the open batch event to the emitter now.
func (b *batcher) flush() {
	b.mu.Lock()
	if b.run.n > 0 {
		b.em.emit(&b.run)
		b.run.reset()
	}
	b.mu.Unlock()
}

// stop flushes and stops the linger timer (the hook's Close).
func (b *batcher) stop() {
	b.timer.Stop()
	b.flush()
}

func (a *ackRun) reset() {
	*a = ackRun{typ: a.typ, ids: a.ids[:0], lats: a.lats[:0], keys: a.keys[:0], traces: a.traces[:0],
		sizes: a.sizes[:0], rtsDeltas: a.rtsDeltas[:0]}
}

func (a *ackRun) add(r *kgo.Record, msgID, traceID []byte, minted bool, sendMS, lat int64, now time.Time) {
	rts := r.Timestamp.UnixMilli()
	if a.n == 0 {
		a.topic, a.partition, a.base, a.ack = r.Topic, r.Partition, r.Offset, now
		a.firstSend, a.maxLat, a.recordTS, a.size = sendMS, lat, rts, len(r.Value)
	} else {
		a.ids = append(a.ids, ',')
		a.lats = append(a.lats, ',')
		a.firstSend, a.maxLat = min(a.firstSend, sendMS), max(a.maxLat, lat)
	}
	if minted {
		a.ids = append(append(append(a.ids, '"'), msgID...), '"')
	} else {
		a.ids = appendJSONBytes(a.ids, msgID)
	}
	a.lats = strconv.AppendInt(a.lats, lat, 10)

	k := r.Key[:min(len(r.Key), maxKeyBytes)]
	if len(k) > 0 && !a.anyKey {
		a.anyKey = true
		a.keys = backfill(a.keys, `""`, a.n)
	}
	if a.anyKey {
		a.keys = appendJSONBytes(sep(a.keys, a.n), k)
	}
	sameTrace := string(traceID) == string(msgID)
	if !sameTrace && !a.anyTrace {
		a.anyTrace = true
		a.traces = backfill(a.traces, `""`, a.n)
	}
	if a.anyTrace {
		if sameTrace {
			a.traces = append(sep(a.traces, a.n), `""`...)
		} else {
			a.traces = appendJSONBytes(sep(a.traces, a.n), traceID)
		}
	}
	if len(r.Value) != a.size && !a.sizesVary {
		a.sizesVary = true
		a.sizes = backfill(a.sizes, strconv.Itoa(a.size), a.n)
	}
	if a.sizesVary {
		a.sizes = strconv.AppendInt(sep(a.sizes, a.n), int64(len(r.Value)), 10)
	}
	if rts != a.recordTS && !a.rtsVary {
		a.rtsVary = true
		a.rtsDeltas = backfill(a.rtsDeltas, "0", a.n)
	}
	if a.rtsVary {
		a.rtsDeltas = strconv.AppendInt(sep(a.rtsDeltas, a.n), rts-a.recordTS, 10)
	}
	a.n++
}

// sep appends the separator before element i of an array.
func sep(b []byte, i int) []byte {
	if i > 0 {
		return append(b, ',')
	}
	return b
}

// backfill writes n copies of v as the first elements of an array.
func backfill(b []byte, v string, n int) []byte {
	for i := range n {
		b = append(sep(b, i), v...)
	}
	return b
}

// appendEvent encodes the batch event exactly as Event.appendJSON would
// encode the equivalent Event (a test holds them equal).
func (a *ackRun) appendEvent(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, a.typ)
	b = append(b, `,"msg_id":`...)
	b = append(b, a.firstID()...)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, a.topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(a.partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, a.base, 10)
	b = append(b, `,"size":`...)
	if a.sizesVary {
		b = append(b, '0')
	} else {
		b = strconv.AppendInt(b, int64(a.size), 10)
	}
	b = appendStr(b, "client_id", a.clientID)
	b = appendStr(b, "host", a.host)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, a.ack.UnixMilli(), 10)
	consume := a.typ == TypeConsume
	if !consume {
		b = appendInt(b, "send_ts", a.firstSend)
	}
	b = appendInt(b, "record_ts", a.recordTS)
	if !consume {
		b = appendInt(b, "latency_us", a.maxLat)
	}
	b = appendStr(b, "group", a.group)
	b = appendStr(b, "member", a.member)
	if consume {
		b = appendArray(b, "e2e_us", a.lats)
	}
	b = append(b, `,"records":`...)
	b = strconv.AppendInt(b, int64(a.n), 10)
	b = append(b, `,"last_offset":`...)
	b = strconv.AppendInt(b, a.base+int64(a.n)-1, 10)
	b = appendArray(b, "msg_ids", a.ids)
	if a.anyKey {
		b = appendArray(b, "keys", a.keys)
	}
	if a.anyTrace {
		b = appendArray(b, "trace_ids", a.traces)
	}
	if a.sizesVary {
		b = appendArray(b, "sizes", a.sizes)
	}
	if !consume {
		b = appendArray(b, "latencies_us", a.lats)
	}
	if a.rtsVary {
		b = appendArray(b, "record_ts_delta_ms", a.rtsDeltas)
	}
	return append(b, '}')
}

// firstID is the JSON string of the first message id.
func (a *ackRun) firstID() []byte {
	// Elements are JSON strings: the first ends at the first unescaped quote
	// after the opening one.
	for i := 1; i < len(a.ids); i++ {
		switch a.ids[i] {
		case '\\':
			i++
		case '"':
			return a.ids[:i+1]
		}
	}
	return a.ids
}

// appendArray appends `,"name":[elems]` with elems already encoded.
func appendArray(b []byte, name string, elems []byte) []byte {
	b = append(appendKey(b, name), '[')
	b = append(b, elems...)
	return append(b, ']')
}

// dropRef decodes the message ids again: it runs only when the batch event
// is dropped.
func (a *ackRun) dropRef() (dropKey, int64, []string) {
	var ids []string
	_ = json.Unmarshal(append(append([]byte{'['}, a.ids...), ']'), &ids) // the hook encoded them
	return dropKey{client: a.clientID, group: a.group, topic: a.topic}, a.ack.UnixMilli(), ids
}

func (a *ackRun) hops() int64 { return int64(a.n) }
