package broker

import (
	"errors"
	"path/filepath"
	"sync"
	"time"

	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/replica"
)

// This file runs log compaction (cleanup.policy=compact) in the background,
// like Kafka's LogCleaner with one cleaner thread: every compacted partition
// whose dirty ratio (or max.compaction.lag.ms) calls for it is cleaned in
// turn; when none did, the cleaner sleeps log.cleaner.backoff.ms. The first
// dirty offset of each partition is kept in the log dir's
// cleaner-offset-checkpoint, in Kafka's checkpoint format, so a restart does
// not recompact what was already clean.

const cleanerCheckpointFile = "cleaner-offset-checkpoint"

// cleanerStats is what Kafka's LogCleaner and LogCleanerManager gauges
// show: written by the cleaner loop after each pass, read by scrapes.
type cleanerStats struct {
	mu              sync.Mutex
	lastRun         time.Time     // end of the last pass (time-since-last-run-ms)
	lastCleanTime   time.Duration // the last clean's duration (max-clean-time-secs, one cleaner thread)
	recopyPercent   int64         // the last clean's bytes written / bytes read, in percent
	maxDirtyPercent int64         // the dirtiest partition of the last pass, in percent
	// uncleanable are the partitions whose last clean failed, with their
	// log dir and size (uncleanable-partitions-count, uncleanable-bytes).
	// Kafka stops cleaning such a partition until it moves or the broker
	// restarts; kobs retries it every pass and clears it on success.
	uncleanable map[klog.TopicPartition]uncleanable
}

type uncleanable struct {
	dir  string
	size int64
}

// uncleanableIn returns the count and bytes of dir's uncleanable
// partitions.
func (s *cleanerStats) uncleanableIn(dir string) (n, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.uncleanable {
		if u.dir == dir {
			n++
			bytes += u.size
		}
	}
	return n, bytes
}

// startCleaner restores the cleaner checkpoints and starts the cleaner loop
// (log.cleaner.enable).
func (b *Broker) startCleaner() {
	if !b.cfg.LogCleanerEnable {
		return
	}
	for _, d := range b.cfg.LogDirs {
		cp, err := klog.ReadCheckpoint(filepath.Join(d, cleanerCheckpointFile))
		if err != nil {
			// A lost checkpoint only means recompacting clean data.
			b.log.Warn("ignoring unreadable cleaner checkpoint", "dir", d, "err", err)
			continue
		}
		b.eachPartition(func(p *replica.Partition) {
			if off, ok := cp[klog.TopicPartition{Topic: p.Topic, Partition: p.Index}]; ok && p.LogDir == d {
				p.Log().SetCleanerCheckpoint(off)
			}
		})
	}
	// As Kafka's, the time since the last run counts from the start.
	b.cleanerStats.mu.Lock()
	b.cleanerStats.lastRun = time.Now()
	b.cleanerStats.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			wait := b.cfg.LogCleanerBackoff
			if b.cleanDirtyLogs() {
				wait = 0 // more may be dirty already, as Kafka's cleaner thread goes on
			}
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

// cleanDirtyLogs cleans every compacted partition that needs it and
// reports whether any was cleaned.
func (b *Broker) cleanDirtyLogs() bool {
	cleaned := false
	var maxDirty float64
	failed := map[klog.TopicPartition]uncleanable{}
	var last *klog.CleanStats
	b.eachPartition(func(p *replica.Partition) {
		if b.ctx.Err() != nil || !p.Log().Config().Compact {
			return
		}
		before := p.Log().Size()
		st, err := p.Log().Clean(klog.CleanOptions{})
		maxDirty = max(maxDirty, st.DirtyRatio)
		switch {
		case errors.Is(err, klog.ErrClosed):
		case err != nil:
			failed[klog.TopicPartition{Topic: p.Topic, Partition: p.Index}] = uncleanable{dir: p.LogDir, size: before}
			b.log.Error("log cleaning failed; retried next pass, counted in uncleanable-partitions-count",
				"topic", p.Topic, "partition", p.Index, "err", err)
		case st.Cleaned:
			cleaned = true
			last = &st
			b.log.Info("cleaned log", "topic", p.Topic, "partition", p.Index,
				"dirty_start", st.FirstDirtyOffset, "dirty_end", st.EndOffset,
				"dirty_ratio", st.DirtyRatio, "forced_by_max_lag", st.ForcedByMaxLag,
				"bytes_before", before, "bytes_after", p.Log().Size(),
				"segments_cleaned", st.SegmentsBefore, "segments_written", st.SegmentsAfter,
				"records_read", st.RecordsRead, "records_kept", st.RecordsKept,
				"tombstones_removed", st.TombstonesRemoved, "invalid_records_dropped", st.InvalidRecords,
				"groups_skipped", st.GroupsSkipped, "elapsed", st.Elapsed)
		}
	})
	cs := &b.cleanerStats
	cs.mu.Lock()
	cs.lastRun = time.Now()
	cs.maxDirtyPercent = int64(100 * maxDirty)
	cs.uncleanable = failed
	if last != nil {
		cs.lastCleanTime = last.Elapsed
		if last.BytesBefore > 0 {
			cs.recopyPercent = 100 * last.BytesAfter / last.BytesBefore
		}
	}
	cs.mu.Unlock()
	if cleaned {
		if err := b.writeCleanerCheckpoints(); err != nil {
			b.log.Error("cleaner checkpoint write failed", "err", err)
		}
	}
	return cleaned
}

// writeCleanerCheckpoints writes each log dir's cleaner-offset-checkpoint
// with the first dirty offset of its compacted partitions.
func (b *Broker) writeCleanerCheckpoints() error {
	m := map[string]map[klog.TopicPartition]int64{}
	for _, d := range b.cfg.LogDirs {
		m[d] = map[klog.TopicPartition]int64{}
	}
	b.eachPartition(func(p *replica.Partition) {
		if off := p.Log().CleanerCheckpoint(); off > 0 && m[p.LogDir] != nil {
			m[p.LogDir][klog.TopicPartition{Topic: p.Topic, Partition: p.Index}] = off
		}
	})
	var errs []error
	for d, cp := range m {
		errs = append(errs, klog.WriteCheckpoint(filepath.Join(d, cleanerCheckpointFile), cp))
	}
	return errors.Join(errs...)
}
