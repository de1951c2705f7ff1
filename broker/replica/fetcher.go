package replica

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	klog "github.com/kobs-dev/kobs/broker/log"
)

// This file is the follower's half of replication: Kafka's
// ReplicaFetcherThread. Each fetcher owns the partitions one leader leads
// for this broker (num.replica.fetchers fetchers per leader, partitions
// spread by hash) and loops: truncate the partitions that need it with
// OffsetForLeaderEpoch, then Fetch (replica id set) from each partition's
// log end offset, append what comes back with the leader's offsets and
// epochs, and take the leader's high watermark.
//
// Transport: a franz-go client per fetcher with the leader as its only
// seed, sending raw kmsg requests to that broker (kgo.Broker.Request).
// franz-go handles connection set-up, ApiVersions negotiation and
// reconnects; the fetcher decides everything about what is asked.

type fetcherKey struct {
	leader int32
	addr   string
	n      int
}

type fetcher struct {
	m      *Manager
	key    fetcherKey
	cl     *kgo.Client
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// parts is guarded by Manager.fmu.
	parts map[TopicPartition]*Partition
	// held: partitions the leader answered with a partition error
	// (FENCED_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER, ...), left out of the
	// fetches until their leader epoch changes (a new image) or
	// replica.fetch.backoff.ms passed, as Kafka's AbstractFetcherThread
	// delays one partition instead of the whole fetcher. Only run's
	// goroutine uses it.
	held map[TopicPartition]hold
}

type hold struct {
	epoch int32 // the leader epoch the error was for
	until time.Time
	// wait is the length of this hold; a "leader behind" hold doubles it
	// on each repeat (see holdPartition).
	wait time.Duration
}

// leaderBehindHold is the first hold after an answer that says the leader
// has not applied the metadata this follower already has.
const leaderBehindHold = 20 * time.Millisecond

// fetchAssignment is a follower partition to hand to its leader's
// fetcher.
type fetchAssignment struct {
	p      *Partition
	leader int32
	addr   string
}

// assignFetchers hands follower partitions, all those one image makes
// followers, to their leaders' fetchers in one step, as Kafka's
// AbstractFetcherManager.addFetcherForPartitions adds a metadata delta's
// partitions to each fetcher thread under its partition map lock. A
// fetcher's round (snapshot) sees all of them or none: one handed over
// alone started its fetcher, whose first round could then long-poll
// (replica.fetch.wait.max.ms) without the partitions handed over after
// it, and those (an acks=all produce to them too) waited out that poll.
func (m *Manager) assignFetchers(as []fetchAssignment) {
	if len(as) == 0 {
		return
	}
	keys := make([]fetcherKey, len(as))
	for i, a := range as {
		h := fnv.New32a()
		fmt.Fprintf(h, "%s-%d", a.p.Topic, a.p.Index)
		keys[i] = fetcherKey{a.leader, a.addr, int(h.Sum32() % uint32(m.cfg.NumFetchers))}
	}
	m.fmu.Lock()
	defer m.fmu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	touched := map[*fetcher]bool{}
	var started []*fetcher
	for i, a := range as {
		p, key := a.p, keys[i]
		if cur := m.fetcherOf[p.tp()]; cur != nil {
			if cur.key == key {
				touched[cur] = true
				continue
			}
			m.dropLocked(cur, p)
		}
		f := m.fetchers[key]
		if f == nil {
			cl, err := kgo.NewClient(kgo.SeedBrokers(a.addr), kgo.ClientID(fmt.Sprintf("kobs-replica-fetcher-%d-%d", m.cfg.NodeID, a.leader)),
				kgo.DialTimeout(5*time.Second))
			if err != nil {
				m.log.Error("cannot create replica fetcher", "leader", a.leader, "addr", a.addr, "err", err)
				continue
			}
			f = &fetcher{m: m, key: key, cl: cl, wake: make(chan struct{}, 1), done: make(chan struct{}),
				parts: map[TopicPartition]*Partition{}, held: map[TopicPartition]hold{}}
			f.ctx, f.cancel = context.WithCancel(m.ctx)
			m.fetchers[key] = f
			started = append(started, f)
		}
		f.parts[p.tp()] = p
		m.fetcherOf[p.tp()] = f
		touched[f] = true
	}
	// Started once all its partitions are in; its first round waits for
	// the lock anyway, this only keeps that plain.
	for _, f := range started {
		go f.run()
		m.log.Info("started replica fetcher", "leader", f.key.leader, "addr", f.key.addr, "fetcher", f.key.n)
	}
	for f := range touched {
		f.kick()
	}
}

func (m *Manager) unassignFetcher(p *Partition) {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	if cur := m.fetcherOf[p.tp()]; cur != nil {
		m.dropLocked(cur, p)
	}
	p.fetchLag.Store(0)
}

// dropLocked removes p from f and stops f when it has nothing left.
func (m *Manager) dropLocked(f *fetcher, p *Partition) {
	delete(f.parts, p.tp())
	delete(m.fetcherOf, p.tp())
	if len(f.parts) == 0 {
		delete(m.fetchers, f.key)
		f.cancel()
		go func() {
			<-f.done
			f.cl.Close()
		}()
		m.log.Info("stopped replica fetcher", "leader", f.key.leader, "addr", f.key.addr, "fetcher", f.key.n)
	}
}

func (m *Manager) stopFetchers() {
	m.fmu.Lock()
	fs := make([]*fetcher, 0, len(m.fetchers))
	for _, f := range m.fetchers {
		fs = append(fs, f)
	}
	m.fetchers, m.fetcherOf = map[fetcherKey]*fetcher{}, map[TopicPartition]*fetcher{}
	m.fmu.Unlock()
	for _, f := range fs {
		f.cancel()
		<-f.done
		f.cl.Close()
	}
}

func (f *fetcher) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// snapshot copies the fetcher's partitions.
func (f *fetcher) snapshot() []*Partition {
	f.m.fmu.Lock()
	defer f.m.fmu.Unlock()
	out := make([]*Partition, 0, len(f.parts))
	for _, p := range f.parts {
		out = append(out, p)
	}
	return out
}

// owns reports whether p is still this fetcher's (a response for a
// partition that moved meanwhile is dropped).
func (f *fetcher) owns(p *Partition) bool {
	f.m.fmu.Lock()
	defer f.m.fmu.Unlock()
	return f.parts[p.tp()] == p
}

func (f *fetcher) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.ctx.Done():
	case <-t.C:
	}
}

func (f *fetcher) run() {
	defer close(f.done)
	var lastErr string
	for f.ctx.Err() == nil {
		parts := f.snapshot()
		if len(parts) == 0 {
			select {
			case <-f.wake:
			case <-f.ctx.Done():
			}
			continue
		}
		var trunc, fetch []*Partition
		var next time.Time // earliest end of a hold
		now := time.Now()
		for _, p := range parts {
			if h, ok := f.held[p.tp()]; ok {
				switch {
				case p.State().LeaderEpoch != h.epoch:
					delete(f.held, p.tp())
				case now.Before(h.until):
					if next.IsZero() || h.until.Before(next) {
						next = h.until
					}
					continue
				}
				// An ended hold stays recorded (its length doubles if
				// the same error comes back) until the partition's next
				// answer without error (released).
			}
			if p.truncate.Load() {
				trunc = append(trunc, p)
			} else {
				fetch = append(fetch, p)
			}
		}
		if len(f.held) > len(parts) {
			f.forgetHolds(parts)
		}
		if len(trunc) == 0 && len(fetch) == 0 {
			// Every partition is held: wait for a new image or the
			// first hold to end.
			t := time.NewTimer(time.Until(next))
			select {
			case <-f.wake:
			case <-t.C:
			case <-f.ctx.Done():
			}
			t.Stop()
			continue
		}
		var err error
		if len(trunc) > 0 {
			err = f.truncate(trunc)
			// Truncated partitions fetch in this round, as Kafka's
			// fetcher truncates and then fetches in one doWork: left to
			// the next round they waited out a long poll without them
			// (replica.fetch.wait.max.ms) while acks=all produce to them
			// waited too.
			for _, p := range trunc {
				if _, held := f.held[p.tp()]; !held && !p.truncate.Load() {
					fetch = append(fetch, p)
				}
			}
		}
		if err == nil && len(fetch) > 0 {
			// A held partition rejoins when its hold ends, not when a
			// long poll without it returns (up to replica.fetch.wait.max.ms
			// later, which after a topic creation or a leader change is
			// an acks=all produce waiting that long).
			wait := f.m.cfg.FetchWaitMax
			if end, ok := f.nextHoldEnd(); ok {
				wait = max(min(wait, time.Until(end)), 0)
			}
			err = f.fetch(fetch, wait)
		}
		if err != nil {
			if f.ctx.Err() != nil {
				return
			}
			if msg := err.Error(); msg != lastErr {
				f.m.log.Warn("replica fetch failed; backing off", "leader", f.key.leader, "addr", f.key.addr,
					"backoff", f.m.cfg.FetchBackoff, "err", err)
				lastErr = msg
			}
			f.sleep(f.m.cfg.FetchBackoff)
			continue
		}
		lastErr = ""
	}
}

func (f *fetcher) leader() *kgo.Broker { return f.cl.SeedBrokers()[0] }

// holdPartition leaves p out of this fetcher's requests until its leader
// epoch moves past epoch or the hold ends; the other partitions keep
// fetching. Logged once per partition and epoch, counted in
// PartitionHolds.
//
// How long: replica.fetch.backoff.ms, as Kafka's AbstractFetcherThread
// delays a partition, except when the answer says the leader is behind
// this follower's metadata (UNKNOWN_LEADER_EPOCH: our leader epoch is newer
// than the leader's; NOT_LEADER_OR_FOLLOWER or UNKNOWN_TOPIC_OR_PARTITION
// from the broker the image names leader). That is the window in which a
// new leader has not applied the image electing it yet, usually a few
// milliseconds after the follower did; waiting a whole backoff there
// added a second to every failover. Such holds start at 20 ms and double
// on each repeat, up to replica.fetch.backoff.ms. FENCED_LEADER_EPOCH
// (this follower is behind) keeps the full backoff: the hold ends anyway
// when our own image moves.
func (f *fetcher) holdPartition(p *Partition, epoch int32, what string, code int16) {
	prev, seen := f.held[p.tp()]
	wait := f.m.cfg.FetchBackoff
	switch code {
	case kerr.UnknownLeaderEpoch.Code, kerr.NotLeaderForPartition.Code, kerr.UnknownTopicOrPartition.Code:
		wait = leaderBehindHold
		if seen && prev.epoch == epoch && prev.wait > 0 {
			wait = 2 * prev.wait
		}
		wait = min(wait, f.m.cfg.FetchBackoff)
	}
	if !seen || prev.epoch != epoch {
		f.m.log.Warn("replica fetch partition error; holding the partition until a new leader epoch or the hold ends",
			"topic", p.Topic, "partition", p.Index, "request", what, "leader", f.key.leader, "leader_epoch", epoch,
			"hold", wait, "err", kerr.ErrorForCode(code))
	}
	f.m.heldPartitions.Add(1)
	if f.m.cfg.OnPartitionHold != nil {
		f.m.cfg.OnPartitionHold()
	}
	f.held[p.tp()] = hold{epoch: epoch, until: time.Now().Add(wait), wait: wait}
}

// nextHoldEnd is when the first running hold ends (holds the truncation
// just made included).
func (f *fetcher) nextHoldEnd() (time.Time, bool) {
	var next time.Time
	now := time.Now()
	for _, h := range f.held {
		if h.until.After(now) && (next.IsZero() || h.until.Before(next)) {
			next = h.until
		}
	}
	return next, !next.IsZero()
}

// release forgets p's ended hold once the leader answered it without an
// error.
func (f *fetcher) release(p *Partition) {
	if len(f.held) > 0 {
		delete(f.held, p.tp())
	}
}

// forgetHolds drops holds of partitions this fetcher no longer owns.
func (f *fetcher) forgetHolds(parts []*Partition) {
	own := make(map[TopicPartition]bool, len(parts))
	for _, p := range parts {
		own[p.tp()] = true
	}
	for tp := range f.held {
		if !own[tp] {
			delete(f.held, tp)
		}
	}
}

// truncate asks the leader where each partition's latest epoch ends and
// cuts the log there (book ch. 8.1.4): whatever this replica wrote past
// that point was never committed.
func (f *fetcher) truncate(parts []*Partition) error {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = f.m.cfg.NodeID
	asked := map[TopicPartition]int32{}
	current := map[TopicPartition]int32{} // leader epoch sent
	byTopic := map[string]int{}
	for _, p := range parts {
		epoch := p.LatestEpoch()
		if epoch < 0 {
			// No epochs known: an empty log, or one written before
			// epochs were recorded, whose tail past the high watermark
			// is cut as Kafka does for old message formats.
			if err := p.truncateTo(p.HighWatermark()); err != nil {
				return err
			}
			p.truncate.Store(false)
			continue
		}
		asked[p.tp()] = epoch
		i, ok := byTopic[p.Topic]
		if !ok {
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = p.Topic
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			byTopic[p.Topic] = i
		}
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p.Index, p.State().LeaderEpoch, epoch
		current[p.tp()] = rp.CurrentLeaderEpoch
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, f.leader())
	if err != nil {
		return fmt.Errorf("OffsetForLeaderEpoch: %w", err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			p := f.m.Partition(rt.Topic, rp.Partition)
			asked, ok := asked[TopicPartition{Topic: rt.Topic, Partition: rp.Partition}]
			if p == nil || !ok || !f.owns(p) {
				continue
			}
			if rp.ErrorCode != 0 {
				f.holdPartition(p, current[p.tp()], "OffsetForLeaderEpoch", rp.ErrorCode)
				continue
			}
			f.release(p)
			leo := p.log.LogEndOffset()
			to := rp.EndOffset
			switch {
			case rp.LeaderEpoch < 0 || rp.EndOffset < 0:
				// The leader knows no epoch this old: keep only what is
				// known committed.
				to = p.HighWatermark()
			case rp.LeaderEpoch < asked:
				// The leader never had our latest epoch: end where our
				// copy of the leader's epoch ends too.
				if _, ours := p.EndOffsetForEpoch(rp.LeaderEpoch); ours >= 0 {
					to = min(to, ours)
				}
			}
			to = min(to, leo)
			if to < leo {
				f.m.log.Info("truncating divergent log tail after a leader change", "topic", p.Topic, "partition", p.Index,
					"log_end_offset", leo, "truncate_to", to, "leader", f.key.leader, "leader_epoch", rp.LeaderEpoch)
				if err := p.truncateTo(to); err != nil {
					return fmt.Errorf("truncate %s-%d to %d: %w", p.Topic, p.Index, to, err)
				}
				if f.m.cfg.OnTruncate != nil {
					f.m.cfg.OnTruncate(leo - to)
				}
			}
			p.truncate.Store(false)
		}
	}
	return nil
}

// fetch sends one follower Fetch for parts, long-polling up to maxWait,
// and applies the answer.
func (f *fetcher) fetch(parts []*Partition, maxWait time.Duration) error {
	cfg := f.m.cfg
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = cfg.NodeID
	req.MaxWaitMillis = int32(maxWait.Milliseconds())
	req.MinBytes = cfg.FetchMinBytes
	req.MaxBytes = max(cfg.FetchMaxBytes, 10<<20) // replica.fetch.response.max.bytes
	req.SessionEpoch = -1                         // full fetches, no session
	type sent struct {
		p      *Partition
		offset int64
		epoch  int32
	}
	sentTo := map[TopicPartition]sent{}
	byTopic := map[string]int{}
	for _, p := range parts {
		st := p.State()
		i, ok := byTopic[p.Topic]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic = p.Topic
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			byTopic[p.Topic] = i
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p.Index
		rp.FetchOffset = p.log.LogEndOffset()
		rp.CurrentLeaderEpoch = st.LeaderEpoch
		rp.LastFetchedEpoch = p.LatestEpoch()
		rp.LogStartOffset = p.log.LogStartOffset()
		rp.PartitionMaxBytes = cfg.FetchMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		sentTo[p.tp()] = sent{p, rp.FetchOffset, st.LeaderEpoch}
	}
	ctx, cancel := context.WithTimeout(f.ctx, cfg.FetchWaitMax+30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, f.leader())
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if resp.ErrorCode != 0 {
		return fmt.Errorf("fetch: %w", kerr.ErrorForCode(resp.ErrorCode))
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			s, ok := sentTo[TopicPartition{Topic: rt.Topic, Partition: rp.Partition}]
			if !ok || !f.owns(s.p) || s.p.State().LeaderEpoch != s.epoch {
				continue // moved or re-elected meanwhile
			}
			p := s.p
			switch rp.ErrorCode {
			case 0:
				f.release(p)
				if err := f.apply(p, s.offset, rp.RecordBatches); err != nil {
					return err
				}
				p.followerHW(rp.HighWatermark)
				p.fetchLag.Store(max(0, rp.HighWatermark-p.log.LogEndOffset()))
			case kerr.OffsetOutOfRange.Code:
				leo := p.log.LogEndOffset()
				if leo < rp.LogStartOffset {
					// The leader deleted what we would fetch next.
					f.m.log.Warn("follower behind the leader's log start; restarting the log there", "topic", p.Topic,
						"partition", p.Index, "log_end_offset", leo, "leader_log_start_offset", rp.LogStartOffset)
					if err := p.truncateFullyAndStartAt(rp.LogStartOffset); err != nil {
						return err
					}
				} else {
					p.truncate.Store(true) // ahead of the leader: find out where we diverge
				}
			default:
				f.holdPartition(p, s.epoch, "Fetch", rp.ErrorCode)
			}
		}
	}
	return nil
}

// apply appends fetched batches, skipping any below offset (the first
// batch may start before the fetch offset).
func (f *fetcher) apply(p *Partition, offset int64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	batches, err := klog.SplitStored(data)
	if err != nil {
		return fmt.Errorf("fetched %s-%d at %d: %w", p.Topic, p.Index, offset, err)
	}
	keep := batches[:0]
	for _, b := range batches {
		if b.LastOffset() >= offset && b.BaseOffset >= p.log.LogEndOffset() {
			keep = append(keep, b)
		}
	}
	if err := p.appendAsFollower(keep); err != nil {
		return fmt.Errorf("append fetched %s-%d at %d: %w", p.Topic, p.Index, offset, err)
	}
	return nil
}
