package tracing

import (
	"context"
	"encoding/hex"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ProducerHook is the producer interceptor. Add it to a client with
// kgo.WithHooks; it stamps every record with a message id and a W3C
// traceparent header and, for sampled messages, writes one produce event
// per record to the trace topic once the record is acknowledged (or failed).
//
// Its work on the produce path is a few header appends and, at the ack, one
// event encoded and handed to the Emitter, which does not block unless
// BlockWhenFull asks it to wait for room.
type ProducerHook struct {
	hookCore
	clientID string
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
	return &ProducerHook{hookCore: core, clientID: core.cfg.clientID}, nil
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

// sendState travels from the buffered hook to the unbuffered hook as the
// record's Context: it wraps the record's own context (one allocation
// instead of a state plus a context.WithValue), and at the ack it encodes
// the produce event straight from the record and the header bytes, without
// building an Event or copying ids and key into strings.
type sendState struct {
	context.Context
	h     *ProducerHook
	start time.Time
	// Hex ids: slices of the header values (never modified once stamped).
	msgID, traceID, spanID []byte
	span                   trace.Span

	// Set at the ack, for appendEvent.
	r   *kgo.Record
	now time.Time
	err error
}

type sendKey struct{}

// Value makes the state findable from the record's Context.
func (s *sendState) Value(key any) any {
	if _, ok := key.(sendKey); ok {
		return s
	}
	return s.Context.Value(key)
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
	var (
		id  [16]byte
		buf []byte // holds a minted message id and, after it, a minted traceparent
	)
	minted := msgID == nil
	if minted {
		id = newID()
		// One allocation for both headers' values: this runs for every
		// record the user produces.
		buf = hex.AppendEncode(make([]byte, 0, 32+55), id[:])
		msgID = buf[:32:32]
		r.Headers = slices.Grow(r.Headers, 2)
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderMsgID, Value: msgID})
	}
	ctx := r.Context
	if ctx == nil {
		ctx = context.Background()
	}
	st := &sendState{Context: ctx, h: h, start: time.Now(), msgID: msgID}
	if tp != nil {
		if _, _, ok := parseTraceparent(tp); ok {
			st.traceID, st.spanID = tp[3:35], tp[36:52]
		}
	}
	sampled := h.sample.sampled(msgID)
	if sampled && h.otel.tracer != nil {
		octx := ctx
		if st.traceID != nil {
			octx = remoteParent(octx, string(st.traceID), string(st.spanID))
		}
		_, st.span = h.otel.tracer.Start(octx, "send "+r.Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(st.start))
		if tp == nil {
			sc := st.span.SpanContext()
			tid, sid := sc.TraceID(), sc.SpanID()
			tp = traceparent(tid, sid)
			st.traceID, st.spanID = tp[3:35], tp[36:52]
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderTraceparent, Value: tp})
		}
	}
	if tp == nil {
		// A message without an upstream trace is its own trace; reuse the
		// message id's random bytes as the trace id when we minted both.
		sid := newSpanID()
		if minted {
			tp = appendTraceparent(buf[32:32], id, sid)
		} else {
			tp = appendTraceparent(nil, newID(), sid)
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderTraceparent, Value: tp})
		st.traceID, st.spanID = tp[3:35], tp[36:52]
	}
	if !sampled {
		return
	}
	r.Context = st
}

// OnProduceRecordUnbuffered writes the produce event: the send, and either
// where the record was stored or why it failed.
func (h *ProducerHook) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	st, ok := r.Context.(*sendState)
	if !ok || st.h != h {
		if r.Context == nil {
			return
		}
		// Another hook or the user wrapped the context after us.
		if st, ok = r.Context.Value(sendKey{}).(*sendState); !ok || st.h != h {
			return
		}
	}
	now := time.Now()
	if st.span != nil {
		st.span.SetAttributes(recordAttrs(r, string(st.msgID))...)
		if err != nil {
			st.span.RecordError(err)
			st.span.SetStatus(codes.Error, err.Error())
		}
		st.span.End(trace.WithTimestamp(now))
	}
	st.r, st.now, st.err = r, now, err
	h.em.emit(st)
	st.r = nil
}

// appendEvent encodes the produce event exactly as Event.appendJSON would
// encode the equivalent Event (a test holds them equal).
func (s *sendState) appendEvent(b []byte) []byte {
	r, h := s.r, s.h
	b = append(b, `{"type":"produce","msg_id":`...)
	b = appendJSONBytes(b, s.msgID)
	if len(s.traceID) > 0 {
		b = append(b, `,"trace_id":`...)
		b = appendJSONBytes(b, s.traceID)
	}
	if len(s.spanID) > 0 {
		b = append(b, `,"span_id":`...)
		b = appendJSONBytes(b, s.spanID)
	}
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, r.Topic)
	partition, offset := int64(r.Partition), r.Offset
	if s.err != nil {
		partition, offset = -1, -1
	}
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, partition, 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, offset, 10)
	if k := r.Key; len(k) > 0 {
		b = append(b, `,"key":`...)
		b = appendJSONBytes(b, k[:min(len(k), maxKeyBytes)])
	}
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, int64(len(r.Value)), 10)
	b = appendStr(b, "client_id", h.clientID)
	b = appendStr(b, "host", h.cfg.host)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, s.now.UnixMilli(), 10)
	b = appendInt(b, "send_ts", s.start.UnixMilli())
	if s.err == nil {
		b = appendInt(b, "record_ts", r.Timestamp.UnixMilli())
	}
	b = appendInt(b, "latency_us", max(1, s.now.Sub(s.start).Microseconds()))
	if s.err != nil {
		b = appendStr(b, "error", s.err.Error())
	}
	return append(b, '}')
}

func (s *sendState) dropRef() (dropKey, int64, string) {
	return dropKey{client: s.h.clientID, topic: s.r.Topic}, s.now.UnixMilli(), string(s.msgID)
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
