package tracing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NoRecordError says there is no record at a position (the topic or
// partition does not exist, or the offset is outside the partition's log).
type NoRecordError struct {
	Topic      string
	Partition  int32
	Offset     int64
	Start, End int64 // the partition's log start and end offsets; -1 when unknown
	Why        string
}

func (e *NoRecordError) Error() string {
	if e.Start >= 0 {
		return fmt.Sprintf("no record at %s[%d]@%d: %s (the partition holds offsets %d to %d)", e.Topic, e.Partition, e.Offset, e.Why, e.Start, e.End-1)
	}
	return fmt.Sprintf("no record at %s[%d]@%d: %s", e.Topic, e.Partition, e.Offset, e.Why)
}

// FetchRecord reads the one record at topic/partition/offset from Kafka, to
// tell "no trace events for an existing record" from "no such record". An
// offset inside the log that holds no record (a compacted-away key or a
// transaction marker) is a NoRecordError as well.
func FetchRecord(ctx context.Context, brokers []string, topic string, partition int32, offset int64) (*kgo.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	nf := &NoRecordError{Topic: topic, Partition: partition, Offset: offset, Start: -1, End: -1}
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer adm.Close()
	ac := kadm.NewClient(adm)
	starts, err := ac.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	ends, err := ac.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	so, ok := starts.Lookup(topic, partition)
	eo, ok2 := ends.Lookup(topic, partition)
	switch {
	case !ok || !ok2:
		nf.Why = "no such topic or partition"
		return nil, nf
	case so.Err != nil:
		if errors.Is(so.Err, context.DeadlineExceeded) {
			return nil, so.Err
		}
		nf.Why = so.Err.Error()
		return nil, nf
	case eo.Err != nil:
		nf.Why = eo.Err.Error()
		return nil, nf
	}
	nf.Start, nf.End = so.Offset, eo.Offset
	if offset < so.Offset || offset >= eo.Offset {
		nf.Why = "offset outside the log"
		return nil, nf
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}),
		kgo.FetchMaxPartitionBytes(1<<20))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollRecords(ctx, 1)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s[%d]@%d: %w", topic, partition, offset, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("read %s[%d]@%d: %w", topic, partition, offset, ferr)
		}
		for _, r := range fs.Records() {
			if r.Offset == offset {
				return r, nil
			}
			if r.Offset > offset {
				nf.Why = "the offset holds no record (compacted, or a control record)"
				return nil, nf
			}
		}
	}
}
