package tracing

import (
	"context"
	"encoding/hex"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ProducerHook is the producer interceptor. Add it to a client with
// kgo.WithHooks; it stamps every record with a message id and a W3C
// traceparent header and, for sampled messages, writes produce events to
// the trace topic once the records are acknowledged: one event per
// acknowledged batch (see ackRun), carrying the batch's base offset and the
// message ids in offset order, and one event per failed record.
//
// Its work on the produce path is a clock read, a few header appends into
// memory carved from a shared slab, and at the ack an append of the message
// id and latency to the open batch event; the event is encoded and handed
// to the Emitter once per batch, which does not block unless BlockWhenFull
// asks it to wait for room.
type ProducerHook struct {
	hookCore
	clientID string
	clk      clock
	batch    batcher
	name     runNamer
}

var (
	_ kgo.HookNewClient               = (*ProducerHook)(nil)
	_ kgo.HookProduceRecordBuffered   = (*ProducerHook)(nil)
	_ kgo.HookProduceRecordUnbuffered = (*ProducerHook)(nil)
)

// NewProducerHook returns a producer hook; Close it after the traced client.
func NewProducerHook(opts ...Opt) (*ProducerHook, error) {
	core, err := newHookCore(opts)
	if err != nil {
		return nil, err
	}
	h := &ProducerHook{hookCore: core, clientID: core.cfg.clientID}
	h.batch.init(h.em, TypeProduce)
	h.name = func(a *ackRun) { a.clientID, a.host = h.clientID, h.cfg.host }
	return h, nil
}

// Emitter returns the hook's trace producer, e.g. to share it WithEmitter.
func (h *ProducerHook) Emitter() *Emitter { return h.em }

// OnNewClient learns the traced client's id and, unless Brokers was given,
// starts the trace producer on the traced client's seed brokers.
func (h *ProducerHook) OnNewClient(cl *kgo.Client) {
	info := ClientOf(cl)
	if h.clientID == "" {
		h.clientID = info.ID
	}
	if len(info.Seeds) > 0 {
		if err := h.em.start(info.Seeds); err != nil {
			h.cfg.log.Error("trace producer not started; trace events will be dropped", "err", err)
		}
	}
}

// Flush hands the open batch event to the emitter and waits until every
// event is acknowledged by the trace topic or failed, or ctx is done.
func (h *ProducerHook) Flush(ctx context.Context) error {
	h.batch.flush()
	return h.em.Flush(ctx)
}

// Close writes the open batch event, flushes pending trace events and
// spans. Close the traced client first so its last acknowledgements are
// recorded.
func (h *ProducerHook) Close() {
	h.batch.stop()
	h.hookCore.Close()
}

// sendState travels from the buffered hook to the unbuffered hook as the
// record's Context (wrapping the record's own) when the send time cannot
// travel in the message id, because the id came with the record, or when an
// OpenTelemetry span must be ended at the ack. A record whose id the hook
// minted carries nothing: its send time is in the id (newTimedID).
type sendState struct {
	context.Context
	h     *ProducerHook
	start time.Time
	span  trace.Span
}

type sendKey struct{}

// Value makes the state findable from the record's Context.
func (s *sendState) Value(key any) any {
	if _, ok := key.(sendKey); ok {
		return s
	}
	return s.Context.Value(key)
}

// idSlab hands out the bytes of minted header values and the header slices
// of records that had none, carved from shared blocks: one allocation per
// few hundred records instead of two per record. A block lives as long as
// any record using it.
type idSlab struct {
	b  []byte
	hs []kgo.RecordHeader
}

var idSlabs = sync.Pool{New: func() any { return new(idSlab) }}

// valueLen is a minted message id (32 hex) and traceparent (55) together.
const valueLen = 32 + 55

func (s *idSlab) values() []byte {
	if len(s.b)+valueLen > cap(s.b) {
		s.b = make([]byte, 0, 186*valueLen) // ~16 KiB
	}
	n := len(s.b)
	s.b = s.b[:n+valueLen]
	return s.b[n : n : n+valueLen]
}

// headers returns an empty header slice with room for n; appending past n
// reallocates, so records never share header memory.
func (s *idSlab) headers(n int) []kgo.RecordHeader {
	if n > 8 {
		return make([]kgo.RecordHeader, 0, n)
	}
	if len(s.hs)+n > cap(s.hs) {
		s.hs = make([]kgo.RecordHeader, 0, 512)
	}
	k := len(s.hs)
	s.hs = s.hs[:k+n]
	return s.hs[k : k : k+n]
}

// OnProduceRecordBuffered stamps the headers. Records to the trace topic
// itself are left alone so a hook on a trace-topic producer cannot loop.
func (h *ProducerHook) OnProduceRecordBuffered(r *kgo.Record) {
	if r.Topic == h.cfg.topic {
		return
	}
	var msgID, tp []byte
	for _, hd := range r.Headers {
		switch hd.Key {
		case HeaderMsgID:
			msgID = hd.Value
		case HeaderTraceparent:
			tp = hd.Value
		}
	}
	start := h.clk.now()
	var (
		id   [16]byte
		buf  []byte // holds a minted message id and, after it, a minted traceparent
		slab *idSlab
	)
	minted := msgID == nil
	if minted {
		id = newTimedID(start)
		slab = idSlabs.Get().(*idSlab)
		buf = hex.AppendEncode(slab.values(), id[:])
		msgID = buf[:32:32]
		if cap(r.Headers)-len(r.Headers) < 2 {
			r.Headers = append(slab.headers(len(r.Headers)+2), r.Headers...)
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderMsgID, Value: msgID})
	}
	var traceID, spanID string
	if tp != nil {
		traceID, spanID, _ = parseTraceparent(tp)
	}
	sampled := h.sample.sampled(msgID)
	var span trace.Span
	if sampled && h.otel.tracer != nil {
		octx := r.Context
		if octx == nil {
			octx = context.Background()
		}
		if traceID != "" {
			octx = remoteParent(octx, traceID, spanID)
		}
		_, span = h.otel.tracer.Start(octx, "send "+r.Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(start))
		if tp == nil {
			sc := span.SpanContext()
			tp = traceparent(sc.TraceID(), sc.SpanID())
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderTraceparent, Value: tp})
		}
	}
	if tp == nil {
		// A message without an upstream trace is its own trace; reuse the
		// message id's bytes as the trace id when we minted both, and its
		// random bytes as the span id, the trace's only producer span.
		if minted {
			// The trace id's hex is the message id's: copied, not encoded again.
			sid := timedIDSpan(id)
			tp = append(buf[32:32], "00-"...)
			tp = append(tp, msgID...)
			tp = append(tp, '-')
			tp = hex.AppendEncode(tp, sid[:])
			tp = append(tp, "-01"...)
		} else {
			tp = appendTraceparent(nil, newID(), newSpanID())
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderTraceparent, Value: tp})
	}
	if slab != nil {
		idSlabs.Put(slab)
	}
	if !sampled {
		return
	}
	if minted && span == nil {
		return
	}
	ctx := r.Context
	if ctx == nil {
		ctx = context.Background()
	}
	r.Context = &sendState{Context: ctx, h: h, start: start, span: span}
}

// OnProduceRecordUnbuffered records the acknowledgement in the open batch
// event, or writes a produce event for a failed record.
func (h *ProducerHook) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if r.Topic == h.cfg.topic {
		return
	}
	var msgID, tp []byte
	for i := len(r.Headers) - 1; i >= 0; i-- { // ours are at the end
		switch hd := r.Headers[i]; hd.Key {
		case HeaderMsgID:
			msgID = hd.Value
		case HeaderTraceparent:
			tp = hd.Value
		}
	}
	if msgID == nil || !h.sample.sampled(msgID) {
		return
	}
	// A sampled record whose id came with it carries our sendState; one
	// without it has an id this hook minted, with the send time inside.
	st, ok := r.Context.(*sendState)
	if !ok && r.Context != nil {
		// Another hook or the user may have wrapped the context after us.
		st, _ = r.Context.Value(sendKey{}).(*sendState)
	}
	var start time.Time
	if st != nil && st.h == h {
		start = st.start
	} else {
		st = nil
		if start, ok = timedIDTime(msgID); !ok {
			return // not a record this hook stamped
		}
	}
	now := h.clk.now()
	if st != nil && st.span != nil {
		st.span.SetAttributes(recordAttrs(r, string(msgID))...)
		if err != nil {
			st.span.RecordError(err)
			st.span.SetStatus(codes.Error, err.Error())
		}
		st.span.End(trace.WithTimestamp(now))
	}
	traceID := traceIDOf(tp, msgID)
	if err != nil || r.Offset < 0 {
		// A failed record, or one whose offset the broker did not say
		// (kgo's -1): a per-record event, since a batch event places its
		// records by offset.
		e := Event{Type: TypeProduce, MsgID: string(msgID), TraceID: string(traceID), Topic: r.Topic, Partition: r.Partition, Offset: -1,
			Key: keyString(r.Key), Size: len(r.Value), ClientID: h.clientID, Host: h.cfg.host, TS: now.UnixMilli(),
			SendTS: start.UnixMilli(), RecordTS: r.Timestamp.UnixMilli(), LatencyUS: max(1, now.Sub(start).Microseconds())}
		if err != nil {
			e.Partition, e.RecordTS, e.Error = -1, 0, err.Error()
		}
		if traceID != nil {
			e.SpanID = string(tp[36:52])
		}
		h.em.Emit(&e)
		return
	}
	h.batch.add(r, msgID, traceID, st == nil, start.UnixMilli(), max(1, now.Sub(start).Microseconds()), now, h.name)
}

// maxKeyBytes bounds the key copied into events; longer keys are not
// searchable anyway (the mapping's ignore_above) and would bloat events.
const maxKeyBytes = 256

func keyString(k []byte) string {
	if len(k) > maxKeyBytes {
		k = k[:maxKeyBytes]
	}
	return string(k)
}
