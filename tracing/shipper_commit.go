package tracing

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// commitTracker knows, per trace-topic partition, which polled records
// still have events the store has not acknowledged, and so which offset may
// be committed: the offset of the oldest such record (everything before it
// is stored), or after the newest record when none is left. Acknowledgements
// come from the processor's workers in any order; the poll loop commits.
type commitTracker struct {
	mu    sync.Mutex
	parts map[topicPartition]*partitionTrack
}

type topicPartition struct {
	topic     string
	partition int32
}

// partitionTrack is one partition's records in flight, oldest first.
type partitionTrack struct {
	tp      topicPartition
	records []*pendingRecord
	// next is the offset up to which every event is stored (the commit
	// position), and committed the last one committed; -1 before any.
	next, committed kgo.EpochOffset
	gone            bool // revoked or lost: acknowledgements no longer count
}

// pendingRecord is a polled record whose events are in the processor.
type pendingRecord struct {
	part   *partitionTrack
	offset int64
	epoch  int32
	left   int // requests not yet acknowledged, plus one while the poll loop adds
}

// begin tracks a polled record, held until done is called once for the
// hold: a record whose events are still being added cannot be complete.
func (t *commitTracker) begin(r *kgo.Record) *pendingRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := topicPartition{r.Topic, r.Partition}
	pt := t.parts[tp]
	if pt == nil {
		if t.parts == nil {
			t.parts = map[topicPartition]*partitionTrack{}
		}
		pt = &partitionTrack{tp: tp, next: kgo.EpochOffset{Epoch: -1, Offset: -1}, committed: kgo.EpochOffset{Epoch: -1, Offset: -1}}
		t.parts[tp] = pt
	}
	rec := &pendingRecord{part: pt, offset: r.Offset, epoch: r.LeaderEpoch, left: 1}
	pt.records = append(pt.records, rec)
	return rec
}

// hold counts one more request of rec in flight.
func (t *commitTracker) hold(rec *pendingRecord) {
	t.mu.Lock()
	rec.left++
	t.mu.Unlock()
}

// done counts one request of rec acknowledged (stored, or refused for good
// and counted), or the end of begin's hold, and advances the partition's
// commit position past the records that are complete.
func (t *commitTracker) done(rec *pendingRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec.left--
	pt := rec.part
	if pt.gone {
		return
	}
	n := 0
	for _, r := range pt.records {
		if r.left > 0 {
			break
		}
		pt.next = kgo.EpochOffset{Epoch: r.epoch, Offset: r.offset + 1}
		n++
	}
	if n > 0 {
		clear(pt.records[:n])
		pt.records = pt.records[n:]
	}
}

// ready returns the commit positions that moved since the last commit, of
// the partitions in only (all when nil).
func (t *commitTracker) ready(only map[string][]int32) map[string]map[int32]kgo.EpochOffset {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out map[string]map[int32]kgo.EpochOffset
	add := func(pt *partitionTrack) {
		if pt.next.Offset <= pt.committed.Offset {
			return
		}
		if out == nil {
			out = map[string]map[int32]kgo.EpochOffset{}
		}
		if out[pt.tp.topic] == nil {
			out[pt.tp.topic] = map[int32]kgo.EpochOffset{}
		}
		out[pt.tp.topic][pt.tp.partition] = pt.next
	}
	if only == nil {
		for _, pt := range t.parts {
			add(pt)
		}
		return out
	}
	for topic, ps := range only {
		for _, p := range ps {
			if pt := t.parts[topicPartition{topic, p}]; pt != nil {
				add(pt)
			}
		}
	}
	return out
}

// committed records commit positions the group accepted.
func (t *commitTracker) committed(offsets map[string]map[int32]kgo.EpochOffset) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, ps := range offsets {
		for p, o := range ps {
			if pt := t.parts[topicPartition{topic, p}]; pt != nil && o.Offset > pt.committed.Offset {
				pt.committed = o
			}
		}
	}
}

// forget drops partitions this shipper no longer owns; acknowledgements
// of their records still in flight are ignored.
func (t *commitTracker) forget(parts map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			if pt := t.parts[tp]; pt != nil {
				pt.gone = true
				delete(t.parts, tp)
			}
		}
	}
}

func kerrOf(code int16) error { return kerr.ErrorForCode(code) }
