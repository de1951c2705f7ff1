package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// indexMeta is what Elasticsearch keeps in cluster state for an index. It
// is kept in Dir/indices/<name>/meta.json, replaced atomically, and written
// before any document that needs its mapping is appended to the log.
type indexMeta struct {
	UUID         string        `json:"uuid"`
	CreationDate int64         `json:"creation_date"`
	Settings     indexSettings `json:"settings"`
	Mappings     rootMapping   `json:"mappings"`
}

const metaFile = "meta.json"

// esIndex is one Elasticsearch index: a segment log of its documents
// (seglog.go) and the in-memory index rebuilt from it (memindex.go).
//
// Locking: life guards the index's lifetime (readers and writers hold it
// shared for the duration of an operation; delete/close take it
// exclusively). writeMu serialises writers, because "create" conflicts,
// _version and _seq_no need a consistent read-modify-write over a whole
// bulk; the disk write and fsync run under writeMu only, and the in-memory
// index is updated under mem.mu afterwards, so searches never wait for the
// disk. Order: life, writeMu, mem.mu.
type esIndex struct {
	name string
	path string

	life   sync.RWMutex
	closed bool
	log    *segLog
	mem    *memIndex

	writeMu sync.Mutex
	seqNo   int64 // last assigned sequence number; -1 when none; under writeMu
	meta    indexMeta
	buf     []byte // record buffer, reused; under writeMu

	mapping atomic.Pointer[mappingState] // immutable snapshots, replaced after successful writes
}

// segmentBytes is the size at which a segment is sealed; a variable so
// tests can roll small segments.
var segmentBytes int64 = maxSegmentBytesDefault

// replayBatch is how many records the rebuild at start decodes at a time
// (one batch is decoded while the one before is applied); a variable so
// tests can cross many batches.
var replayBatch = 8192

func writeMeta(dir string, m indexMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, metaFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, metaFile)); err != nil {
		return err
	}
	return syncDir(dir)
}

func createIndex(path, name string, root rootMapping, settings indexSettings, now time.Time) (*esIndex, error) {
	ms, err := newMappingState(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("create index directory %s: %w", path, err)
	}
	idx := &esIndex{name: name, path: path, seqNo: -1, mem: newMemIndex(),
		meta: indexMeta{UUID: randomID(16), CreationDate: now.UnixMilli(), Settings: settings, Mappings: root}}
	idx.mapping.Store(ms)
	if err := writeMeta(path, idx.meta); err != nil {
		_ = os.RemoveAll(path)
		return nil, fmt.Errorf("write metadata of index %s: %w", name, err)
	}
	none := func() error { return nil }
	l, _, err := openSegLog(path, segmentBytes, func(*record) error { return nil }, none)
	if err != nil {
		_ = os.RemoveAll(path)
		return nil, fmt.Errorf("create log of index %s: %w", name, err)
	}
	idx.log = l
	return idx, nil
}

// errNoMeta marks a directory whose creation never completed.
var errNoMeta = errors.New("index has no metadata")

// openIndex reopens an index, rebuilding its in-memory index from the log.
// torn lists the damaged tails it cut off (none of it was acknowledged).
func openIndex(path, name string) (idx *esIndex, torn []tornTail, err error) {
	raw, err := os.ReadFile(filepath.Join(path, metaFile))
	if errors.Is(err, os.ErrNotExist) {
		if _, berr := os.Stat(filepath.Join(path, "index_meta.json")); berr == nil {
			// Not an interrupted creation: an older kobs's bleve index.
			return nil, nil, fmt.Errorf("read metadata of index %s: %w", name, err)
		}
		return nil, nil, fmt.Errorf("read metadata of index %s: %w", name, errNoMeta)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read metadata of index %s: %w", name, err)
	}
	idx = &esIndex{name: name, path: path, seqNo: -1, mem: newMemIndex()}
	if err := json.Unmarshal(raw, &idx.meta); err != nil {
		return nil, nil, fmt.Errorf("decode metadata of index %s: %w", name, err)
	}
	ms, err := newMappingState(idx.meta.Mappings)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping of index %s: %w", name, err)
	}
	b := &docBuilder{ms: ms}
	// Records are decoded and built in parallel batches (as a _bulk is,
	// see prepare) while the batch before is applied in log order.
	type decoded struct {
		recs []*record
		pre  []*prepared
		done chan struct{}
	}
	decode := func(recs []*record) *decoded {
		d := &decoded{recs: recs, pre: make([]*prepared, len(recs)), done: make(chan struct{})}
		ms := b.ms // the applier may replace b.ms meanwhile
		go func() {
			defer close(d.done)
			parallel(len(recs), func(lo, hi int) {
				wb := &docBuilder{ms: ms}
				for k := lo; k < hi; k++ {
					r := recs[k]
					if r.op != opIndex {
						continue
					}
					p := &prepared{ms: ms}
					d.pre[k] = p
					if p.obj, p.err = decodeSource(r.source); p.err != nil {
						continue
					}
					doc, e := wb.build(r.id, p.obj)
					if wb.changed {
						wb = &docBuilder{ms: ms}
						continue
					}
					p.doc, p.e = doc, e
				}
			})
		}()
		return d
	}
	apply := func(d *decoded) error {
		<-d.done
		for k, r := range d.recs {
			idx.seqNo = max(idx.seqNo, r.seqNo)
			if r.op == opDelete {
				idx.mem.remove(r.id)
				continue
			}
			p := d.pre[k]
			if p.err != nil {
				return fmt.Errorf("document %s at %d:%d: %w", r.id, r.loc>>32, uint32(r.loc), p.err)
			}
			doc, e := p.doc, p.e
			if p.ms != b.ms || (doc == nil && e == nil) {
				doc, e = b.build(r.id, p.obj)
			}
			if e != nil {
				return fmt.Errorf("document %s: %s", r.id, e.Reason)
			}
			idx.mem.add(docMeta{id: r.id, loc: r.loc, srcLen: uint32(len(r.source)), seqNo: r.seqNo, version: r.version}, doc, -1)
		}
		return nil
	}
	var batch []*record
	var inFlight *decoded
	// next starts decoding the collected batch and applies the one before.
	next := func() error {
		var d *decoded
		if len(batch) > 0 {
			d = decode(batch)
			batch = nil
		}
		var err error
		if inFlight != nil {
			err = apply(inFlight)
		}
		inFlight = d
		if err != nil && d != nil {
			<-d.done // no goroutine outlives the open
		}
		return err
	}
	flush := func() error { // end of a segment: apply everything
		if err := next(); err != nil {
			return err
		}
		return next()
	}
	replay := func(r *record) error {
		batch = append(batch, r)
		if len(batch) == replayBatch {
			return next()
		}
		return nil
	}
	l, torn, err := openSegLog(path, segmentBytes, replay, flush)
	if err != nil {
		return nil, nil, fmt.Errorf("open log of index %s: %w", name, err)
	}
	idx.log = l
	if b.changed {
		// A document mapped a field the stored mapping lacked (the mapping
		// write is normally first); keep the mapping the documents need.
		idx.meta.Mappings = b.ms.root
		if err := writeMeta(path, idx.meta); err != nil {
			_ = l.close()
			return nil, nil, fmt.Errorf("write metadata of index %s: %w", name, err)
		}
	}
	idx.mapping.Store(b.ms)
	return idx, torn, nil
}

// acquire pins the index for one operation; false once the index is
// deleted or the store closed (callers then report index_not_found).
func (i *esIndex) acquire() bool {
	i.life.RLock()
	if i.closed {
		i.life.RUnlock()
		return false
	}
	return true
}

func (i *esIndex) release() { i.life.RUnlock() }

// shutdown closes the log after in-flight operations finish.
func (i *esIndex) shutdown() error {
	i.life.Lock()
	defer i.life.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	return i.log.close()
}

func (i *esIndex) docCount() uint64 {
	i.mem.mu.RLock()
	defer i.mem.mu.RUnlock()
	return uint64(i.mem.nLive)
}

// storedDoc is the stored state of one document.
type storedDoc struct {
	exists  bool
	source  []byte
	version int64
	seqNo   int64
}

// load reads a live document; a missing document is not an error.
func (i *esIndex) load(id string) (storedDoc, error) {
	i.mem.mu.RLock()
	doc, ok := i.mem.ids.get(id)
	var m docMeta
	if ok {
		m = *i.mem.doc(doc)
	}
	i.mem.mu.RUnlock()
	if !ok {
		return storedDoc{}, nil
	}
	src, err := i.log.read(m.loc, m.srcLen)
	if err != nil {
		return storedDoc{}, err
	}
	return storedDoc{exists: true, source: src, version: m.version, seqNo: m.seqNo}, nil
}

// source reads a document's source by number. The caller holds mem.mu.
func (i *esIndex) source(doc uint32) ([]byte, error) {
	m := i.mem.doc(doc)
	return i.log.read(m.loc, m.srcLen)
}

// putMapping merges new properties (PUT /{index}/_mapping).
func (i *esIndex) putMapping(root rootMapping) error {
	i.writeMu.Lock()
	defer i.writeMu.Unlock()
	ms := i.mapping.Load().clone()
	if err := ms.merge(root); err != nil {
		return err
	}
	m := i.meta
	m.Mappings = ms.root
	if err := writeMeta(i.path, m); err != nil {
		return writeFailure(i.name, err)
	}
	i.meta.Mappings = ms.root
	i.mapping.Store(ms)
	return nil
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// numberValue renders a stored float64 as Elasticsearch would render the
// field's type: integers without a fraction.
func numberValue(f float64, k kind) any {
	if (k == kindLong || k == kindDate) && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return int64(f)
	}
	return f
}
