package tracing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Stats counts what happened to trace events.
type Stats struct {
	Emitted int64 // handed to the trace producer
	Written int64 // acknowledged by the trace topic
	Dropped int64 // discarded because the buffer was full
	Failed  int64 // the trace producer gave up on them (broker down longer than the delivery timeout)
}

// Emitter is the asynchronous, bounded producer of trace events. Emit never
// blocks: when MaxBufferedEvents events are buffered or in flight, the new
// one is dropped and counted. It is safe for concurrent use.
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
	e := &Emitter{cfg: c}
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
// never blocks and never fails the caller.
func (e *Emitter) Emit(ev *Event) {
	cl := e.client()
	if cl == nil || e.buffered.Add(1) > int64(e.cfg.maxBuffered) {
		if cl != nil {
			e.buffered.Add(-1)
		}
		e.dropped.Add(1)
		return
	}
	e.emitted.Add(1)
	e.bmu.Lock()
	if e.closed {
		e.bmu.Unlock()
		e.buffered.Add(-1)
		e.dropped.Add(1)
		return
	}
	e.pending = append(ev.appendJSON(e.pending), '\n')
	e.npend++
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
		putBuf(r.Value)
		e.buffered.Add(-n)
		switch {
		case err == nil:
			e.written.Add(n)
		case errors.Is(err, kgo.ErrMaxBuffered):
			e.dropped.Add(n)
		default:
			e.failed.Add(n)
		}
	})
}

// Stats returns the counters so far.
func (e *Emitter) Stats() Stats {
	return Stats{Emitted: e.emitted.Load(), Written: e.written.Load(), Dropped: e.dropped.Load(), Failed: e.failed.Load()}
}

// Flush waits until every emitted event is acknowledged or failed, or ctx
// is done.
func (e *Emitter) Flush(ctx context.Context) error {
	if cl := e.client(); cl != nil {
		e.flushPending()
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
		cl.Close()
	})
}
