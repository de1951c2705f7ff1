package log

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// TruncateTo removes every batch that holds an offset >= offset, for a
// follower whose log diverged from its new leader (Kafka's Log.truncateTo,
// driven by OffsetForLeaderEpoch). Batches are whole, so when offset falls
// inside a batch the log end becomes that batch's base offset. An offset at
// or past the log end is a no-op; one below the log start empties the log
// and restarts it there (TruncateFullyAndStartAt). The recovery point follows
// the log end down.
//
// The segment that becomes the tail is re-scanned to rebuild its indexes and
// largest timestamp; readers are blocked only while the result is swapped in.
func (l *Log) TruncateTo(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return fmt.Errorf("truncate %s to %d: %w", l.dir, offset, ErrClosed)
	}
	if offset < 0 {
		return fmt.Errorf("truncate %s to %d: %w", l.dir, offset, ErrOffsetOutOfRange)
	}
	if offset >= l.leo.Load() {
		return nil
	}
	if offset < l.logStart.Load() {
		return l.truncateFully(offset)
	}
	i := l.segmentFor(offset)
	seg := l.segs[i]
	v := seg.pin()
	hr := newHeaderReader(v)
	pos, b, found, err := hr.find(v, offset)
	hr.release()
	v.unpin()
	if err != nil {
		return fmt.Errorf("truncate %s to %d: %w", l.dir, offset, err)
	}
	newEnd := offset
	if found {
		newEnd = min(offset, b.BaseOffset)
	}
	if newEnd < l.logStart.Load() {
		return l.truncateFully(newEnd)
	}
	// Rebuild the kept prefix's index state while readers still run: the
	// bytes below pos do not change.
	st, reason, err := scanSegment(seg, pos, l.cfg)
	if err != nil {
		return fmt.Errorf("truncate %s to %d: %w", l.dir, offset, err)
	}
	if st.valid != pos {
		return fmt.Errorf("truncate %s to %d: segment %s invalid at %d (%s): %w", l.dir, offset, seg.logPath, st.valid, reason, ErrCorruptMessage)
	}

	victims := slices.Clone(l.segs[i+1:])
	l.mu.Lock()
	l.segs = slices.Clone(l.segs[:i+1])
	err = seg.log.Truncate(pos)
	if err == nil {
		err = seg.applyScan(st, true)
	}
	if err != nil {
		// The segment's on-disk state is unknown now; refuse further use
		// rather than serve from indexes that may not match the file.
		l.closed = true
		l.mu.Unlock()
		return fmt.Errorf("truncate %s to %d: %w (log closed)", l.dir, offset, err)
	}
	l.leo.Store(newEnd)
	l.recoveryPoint.Store(min(l.recoveryPoint.Load(), newEnd))
	l.mu.Unlock()

	var errs []error
	for _, s := range victims {
		errs = append(errs, s.discard())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("truncate %s to %d: %w", l.dir, offset, err)
	}
	l.logger.Info("truncated log", "offset", newEnd, "removed_segments", len(victims))
	return syncDir(l.dir)
}

// TruncateFullyAndStartAt deletes every segment and restarts the log empty at
// offset, which becomes log start, log end and recovery point (Kafka's
// truncateFullyAndStartAt: a follower far behind its leader's log start).
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return fmt.Errorf("truncate %s fully: %w", l.dir, ErrClosed)
	}
	if offset < 0 {
		return fmt.Errorf("truncate %s fully at %d: %w", l.dir, offset, ErrOffsetOutOfRange)
	}
	return l.truncateFully(offset)
}

func (l *Log) truncateFully(offset int64) error {
	// The new segment may share its base with an old one; move the old ones
	// out of the way first.
	old := l.segs
	l.mu.Lock()
	l.segs = nil
	l.closed = true // until the new segment is in place
	l.mu.Unlock()
	var errs []error
	for _, s := range old {
		errs = append(errs, s.discard())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("truncate %s fully at %d: %w (log closed)", l.dir, offset, err)
	}
	ns, err := createSegment(l.dir, offset, l.cfg.now())
	if err == nil {
		err = syncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("truncate %s fully at %d: %w (log closed)", l.dir, offset, err)
	}
	l.mu.Lock()
	l.segs = []*segment{ns}
	l.closed = false
	l.logStart.Store(offset)
	l.leo.Store(offset)
	l.recoveryPoint.Store(offset)
	l.mu.Unlock()
	l.unflushedSince = time.Time{}
	l.logger.Warn("emptied log", "offset", offset)
	return nil
}
