package log

import (
	"errors"
	"fmt"
	"slices"
)

// DeleteRecordsBefore advances the log start offset to offset (Kafka DeleteRecords), deleting
// segments that lie wholly below it; offset > LogEndOffset -> ErrOffsetOutOfRange. Returns the new start.
//
// An offset at or below the current start changes nothing. As in Kafka the
// active segment is never deleted here, even when offset == LogEndOffset; its
// records below the start simply become unreadable.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("delete records in %s: %w", l.dir, ErrClosed)
	}
	if offset < 0 || offset > l.leo.Load() {
		return 0, fmt.Errorf("delete records in %s before %d (log end %d): %w", l.dir, offset, l.leo.Load(), ErrOffsetOutOfRange)
	}
	if offset <= l.logStart.Load() {
		return l.logStart.Load(), nil
	}
	l.mu.Lock()
	l.logStart.Store(offset)
	l.mu.Unlock()
	l.logger.Info("advanced log start offset", "offset", offset, "reason", "delete records")
	if _, err := l.deleteOldest(l.startBreached(), "log start offset"); err != nil {
		return offset, fmt.Errorf("delete records in %s before %d: %w", l.dir, offset, err)
	}
	return offset, nil
}

// startBreached counts the leading segments whose offsets all lie below the
// log start (the next segment starts at or before it).
func (l *Log) startBreached() int {
	n := 0
	start := l.logStart.Load()
	for n < len(l.segs)-1 && l.segs[n+1].base <= start {
		n++
	}
	return n
}

// EnforceRetention deletes whole non-active segments past retention.ms (by the segment's largest
// timestamp, as Kafka does) and retention.bytes (oldest first while size - segment >= limit),
// advancing the log start offset. Returns the number of segments deleted. The two limits apply
// only when cleanup.policy contains delete (Config.Delete).
//
// Segments wholly below the log start offset (after DeleteRecordsBefore or a
// checkpointed start) are deleted first. Each rule removes a prefix of the
// log, as in Kafka's deletableSegments: the first segment that is kept stops
// the rule, even if a later one would qualify.
func (l *Log) EnforceRetention() (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("enforce retention in %s: %w", l.dir, ErrClosed)
	}
	cfg := l.cfg
	nowMs := cfg.nowMs()
	deleted := 0

	n, err := l.deleteOldest(l.startBreached(), "log start offset")
	deleted += n
	if err != nil {
		return deleted, fmt.Errorf("enforce retention in %s: %w", l.dir, err)
	}

	if !cfg.Delete {
		// cleanup.policy=compact alone: Kafka deletes nothing by age or
		// size; only the log start offset (DeleteRecords) removes segments.
		return deleted, nil
	}

	if cfg.RetentionMs >= 0 {
		n = 0
		for n < len(l.segs)-1 && nowMs-l.segs[n].largestTimestamp() > cfg.RetentionMs {
			n++
		}
		n, err = l.deleteOldest(n, "retention.ms")
		deleted += n
		if err != nil {
			return deleted, fmt.Errorf("enforce retention in %s: %w", l.dir, err)
		}
	}

	if cfg.RetentionBytes >= 0 {
		var size int64
		for _, s := range l.segs {
			size += s.size
		}
		diff := size - cfg.RetentionBytes
		n = 0
		for n < len(l.segs)-1 && diff-l.segs[n].size >= 0 {
			diff -= l.segs[n].size
			n++
		}
		n, err = l.deleteOldest(n, "retention.bytes")
		deleted += n
		if err != nil {
			return deleted, fmt.Errorf("enforce retention in %s: %w", l.dir, err)
		}
	}
	return deleted, nil
}

// deleteOldest removes the n oldest segments (never the active one) and moves
// the log start offset to the new first segment if it was below. Readers are
// excluded while the segments leave the list, so no reader holds one whose
// files are being closed.
func (l *Log) deleteOldest(n int, reason string) (int, error) {
	n = min(n, len(l.segs)-1)
	if n <= 0 {
		return 0, nil
	}
	victims := slices.Clone(l.segs[:n])
	l.mu.Lock()
	// A fresh slice: the old backing array is not shared with later appends.
	l.segs = slices.Clone(l.segs[n:])
	first := l.segs[0].base
	l.logStart.Store(max(l.logStart.Load(), first))
	// Everything below a deleted segment's end is gone; nothing left there
	// needs a flush or a re-scan.
	l.recoveryPoint.Store(max(l.recoveryPoint.Load(), first))
	l.mu.Unlock()

	var errs []error
	for _, s := range victims {
		l.logger.Info("deleting segment", "offset", s.base, "reason", reason, "bytes", s.size)
		errs = append(errs, s.discard())
	}
	if err := errors.Join(errs...); err != nil {
		return n, err
	}
	return n, syncDir(l.dir)
}
