package controller

import (
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// tailEntries is how many applied entries a node keeps in memory to serve
// broker-only nodes that fetch the log; one further behind gets the whole
// state. A variable for tests.
var tailEntries = 4096

// fsm applies the metadata log. On voters raft drives it (raft.FSM); on
// broker-only nodes the fetcher feeds it entries fetched from a voter. In
// both cases each applied entry becomes the next published image.
type fsm struct {
	pub    *metadata.Publisher
	logger *slog.Logger
	st     atomic.Pointer[state]
	// published is the offset of the last image whose listeners have all
	// run: a caller waiting for its write (awaitApplied) must see what the
	// listeners made of it (a broker's replicas opened), not only st.
	published atomic.Int64
	errors    atomic.Int64 // records that did not apply (MetadataErrorCount)
	// loadErrors counts snapshots that could not be loaded.
	loadErrors atomic.Int64
	// lastTime is the append time (Unix ms) of the last applied entry.
	lastTime atomic.Int64
	// onApply is told the record count of every applied entry.
	onApply func(records int)

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every apply
	tail     []fetchedEntry
	tailFrom uint64 // every entry with index > tailFrom is in tail
}

type fetchedEntry struct {
	Index uint64 `json:"index"`
	Data  []byte `json:"data"`
}

func newFSM(st *state, pub *metadata.Publisher, logger *slog.Logger) *fsm {
	f := &fsm{pub: pub, logger: logger, changed: make(chan struct{})}
	f.st.Store(st)
	return f
}

func (f *fsm) state() *state { return f.st.Load() }

// applyEntry applies one encoded entry at index and publishes the image.
func (f *fsm) applyEntry(index uint64, data []byte) {
	cur := f.st.Load()
	if index <= uint64(cur.img.Offset) {
		return // already applied (a re-fetch after a reconnect)
	}
	var recs []record
	e, err := decodeEntry(data)
	if err != nil {
		f.errors.Add(1)
		f.logger.Error("metadata log entry skipped", "index", index, "err", err)
	} else {
		recs = e.Records
		f.lastTime.Store(e.Time)
	}
	next, errs := cur.applyRecords(index, recs)
	for _, err := range errs {
		f.errors.Add(1)
		f.logger.Error("metadata record skipped", "err", err)
	}
	f.st.Store(next)
	f.pub.Publish(next.img)
	f.published.Store(next.img.Offset)
	if f.onApply != nil {
		f.onApply(len(recs))
	}
	f.mu.Lock()
	f.tail = append(f.tail, fetchedEntry{Index: index, Data: data})
	if len(f.tail) > tailEntries {
		drop := len(f.tail) - tailEntries
		f.tailFrom = f.tail[drop-1].Index
		f.tail = append(f.tail[:0:0], f.tail[drop:]...)
	}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// install replaces the whole state (a snapshot) and publishes it.
func (f *fsm) install(st *state) {
	f.st.Store(st)
	f.pub.Publish(st.img)
	f.published.Store(st.img.Offset)
	f.mu.Lock()
	f.tail, f.tailFrom = nil, uint64(st.img.Offset)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// since returns the entries after index, or ok=false when they are no
// longer all in memory (the caller then sends the state), and a channel
// closed at the next apply.
func (f *fsm) since(index uint64, max int) (entries []fetchedEntry, ok bool, changed <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index < f.tailFrom {
		return nil, false, f.changed
	}
	for _, e := range f.tail {
		if e.Index > index {
			entries = append(entries, e)
			if len(entries) == max {
				break
			}
		}
	}
	return entries, true, f.changed
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type == raft.LogCommand {
		f.applyEntry(l.Index, l.Data)
	}
	return nil
}

// Snapshot implements raft.FSM: the state is immutable, so the snapshot
// is the current pointer, written out later by Persist.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return &fsmSnapshot{st: f.st.Load()}, nil }

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := decodeState(rc)
	if err != nil {
		f.loadErrors.Add(1)
		return err
	}
	f.install(st)
	return nil
}

type fsmSnapshot struct{ st *state }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.st.encode(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
