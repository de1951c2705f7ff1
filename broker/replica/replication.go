package replica

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	klog "github.com/kobs-dev/kobs/broker/log"
)

// This file is the leader's half of replication (book ch. 8.1): follower
// progress from their fetches, the high watermark as the ISR's minimum log
// end offset, ISR shrink and expand through AlterPartition, and produce
// requests waiting for the high watermark (acks=all, Kafka's delayed
// produce).

// follower is the leader's view of one follower (Kafka's Replica).
type follower struct {
	leo                int64 // -1 until its first fetch in this epoch
	lastCaughtUp       time.Time
	lastFetch          time.Time
	lastFetchLeaderLEO int64
}

// commitWaiter is one acks=all produce (or coordinator append) waiting for
// the high watermark to pass offset.
type commitWaiter struct {
	offset int64
	done   func(code int16)
	timer  *time.Timer
	fired  bool // guarded by rmu
}

// HighWatermark is the offset below which records are committed (on every
// ISR member) and visible to consumers.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// effectiveISRLocked is Kafka's "maximal ISR": the image's ISR plus a
// replica whose addition is in flight, so the high watermark never passes
// a replica that may be in the ISR by the time it is used.
func (p *Partition) effectiveISRLocked(st *State) []int32 {
	if p.alterPending && len(p.alterPendingISR) > len(st.ISR) {
		return p.alterPendingISR
	}
	return st.ISR
}

// maybeAdvanceHW moves the leader's high watermark to the smallest log end
// offset in the ISR and completes the waiters it passed; it wakes parked
// fetches when it moved (consumers read below it).
func (p *Partition) maybeAdvanceHW() {
	st := p.State()
	p.rmu.Lock()
	if !p.leading {
		p.rmu.Unlock()
		return
	}
	newHW := p.log.LogEndOffset()
	for _, id := range p.effectiveISRLocked(st) {
		if id == st.Self {
			continue
		}
		f := p.followers[id]
		if f == nil || f.leo < 0 {
			newHW = -1
			break
		}
		newHW = min(newHW, f.leo)
	}
	moved := false
	if newHW > p.hw.Load() {
		p.hw.Store(newHW)
		moved = true
	}
	done := p.takeWaitersLocked(st)
	p.rmu.Unlock()
	for _, d := range done {
		d()
	}
	if moved {
		p.NotifyAppend()
	}
}

// takeWaitersLocked removes the waiters the high watermark has passed and
// returns their completions, to run after rmu is released. Kafka's
// DelayedProduce: committed, but with fewer in-sync replicas than
// min.insync.replicas, is NOT_ENOUGH_REPLICAS_AFTER_APPEND.
func (p *Partition) takeWaitersLocked(st *State) []func() {
	hw := p.hw.Load()
	var out []func()
	kept := p.commitWaiters[:0]
	for _, w := range p.commitWaiters {
		if w.offset > hw {
			kept = append(kept, w)
			continue
		}
		w.fired = true
		if w.timer != nil {
			w.timer.Stop()
		}
		code := int16(0)
		if len(p.effectiveISRLocked(st)) < st.MinISR {
			code = kerr.NotEnoughReplicasAfterAppend.Code
		}
		out = append(out, func() { w.done(code) })
	}
	clear(p.commitWaiters[len(kept):])
	p.commitWaiters = kept
	return out
}

// failWaitersLocked completes every waiter with code (leadership lost).
func (p *Partition) failWaitersLocked(code int16) []func() {
	var out []func()
	for _, w := range p.commitWaiters {
		w.fired = true
		if w.timer != nil {
			w.timer.Stop()
		}
		out = append(out, func() { w.done(code) })
	}
	p.commitWaiters = nil
	return out
}

// WaitCommitted calls done once the high watermark reaches offset (0, or
// NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below
// min.insync.replicas meanwhile), this broker stops leading
// (NOT_LEADER_OR_FOLLOWER), or timeout passes (REQUEST_TIMED_OUT). done
// runs on any goroutine, possibly before WaitCommitted returns, never
// under a partition lock.
func (p *Partition) WaitCommitted(offset int64, timeout time.Duration, done func(code int16)) {
	w := &commitWaiter{offset: offset, done: done}
	p.rmu.Lock()
	if !p.leading {
		p.rmu.Unlock()
		done(kerr.NotLeaderForPartition.Code)
		return
	}
	p.commitWaiters = append(p.commitWaiters, w)
	if timeout > 0 {
		w.timer = time.AfterFunc(timeout, func() {
			p.rmu.Lock()
			if w.fired {
				p.rmu.Unlock()
				return
			}
			w.fired = true
			p.commitWaiters = slices.DeleteFunc(p.commitWaiters, func(o *commitWaiter) bool { return o == w })
			p.rmu.Unlock()
			done(kerr.RequestTimedOut.Code)
		})
	}
	p.rmu.Unlock()
	// The high watermark may already be there (one replica, or a retry).
	p.maybeAdvanceHW()
}

// UpdateFollower records a follower's fetch at fetchOffset (its log end
// offset) as Kafka's Replica.updateFetchState does, expands the ISR when
// an out-of-sync follower has caught up, and advances the high watermark.
func (p *Partition) UpdateFollower(id int32, fetchOffset int64, now time.Time) {
	st := p.State()
	leo := p.log.LogEndOffset()
	p.rmu.Lock()
	if !p.leading {
		p.rmu.Unlock()
		return
	}
	f := p.followers[id]
	if f == nil {
		f = &follower{leo: -1}
		p.followers[id] = f
	}
	switch {
	case fetchOffset >= leo:
		f.lastCaughtUp = now
	case fetchOffset >= f.lastFetchLeaderLEO && f.lastFetch.After(f.lastCaughtUp):
		f.lastCaughtUp = f.lastFetch
	}
	f.leo = fetchOffset
	f.lastFetch, f.lastFetchLeaderLEO = now, leo
	var expand []int32
	if !p.alterPending && !p.alterBackoffLocked(st, now) && !st.InISR(id) && slices.Contains(st.Replicas, id) &&
		fetchOffset >= p.hw.Load() && fetchOffset >= p.epochStart && now.Sub(f.lastCaughtUp) <= p.m.cfg.LagTimeMax &&
		(p.m.cfg.IsrEligible == nil || p.m.cfg.IsrEligible(id)) {
		// Kafka's isFollowerInSync: caught up to the high watermark and
		// into this leader's epoch; and eligible (not fenced).
		expand = append(slices.Clone(st.ISR), id)
		p.alterPending, p.alterPendingISR = true, expand
	}
	p.rmu.Unlock()
	if expand != nil {
		p.m.alterISR(p, st, expand, true)
	}
	p.maybeAdvanceHW()
}

// maybeShrinkISR drops followers that have not caught up within
// replica.lag.time.max.ms (Kafka's getOutOfSyncReplicas), through
// AlterPartition.
func (p *Partition) maybeShrinkISR(now time.Time) {
	st := p.State()
	p.rmu.Lock()
	if !p.leading || p.alterPending || !st.IsLeader() || p.alterBackoffLocked(st, now) {
		p.rmu.Unlock()
		return
	}
	var keep []int32
	for _, id := range st.ISR {
		if id == st.Self {
			keep = append(keep, id)
			continue
		}
		f := p.followers[id]
		if f != nil && now.Sub(f.lastCaughtUp) <= p.m.cfg.LagTimeMax {
			keep = append(keep, id)
		}
	}
	if len(keep) == len(st.ISR) {
		p.rmu.Unlock()
		return
	}
	// While the shrink is in flight the old ISR still bounds the high
	// watermark (it is the larger set).
	p.alterPending, p.alterPendingISR = true, nil
	p.rmu.Unlock()
	p.m.log.Info("shrinking ISR: followers have not caught up within replica.lag.time.max.ms",
		"topic", p.Topic, "partition", p.Index, "isr", st.ISR, "new_isr", keep, "lag_time_max", p.m.cfg.LagTimeMax)
	p.m.alterISR(p, st, keep, false)
}

// alterBackoffLocked: an AlterPartition for this partition epoch failed
// less than replica.lag.time.max.ms ago.
func (p *Partition) alterBackoffLocked(st *State, now time.Time) bool {
	return st.PartitionEpoch == p.alterFailedEpoch && now.Sub(p.alterFailedAt) < p.m.cfg.LagTimeMax
}

// alterDone ends an AlterPartition round trip; failedEpoch is the
// partition epoch it was refused for, -1 when it succeeded.
func (p *Partition) alterDone(failedEpoch int32) {
	p.rmu.Lock()
	p.alterPending, p.alterPendingISR = false, nil
	if failedEpoch >= 0 {
		p.alterFailedEpoch, p.alterFailedAt = failedEpoch, time.Now()
	}
	p.rmu.Unlock()
	p.maybeAdvanceHW() // a shrink may let it move
}

// becomeLeader starts (or continues) leading with st: Kafka's
// Partition.makeLeader. A new epoch gets an entry in the leader epoch
// cache at the current log end, followers start unknown but caught up as
// of now (so the ISR does not shrink before they had a chance to fetch),
// and the high watermark is never moved back.
func (p *Partition) becomeLeader(st *State, now time.Time) {
	p.appendMu.Lock() // no append between reading the LEO and assigning the epoch
	leo := p.log.LogEndOffset()
	if _, err := p.epochs.assign(st.LeaderEpoch, leo); err != nil {
		p.m.log.Error("leader epoch cache", "topic", p.Topic, "partition", p.Index, "err", err)
	}
	p.rmu.Lock()
	newEpoch := !p.leading || p.leaderEpoch != st.LeaderEpoch
	if newEpoch {
		p.leading, p.leaderEpoch, p.epochStart = true, st.LeaderEpoch, leo
		fs := map[int32]*follower{}
		for _, id := range st.Replicas {
			if id != st.Self {
				fs[id] = &follower{leo: -1, lastCaughtUp: now, lastFetchLeaderLEO: -1}
			}
		}
		p.followers = fs
		p.alterPending, p.alterPendingISR = false, nil
		if p.hw.Load() > leo {
			p.hw.Store(leo)
		}
	} else {
		for _, id := range st.Replicas {
			if _, ok := p.followers[id]; !ok && id != st.Self {
				p.followers[id] = &follower{leo: -1, lastCaughtUp: now, lastFetchLeaderLEO: -1}
			}
		}
	}
	p.rmu.Unlock()
	p.appendMu.Unlock()
	p.truncate.Store(false)
	p.maybeAdvanceHW()
}

// becomeFollower stops leading: pending acks=all produces fail with
// NOT_LEADER_OR_FOLLOWER (a deposed leader never acknowledges), and the
// log must be truncated against the new leader before fetching.
func (p *Partition) becomeFollower(st *State) {
	p.rmu.Lock()
	changed := p.leading || p.leaderEpoch != st.LeaderEpoch
	p.leading, p.leaderEpoch = false, st.LeaderEpoch
	p.followers = nil
	p.alterPending, p.alterPendingISR = false, nil
	done := p.failWaitersLocked(kerr.NotLeaderForPartition.Code)
	p.rmu.Unlock()
	for _, d := range done {
		d()
	}
	if changed {
		p.truncate.Store(true)
	}
	p.NotifyAppend() // parked consumer fetches answer NOT_LEADER_OR_FOLLOWER
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <=
// epoch this log knows and the offset where it ended, (-1, -1) if none.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	return p.epochs.endOffsetFor(epoch, p.log.LogEndOffset())
}

// LatestEpoch is the newest leader epoch in this log, -1 if none.
func (p *Partition) LatestEpoch() int32 { return p.epochs.latest() }

// appendAsFollower appends batches fetched from the leader, keeping their
// offsets and leader epochs, and replays them into the producer state so
// a follower that becomes leader still recognises retried batches.
func (p *Partition) appendAsFollower(batches []klog.Batch) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if len(batches) == 0 {
		return nil
	}
	if _, err := p.log.AppendAsFollower(batches); err != nil {
		return err
	}
	for _, b := range batches {
		if b.PartitionLeaderEpoch >= 0 {
			if _, err := p.epochs.assign(b.PartitionLeaderEpoch, b.BaseOffset); err != nil {
				return err
			}
		}
		if b.ProducerID >= 0 {
			p.producers.Update(incoming(b), b.BaseOffset, b.LastOffset())
		}
	}
	return nil
}

// truncateTo cuts the log back to offset (a follower's divergent tail),
// with the epoch cache and producer state, and caps the high watermark.
func (p *Partition) truncateTo(offset int64) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if offset >= p.log.LogEndOffset() {
		return nil
	}
	if err := p.log.TruncateTo(offset); err != nil {
		return err
	}
	if err := p.epochs.truncateFromEnd(offset); err != nil {
		return err
	}
	p.producers.TruncateAfter(offset)
	if p.hw.Load() > offset {
		p.hw.Store(offset)
	}
	return nil
}

// truncateFullyAndStartAt empties the log and restarts it at offset (the
// leader's log start moved past this follower's end).
func (p *Partition) truncateFullyAndStartAt(offset int64) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if err := p.log.TruncateFullyAndStartAt(offset); err != nil {
		return err
	}
	if err := p.epochs.truncateFromStart(offset); err != nil {
		return err
	}
	p.producers.TruncateAfter(-1)
	p.hw.Store(offset)
	return nil
}

// followerHW sets a follower's high watermark from the leader's, never
// above its own log end.
func (p *Partition) followerHW(leaderHW int64) {
	hw := min(leaderHW, p.log.LogEndOffset())
	if hw > p.hw.Load() {
		p.hw.Store(hw)
		p.NotifyAppend()
	}
}

func (p *Partition) tp() TopicPartition { return TopicPartition{Topic: p.Topic, Partition: p.Index} }
