package main

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
)

// pebbleEngine keeps each document under its id and five secondary-index
// keys per document (message id, trace id, topic+key+time,
// topic+partition+offset, topic+time) in one pebble LSM; one _bulk is one
// batch committed with fsync. Documents are keyed by their _id, and the
// shipper's ids derive from the content, so a re-shipped event rewrites
// the same keys (a general Elasticsearch "index" with changed content
// would also have to delete the old document's index keys: a read per
// write, not measured here).
type pebbleEngine struct {
	db  *pebble.DB
	seq atomic.Int64
}

func openPebble(dir string) (engine, error) {
	db, err := pebble.Open(dir, &pebble.Options{MemTableSize: 64 << 20})
	if err != nil {
		return nil, err
	}
	return &pebbleEngine{db: db}, nil
}

func be64(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63)) }

func (e *pebbleEngine) write(docs []doc) (int64, error) {
	b := e.db.NewBatch()
	defer b.Close()
	var k []byte
	for _, d := range docs {
		k = append(append(k[:0], 'd'), d.id...)
		_ = b.Set(k, d.src, nil)
		k = append(append(append(append(k[:0], 'm'), d.MsgID...), 0), d.id...)
		_ = b.Set(k, nil, nil)
		if d.TraceID != "" {
			k = append(append(append(append(k[:0], 'r'), d.TraceID...), 0), d.id...)
			_ = b.Set(k, nil, nil)
		}
		if d.Key != "" {
			k = append(append(append(append(append(k[:0], 'k'), d.Topic...), 0), d.Key...), 0)
			k = append(be64(k, d.TS), d.id...)
			_ = b.Set(k, nil, nil)
		}
		k = append(append(append(k[:0], 'o'), d.Topic...), 0)
		k = binary.BigEndian.AppendUint32(k, uint32(d.Partition))
		k = append(be64(k, d.Offset), d.id...)
		_ = b.Set(k, nil, nil)
		k = append(append(append(k[:0], 't'), d.Topic...), 0)
		k = append(be64(k, d.TS), d.id...)
		_ = b.Set(k, nil, nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, err
	}
	return e.seq.Add(int64(len(docs))) - int64(len(docs)), nil
}

// scan returns the ids after prefix+sep of the index keys in [lo, hi),
// newest (highest key) first when reverse, at most limit.
func (e *pebbleEngine) scan(lo, hi []byte, idAt int, reverse bool, limit int) ([][]byte, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var docs [][]byte
	valid := it.First()
	if reverse {
		valid = it.Last()
	}
	for ; valid && len(docs) < limit; valid = nextOrPrev(it, reverse) {
		id := it.Key()[idAt:]
		v, closer, err := e.db.Get(append([]byte{'d'}, id...))
		if err != nil {
			return nil, fmt.Errorf("index key without document %q: %w", id, err)
		}
		docs = append(docs, append([]byte(nil), v...))
		closer.Close()
	}
	return docs, nil
}

func nextOrPrev(it *pebble.Iterator, reverse bool) bool {
	if reverse {
		return it.Prev()
	}
	return it.Next()
}

func upper(p []byte) []byte {
	u := append([]byte(nil), p...)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] < 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil
}

func (e *pebbleEngine) run(q benchQuery) ([][]byte, error) {
	switch q.kind {
	case "msg":
		p := append(append([]byte{'m'}, q.msgID...), 0)
		return e.scan(p, upper(p), len(p), false, 100)
	case "key":
		p := append(append(append(append([]byte{'k'}, q.topic...), 0), q.key...), 0)
		return e.scan(p, upper(p), len(p)+8, true, 10)
	case "offset":
		p := append(append([]byte{'o'}, q.topic...), 0)
		p = binary.BigEndian.AppendUint32(p, uint32(q.partition))
		p = be64(p, q.offset)
		return e.scan(p, upper(p), len(p), false, 100)
	case "page":
		p := append(append([]byte{'t'}, q.topic...), 0)
		return e.scan(be64(append([]byte(nil), p...), q.from), be64(append([]byte(nil), p...), q.to+1), len(p)+8, true, 50)
	}
	return nil, fmt.Errorf("unknown query %q", q.kind)
}

func (e *pebbleEngine) handler() http.Handler                       { return bulkHandler(e.write, e.run) }
func (e *pebbleEngine) query(q benchQuery) (string, string, []byte) { return customQuery(q) }

// settle flushes the memtable and compacts everything: the compaction
// debt an ingest leaves is work the engine must do at some point.
func (e *pebbleEngine) settle() (time.Duration, error) {
	start := time.Now()
	if err := e.db.Flush(); err != nil {
		return 0, err
	}
	if err := e.db.Compact([]byte{0}, []byte{0xff}, true); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (e *pebbleEngine) close() error { return e.db.Close() }
