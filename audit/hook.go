package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/tracing"
)

// Hook is an audit interceptor: add it to a franz-go client with
// kgo.WithHooks (beside a tracing hook if you like; they are independent).
// A producer hook counts acknowledged records, a consumer hook counts polled
// records, per (topic, bucket of the record timestamp). Every flush interval
// and on Close it writes what it counted since the last flush to the audit
// topic as one Flush record (split when large) keyed by its instance id.
//
// The audited client is never blocked or failed: counting is a map update
// under a mutex, and the flush records go through the hook's own client with
// TryProduce. A flush that was not acknowledged is re-sent with the same
// sequence number (the reconciler applies it once); one that could not be
// kept (MaxPendingFlushes) is dropped, counted in Stats, and shows to the
// reconciler as a sequence gap, so the buckets around it are uncertain.
type Hook struct {
	cfg      cfg
	tier     Tier
	instance string
	host     string
	pid      int

	client atomic.Pointer[string] // client id or group, learnt in OnNewClient
	fcl    atomic.Pointer[kgo.Client]
	start  sync.Once
	now    atomic.Int64 // coarse clock (ms) for the out-of-window test

	mu      sync.Mutex // guards counts and last; held for a map update per record
	counts  map[countKey]*Count
	last    *Count // the count the previous in-window record went to
	lastEnd int64  // end of last's bucket

	pmu     sync.Mutex // guards pending and seq
	pending []*pendingFlush
	seq     uint64

	stop    chan struct{}
	done    chan struct{}
	closing sync.Once

	counted, outOfWindow, flushes, acked, resent, dropped, unflushed atomic.Int64
}

type countKey struct {
	topic  string
	bucket int64
}

type pendingFlush struct {
	seq      uint64
	value    []byte
	inflight bool
	sent     bool
}

// Stats counts what a hook did.
type Stats struct {
	Counted     int64 // records counted and handed to a flush
	OutOfWindow int64 // of which had timestamps too far from the clock (counted in the OutOfWindow bucket)
	Flushes     int64 // flush records built
	Acked       int64 // flush records acknowledged by the audit topic
	Resent      int64 // flush records sent again after a failure
	Dropped     int64 // flush records given up because MaxPendingFlushes were waiting (a sequence gap for the reconciler)
	Unflushed   int64 // flush records still unacknowledged when Close gave up
}

// NewProducerHook returns an audit hook for a producing client; Close it
// after the audited client so the last acknowledgements are flushed.
func NewProducerHook(opts ...Opt) (*Hook, error) { return newHook(TierProducer, opts) }

// NewConsumerHook returns an audit hook for a consuming client; Close it
// after the audited client.
func NewConsumerHook(opts ...Opt) (*Hook, error) { return newHook(TierConsumer, opts) }

func newHook(tier Tier, opts []Opt) (*Hook, error) {
	c, err := newCfg(opts)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("audit: instance id: %w", err)
	}
	host, _ := os.Hostname()
	h := &Hook{
		cfg: c, tier: tier, instance: hex.EncodeToString(id[:]), host: host, pid: os.Getpid(),
		counts: make(map[countKey]*Count), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if c.client != "" {
		h.client.Store(&c.client)
	}
	h.now.Store(time.Now().UnixMilli())
	if len(c.brokers) > 0 {
		if err := h.startFlusher(c.brokers); err != nil {
			return nil, err
		}
	}
	go h.loop()
	return h, nil
}

var (
	_ kgo.HookNewClient               = (*Hook)(nil)
	_ kgo.HookProduceRecordUnbuffered = (*Hook)(nil)
	_ kgo.HookFetchRecordUnbuffered   = (*Hook)(nil)
)

// Instance is the hook's id in the audit records.
func (h *Hook) Instance() string { return h.instance }

// OnNewClient learns the audited client's id (producer) or group (consumer;
// "direct:<client id>" without one) and, unless Brokers was given, starts
// the flush producer on the audited client's seed brokers.
func (h *Hook) OnNewClient(cl *kgo.Client) {
	info := tracing.ClientOf(cl)
	if h.client.Load() == nil {
		name := info.ID
		if h.tier == TierConsumer {
			name = info.Group
		}
		h.client.Store(&name)
	}
	if len(info.Seeds) > 0 {
		if err := h.startFlusher(info.Seeds); err != nil {
			h.cfg.log.Error("audit flush producer not started; flushes wait and may be dropped", "err", err)
		}
	}
}

func (h *Hook) startFlusher(seeds []string) (err error) {
	h.start.Do(func() {
		opts := []kgo.Opt{
			kgo.SeedBrokers(seeds...),
			kgo.DefaultProduceTopic(h.cfg.topic),
			kgo.ClientID("kobs-audit-flusher"),
			kgo.AllowAutoTopicCreation(),
			kgo.RecordDeliveryTimeout(30 * time.Second),
		}
		var cl *kgo.Client
		if cl, err = kgo.NewClient(append(opts, h.cfg.flusherOpts...)...); err == nil {
			h.fcl.Store(cl)
		}
	})
	return err
}

// OnProduceRecordUnbuffered counts an acknowledged record.
func (h *Hook) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if h.tier == TierProducer && err == nil && r.Topic != h.cfg.topic {
		h.count(r)
	}
}

// OnFetchRecordUnbuffered counts a record the user polled; records the client
// discarded (polled=false) were never seen by the user.
func (h *Hook) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if h.tier == TierConsumer && polled && r.Topic != h.cfg.topic {
		h.count(r)
	}
}

func (h *Hook) count(r *kgo.Record) {
	ts := r.Timestamp.UnixMilli()
	size := int64(len(r.Key) + len(r.Value))
	h.mu.Lock()
	// Records come in runs of one topic and bucket: the last count is
	// usually the one, which spares the window test, the division and
	// hashing the topic per record. flush clears it, so the window it was
	// tested against is at most one flush interval old.
	if c := h.last; c != nil && ts >= c.Bucket && ts < h.lastEnd && c.Topic == r.Topic {
		c.Records++
		c.Bytes += size
		h.mu.Unlock()
		return
	}
	h.countSlow(r.Topic, ts, size)
	h.mu.Unlock()
}

// countSlow finds (or makes) the count of ts's bucket; mu is held.
func (h *Hook) countSlow(topic string, ts, size int64) {
	now := h.now.Load()
	b, width := OutOfWindow, h.cfg.bucket.Milliseconds()
	if ts > now+h.cfg.maxFuture.Milliseconds() || ts < now-h.cfg.maxPast.Milliseconds() {
		h.outOfWindow.Add(1)
	} else {
		b = bucketOf(ts, width)
	}
	k := countKey{topic, b}
	c := h.counts[k]
	if c == nil {
		c = &Count{Topic: topic, Bucket: b}
		h.counts[k] = c
	}
	c.Records++
	c.Bytes += size
	if b != OutOfWindow {
		h.last, h.lastEnd = c, b+width
	}
}

// loop flushes every flush interval and keeps the coarse clock.
func (h *Hook) loop() {
	defer close(h.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	next := time.Now().Add(h.cfg.flush)
	for {
		select {
		case <-h.stop:
			return
		case now := <-tick.C:
			h.now.Store(now.UnixMilli())
			if !now.Before(next) {
				next = now.Add(h.cfg.flush)
				h.flush(false)
			}
		}
	}
}

// maxCountsPerFlush keeps one flush record well under a broker's
// message.max.bytes (about 100 bytes per count).
const maxCountsPerFlush = 4000

// flush turns the counts since the last flush into flush records (an empty
// one too: it tells the reconciler the hook is alive) and sends whatever is
// not yet acknowledged.
func (h *Hook) flush(final bool) {
	h.mu.Lock()
	counts := h.counts
	h.counts = make(map[countKey]*Count, len(counts))
	h.last = nil
	h.mu.Unlock()
	all := make([]Count, 0, len(counts))
	for _, c := range counts {
		all = append(all, *c)
		h.counted.Add(c.Records)
	}
	name := ""
	if p := h.client.Load(); p != nil {
		name = *p
	}
	h.pmu.Lock()
	for first := true; first || len(all) > 0; first = false {
		n := min(len(all), maxCountsPerFlush)
		h.seq++
		f := Flush{
			Kind: flushKind, Instance: h.instance, Seq: h.seq, Tier: h.tier, Client: name,
			Host: h.host, PID: h.pid, BucketMs: h.cfg.bucket.Milliseconds(), FlushMs: h.cfg.flush.Milliseconds(),
			TS: time.Now().UnixMilli(), Final: final && n == len(all), Counts: all[:n],
		}
		all = all[n:]
		v, err := json.Marshal(&f)
		if err != nil { // cannot happen for these types; never lose it silently
			h.cfg.log.Error("audit flush not encoded", "err", err)
			h.dropped.Add(1)
			continue
		}
		h.flushes.Add(1)
		h.pending = append(h.pending, &pendingFlush{seq: f.Seq, value: v})
	}
	if over := len(h.pending) - h.cfg.maxPending; over > 0 {
		// The oldest unacknowledged flushes go; the reconciler sees the
		// gap in the sequence and marks those buckets uncertain.
		kept := h.pending[:0]
		for _, p := range h.pending {
			if over > 0 && !p.inflight {
				over--
				h.dropped.Add(1)
				continue
			}
			kept = append(kept, p)
		}
		h.pending = kept
	}
	ps := h.takeSendableLocked()
	h.pmu.Unlock()
	h.send(ps)
}

// takeSendableLocked marks every pending flush that is not in flight as in
// flight and returns them; pmu is held. The caller sends them after
// unlocking: a promise may run before TryProduce returns.
func (h *Hook) takeSendableLocked() []*pendingFlush {
	if h.fcl.Load() == nil {
		return nil
	}
	var out []*pendingFlush
	for _, p := range h.pending {
		if p.inflight {
			continue
		}
		p.inflight = true
		if p.sent {
			h.resent.Add(1)
		}
		p.sent = true
		out = append(out, p)
	}
	return out
}

func (h *Hook) send(ps []*pendingFlush) {
	cl := h.fcl.Load()
	for _, p := range ps {
		cl.TryProduce(context.Background(), &kgo.Record{Key: []byte(h.instance), Value: p.value}, func(_ *kgo.Record, err error) {
			h.pmu.Lock()
			defer h.pmu.Unlock()
			p.inflight = false
			if err != nil {
				h.cfg.log.Warn("audit flush not acknowledged; re-sent at the next flush", "seq", p.seq, "err", err)
				return
			}
			h.acked.Add(1)
			for i, q := range h.pending {
				if q == p {
					h.pending = append(h.pending[:i], h.pending[i+1:]...)
					break
				}
			}
		})
	}
}

// Stats returns the hook's counters.
func (h *Hook) Stats() Stats {
	return Stats{
		Counted: h.counted.Load(), OutOfWindow: h.outOfWindow.Load(), Flushes: h.flushes.Load(),
		Acked: h.acked.Load(), Resent: h.resent.Load(), Dropped: h.dropped.Load(), Unflushed: h.unflushed.Load(),
	}
}

// Close writes the final flush and waits up to the close timeout (default
// 10s) for every flush to be acknowledged, re-sending failed ones. Close the
// audited client first. Flushes still unacknowledged then are counted in
// Stats.Unflushed and logged.
func (h *Hook) Close() {
	h.closing.Do(func() {
		close(h.stop)
		<-h.done
		h.flush(true)
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.closeTimeout)
		defer cancel()
		for {
			h.pmu.Lock()
			n := len(h.pending)
			ps := h.takeSendableLocked()
			h.pmu.Unlock()
			h.send(ps)
			if n == 0 {
				break
			}
			cl := h.fcl.Load()
			var err error
			if cl != nil {
				err = cl.Flush(ctx)
			}
			if cl == nil || err != nil || ctx.Err() != nil {
				h.pmu.Lock()
				h.unflushed.Add(int64(len(h.pending)))
				h.pmu.Unlock()
				h.cfg.log.Error("audit flushes not acknowledged before close", "unflushed", h.unflushed.Load(), "err", errors.Join(err, ctx.Err()))
				break
			}
			h.pmu.Lock()
			failed := len(h.pending)
			h.pmu.Unlock()
			if failed > 0 { // they failed at once: wait a little before re-sending
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		if cl := h.fcl.Load(); cl != nil {
			cl.Close()
		}
	})
}
