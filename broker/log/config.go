package log

import (
	"fmt"
	"math"
	"time"
)

// Timestamp types accepted in Config.MessageTimestampType (Kafka's
// message.timestamp.type values).
const (
	TimestampCreateTime    = "CreateTime"
	TimestampLogAppendTime = "LogAppendTime"
)

// Config holds a partition log's topic-level settings, with Kafka's names in comments.
type Config struct {
	SegmentBytes         int64            // segment.bytes, default 1073741824
	SegmentMs            int64            // segment.ms, default 604800000
	SegmentIndexBytes    int32            // segment.index.bytes, default 10485760 (roll when the index is full)
	IndexIntervalBytes   int32            // index.interval.bytes, default 4096
	RetentionMs          int64            // retention.ms, default 604800000; -1 = unlimited
	RetentionBytes       int64            // retention.bytes, default -1 = unlimited
	FlushMessages        int64            // flush.messages, default math.MaxInt64 (fsync after this many records)
	FlushMs              int64            // flush.ms, default math.MaxInt64 (fsync when the oldest unflushed data is older)
	MaxMessageBytes      int32            // max.message.bytes, default 1048588 (limit per record batch)
	MessageTimestampType string           // message.timestamp.type: "CreateTime" (default) or "LogAppendTime"
	Now                  func() time.Time // clock, nil = time.Now (tests inject)

	// cleanup.policy: "delete" sets Delete, "compact" sets Compact, both
	// may be set. Without Delete, EnforceRetention ignores retention.ms and
	// retention.bytes (Kafka never deletes a compact-only topic's segments
	// by age or size); Compact makes the topic eligible for Clean.
	Compact                bool
	Delete                 bool
	DeleteRetentionMs      int64   // delete.retention.ms, default 86400000: tombstones live this long after their first clean
	MinCompactionLagMs     int64   // min.compaction.lag.ms, default 0: younger segments stay dirty
	MaxCompactionLagMs     int64   // max.compaction.lag.ms, default math.MaxInt64: older dirty data forces a clean
	MinCleanableDirtyRatio float64 // min.cleanable.dirty.ratio, default 0.5: clean when dirty/total exceeds it
}

// DefaultConfig returns Kafka's topic defaults.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:         1 << 30,
		SegmentMs:            7 * 24 * 60 * 60 * 1000,
		SegmentIndexBytes:    10 << 20,
		IndexIntervalBytes:   4096,
		RetentionMs:          7 * 24 * 60 * 60 * 1000,
		RetentionBytes:       -1,
		FlushMessages:        math.MaxInt64,
		FlushMs:              math.MaxInt64,
		MaxMessageBytes:      1048588,
		MessageTimestampType: TimestampCreateTime,

		Delete:                 true,
		DeleteRetentionMs:      24 * 60 * 60 * 1000,
		MaxCompactionLagMs:     math.MaxInt64,
		MinCleanableDirtyRatio: 0.5,
	}
}

// Validate reports the first field outside the range Kafka allows (wrapping
// ErrInvalidConfig). Open rejects an invalid Config; the broker should call
// Validate before SetConfig so AlterConfigs can answer INVALID_CONFIG.
func (c Config) Validate() error {
	switch {
	case c.SegmentBytes < minSegmentBytes:
		// Kafka's minimum: one batch header has to fit in a segment.
		return fmt.Errorf("segment.bytes %d < %d: %w", c.SegmentBytes, minSegmentBytes, ErrInvalidConfig)
	case c.SegmentMs < 1:
		return fmt.Errorf("segment.ms %d < 1: %w", c.SegmentMs, ErrInvalidConfig)
	case c.SegmentIndexBytes < timeIndexEntrySize:
		// Below one time-index entry every append would see a full index and roll.
		return fmt.Errorf("segment.index.bytes %d < %d: %w", c.SegmentIndexBytes, timeIndexEntrySize, ErrInvalidConfig)
	case c.IndexIntervalBytes < 0:
		return fmt.Errorf("index.interval.bytes %d < 0: %w", c.IndexIntervalBytes, ErrInvalidConfig)
	case c.RetentionMs < -1:
		return fmt.Errorf("retention.ms %d < -1: %w", c.RetentionMs, ErrInvalidConfig)
	case c.RetentionBytes < -1:
		return fmt.Errorf("retention.bytes %d < -1: %w", c.RetentionBytes, ErrInvalidConfig)
	case c.FlushMessages < 1:
		return fmt.Errorf("flush.messages %d < 1: %w", c.FlushMessages, ErrInvalidConfig)
	case c.FlushMs < 0:
		return fmt.Errorf("flush.ms %d < 0: %w", c.FlushMs, ErrInvalidConfig)
	case c.MaxMessageBytes < 0:
		return fmt.Errorf("max.message.bytes %d < 0: %w", c.MaxMessageBytes, ErrInvalidConfig)
	case c.DeleteRetentionMs < 0:
		return fmt.Errorf("delete.retention.ms %d < 0: %w", c.DeleteRetentionMs, ErrInvalidConfig)
	case c.MinCompactionLagMs < 0:
		return fmt.Errorf("min.compaction.lag.ms %d < 0: %w", c.MinCompactionLagMs, ErrInvalidConfig)
	case c.MaxCompactionLagMs < 1:
		return fmt.Errorf("max.compaction.lag.ms %d < 1: %w", c.MaxCompactionLagMs, ErrInvalidConfig)
	case c.MinCompactionLagMs > c.MaxCompactionLagMs:
		// Kafka's LogConfig rejects the pair: the lag window would be empty.
		return fmt.Errorf("min.compaction.lag.ms %d > max.compaction.lag.ms %d: %w", c.MinCompactionLagMs, c.MaxCompactionLagMs, ErrInvalidConfig)
	case !(c.MinCleanableDirtyRatio >= 0 && c.MinCleanableDirtyRatio <= 1):
		return fmt.Errorf("min.cleanable.dirty.ratio %g not in [0, 1]: %w", c.MinCleanableDirtyRatio, ErrInvalidConfig)
	}
	switch c.MessageTimestampType {
	case "", TimestampCreateTime, TimestampLogAppendTime:
	default:
		return fmt.Errorf("message.timestamp.type %q: %w", c.MessageTimestampType, ErrInvalidConfig)
	}
	return nil
}

// minSegmentBytes is Kafka's lower bound for segment.bytes (LOG_OVERHEAD + 2).
const minSegmentBytes = 14

// maxSegmentBytes caps a segment because .index positions are int32.
const maxSegmentBytes = math.MaxInt32

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c Config) nowMs() int64 { return c.now().UnixMilli() }

func (c Config) logAppendTime() bool { return c.MessageTimestampType == TimestampLogAppendTime }

// segmentLimit is segment.bytes clamped to what an int32 position can address.
func (c Config) segmentLimit() int64 { return min(c.SegmentBytes, maxSegmentBytes) }
