package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"
)

// Keys in bleve's internal store. They are written in the same bleve batch
// as the documents, so after a crash the mapping and the sequence number
// always describe the documents that are on disk.
var (
	keyMeta  = []byte("kobs.meta")
	keySeqNo = []byte("kobs.seq_no")
)

// indexMeta is what Elasticsearch keeps in cluster state for an index.
type indexMeta struct {
	UUID         string        `json:"uuid"`
	CreationDate int64         `json:"creation_date"`
	Settings     indexSettings `json:"settings"`
	Mappings     rootMapping   `json:"mappings"`
}

// esIndex is one Elasticsearch index backed by one bleve scorch index.
//
// Locking: life guards the bleve handle's lifetime (readers and writers hold
// it shared for the duration of an operation; delete/close take it
// exclusively). writeMu serialises writers, because "create" conflicts,
// _version and _seq_no need a consistent read-modify-write over a whole bulk.
// Order: life before writeMu.
type esIndex struct {
	name string
	path string

	life   sync.RWMutex
	closed bool
	bi     bleve.Index

	writeMu sync.Mutex
	seqNo   int64 // last assigned sequence number; -1 when none; under writeMu
	meta    indexMeta

	mapping atomic.Pointer[mappingState] // immutable snapshots, replaced after successful writes
}

// scorchConfig keeps a second process (or a stale lock) from blocking Open
// forever on root.bolt; the store's own Dir lock normally catches it first.
func scorchConfig() map[string]any {
	return map[string]any{"bolt_timeout": "5s"}
}

func newBleveMapping() *mapping.IndexMappingImpl {
	// Documents are built by hand (document.go) and added with
	// IndexAdvanced, so bleve's mapping only serves as a default for query
	// types that consult it; keep it from inventing fields of its own.
	m := bleve.NewIndexMapping()
	m.DefaultMapping.Dynamic = false
	m.IndexDynamic = false
	m.StoreDynamic = false
	m.DocValuesDynamic = false
	return m
}

func createIndex(path, name string, root rootMapping, settings indexSettings, now time.Time) (*esIndex, error) {
	ms, err := newMappingState(root)
	if err != nil {
		return nil, err
	}
	bi, err := bleve.NewUsing(path, newBleveMapping(), scorch.Name, scorch.Name, scorchConfig())
	if err != nil {
		return nil, fmt.Errorf("create bleve index %s: %w", path, err)
	}
	bi.SetName(name)
	idx := &esIndex{name: name, path: path, bi: bi, seqNo: -1,
		meta: indexMeta{UUID: randomID(16), CreationDate: now.UnixMilli(), Settings: settings, Mappings: root}}
	idx.mapping.Store(ms)
	b, _ := json.Marshal(idx.meta)
	if err := bi.SetInternal(keyMeta, b); err != nil {
		_ = bi.Close()
		_ = os.RemoveAll(path)
		return nil, fmt.Errorf("write metadata of index %s: %w", name, err)
	}
	return idx, nil
}

// errNoMeta marks a directory whose creation never completed.
var errNoMeta = errors.New("index has no metadata")

func openIndex(path, name string) (*esIndex, error) {
	bi, err := bleve.OpenUsing(path, scorchConfig())
	if err != nil {
		return nil, fmt.Errorf("open bleve index %s: %w", path, err)
	}
	bi.SetName(name)
	raw, err := bi.GetInternal(keyMeta)
	if err != nil || raw == nil {
		_ = bi.Close()
		if err == nil {
			err = errNoMeta
		}
		return nil, fmt.Errorf("read metadata of index %s: %w", name, err)
	}
	idx := &esIndex{name: name, path: path, bi: bi, seqNo: -1}
	if err := json.Unmarshal(raw, &idx.meta); err != nil {
		_ = bi.Close()
		return nil, fmt.Errorf("decode metadata of index %s: %w", name, err)
	}
	ms, err := newMappingState(idx.meta.Mappings)
	if err != nil {
		_ = bi.Close()
		return nil, fmt.Errorf("mapping of index %s: %w", name, err)
	}
	idx.mapping.Store(ms)
	if raw, err := bi.GetInternal(keySeqNo); err == nil && raw != nil {
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			idx.seqNo = n
		}
	}
	return idx, nil
}

// acquire pins the bleve handle for one operation; false once the index is
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

// shutdown closes the bleve index after in-flight operations finish.
func (i *esIndex) shutdown() error {
	i.life.Lock()
	defer i.life.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	return i.bi.Close()
}

func (i *esIndex) docCount() uint64 {
	n, _ := i.bi.DocCount()
	return n
}

// storedDoc is the stored state of one document.
type storedDoc struct {
	exists  bool
	source  []byte
	version int64
	seqNo   int64
}

// load reads a document's stored fields; a missing document is not an error.
func (i *esIndex) load(id string) (storedDoc, error) {
	d, err := i.bi.Document(id)
	if err != nil {
		return storedDoc{}, err
	}
	if d == nil {
		return storedDoc{}, nil
	}
	sd := storedDoc{exists: true}
	d.VisitFields(func(f index.Field) {
		switch f.Name() {
		case fieldSource:
			sd.source = append([]byte(nil), f.Value()...)
		case fieldVersion, fieldSeqNo:
			nf, ok := f.(index.NumericField)
			if !ok {
				return
			}
			n, err := nf.Number()
			if err != nil {
				return
			}
			if f.Name() == fieldVersion {
				sd.version = int64(n)
			} else {
				sd.seqNo = int64(n)
			}
		}
	})
	return sd, nil
}

// persistMeta returns the metadata bytes with the given mapping.
func (i *esIndex) metaWith(root rootMapping) []byte {
	m := i.meta
	m.Mappings = root
	b, _ := json.Marshal(m)
	return b
}

// putMapping merges new properties (PUT /{index}/_mapping).
func (i *esIndex) putMapping(root rootMapping) error {
	i.writeMu.Lock()
	defer i.writeMu.Unlock()
	ms := i.mapping.Load().clone()
	if err := ms.merge(root); err != nil {
		return err
	}
	if err := i.bi.SetInternal(keyMeta, i.metaWith(ms.root)); err != nil {
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
