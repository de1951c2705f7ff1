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
