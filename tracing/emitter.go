package tracing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rcrowley/go-metrics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Stats counts what happened to trace events.
type Stats struct {
	Emitted int64 // handed to the trace producer
	Written int64 // acknowledged by the trace topic
	Dropped int64 // discarded because the buffer was full (after waiting, with BlockWhenFull)
	Failed  int64 // the trace producer gave up on them (broker down longer than the delivery timeout)
	// Blocked counts events that waited for room (BlockWhenFull) and got it.
	Blocked int64
	// DropEvents counts drop events written to the trace topic: each
	// records the dropped and failed events of one window.
	DropEvents int64
}

// Emitter is the asynchronous, bounded producer of trace events. When
// MaxBufferedEvents events are buffered or in flight, a new one is dropped
// at once (DropWhenFull, the default) or after waiting for room
// (BlockWhenFull). Every drop is counted and recorded in a drop event on the
// trace topic. It is safe for concurrent use.
//
// Events are packed into trace-topic records as newline-delimited JSON, up
// to batchEvents events or batchBytes per record, or whatever arrived within
// batchLinger. One record per event would double the traced client's
// per-record work (and the broker's); packing makes an event cost an append
// to a buffer.
type Emitter struct {
	cfg   cfg
	mu    sync.Mutex // serialises start
	cl    atomic.Pointer[kgo.Client]
	err   error // under mu
	close sync.Once

	bmu     sync.Mutex // guards the pending record below
	pending []byte     // newline-delimited events not yet handed to the client
	npend   int64
	armed   bool // a linger timer will flush pending
	closed  bool

	// buffered counts events pending or in flight, for the bound.
	buffered                          atomic.Int64
	emitted, written, dropped, failed atomic.Int64
	blocked, dropEvents               atomic.Int64

	// Waiters for room (BlockWhenFull): a release closes room and replaces
	// it when someone waits.
	waiters      atomic.Int64
	roomMu       sync.Mutex
	room         chan struct{}
	stalledUntil atomic.Int64 // unix nanos: a wait timed out, drop without waiting until then

	drops dropLog
}

// Packing limits of one trace-topic record.
const (
	batchEvents = 256
	batchBytes  = 64 << 10
	batchLinger = 2 * time.Millisecond
)

// NewEmitter returns an emitter writing to the trace topic. Without
// Brokers it starts once a hook hands it the traced client's seeds.
func NewEmitter(opts ...Opt) (*Emitter, error) {
	c, err := newCfg(opts)
	if err != nil {
		return nil, err
	}
	e := &Emitter{cfg: c, room: make(chan struct{})}
	e.drops.m = map[dropKey]*dropEntry{}
	if c.registry != nil {
		for name, v := range map[string]*atomic.Int64{
			"kobs-trace-events-emitted": &e.emitted, "kobs-trace-events-written": &e.written,
			"kobs-trace-events-dropped": &e.dropped, "kobs-trace-events-failed": &e.failed,
			"kobs-trace-events-blocked": &e.blocked, "kobs-trace-events-buffered": &e.buffered,
			"kobs-trace-drop-events": &e.dropEvents,
		} {
			c.registry.Unregister(name) // a new emitter replaces an old one's gauges
			_ = c.registry.Register(name, metrics.NewFunctionalGauge(v.Load))
		}
	}
	if len(c.brokers) > 0 {
		if err := e.start(c.brokers); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// start builds the trace producer once.
func (e *Emitter) start(seeds []string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cl.Load() != nil || e.err != nil {
		return e.err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(e.cfg.topic),
		kgo.ClientID("kobs-trace-emitter"),
		kgo.MaxBufferedRecords(e.cfg.maxBuffered),
		// Trace events are small and many; a short linger batches them
		// without holding memory for long.
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.AllowAutoTopicCreation(),
		// Events waiting for a dead broker hold buffer space; after this
		// they count as failed and make room for new ones.
		kgo.RecordDeliveryTimeout(30 * time.Second),
		// Events are mostly random hex ids, which LZ77-style codecs
		// barely shrink, while compressing them was a tenth of the
		// traced producer's CPU in the trace cost benchmark.
		// EmitterOpts(kgo.ProducerBatchCompression(...)) turns it on.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	}
	opts = append(opts, e.cfg.emitterOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		e.err = fmt.Errorf("tracing: trace producer: %w", err)
		return e.err
	}
	e.cl.Store(cl)
	return nil
}

func (e *Emitter) client() *kgo.Client { return e.cl.Load() }

// Emit queues one event, encoding it straight into the pending record. It
// never fails the caller; with BlockWhenFull it may wait for room.
func (e *Emitter) Emit(ev *Event) { e.emit(ev) }

// eventSource is what the emitter encodes: an Event, or a hook's state
// that encodes its event without building one. hops is how many trace
// events of messages it carries (a batch produce event carries one per
// record): Stats, MaxBufferedEvents and drop counts are in those units, so
// "N dropped" means N messages' hops are missing, however they were packed.
type eventSource interface {
	appendEvent([]byte) []byte
	dropRef() (k dropKey, ts int64, msgIDs []string)
	hops() int64
}

func (e *Emitter) emit(ev eventSource) {
	cl := e.client()
	if cl == nil {
		e.drop(ev, reasonNotStarted)
		return
	}
	n := ev.hops()
	if !e.reserve(n) {
		e.drop(ev, reasonBufferFull)
		return
	}
	e.emitted.Add(n)
	e.bmu.Lock()
	if e.closed {
		e.bmu.Unlock()
		e.release(n)
		e.drop(ev, reasonClosed)
		return
	}
	e.pending = append(ev.appendEvent(e.pending), '\n')
	e.npend += n
	if e.npend >= batchEvents || len(e.pending) >= batchBytes {
		rec, n := e.takeLocked()
		e.bmu.Unlock()
		e.send(cl, rec, n)
		return
	}
	if !e.armed {
		e.armed = true
		time.AfterFunc(batchLinger, e.flushPending)
	}
	e.bmu.Unlock()
}

// reserve takes room for n events, waiting up to the BlockWhenFull time.
// The hooks never make a batch event of more events than the bound.
func (e *Emitter) reserve(n int64) bool {
	limit := int64(e.cfg.maxBuffered)
	if e.buffered.Add(n) <= limit {
		return true
	}
	e.buffered.Add(-n)
	if e.cfg.blockFor <= 0 || time.Now().UnixNano() < e.stalledUntil.Load() {
		return false
	}
	e.waiters.Add(1)
	defer e.waiters.Add(-1)
	timer := time.NewTimer(e.cfg.blockFor)
	defer timer.Stop()
	for {
		e.roomMu.Lock()
		room := e.room
		e.roomMu.Unlock()
		if e.buffered.Add(n) <= limit {
			e.blocked.Add(n)
			return true
		}
		e.buffered.Add(-n)
		select {
		case <-room:
		case <-timer.C:
			// The trace topic is not keeping up (or gone): stop making
			// the traced client wait for a while.
			e.stalledUntil.Store(time.Now().Add(time.Second).UnixNano())
			return false
		}
	}
}

// release frees room for n events and wakes waiters.
func (e *Emitter) release(n int64) {
	e.buffered.Add(-n)
	if e.waiters.Load() > 0 {
		e.roomMu.Lock()
		close(e.room)
		e.room = make(chan struct{})
		e.roomMu.Unlock()
	}
}

// takeLocked detaches the pending record; bmu is held.
func (e *Emitter) takeLocked() ([]byte, int64) {
	rec, n := e.pending, e.npend
	e.pending, e.npend = getBuf(), 0
	return rec, n
}

// flushPending hands whatever is pending to the client (the linger timer,
// Flush and Close).
func (e *Emitter) flushPending() {
	e.bmu.Lock()
	e.armed = false
	rec, n := e.takeLocked()
	e.bmu.Unlock()
	if n > 0 {
		e.send(e.client(), rec, n)
	}
}

// bufs recycles record buffers: kgo is done with a record's value once its
// promise ran.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, batchBytes+4096); return &b }}

func getBuf() []byte { return (*bufs.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) <= 4*batchBytes { // one huge event should not pin its buffer
		bufs.Put(&b)
	}
}

func (e *Emitter) send(cl *kgo.Client, value []byte, n int64) {
	cl.TryProduce(context.Background(), &kgo.Record{Value: value}, func(r *kgo.Record, err error) {
		switch {
		case err == nil:
			e.written.Add(n)
		case errors.Is(err, kgo.ErrMaxBuffered):
			e.dropped.Add(n)
			e.dropPacked(r.Value, reasonBufferFull)
		default:
			e.failed.Add(n)
			e.dropPacked(r.Value, reasonWriteFailed+err.Error())
		}
		putBuf(r.Value)
		e.release(n)
	})
}

// Stats returns the counters so far.
func (e *Emitter) Stats() Stats {
	return Stats{Emitted: e.emitted.Load(), Written: e.written.Load(), Dropped: e.dropped.Load(), Failed: e.failed.Load(),
		Blocked: e.blocked.Load(), DropEvents: e.dropEvents.Load()}
}

// Flush waits until every emitted event is acknowledged or failed, or ctx
// is done.
func (e *Emitter) Flush(ctx context.Context) error {
	if cl := e.client(); cl != nil {
		e.flushPending()
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		// Drops recorded by the flush's failures go out now too.
		e.shipDrops()
		return cl.Flush(ctx)
	}
	return nil
}

// Close flushes for up to 10s and closes the trace producer.
func (e *Emitter) Close() {
	e.close.Do(func() {
		cl := e.client()
		if cl == nil {
			return
		}
		e.flushPending()
		e.bmu.Lock()
		e.closed = true // later Emits drop; a late linger timer finds nothing
		e.bmu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cl.Flush(ctx); err != nil {
			e.cfg.log.Warn("trace events not flushed before close", "err", err)
		}
		// Events that failed during the flush are recorded as drops; the
		// drop events are the last thing written.
		e.shipDrops()
		if err := cl.Flush(ctx); err != nil {
			e.cfg.log.Warn("trace events not flushed before close", "err", err)
		}
		e.drops.mu.Lock()
		e.drops.closed = true
		lost := e.drops.m
		e.drops.m = map[dropKey]*dropEntry{}
		e.drops.mu.Unlock()
		for k, d := range lost {
			// The trace topic is unreachable even for the drop records:
			// the log is the last place the loss can be seen.
			e.cfg.log.Error("trace events lost and their drop record not written", "client", k.client, "group", k.group,
				"topic", k.topic, "reason", k.reason, "events", d.count,
				"from", time.UnixMilli(d.first).UTC(), "to", time.UnixMilli(d.last).UTC())
		}
		cl.Close()
	})
}
