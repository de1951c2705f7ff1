package tracing

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// ConsumerHook is the consumer interceptor. Add it to a client with
// kgo.WithHooks; for the polled records carrying a sampled message id it
// writes consume events (group, member, partition, offset, end-to-end
// latency) to the trace topic: one per run of consecutive offsets of a
// partition returned by a poll, listing the message ids in offset order
// with each record's end-to-end latency (see ackRun), or, when spans go to
// OpenTelemetry too, one per record carrying its span id. Records without
// the header come from untraced producers and are ignored.
type ConsumerHook struct {
	hookCore
	cl     atomic.Pointer[kgo.Client]
	group  atomic.Pointer[string]
	client atomic.Pointer[string] // client id, read once (OptValue reflects)
	clk    clock
	batch  batcher
	name   runNamer
}

var (
	_ kgo.HookNewClient             = (*ConsumerHook)(nil)
	_ kgo.HookFetchRecordUnbuffered = (*ConsumerHook)(nil)
)

// NewConsumerHook returns a consumer hook; Close it after the traced client.
func NewConsumerHook(opts ...Opt) (*ConsumerHook, error) {
	core, err := newHookCore(opts)
	if err != nil {
		return nil, err
	}
	h := &ConsumerHook{hookCore: core}
	if g := core.cfg.group; g != "" {
		h.group.Store(&g)
	}
	h.batch.init(h.em, TypeConsume)
	h.name = func(a *ackRun) {
		a.host = h.cfg.host
		if g := h.group.Load(); g != nil {
			a.group = *g
		}
		if id := h.client.Load(); id != nil {
			a.clientID = *id
		}
		if cl := h.cl.Load(); cl != nil {
			a.member, _ = cl.GroupMetadata()
		}
	}
	return h, nil
}

// Close writes the open consume event, flushes pending trace events and
// spans. Close the traced client first so its last polls are recorded.
func (h *ConsumerHook) Close() {
	h.batch.stop()
	h.hookCore.Close()
}

// OnNewClient learns the group and starts the trace producer like
// ProducerHook.OnNewClient.
func (h *ConsumerHook) OnNewClient(cl *kgo.Client) {
	h.cl.Store(cl)
	info := ClientOf(cl)
	h.client.Store(&info.ID)
	if h.group.Load() == nil {
		h.group.Store(&info.Group)
	}
	if len(info.Seeds) > 0 {
		if err := h.em.start(info.Seeds); err != nil {
			h.cfg.log.Error("trace producer not started; trace events will be dropped", "err", err)
		}
	}
}

// OnFetchRecordUnbuffered records records returned by a poll; records
// discarded inside the client (polled=false) were never seen by the user.
func (h *ConsumerHook) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if !polled || r.Topic == h.cfg.topic {
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
	if len(msgID) == 0 || !h.sample.sampled(msgID) {
		return
	}
	if h.otel.tracer == nil {
		now := h.clk.now()
		h.batch.add(r, msgID, traceIDOf(tp, msgID), false, 0, max(1, now.Sub(r.Timestamp).Microseconds()), now, h.name)
		return
	}
	now := time.Now()
	e := Event{
		Type: TypeConsume, MsgID: string(msgID),
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: keyString(r.Key), Size: len(r.Value),
		Host: h.cfg.host, TS: now.UnixMilli(), RecordTS: r.Timestamp.UnixMilli(),
		E2EUS: max(1, now.Sub(r.Timestamp).Microseconds()),
	}
	if g := h.group.Load(); g != nil {
		e.Group = *g
	}
	if id := h.client.Load(); id != nil {
		e.ClientID = *id
	}
	if cl := h.cl.Load(); cl != nil {
		e.Member, _ = cl.GroupMetadata()
	}
	var parentSpan string
	if tp != nil {
		e.TraceID, parentSpan, _ = parseTraceparent(tp)
	}
	if h.otel.tracer != nil {
		ctx := context.Background()
		if e.TraceID != "" {
			ctx = remoteParent(ctx, e.TraceID, parentSpan)
		}
		_, span := h.otel.tracer.Start(ctx, "receive "+r.Topic, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(now))
		span.SetAttributes(recordAttrs(r, e.MsgID)...)
		span.SetAttributes(groupAttr(e.Group))
		e.SpanID = span.SpanContext().SpanID().String()
		if e.TraceID == "" {
			e.TraceID = span.SpanContext().TraceID().String()
		}
		span.End(trace.WithTimestamp(now))
	}
	h.em.Emit(&e)
}
