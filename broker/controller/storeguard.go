package controller

import (
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// guardedStore is the metadata log's raft log and stable store
// (raft-boltdb) with its write failures made visible and paced.
//
// hashicorp/raft steps down when its leader cannot append to its own log
// (dispatchLogs: StoreLogs failed -> Follower). A lone voter with a full
// disk then elects itself again after its 50 ms heartbeat timeout, fails
// its first append again and steps down again: a new term every ~130 ms
// (epoch 2 to 134 in 20 s measured), three raft log lines each time, and
// clients waiting out their timeouts for a controller that never stays.
// The guard:
//   - logs the first failed write at ERROR, a summary every 30 s while the
//     store stays unwritable, and the recovery at INFO with how long it
//     lasted and how many writes failed; raft's own per-attempt lines are
//     logged at DEBUG meanwhile (Quiet);
//   - lets a lone voter answer KAFKA_STORAGE_ERROR at once instead of
//     timing out (Failing; with several voters another one takes over);
//   - in a one-voter quorum, waits before each log append while failing
//     (250 ms doubling to 5 s), so the lone voter retries a few times a
//     minute instead of eight times a second, and picks up within 5 s once
//     space returns. With several voters it does not wait: a healthy voter
//     should take over at once.
type guardedStore struct {
	*raftboltdb.BoltStore
	path   string
	pace   bool
	log    *slog.Logger
	closed chan struct{}

	mu       sync.Mutex
	failing  error // the last storage error while unwritable
	since    time.Time
	failed   int64 // writes failed since
	lastNote time.Time
	backoff  time.Duration
}

const (
	storeBackoffMin = 250 * time.Millisecond
	storeBackoffMax = 5 * time.Second
	storeNoteEvery  = 30 * time.Second
)

func newGuardedStore(s *raftboltdb.BoltStore, path string, log *slog.Logger) *guardedStore {
	return &guardedStore{BoltStore: s, path: path, log: log, closed: make(chan struct{})}
}

// isStorageError says whether err is the disk's, not the data's: what an
// operator fixes by freeing space or replacing a disk.
func isStorageError(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Failing returns the error that keeps the store unwritable and since
// when, or nil.
func (s *guardedStore) Failing() (error, time.Time, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failing, s.since, s.failed
}

// Quiet says whether raft's own lines should go to DEBUG: the guard is
// already saying what goes on.
func (s *guardedStore) Quiet() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failing != nil
}

// write runs one write. Log appends (appends) are paced and are what
// tells the store writable again: the small stable-store writes of an
// election (term, vote) reuse free pages of the file and succeed on a
// full disk while every append fails.
func (s *guardedStore) write(appends bool, f func() error) error {
	if appends && s.pace {
		s.mu.Lock()
		wait := s.backoff
		if s.failing != nil {
			s.backoff = min(max(2*s.backoff, storeBackoffMin), storeBackoffMax)
		}
		s.mu.Unlock()
		if wait > 0 {
			select {
			case <-time.After(wait):
			case <-s.closed:
			}
		}
	}
	err := f()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil && s.failing != nil && appends:
		s.log.Info("metadata log writable again", "path", s.path, "unwritable_for", time.Since(s.since).Round(time.Millisecond),
			"failed_writes", s.failed, "last_err", s.failing)
		s.failing, s.failed, s.backoff = nil, 0, 0
	case err != nil && isStorageError(err) && s.failing == nil:
		s.failing, s.since, s.failed, s.lastNote = err, time.Now(), 1, time.Now()
		s.backoff = storeBackoffMin
		s.log.Error("metadata log cannot be written: no metadata change (topics, partitions, leaders, ISR, registrations) can be committed by this node until it can; "+
			"free space or fix the disk, the controller retries on its own", "path", s.path, "err", err)
	case err != nil && isStorageError(err):
		s.failing = err
		s.failed++
		if time.Since(s.lastNote) >= storeNoteEvery {
			s.lastNote = time.Now()
			s.log.Warn("metadata log still cannot be written", "path", s.path, "unwritable_for", time.Since(s.since).Round(time.Second),
				"failed_writes", s.failed, "err", err)
		}
	}
	return err
}

func (s *guardedStore) StoreLog(l *raft.Log) error {
	return s.write(true, func() error { return s.BoltStore.StoreLog(l) })
}

func (s *guardedStore) StoreLogs(l []*raft.Log) error {
	return s.write(true, func() error { return s.BoltStore.StoreLogs(l) })
}

func (s *guardedStore) DeleteRange(lo, hi uint64) error {
	return s.write(false, func() error { return s.BoltStore.DeleteRange(lo, hi) })
}

func (s *guardedStore) Set(k, v []byte) error {
	return s.write(false, func() error { return s.BoltStore.Set(k, v) })
}

func (s *guardedStore) SetUint64(k []byte, v uint64) error {
	return s.write(false, func() error { return s.BoltStore.SetUint64(k, v) })
}

// wake ends a paced write's wait (shutdown).
func (s *guardedStore) wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
}

// Close wakes a paced write and closes the store.
func (s *guardedStore) Close() error {
	s.wake()
	return s.BoltStore.Close()
}

// MetadataLogFailure is the error that keeps this voter's metadata log
// unwritable, or nil (also on a broker-only node, which has none).
func (c *Controller) MetadataLogFailure() error {
	if c.store == nil {
		return nil
	}
	err, _, _ := c.store.Failing()
	return err
}

// storageFailure is KAFKA_STORAGE_ERROR naming the failure when this
// lone voter's metadata log cannot be written, or nil. With several
// voters a write waits for the others to elect a leader instead.
func (c *Controller) storageFailure() error {
	if c.store == nil || len(c.cfg.Voters) != 1 {
		return nil
	}
	if id := c.leaderID(); id >= 0 && id != c.cfg.NodeID {
		return nil
	}
	err, since, failed := c.store.Failing()
	if err == nil {
		return nil
	}
	return errorf(ErrKafkaStorage, "no active controller: node %d cannot write its metadata log %s since %s (%d failed writes): %v; nothing was changed",
		c.cfg.NodeID, c.store.path, since.UTC().Format(time.RFC3339), failed, err)
}
