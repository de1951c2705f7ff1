package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Store. The zero value of every field but Dir is a
// usable default.
type Config struct {
	// Dir holds the indexes (Dir/indices/<name>); it is created if missing.
	// Required.
	Dir string
	// Addr is the address ListenAndServe binds, overriding the default
	// 127.0.0.1:9200 (Elasticsearch's port, so clients need no extra config).
	Addr string
	// RetentionDays deletes indexes whose name ends in a YYYY.MM.DD date
	// more than this many days before today (UTC). 0 keeps everything.
	RetentionDays int
	// MaxIndexes caps the number of indexes (each one holds open files),
	// overriding DefaultMaxIndexes, Elasticsearch's cluster.max_shards_per_node
	// for a one-shard-per-index node.
	MaxIndexes int
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// DefaultMaxIndexes is Config.MaxIndexes' default.
const DefaultMaxIndexes = 1000

// DefaultAddr is Config.Addr's default.
const DefaultAddr = "127.0.0.1:9200"

// SetDefaults fills in defaults for unset fields.
func (c *Config) SetDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxIndexes <= 0 {
		c.MaxIndexes = DefaultMaxIndexes
	}
}

// Validate reports configuration errors.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("tracestore: Dir is required")
	}
	if c.RetentionDays < 0 {
		return fmt.Errorf("tracestore: RetentionDays must be >= 0, got %d", c.RetentionDays)
	}
	return nil
}

// Store is the embedded Elasticsearch-compatible trace store. It is safe for
// concurrent use. Open it, serve Handler (or call Serve), and Close it.
type Store struct {
	cfg     Config
	log     *slog.Logger
	lock    *os.File // flock on Dir/.lock: one process per Dir
	started time.Time
	uuid    string
	now     func() time.Time // injectable clock (retention, date math)

	mu      sync.RWMutex // guards indexes and closed
	indexes map[string]*esIndex
	closed  bool
	// createMu serialises index creation and deletion so two requests that
	// auto-create the same index do not race on its directory.
	createMu sync.Mutex

	// tornTails and tornBytes count the damaged log tails cut off at
	// open (GET /_nodes/stats shows them).
	tornTails atomic.Int64
	tornBytes atomic.Int64
	// unreadable counts the index directories found at open that could
	// not be opened (moved to Dir/unreadable); blocked names the ones that
	// could not even be moved, whose names take no writes.
	unreadable atomic.Int64
	blocked    map[string]bool

	quit chan struct{}
	wg   sync.WaitGroup
}

// Open opens (or initialises) the store in cfg.Dir, reopening every index
// found there, and starts the retention loop when RetentionDays > 0.
func Open(cfg Config) (*Store, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "indices"), 0o755); err != nil {
		return nil, fmt.Errorf("tracestore: create %s: %w", cfg.Dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tracestore: open lock file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("tracestore: %s is in use by another process: %w", cfg.Dir, err)
	}
	s := &Store{
		cfg: cfg, log: cfg.Logger, lock: lock, started: time.Now(), now: time.Now,
		indexes: map[string]*esIndex{}, quit: make(chan struct{}), blocked: map[string]bool{},
	}
	s.uuid = s.clusterUUID()
	entries, err := os.ReadDir(filepath.Join(cfg.Dir, "indices"))
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("tracestore: list indices: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || validateIndexName(e.Name()) != nil {
			continue
		}
		path := filepath.Join(cfg.Dir, "indices", e.Name())
		idx, torn, err := openIndex(path, e.Name())
		if errors.Is(err, errNoMeta) {
			// Creation was interrupted before the index was acknowledged,
			// so it holds no acknowledged documents.
			s.log.Warn("removing incompletely created index", "index", e.Name())
			_ = os.RemoveAll(path)
			continue
		}
		if err != nil {
			// One damaged index (or one written by an older kobs, whose
			// bleve indexes this engine cannot read) must not take the
			// others offline, and must not be overwritten when a write
			// recreates an index of that name: it is moved aside, kept for
			// inspection, and counted.
			aside := filepath.Join(cfg.Dir, "unreadable", e.Name()+"-"+s.now().UTC().Format("20060102T150405"))
			if _, berr := os.Stat(filepath.Join(path, "index_meta.json")); berr == nil {
				err = fmt.Errorf("a bleve index written by kobs before the segment-log engine; reindex it with that version or delete it: %w", err)
			}
			s.unreadable.Add(1)
			if merr := os.MkdirAll(filepath.Dir(aside), 0o755); merr == nil {
				merr = os.Rename(path, aside)
				if merr == nil {
					s.log.Error("cannot open index; moved it aside", "index", e.Name(), "to", aside, "err", err)
					continue
				}
				err = errors.Join(err, merr)
			}
			s.log.Error("cannot open index; skipping it (it could not be moved aside, so writes to this index name are refused)", "index", e.Name(), "err", err)
			s.blocked[e.Name()] = true
			continue
		}
		for _, t := range torn {
			// A write that was cut short by a crash: it was never
			// acknowledged, so cutting it off loses nothing a client was
			// told is stored.
			s.tornTails.Add(1)
			s.tornBytes.Add(t.bytes)
			s.log.Warn("truncated a torn tail of an index's segment log (an unacknowledged write cut short by a crash)",
				"index", e.Name(), "segment", t.segment, "bytes", t.bytes, "reason", t.reason)
		}
		s.indexes[e.Name()] = idx
	}
	s.log.Info("tracestore opened", "dir", cfg.Dir, "indexes", len(s.indexes))
	if cfg.RetentionDays > 0 {
		s.wg.Add(1)
		go s.retentionLoop()
	}
	return s, nil
}

// clusterUUID is persisted so GET / reports a stable cluster_uuid.
func (s *Store) clusterUUID() string {
	p := filepath.Join(s.cfg.Dir, "cluster_uuid")
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return string(b)
	}
	id := randomID(16)
	_ = os.WriteFile(p, []byte(id), 0o644)
	return id
}

// Close stops the retention loop and closes every index. It waits for
// in-flight operations on each index.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	idxs := s.indexes
	s.indexes = map[string]*esIndex{}
	s.mu.Unlock()
	close(s.quit)
	s.wg.Wait()
	var errs []error
	for _, idx := range idxs {
		if err := idx.shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("close index %s: %w", idx.name, err))
		}
	}
	_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}

// Serve answers HTTP on ln until ctx is done, then shuts down gracefully
// (in-flight requests get up to 10s). It does not Close the store.
func (s *Store) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeWith(ctx, ln, nil)
}

// ServeWith is Serve with extra handlers mounted beside the Elasticsearch
// API, keyed by path prefix (e.g. "/v1/trace/" for the journey queries, which
// live outside this package because the store knows nothing of trace
// events). Elasticsearch paths never start with "/v1/", so the prefixes do
// not shadow any API.
func (s *Store) ServeWith(ctx context.Context, ln net.Listener, extra map[string]http.Handler) error {
	var h http.Handler = s.Handler()
	if len(extra) > 0 {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		for prefix, eh := range extra {
			mux.Handle(prefix, eh)
		}
		h = mux
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// ListenAndServe binds cfg.Addr and calls Serve.
func (s *Store) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("tracestore: listen %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// names returns the existing index names, sorted.
func (s *Store) names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.indexes))
	for n := range s.indexes {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (s *Store) get(name string) *esIndex {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.indexes[name]
}

var errStoreClosed = &esError{Type: "node_closed_exception", Reason: "node closed", status: http.StatusServiceUnavailable}

// acquireIndex returns the named index pinned for use.
func (s *Store) acquireIndex(name string) (*esIndex, *esError) {
	idx := s.get(name)
	if idx == nil || !idx.acquire() {
		return nil, errIndexNotFound(name)
	}
	return idx, nil
}

// createIndex creates a new index; ok=false with the existing index's error
// when it already exists.
func (s *Store) createIndex(name string, root rootMapping, settings indexSettings) (*esIndex, *esError) {
	if err := validateIndexName(name); err != nil {
		return nil, err
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	s.mu.RLock()
	closed, existing := s.closed, s.indexes[name]
	s.mu.RUnlock()
	if closed {
		return nil, errStoreClosed
	}
	if existing != nil {
		return nil, errIndexExists(name, existing.meta.UUID)
	}
	if s.blocked[name] {
		return nil, &esError{Type: "exception",
			Reason: fmt.Sprintf("index directory [%s] exists but cannot be opened (see the store's log); it is kept, so this index cannot be created", name),
			status: http.StatusInternalServerError}
	}
	s.mu.RLock()
	n := len(s.indexes)
	s.mu.RUnlock()
	if n >= s.cfg.MaxIndexes {
		return nil, &esError{Type: "validation_exception",
			Reason: fmt.Sprintf("Validation Failed: 1: this action would add [1] total shards, but this cluster currently has [%d]/[%d] maximum shards open;", n, s.cfg.MaxIndexes),
			status: http.StatusBadRequest}
	}
	path := filepath.Join(s.cfg.Dir, "indices", name)
	// A leftover directory (e.g. a delete interrupted by a crash) must not
	// resurrect old documents into the new index.
	if err := os.RemoveAll(path); err != nil {
		return nil, writeFailure(name, err)
	}
	idx, err := createIndex(path, name, root, settings, s.now())
	if err != nil {
		var ee *esError
		if errors.As(err, &ee) {
			return nil, ee
		}
		s.log.Error("create index failed", "index", name, "err", err)
		return nil, writeFailure(name, err)
	}
	s.mu.Lock()
	s.indexes[name] = idx
	s.mu.Unlock()
	s.log.Info("created index", "index", name)
	return idx, nil
}

// indexForWrite returns the index pinned for a write, auto-creating it with
// dynamic mapping like Elasticsearch's action.auto_create_index.
func (s *Store) indexForWrite(name string) (*esIndex, *esError) {
	for attempt := 0; attempt < 3; attempt++ {
		if idx := s.get(name); idx != nil {
			if idx.acquire() {
				return idx, nil
			}
			continue // deleted under us; create afresh
		}
		idx, err := s.createIndex(name, rootMapping{}, indexSettings{Shards: 1, Replicas: 1})
		if err != nil {
			if err.Type == "resource_already_exists_exception" {
				continue // lost a race with another creator
			}
			return nil, err
		}
		if idx.acquire() {
			return idx, nil
		}
	}
	return nil, errIndexNotFound(name)
}

// deleteIndexes deletes the named indexes (already resolved).
func (s *Store) deleteIndexes(names []string) error {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	var errs []error
	for _, n := range names {
		s.mu.Lock()
		idx := s.indexes[n]
		delete(s.indexes, n)
		s.mu.Unlock()
		if idx == nil {
			continue
		}
		if err := idx.shutdown(); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(idx.path); err != nil {
			errs = append(errs, fmt.Errorf("remove index %s: %w", n, err))
		}
		s.log.Info("deleted index", "index", n)
	}
	return errors.Join(errs...)
}

// retentionLoop applies retention at start and then hourly.
func (s *Store) retentionLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		s.applyRetention(s.now())
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
	}
}

// applyRetention deletes day-suffixed indexes older than RetentionDays
// relative to now and returns their names. The index for day D holds events
// of day D, so it is kept while D >= today - RetentionDays.
func (s *Store) applyRetention(now time.Time) []string {
	if s.cfg.RetentionDays <= 0 {
		return nil
	}
	y, m, d := now.UTC().Date()
	cutoff := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -s.cfg.RetentionDays)
	var old []string
	for _, n := range s.names() {
		if day, ok := indexDate(n); ok && day.Before(cutoff) {
			old = append(old, n)
		}
	}
	if len(old) == 0 {
		return nil
	}
	if err := s.deleteIndexes(old); err != nil {
		s.log.Error("retention: delete failed", "err", err)
	}
	s.log.Info("retention deleted indexes", "indexes", old, "retention_days", s.cfg.RetentionDays)
	return old
}
