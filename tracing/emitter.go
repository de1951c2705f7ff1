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
// blocks: when MaxBufferedEvents events are in flight, the new one is
// dropped and counted. It is safe for concurrent use.
type Emitter struct {
	cfg   cfg
	mu    sync.Mutex // serialises start
	cl    atomic.Pointer[kgo.Client]
	err   error // under mu
	close sync.Once

	emitted, written, dropped, failed atomic.Int64
	promise                           func(*kgo.Record, error)
}

// NewEmitter returns an emitter writing to the trace topic. Without
// Brokers it starts once a hook hands it the traced client's seeds.
func NewEmitter(opts ...Opt) (*Emitter, error) {
	c, err := newCfg(opts)
	if err != nil {
		return nil, err
	}
	e := &Emitter{cfg: c}
	e.promise = func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
			e.written.Add(1)
		case errors.Is(err, kgo.ErrMaxBuffered):
			e.dropped.Add(1)
		default:
			e.failed.Add(1)
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

// Emit queues one event (already encoded) keyed by its message id, so all
// events of a message land in one trace-topic partition in order.
func (e *Emitter) Emit(msgID string, value []byte) {
	cl := e.client()
	if cl == nil {
		e.dropped.Add(1)
		return
	}
	e.emitted.Add(1)
	// TryProduce fails with ErrMaxBuffered instead of waiting for room,
	// which is what keeps the traced client's path non-blocking.
	cl.TryProduce(context.Background(), &kgo.Record{Key: []byte(msgID), Value: value}, e.promise)
}

// Stats returns the counters so far.
func (e *Emitter) Stats() Stats {
	return Stats{Emitted: e.emitted.Load(), Written: e.written.Load(), Dropped: e.dropped.Load(), Failed: e.failed.Load()}
}

// Flush waits until every emitted event is acknowledged or failed, or ctx
// is done.
func (e *Emitter) Flush(ctx context.Context) error {
	if cl := e.client(); cl != nil {
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
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cl.Flush(ctx); err != nil {
			e.cfg.log.Warn("trace events not flushed before close", "err", err)
		}
		cl.Close()
	})
}
