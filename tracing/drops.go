package tracing

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Reasons recorded in drop events (their "error" field).
const (
	reasonBufferFull = "trace buffer full"
	reasonNotStarted = "trace producer not started"
	reasonClosed     = "trace producer closed"
	// reasonWriteFailed prefixes the trace topic's error.
	reasonWriteFailed = "trace topic write failed: "
)

// maxDropIDs bounds the message ids one drop event lists; beyond it only
// the count grows, and queries say the ids were not recorded.
const maxDropIDs = 2000

// dropKey is what one drop event is about.
type dropKey struct {
	client, group, topic, reason string
}

type dropEntry struct {
	first, last int64 // unix ms of the first and last drop in the window
	count       int64
	ids         []string
}

// dropLog accumulates drops until the next drop event. Its lock is taken
// only when something is dropped.
type dropLog struct {
	mu     sync.Mutex
	m      map[dropKey]*dropEntry
	armed  bool
	closed bool
}

// drop counts an event that will not reach the trace topic and records it
// for the next drop event.
func (e *Emitter) drop(ev eventSource, reason string) {
	k, ts, ids := ev.dropRef()
	e.dropped.Add(int64(len(ids)))
	k.reason = reason
	e.recordDrop(k, ts, ts, int64(len(ids)), ids...)
}

// dropPacked records the events of a trace-topic record the producer could
// not write (its value is newline-delimited events). It runs only on
// failures, so decoding the events again is affordable.
func (e *Emitter) dropPacked(value []byte, reason string) {
	for raw := range bytes.SplitSeq(value, []byte{'\n'}) {
		if len(raw) == 0 {
			continue
		}
		var ev Event
		if json.Unmarshal(raw, &ev) != nil {
			continue
		}
		if ev.Type == TypeDrop {
			// A drop event that could not be written goes back into
			// the log with its counts and ids: it is never lost silently.
			e.recordDrop(dropKey{client: ev.ClientID, group: ev.Group, topic: ev.Topic, reason: ev.Error},
				ev.FirstTS, ev.TS, ev.Dropped, ev.DroppedIDs...)
			continue
		}
		k, ts, ids := ev.dropRef()
		k.reason = reason
		e.recordDrop(k, ts, ts, int64(len(ids)), ids...)
	}
}

func (e *Emitter) recordDrop(k dropKey, first, last, n int64, ids ...string) {
	if first <= 0 || last <= 0 {
		first, last = time.Now().UnixMilli(), time.Now().UnixMilli()
	}
	e.drops.mu.Lock()
	defer e.drops.mu.Unlock()
	d := e.drops.m[k]
	if d == nil {
		d = &dropEntry{first: first, last: last}
		e.drops.m[k] = d
	}
	d.first, d.last = min(d.first, first), max(d.last, last)
	d.count += n
	for _, id := range ids {
		if len(d.ids) < maxDropIDs && id != "" {
			d.ids = append(d.ids, id)
		}
	}
	if !e.drops.armed && !e.drops.closed {
		e.drops.armed = true
		time.AfterFunc(e.cfg.dropWindow, e.shipDrops)
	}
}

// shipDrops writes one drop event per key of the window. Drop events do not
// count against MaxBufferedEvents (they are few: one per key and window),
// and one that cannot be written goes back into the log for the next try.
func (e *Emitter) shipDrops() {
	e.drops.mu.Lock()
	e.drops.armed = false
	cl := e.client()
	if cl == nil || len(e.drops.m) == 0 {
		if len(e.drops.m) > 0 && !e.drops.closed {
			e.drops.armed = true
			time.AfterFunc(e.cfg.dropWindow, e.shipDrops)
		}
		e.drops.mu.Unlock()
		return
	}
	window := e.drops.m
	e.drops.m = map[dropKey]*dropEntry{}
	e.drops.mu.Unlock()
	for k, d := range window {
		if d.count == 0 {
			continue
		}
		id := newID()
		ev := Event{Type: TypeDrop, MsgID: "drop-" + hex.EncodeToString(id[:]), Topic: k.topic, ClientID: k.client,
			Group: k.group, Host: e.cfg.host, Error: k.reason, Partition: -1, Offset: -1, FirstTS: d.first, TS: d.last, Dropped: d.count, DroppedIDs: d.ids}
		if ev.Topic == "" {
			ev.Topic = "-"
		}
		rec := &kgo.Record{Value: ev.Marshal()}
		cl.TryProduce(context.Background(), rec, func(r *kgo.Record, err error) {
			if err == nil {
				e.dropEvents.Add(1)
				return
			}
			e.dropPacked(r.Value, "")
		})
	}
}
