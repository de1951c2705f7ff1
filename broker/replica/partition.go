package replica

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/broker/producerstate"
)

// State is a partition's replica assignment as the current metadata image
// has it, plus the topic's min.insync.replicas. It is replaced as a whole.
type State struct {
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	Replicas       []int32
	ISR            []int32
	MinISR         int
	// Self is this broker's id, so the predicates below need nothing else.
	Self int32
}

// IsLeader reports whether this broker leads the partition.
func (s *State) IsLeader() bool { return s.Leader == s.Self && s.Leader != metadata.NoLeader }

// UnderReplicated is Kafka's Partition.isUnderReplicated: reported by the
// leader only.
func (s *State) UnderReplicated() bool { return s.IsLeader() && len(s.ISR) < len(s.Replicas) }

// UnderMinISR is reported by the leader only, as in Kafka.
func (s *State) UnderMinISR() bool { return s.IsLeader() && len(s.ISR) < s.MinISR }

// AtMinISR is reported by the leader only, as in Kafka.
func (s *State) AtMinISR() bool { return s.IsLeader() && len(s.ISR) == s.MinISR }

// InISR reports whether broker id is in the ISR.
func (s *State) InISR(id int32) bool { return slices.Contains(s.ISR, id) }

// Partition is one replica held by this broker.
type Partition struct {
	Topic  string
	Index  int32
	LogDir string
	// TopicID is the topic id in partition.metadata (zero if unknown).
	TopicID metadata.TopicID
	log     *klog.Log

	appendMu sync.Mutex
	// producers is guarded by appendMu.
	producers *producerstate.Partition

	state atomic.Pointer[State]

	waitMu  sync.Mutex
	waiters map[chan struct{}]struct{}

	// Replication (replication.go, fetcher.go).
	m      *Manager
	epochs *epochCache
	hw     atomic.Int64
	// fetchLag is, on a follower, the leader's high watermark minus this
	// log's end offset at the last fetch (ReplicaFetcherManager MaxLag).
	fetchLag atomic.Int64
	// truncate is set on a follower until it has truncated its log to
	// where it agrees with the current leader (OffsetForLeaderEpoch).
	truncate atomic.Bool

	rmu sync.Mutex // replication state below; a leaf, never held across I/O
	// leaderEpoch is the epoch this broker last became leader or
	// follower in; leading says which.
	leaderEpoch     int32
	leading         bool
	epochStart      int64 // this leader's LEO when it took the epoch
	followers       map[int32]*follower
	commitWaiters   []*commitWaiter
	alterPending    bool
	alterPendingISR []int32
	// alterFailedEpoch/At: the partition epoch an AlterPartition was
	// refused or lost for, and when; the same change is not sent again for
	// that epoch until replica.lag.time.max.ms passed (a fenced leader
	// waits for the image that deposes it instead of retrying in a loop).
	alterFailedEpoch int32
	alterFailedAt    time.Time

	strayLogged bool // only touched by the image listener
}

func newPartition(topic string, index int32, logDir string, l *klog.Log) (*Partition, error) {
	p := &Partition{Topic: topic, Index: index, LogDir: logDir, log: l, waiters: map[chan struct{}]struct{}{},
		leaderEpoch: -1, alterFailedEpoch: -1}
	p.state.Store(&State{Leader: metadata.NoLeader, Self: -1})
	if err := p.loadProducerState(); err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", topic, index, err)
	}
	ec, err := loadEpochCache(l.Dir())
	if err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", topic, index, err)
	}
	p.epochs = ec
	return p, nil
}

// Log is the partition's log.
func (p *Partition) Log() *klog.Log { return p.log }

// State is the partition's assignment as of the last image (never nil).
func (p *Partition) State() *State { return p.state.Load() }

func (p *Partition) setState(s *State) { p.state.Store(s) }

// loadProducerState restores idempotent producer state: the snapshot taken
// at the last checkpoint or clean stop, then every batch the log holds past
// it. A snapshot ahead of the log (its tail was torn off by recovery) is cut
// back to the log end.
func (p *Partition) loadProducerState() error {
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
	if err := replayProducers(p.log, st, from, leo); err != nil {
		return err
	}
	p.producers = st
	return nil
}

// replayProducers applies the batches of [from, to) to st.
func replayProducers(l *klog.Log, st *producerstate.Partition, from, to int64) error {
	for from < to {
		data, err := l.Read(from, 1<<20, to, true)
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
	return nil
}

func (p *Partition) snapshotPath() string {
	return filepath.Join(p.log.Dir(), producerstate.SnapshotFile)
}

// WriteProducerSnapshot records the producer state as of the log end, so
// the next start replays only what follows.
func (p *Partition) WriteProducerSnapshot() error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	err := p.producers.WriteSnapshot(p.snapshotPath(), p.log.LogEndOffset())
	if errors.Is(err, klog.ErrClosed) {
		return nil
	}
	return err
}

// ExpireProducers forgets producers whose last batch is older than before
// (ms) and returns how many.
func (p *Partition) ExpireProducers(before int64) int {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.producers.ExpireBefore(before)
}

// Producers copies the partition's producer states.
func (p *Partition) Producers() []producerstate.Producer {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.producers.Producers()
}

func incoming(b klog.Batch) producerstate.Incoming {
	return producerstate.Incoming{
		ProducerID: b.ProducerID, Epoch: b.ProducerEpoch, FirstSeq: b.BaseSequence,
		NumRecords: b.LastOffsetDelta + 1, MaxTimestamp: b.MaxTimestamp,
	}
}

// AppendResult is the outcome of Append.
type AppendResult struct {
	klog.AppendResult
	// Duplicate is set when an idempotent producer retried a batch that is
	// already in the log: the offsets are the original ones.
	Duplicate bool
}

// ErrInvalidRecord marks a produce payload refused before the append.
var ErrInvalidRecord = errors.New("invalid record")

// ErrNotLeader: this broker does not lead the partition (any more).
var ErrNotLeader = errors.New("not the leader of the partition")

// Append appends one produce payload on the leader, enforcing
// idempotence: a batch from an idempotent producer that repeats one of its
// last five batches is acknowledged with the original offsets and not
// written again. The high watermark follows at once when the ISR is this
// broker alone; otherwise followers' fetches move it (WaitCommitted).
func (p *Partition) Append(batches []klog.Batch) (AppendResult, error) {
	res, err := p.appendLeader(batches)
	if err == nil && !res.Duplicate {
		p.maybeAdvanceHW()
	}
	return res, err
}

func (p *Partition) appendLeader(batches []klog.Batch) (AppendResult, error) {
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
			return AppendResult{}, fmt.Errorf("%w: idempotent produce must carry exactly one batch per partition, got %d", ErrInvalidRecord, len(batches))
		}
		dup, err := p.producers.Check(incoming(batches[0]))
		if err != nil {
			return AppendResult{}, err
		}
		if dup != nil {
			return AppendResult{Duplicate: true, AppendResult: klog.AppendResult{
				FirstOffset: dup.FirstOffset, LastOffset: dup.LastOffset, LogAppendTime: -1,
				LogStartOffset: p.log.LogStartOffset(),
			}}, nil
		}
	}
	// Every batch carries the epoch of the leader that wrote it; that is
	// what lets followers find where their logs diverge.
	p.rmu.Lock()
	epoch, leading := p.leaderEpoch, p.leading
	p.rmu.Unlock()
	if !leading {
		return AppendResult{}, ErrNotLeader
	}
	for i := range batches {
		batches[i].PartitionLeaderEpoch = epoch
	}
	res, err := p.log.Append(batches)
	if err != nil {
		return AppendResult{}, err
	}
	if idempotent {
		p.producers.Update(incoming(batches[0]), res.FirstOffset, res.LastOffset)
	}
	return AppendResult{AppendResult: res}, nil
}

// Watch registers ch to be signalled (non-blocking) on the next append.
func (p *Partition) Watch(ch chan struct{}) {
	p.waitMu.Lock()
	p.waiters[ch] = struct{}{}
	p.waitMu.Unlock()
}

// Unwatch removes ch.
func (p *Partition) Unwatch(ch chan struct{}) {
	p.waitMu.Lock()
	delete(p.waiters, ch)
	p.waitMu.Unlock()
}

// NotifyAppend wakes parked fetches.
func (p *Partition) NotifyAppend() {
	p.waitMu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}

func stateFor(self int32, mp *metadata.Partition, minISR int) *State {
	return &State{Leader: mp.Leader, LeaderEpoch: mp.LeaderEpoch, PartitionEpoch: mp.PartitionEpoch,
		Replicas: slices.Clone(mp.Replicas), ISR: slices.Clone(mp.ISR), MinISR: minISR, Self: self}
}
