package log

import "time"

// The broker is written against these exact signatures in parallel; this
// file fails to compile if one drifts.
var (
	_ func() Config                                                      = DefaultConfig
	_ func([]byte, int32) ([]Batch, error)                               = ValidateBatches
	_ func(string, Config, OpenOptions) (*Log, error)                    = Open
	_ func(string) (map[TopicPartition]int64, error)                     = ReadCheckpoint
	_ func(string, map[TopicPartition]int64) error                       = WriteCheckpoint
	_ func(Batch) int8                                                   = Batch.Compression
	_ func(Batch) bool                                                   = Batch.IsTransactional
	_ func(Batch) bool                                                   = Batch.IsControl
	_ func(*Log, []Batch) (AppendResult, error)                          = (*Log).Append
	_ func(*Log, int64, int32, int64, bool) ([]byte, error)              = (*Log).Read
	_ func(*Log) int64                                                   = (*Log).LogStartOffset
	_ func(*Log) int64                                                   = (*Log).LogEndOffset
	_ func(*Log) int64                                                   = (*Log).RecoveryPoint
	_ func(*Log, int64) (offset, timestamp int64, found bool, err error) = (*Log).OffsetForTimestamp
	_ func(*Log) (offset, timestamp int64, found bool, err error)        = (*Log).MaxTimestamp
	_ func(*Log, int64) (int64, error)                                   = (*Log).DeleteRecordsBefore
	_ func(*Log) (int, error)                                            = (*Log).EnforceRetention
	_ func(*Log) error                                                   = (*Log).MaybeFlush
	_ func(*Log) error                                                   = (*Log).Flush
	_ func(*Log, Config)                                                 = (*Log).SetConfig
	_ func(*Log) Config                                                  = (*Log).Config
	_ func(*Log) int64                                                   = (*Log).Size
	_ func(*Log) int                                                     = (*Log).NumSegments
	_ func(*Log) string                                                  = (*Log).Dir
	_ func(*Log) error                                                   = (*Log).Close
	_ func(*Log) error                                                   = (*Log).Delete

	_ = Config{SegmentBytes: 0, SegmentMs: 0, SegmentIndexBytes: int32(0), IndexIntervalBytes: int32(0),
		RetentionMs: 0, RetentionBytes: 0, FlushMessages: 0, FlushMs: 0, MaxMessageBytes: int32(0),
		MessageTimestampType: "", Now: func() time.Time { return time.Time{} }}
	_ = Batch{Raw: nil, BaseOffset: 0, BatchLength: int32(0), PartitionLeaderEpoch: int32(0), Magic: int8(0),
		CRC: uint32(0), Attributes: int16(0), LastOffsetDelta: int32(0), FirstTimestamp: 0, MaxTimestamp: 0,
		ProducerID: 0, ProducerEpoch: int16(0), BaseSequence: int32(0), NumRecords: int32(0)}
	_ = AppendResult{FirstOffset: 0, LastOffset: 0, LogAppendTime: 0, LogStartOffset: 0}
	_ = OpenOptions{LogStartOffset: 0, RecoveryPoint: 0, Logger: nil}
	_ = TopicPartition{Topic: "", Partition: int32(0)}
	_ = []error{ErrCorruptMessage, ErrUnsupportedMagic, ErrRecordTooLarge, ErrOffsetOutOfRange, ErrClosed}
)
