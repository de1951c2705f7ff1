package tracing

import (
	"context"
	"encoding/hex"
	"slices"
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
// event encoded and handed to the Emitter, which never blocks.
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

// sendState travels from the buffered hook to the unbuffered hook in the
// record's Context.
type sendState struct {
	start   time.Time
	msgID   string
	traceID string
	spanID  string
	span    trace.Span
}

type sendKey struct{}

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
	st := &sendState{start: time.Now(), msgID: string(msgID)}
	if tp != nil {
		st.traceID, st.spanID, _ = parseTraceparent(tp)
	}
	sampled := h.sample.sampled(msgID)
	if sampled && h.otel.tracer != nil {
		ctx := r.Context
		if ctx == nil {
			ctx = context.Background()
		}
		if st.traceID != "" {
			ctx = remoteParent(ctx, st.traceID, st.spanID)
		}
		_, st.span = h.otel.tracer.Start(ctx, "send "+r.Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(st.start))
		if tp == nil {
			sc := st.span.SpanContext()
			tid, sid := sc.TraceID(), sc.SpanID()
			tp = traceparent(tid, sid)
			st.traceID, st.spanID = tid.String(), sid.String()
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderTraceparent, Value: tp})
		}
	}
	if tp == nil {
		// A message without an upstream trace is its own trace; reuse the
		// message id's random bytes as the trace id when we minted both.
		sid := newSpanID()
		if minted {
			tp = appendTraceparent(buf[32:32], id, sid)
			st.traceID = st.msgID // same random bytes, same hex
		} else {
			tid := newID()
			tp = appendTraceparent(nil, tid, sid)
			st.traceID = hex.EncodeToString(tid[:])
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderTraceparent, Value: tp})
		st.spanID = string(tp[36:52])
	}
	if !sampled {
		return
	}
	ctx := r.Context
	if ctx == nil {
		ctx = context.Background()
	}
	r.Context = context.WithValue(ctx, sendKey{}, st)
}

// OnProduceRecordUnbuffered writes the produce event: the send, and either
// where the record was stored or why it failed.
func (h *ProducerHook) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if r.Context == nil {
		return
	}
	st, ok := r.Context.Value(sendKey{}).(*sendState)
	if !ok {
		return
	}
	now := time.Now()
	e := Event{
		Type: TypeProduce, MsgID: st.msgID, TraceID: st.traceID, SpanID: st.spanID,
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: keyString(r.Key), Size: len(r.Value),
		ClientID: h.clientID, Host: h.cfg.host,
		TS: now.UnixMilli(), SendTS: st.start.UnixMilli(), LatencyUS: max(1, now.Sub(st.start).Microseconds()),
	}
	if err != nil {
		e.Error = err.Error()
		e.Partition, e.Offset = -1, -1
	} else {
		e.RecordTS = r.Timestamp.UnixMilli()
	}
	if st.span != nil {
		st.span.SetAttributes(recordAttrs(r, st.msgID)...)
		if err != nil {
			st.span.RecordError(err)
			st.span.SetStatus(codes.Error, err.Error())
		}
		st.span.End(trace.WithTimestamp(now))
	}
	h.em.Emit(&e)
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
