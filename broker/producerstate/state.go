// Package producerstate owns what the broker remembers about idempotent
// producers (book ch. 7.4): the producer id allocator, and per partition the
// epoch and the last five batches of each producer, which is what lets a
// retried batch be recognised and acknowledged with its original offsets,
// and a gap in sequence numbers be refused.
//
// The rules follow Kafka's ProducerStateManager / ProducerAppendInfo:
//   - a batch with producer id -1 is not idempotent and is not checked;
//   - an epoch below the producer's current one is INVALID_PRODUCER_EPOCH;
//   - a new epoch must start at sequence 0 (unless the producer is unknown,
//     e.g. its records were all deleted by retention, which accepts any
//     sequence, as Kafka does);
//   - within an epoch the first sequence must follow the last one (wrapping
//     after MaxInt32), else OUT_OF_ORDER_SEQUENCE_NUMBER;
//   - a batch whose first and last sequence equal one of the last five
//     batches of the same epoch is a duplicate.
//
// A Partition is not safe for concurrent use: the broker calls it under the
// partition's append lock.
package producerstate

import (
	"errors"
	"fmt"
	"math"
)

// MaxBatches is how many batches per producer Kafka keeps for duplicate
// detection (NUM_BATCHES_TO_RETAIN), matching the client's limit of five
// in-flight requests per connection for idempotence.
const MaxBatches = 5

// Errors returned by Check; the broker maps them to Kafka codes.
var (
	ErrOutOfOrderSequence = errors.New("out of order sequence number")
	ErrInvalidEpoch       = errors.New("invalid producer epoch")
)

// BatchMeta is what is remembered of one appended batch.
type BatchMeta struct {
	FirstSeq    int32 `json:"first_seq"`
	LastSeq     int32 `json:"last_seq"`
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
	Timestamp   int64 `json:"timestamp"` // the batch's max timestamp
}

// Producer is one producer's state on a partition.
type Producer struct {
	ID      int64       `json:"id"`
	Epoch   int16       `json:"epoch"`
	Batches []BatchMeta `json:"batches"` // oldest first, at most MaxBatches
}

// LastSeq is the last sequence appended (-1 if none).
func (p *Producer) LastSeq() int32 {
	if len(p.Batches) == 0 {
		return -1
	}
	return p.Batches[len(p.Batches)-1].LastSeq
}

// LastTimestamp is the max timestamp of the last batch (-1 if none).
func (p *Producer) LastTimestamp() int64 {
	if len(p.Batches) == 0 {
		return -1
	}
	return p.Batches[len(p.Batches)-1].Timestamp
}

// Incoming describes a batch about to be appended.
type Incoming struct {
	ProducerID   int64
	Epoch        int16
	FirstSeq     int32
	NumRecords   int32 // lastOffsetDelta+1
	MaxTimestamp int64
}

func (in Incoming) lastSeq() int32 {
	// Sequences wrap at MaxInt32 like Kafka's DefaultRecordBatch.incrementSequence.
	last := int64(in.FirstSeq) + int64(in.NumRecords) - 1
	if last > math.MaxInt32 {
		last -= math.MaxInt32 + 1
	}
	return int32(last)
}

// Partition is the producer state of one partition.
type Partition struct {
	producers map[int64]*Producer
}

// NewPartition returns an empty state.
func NewPartition() *Partition { return &Partition{producers: map[int64]*Producer{}} }

// Check validates an incoming batch against the state. It returns the
// original batch if in is a duplicate (then nothing should be appended),
// or an error wrapping ErrOutOfOrderSequence or ErrInvalidEpoch.
func (s *Partition) Check(in Incoming) (*BatchMeta, error) {
	if in.ProducerID < 0 {
		return nil, nil
	}
	p := s.producers[in.ProducerID]
	if p == nil {
		return nil, nil // unknown producer: any sequence (see package doc)
	}
	if in.Epoch < p.Epoch {
		return nil, fmt.Errorf("%w: producer %d epoch %d is older than current epoch %d", ErrInvalidEpoch, in.ProducerID, in.Epoch, p.Epoch)
	}
	if in.Epoch == p.Epoch {
		last := in.lastSeq()
		for i := range p.Batches {
			if b := &p.Batches[i]; b.FirstSeq == in.FirstSeq && b.LastSeq == last {
				dup := *b
				return &dup, nil
			}
		}
		if cur := p.LastSeq(); cur >= 0 && !inSequence(cur, in.FirstSeq) {
			return nil, fmt.Errorf("%w: producer %d epoch %d: expected sequence %d, got %d", ErrOutOfOrderSequence, in.ProducerID, in.Epoch, next(cur), in.FirstSeq)
		}
		return nil, nil
	}
	if in.FirstSeq != 0 {
		return nil, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d", ErrOutOfOrderSequence, in.ProducerID, in.Epoch, in.FirstSeq)
	}
	return nil, nil
}

func next(seq int32) int32 {
	if seq == math.MaxInt32 {
		return 0
	}
	return seq + 1
}

func inSequence(last, first int32) bool { return first == next(last) }

// Update records an appended batch at [firstOffset, lastOffset]. Update is
// also how the state is rebuilt from the log, batch by batch.
func (s *Partition) Update(in Incoming, firstOffset, lastOffset int64) {
	if in.ProducerID < 0 {
		return
	}
	p := s.producers[in.ProducerID]
	if p == nil {
		p = &Producer{ID: in.ProducerID, Epoch: in.Epoch}
		s.producers[in.ProducerID] = p
	}
	if in.Epoch != p.Epoch {
		p.Epoch, p.Batches = in.Epoch, p.Batches[:0]
	}
	p.Batches = append(p.Batches, BatchMeta{
		FirstSeq: in.FirstSeq, LastSeq: in.lastSeq(),
		FirstOffset: firstOffset, LastOffset: lastOffset, Timestamp: in.MaxTimestamp,
	})
	if len(p.Batches) > MaxBatches {
		p.Batches = append(p.Batches[:0], p.Batches[len(p.Batches)-MaxBatches:]...)
	}
}

// Producers returns a copy of every producer's state (DescribeProducers).
func (s *Partition) Producers() []Producer {
	out := make([]Producer, 0, len(s.producers))
	for _, p := range s.producers {
		cp := *p
		cp.Batches = append([]BatchMeta(nil), p.Batches...)
		out = append(out, cp)
	}
	return out
}

// ExpireBefore forgets producers whose last batch is older than ts (ms),
// Kafka's producer.id.expiration.ms.
func (s *Partition) ExpireBefore(ts int64) int {
	n := 0
	for id, p := range s.producers {
		if p.LastTimestamp() < ts {
			delete(s.producers, id)
			n++
		}
	}
	return n
}
