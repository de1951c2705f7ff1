package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// seglogEngine is the ingest-shaped design: the raw documents appended to
// a segment file with one fsync per _bulk, and the open segment's indexes
// (id, message id, trace id, topic+key, topic+partition+offset, topic+time)
// in memory. What it leaves out, and a product would need: sealing a
// segment (writing its indexes once as sorted immutable files with bloom
// filters, estimated at ~4 core-us per event), rebuilding the open
// segment's indexes from the log at startup, retention by deleting whole
// segments, and an Elasticsearch query layer. Ids derive from the content
// (the shipper's DocID), so a re-shipped id is skipped.
type seglogEngine struct {
	wmu  sync.Mutex // appends and fsyncs, one _bulk at a time
	f    *os.File
	size int64

	mu    sync.RWMutex // the indexes below
	refs  []docRef
	ids   map[string]uint32
	msg   map[string][]uint32
	trace map[string][]uint32
	key   map[string][]uint32
	offs  map[offKey][]uint32
	times map[string][]tsRef
}

type docRef struct {
	off int64
	n   uint32
}

type offKey struct {
	topic     string
	partition int32
	offset    int64
}

type tsRef struct {
	ts  int64
	doc uint32
}

func openSeglog(dir string) (engine, error) {
	f, err := os.OpenFile(filepath.Join(dir, "segment-000001.log"), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &seglogEngine{f: f, ids: map[string]uint32{}, msg: map[string][]uint32{}, trace: map[string][]uint32{},
		key: map[string][]uint32{}, offs: map[offKey][]uint32{}, times: map[string][]tsRef{}}, nil
}

func (e *seglogEngine) write(docs []doc) (int64, error) {
	var buf bytes.Buffer
	for _, d := range docs {
		buf.Write(d.src)
		buf.WriteByte('\n')
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	start := e.size
	if _, err := e.f.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	if err := e.f.Sync(); err != nil {
		return 0, err
	}
	e.size += int64(buf.Len())
	e.mu.Lock()
	defer e.mu.Unlock()
	seq := int64(len(e.refs))
	off := start
	for _, d := range docs {
		ref := docRef{off: off, n: uint32(len(d.src))}
		off += int64(len(d.src)) + 1
		if _, dup := e.ids[d.id]; dup {
			continue
		}
		n := uint32(len(e.refs))
		e.refs = append(e.refs, ref)
		e.ids[d.id] = n
		e.msg[d.MsgID] = append(e.msg[d.MsgID], n)
		if d.TraceID != "" {
			e.trace[d.TraceID] = append(e.trace[d.TraceID], n)
		}
		if d.Key != "" {
			k := d.Topic + "\x00" + d.Key
			e.key[k] = append(e.key[k], n)
		}
		ok := offKey{d.Topic, d.Partition, d.Offset}
		e.offs[ok] = append(e.offs[ok], n)
		// Events arrive nearly in time order: insert from the tail.
		ts := e.times[d.Topic]
		i := len(ts)
		for i > 0 && ts[i-1].ts > d.TS {
			i--
		}
		e.times[d.Topic] = slices.Insert(ts, i, tsRef{d.TS, n})
	}
	return seq, nil
}

func (e *seglogEngine) read(nums []uint32) ([][]byte, error) {
	e.mu.RLock()
	refs := make([]docRef, len(nums))
	for i, n := range nums {
		refs[i] = e.refs[n]
	}
	e.mu.RUnlock()
	out := make([][]byte, len(refs))
	for i, r := range refs {
		b := make([]byte, r.n)
		if _, err := e.f.ReadAt(b, r.off); err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (e *seglogEngine) run(q benchQuery) ([][]byte, error) {
	e.mu.RLock()
	var nums []uint32
	switch q.kind {
	case "msg":
		nums = slices.Clone(e.msg[q.msgID])
	case "key":
		l := e.key[q.topic+"\x00"+q.key]
		for i := len(l) - 1; i >= 0 && len(nums) < 10; i-- {
			nums = append(nums, l[i])
		}
	case "offset":
		nums = slices.Clone(e.offs[offKey{q.topic, q.partition, q.offset}])
	case "page":
		ts := e.times[q.topic]
		i, _ := slices.BinarySearchFunc(ts, q.to+1, func(r tsRef, t int64) int { return int(r.ts - t) })
		for i--; i >= 0 && ts[i].ts >= q.from && len(nums) < 50; i-- {
			nums = append(nums, ts[i].doc)
		}
	default:
		e.mu.RUnlock()
		return nil, fmt.Errorf("unknown query %q", q.kind)
	}
	e.mu.RUnlock()
	return e.read(nums)
}

func (e *seglogEngine) handler() http.Handler                       { return bulkHandler(e.write, e.run) }
func (e *seglogEngine) query(q benchQuery) (string, string, []byte) { return customQuery(q) }

// settle has nothing to do: every _bulk was synced, and nothing compacts.
func (e *seglogEngine) settle() (time.Duration, error) { return 0, nil }

func (e *seglogEngine) close() error { return e.f.Close() }
