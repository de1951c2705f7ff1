package log

import "errors"

// Sentinel errors. They stay free of Kafka error codes on purpose: the wire
// layer maps them to kerr codes (CORRUPT_MESSAGE, UNSUPPORTED_VERSION,
// MESSAGE_TOO_LARGE, OFFSET_OUT_OF_RANGE, ...) so this package has no protocol
// dependency. Callers test with errors.Is; returned errors wrap them with
// context.
var (
	// ErrCorruptMessage: a batch fails a structural or CRC check.
	ErrCorruptMessage = errors.New("corrupt record batch")
	// ErrUnsupportedMagic: a batch is not a v2 (magic 2) record batch.
	ErrUnsupportedMagic = errors.New("unsupported record batch magic")
	// ErrRecordTooLarge: a batch exceeds max.message.bytes.
	ErrRecordTooLarge = errors.New("record batch too large")
	// ErrBatchLargerThanSegment: a batch could never fit in a segment
	// (segment.bytes); Kafka answers RECORD_LIST_TOO_LARGE, not
	// MESSAGE_TOO_LARGE, because the batch itself may be within limits.
	ErrBatchLargerThanSegment = errors.New("record batch larger than a segment")
	// ErrOffsetOutOfRange: an offset lies outside [log start, log end].
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrClosed: the log was closed or deleted.
	ErrClosed = errors.New("log closed")
	// ErrInvalidConfig: a Config field is outside its allowed range.
	ErrInvalidConfig = errors.New("invalid log config")
)
