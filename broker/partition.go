package broker

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/producerstate"
)

// topic is a topic's state on this broker. name, id and internal never
// change; partitions and configs are replaced under Broker.mu.
type topic struct {
	name       string
	id         TopicID
	internal   bool
	configs    map[string]string // overrides only
	partitions []*partition
	metrics    *topicMetrics // nil with telemetry off
}

// partition is one partition led by this broker. The log serialises its own
// appends; appendMu additionally keeps the idempotence check, the append and
// the producer state update of one produce request atomic per partition.
type partition struct {
	topic    string
	index    int32
	logDir   string
	log      *klog.Log
	appendMu sync.Mutex
	// producers is guarded by appendMu.
	producers *producerstate.Partition

	waitMu  sync.Mutex
	waiters map[chan struct{}]struct{}
}

func newPartition(topicName string, index int32, logDir string, l *klog.Log) (*partition, error) {
	p := &partition{topic: topicName, index: index, logDir: logDir, log: l, waiters: map[chan struct{}]struct{}{}}
	if err := p.loadProducerState(); err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", topicName, index, err)
	}
	return p, nil
}

// loadProducerState restores idempotent producer state: the snapshot taken
// at the last checkpoint or clean stop, then every batch the log holds past
// it. A snapshot ahead of the log (its tail was torn off by recovery) is cut
// back to the log end.
func (p *partition) loadProducerState() error {
	st, from, err := producerstate.LoadSnapshot(p.snapshotPath())
	if err != nil {
		// An unreadable snapshot only costs a longer replay.
		st, from = producerstate.NewPartition(), -1
	}
	leo := p.log.LogEndOffset()
	if from > leo {
		st.TruncateAfter(leo)
		from = leo
	}
	if start := p.log.LogStartOffset(); from < start {
		from = start
	}
	for from < leo {
		data, err := p.log.Read(from, 1<<20, leo, true)
		if err != nil {
			return fmt.Errorf("replay producer state from offset %d: %w", from, err)
		}
		if len(data) == 0 {
			break
		}
		// Stored batches, possibly compacted: not a produce payload.
		batches, err := klog.SplitStored(data)
		if err != nil {
			return fmt.Errorf("replay producer state from offset %d: %w", from, err)
		}
		for _, b := range batches {
			st.Update(incoming(b), b.BaseOffset, b.LastOffset())
			from = b.LastOffset() + 1
		}
	}
	p.producers = st
	return nil
}

func (p *partition) snapshotPath() string {
	return filepath.Join(p.log.Dir(), producerstate.SnapshotFile)
}

// writeProducerSnapshot records the producer state as of the log end, so
// the next start replays only what follows.
func (p *partition) writeProducerSnapshot() error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	err := p.producers.WriteSnapshot(p.snapshotPath(), p.log.LogEndOffset())
	if errors.Is(err, klog.ErrClosed) {
		return nil
	}
	return err
}

func incoming(b klog.Batch) producerstate.Incoming {
	return producerstate.Incoming{
		ProducerID: b.ProducerID, Epoch: b.ProducerEpoch, FirstSeq: b.BaseSequence,
		NumRecords: b.LastOffsetDelta + 1, MaxTimestamp: b.MaxTimestamp,
	}
}

// appendResult is the outcome of appendBatches.
type appendResult struct {
	klog.AppendResult
	duplicate bool
}

// appendBatches appends one produce payload, enforcing idempotence: a batch
// from an idempotent producer that repeats one of its last five batches is
// acknowledged with the original offsets and not written again.
func (p *partition) appendBatches(batches []klog.Batch) (appendResult, error) {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	idempotent := false
	for _, b := range batches {
		if b.ProducerID >= 0 {
			idempotent = true
		}
	}
	if idempotent {
		// Kafka accepts exactly one batch per partition from idempotent
		// producers, which is what makes "the batch" a duplicate or not.
		if len(batches) != 1 {
			return appendResult{}, fmt.Errorf("%w: idempotent produce must carry exactly one batch per partition, got %d", errInvalidRecord, len(batches))
		}
		dup, err := p.producers.Check(incoming(batches[0]))
		if err != nil {
			return appendResult{}, err
		}
		if dup != nil {
			return appendResult{duplicate: true, AppendResult: klog.AppendResult{
				FirstOffset: dup.FirstOffset, LastOffset: dup.LastOffset, LogAppendTime: -1,
				LogStartOffset: p.log.LogStartOffset(),
			}}, nil
		}
	}
	res, err := p.log.Append(batches)
	if err != nil {
		return appendResult{}, err
	}
	if idempotent {
		p.producers.Update(incoming(batches[0]), res.FirstOffset, res.LastOffset)
	}
	return appendResult{AppendResult: res}, nil
}

// highWatermark is the offset below which records are visible to
// consumers. With one replica per partition every appended record is
// committed, so it is the log end offset; replication will lower it to the
// ISR's minimum.
func (p *partition) highWatermark() int64 { return p.log.LogEndOffset() }

// watch registers ch to be signalled (non-blocking) on the next append.
func (p *partition) watch(ch chan struct{}) {
	p.waitMu.Lock()
	p.waiters[ch] = struct{}{}
	p.waitMu.Unlock()
}

func (p *partition) unwatch(ch chan struct{}) {
	p.waitMu.Lock()
	delete(p.waiters, ch)
	p.waitMu.Unlock()
}

// notifyAppend wakes parked fetches.
func (p *partition) notifyAppend() {
	p.waitMu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}
