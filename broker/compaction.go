package broker

import (
	"errors"
	"path/filepath"
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
	b.eachPartition(func(p *replica.Partition) {
		if b.ctx.Err() != nil || !p.Log().Config().Compact {
			return
		}
		before := p.Log().Size()
		st, err := p.Log().Clean(klog.CleanOptions{})
		switch {
		case errors.Is(err, klog.ErrClosed):
		case err != nil:
			b.log.Error("log cleaning failed", "topic", p.Topic, "partition", p.Index, "err", err)
		case st.Cleaned:
			cleaned = true
			b.log.Info("cleaned log", "topic", p.Topic, "partition", p.Index,
				"dirty_start", st.FirstDirtyOffset, "dirty_end", st.EndOffset,
				"dirty_ratio", st.DirtyRatio, "forced_by_max_lag", st.ForcedByMaxLag,
				"bytes_before", before, "bytes_after", p.Log().Size(),
				"segments_cleaned", st.SegmentsBefore, "segments_written", st.SegmentsAfter,
				"records_read", st.RecordsRead, "records_kept", st.RecordsKept,
				"tombstones_removed", st.TombstonesRemoved, "elapsed", st.Elapsed)
		}
	})
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
