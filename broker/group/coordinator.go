package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Storage is the coordinator's view of the __consumer_offsets partitions.
type Storage interface {
	// Append appends one v2 record batch to the partition's local log
	// (creating the topic first if it does not exist) and returns once it
	// is there, or the error that kept it out. Batches of one partition
	// land in the order of the calls, which the shard lock fixes.
	//
	// done (may be nil) is told once the batch is committed: replicated
	// to the partition's ISR, or failed to be (leadership lost, a
	// timeout). It runs on any goroutine, possibly before Append returns;
	// the coordinator never waits for it under a lock.
	Append(partition int32, batch []byte, done func(error)) error
	// Bounds returns the partition's log start and end offsets; ok is false
	// when the topic does not exist yet (nothing to load).
	Bounds(partition int32) (start, end int64, ok bool)
	// Read returns whole stored batches from offset, at least one batch
	// even if larger than maxBytes; empty at the log end.
	Read(partition int32, offset int64, maxBytes int32) ([]byte, error)
}

// ErrRecordTooLarge is what Storage.Append wraps when a batch exceeds the
// partition's max.message.bytes; commits then get INVALID_COMMIT_OFFSET_SIZE
// as in Kafka.
var ErrRecordTooLarge = errors.New("coordinator record batch too large")

// ErrNotCoordinator is what Storage wraps when this broker no longer leads
// the partition (the append cannot commit); clients get NOT_COORDINATOR
// and look the coordinator up again.
var ErrNotCoordinator = errors.New("not the coordinator: partition leadership lost")

// ErrTimeout is what Storage wraps when the ISR did not acknowledge an
// append in time; commits get REQUEST_TIMED_OUT.
var ErrTimeout = errors.New("append not committed in time")

// Config configures a Coordinator; zero values take Kafka's defaults where
// noted.
type Config struct {
	// Partitions is the partition count of __consumer_offsets
	// (offsets.topic.num.partitions, or the existing topic's count).
	Partitions int32
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms.
	InitialRebalanceDelay time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound JoinGroup session
	// timeouts (group.min/max.session.timeout.ms).
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// OffsetsRetention is offsets.retention.minutes; 0 = 7 days.
	OffsetsRetention time.Duration
	// RetentionCheckInterval is offsets.retention.check.interval.ms; 0 = 10 minutes.
	RetentionCheckInterval time.Duration
	// MaxMetadataBytes is offset.metadata.max.bytes; 0 = 4096.
	MaxMetadataBytes int
	// NewMemberJoinTimeout bounds how long a new member's JoinGroup may be
	// parked (Kafka's group.new.member.join.timeout, 5 minutes).
	NewMemberJoinTimeout time.Duration

	Storage Storage
	// ManualLoad leaves loading to Load and Unload, called as this broker
	// gains and loses the leadership of __consumer_offsets partitions;
	// otherwise Start loads every partition (a broker that leads them all).
	ManualLoad bool
	// PartitionExists reports whether topic-partition exists; commits to
	// others get UNKNOWN_TOPIC_OR_PARTITION.
	PartitionExists func(topic string, partition int32) bool
	Clock           Clock
	Logger          *slog.Logger
}

// Coordinator is the group coordinator for all __consumer_offsets
// partitions of this broker.
type Coordinator struct {
	cfg    Config
	clock  Clock
	log    *slog.Logger
	shards []*shard

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// shard is one __consumer_offsets partition and the groups that map to it.
type shard struct {
	c      *Coordinator
	id     int32
	mu     sync.Mutex
	loaded bool
	closed bool
	// owned: this broker leads the partition; a shard it does not own
	// answers NOT_COORDINATOR. gen invalidates a load overtaken by an
	// unload.
	owned  bool
	gen    uint64
	groups map[string]*group
	// out collects response callbacks to run once mu is released, so a
	// callback never runs under the lock.
	out []func()
}

// New builds a coordinator; Start loads the partitions.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Partitions <= 0 {
		return nil, fmt.Errorf("group coordinator: %d offsets topic partitions", cfg.Partitions)
	}
	if cfg.Storage == nil || cfg.PartitionExists == nil {
		return nil, errors.New("group coordinator: Storage and PartitionExists are required")
	}
	if cfg.OffsetsRetention <= 0 {
		cfg.OffsetsRetention = 7 * 24 * time.Hour
	}
	if cfg.RetentionCheckInterval <= 0 {
		cfg.RetentionCheckInterval = 10 * time.Minute
	}
	if cfg.MaxMetadataBytes <= 0 {
		cfg.MaxMetadataBytes = 4096
	}
	// Offset metadata is an int16-length string in the offset record too.
	cfg.MaxMetadataBytes = min(cfg.MaxMetadataBytes, MaxStringLen)
	if cfg.NewMemberJoinTimeout <= 0 {
		cfg.NewMemberJoinTimeout = 5 * time.Minute
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = 30 * time.Minute
	}
	c := &Coordinator{cfg: cfg, clock: cfg.Clock, log: cfg.Logger}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i := int32(0); i < cfg.Partitions; i++ {
		c.shards = append(c.shards, &shard{c: c, id: i, groups: map[string]*group{}})
	}
	return c, nil
}

// Start loads every partition in the background (groups of a partition
// still loading answer COORDINATOR_LOAD_IN_PROGRESS) and starts the offset
// expiry task.
func (c *Coordinator) Start() {
	if !c.cfg.ManualLoad {
		// Every partition is this broker's; each answers
		// COORDINATOR_LOAD_IN_PROGRESS until its replay is done.
		for _, s := range c.shards {
			s.mu.Lock()
			s.owned = true
			s.mu.Unlock()
		}
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if c.cfg.ManualLoad {
			return
		}
		start := c.clock.Now()
		for _, s := range c.shards {
			if c.ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			gen := s.gen
			s.mu.Unlock()
			if err := s.load(gen); err != nil {
				// A partition that cannot be read stays unloaded: its
				// groups keep answering COORDINATOR_LOAD_IN_PROGRESS
				// rather than serving offsets we know to be incomplete.
				c.log.Error("loading __consumer_offsets partition failed", "partition", s.id, "err", err)
			}
		}
		c.log.Info("group coordinator loaded", "partitions", len(c.shards), "took", c.clock.Now().Sub(start))
	}()
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(c.cfg.RetentionCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-t.C:
				c.ExpireOffsets()
			}
		}
	}()
}

// Load makes this broker the coordinator of a __consumer_offsets
// partition's groups (it became the partition's leader): the partition is
// replayed in the background, its groups answering
// COORDINATOR_LOAD_IN_PROGRESS meanwhile. Loading an owned partition is a
// no-op.
func (c *Coordinator) Load(partition int32) {
	if partition < 0 || int(partition) >= len(c.shards) {
		return
	}
	s := c.shards[partition]
	s.mu.Lock()
	if s.owned || s.closed {
		s.mu.Unlock()
		return
	}
	s.owned, s.loaded = true, false
	s.gen++
	gen := s.gen
	s.mu.Unlock()
	if start, end, ok := c.cfg.Storage.Bounds(partition); !ok || start == end {
		// Nothing to replay (a new partition): serve at once.
		if err := s.load(gen); err != nil {
			c.log.Error("loading __consumer_offsets partition failed", "partition", partition, "err", err)
		}
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := s.load(gen); err != nil {
			c.log.Error("loading __consumer_offsets partition failed", "partition", partition, "err", err)
		}
	}()
}

// Unload gives up a partition's groups (this broker no longer leads it,
// Kafka's removeGroupsForPartition): the cache is dropped, parked
// JoinGroup and SyncGroup requests get NOT_COORDINATOR, and so does every
// later request until Load, so clients find the new coordinator.
func (c *Coordinator) Unload(partition int32) {
	if partition < 0 || int(partition) >= len(c.shards) {
		return
	}
	s := c.shards[partition]
	s.mu.Lock()
	if !s.owned {
		s.mu.Unlock()
		return
	}
	n := len(s.groups)
	s.owned, s.loaded = false, false
	s.gen++
	s.dropGroups()
	s.unlock()
	c.log.Info("unloaded __consumer_offsets partition: no longer its leader", "partition", partition, "groups", n)
}

// dropGroups stops every timer of the shard's groups and answers their
// parked requests with NOT_COORDINATOR; callers hold s.mu.
func (s *shard) dropGroups() {
	for _, g := range s.groups {
		for _, m := range g.members {
			s.stopTimer(&m.hb)
			if m.joinCb != nil {
				s.completeJoin(m, joinError(kerr.NotCoordinator.Code, m.id))
			}
			if m.syncCb != nil {
				s.completeSync(m, syncError(kerr.NotCoordinator.Code))
			}
		}
		for _, p := range g.pending {
			s.stopTimer(p)
		}
		s.stopTimer(&g.joinTimer)
		s.stopTimer(&g.syncTimer)
	}
	s.groups = map[string]*group{}
}

// Close stops the background work and answers every parked JoinGroup and
// SyncGroup with NOT_COORDINATOR so clients look for the coordinator again.
func (c *Coordinator) Close() {
	c.cancel()
	c.wg.Wait()
	for _, s := range c.shards {
		s.mu.Lock()
		s.closed = true
		for _, g := range s.groups {
			for _, m := range g.members {
				s.stopTimer(&m.hb)
				if m.joinCb != nil {
					s.completeJoin(m, joinError(kerr.NotCoordinator.Code, m.id))
				}
				if m.syncCb != nil {
					s.completeSync(m, syncError(kerr.NotCoordinator.Code))
				}
			}
			for _, p := range g.pending {
				s.stopTimer(p)
			}
			s.stopTimer(&g.joinTimer)
			s.stopTimer(&g.syncTimer)
		}
		s.unlock()
	}
}

// Partitions is the number of __consumer_offsets partitions.
func (c *Coordinator) Partitions() int32 { return int32(len(c.shards)) }

// PartitionFor is the __consumer_offsets partition of a group.
func (c *Coordinator) PartitionFor(groupID string) int32 {
	return PartitionFor(groupID, int32(len(c.shards)))
}

// lock returns the group's shard locked, or the error code to answer with:
// COORDINATOR_LOAD_IN_PROGRESS while the partition loads,
// NOT_COORDINATOR after Close.
func (c *Coordinator) lock(groupID string) (*shard, int16) {
	if !groupIDFits(groupID) {
		// Every group API comes through here: a group id the log cannot
		// hold is refused before anything is cached or written.
		return nil, kerr.InvalidGroupID.Code
	}
	s := c.shards[c.PartitionFor(groupID)]
	s.mu.Lock()
	switch {
	case s.closed, !s.owned:
		s.mu.Unlock()
		return nil, kerr.NotCoordinator.Code
	case !s.loaded:
		s.mu.Unlock()
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return s, 0
}

// Counts returns how many groups and committed offsets the coordinator
// holds in its cache (GroupMetadataManager NumGroups and NumOffsets).
// Shards still loading count what they hold so far.
func (c *Coordinator) Counts() (groups, offsets int) {
	for _, s := range c.shards {
		s.mu.Lock()
		groups += len(s.groups)
		for _, g := range s.groups {
			for _, parts := range g.offsets {
				offsets += len(parts)
			}
		}
		s.mu.Unlock()
	}
	return groups, offsets
}

// unlock releases the shard and then runs the callbacks collected under it.
func (s *shard) unlock() {
	out := s.out
	s.out = nil
	s.mu.Unlock()
	for _, f := range out {
		f()
	}
}

func (s *shard) nowMs() int64 { return s.c.clock.Now().UnixMilli() }

// append writes records to this shard's partition as one batch; callers
// hold the shard lock, which orders the batches in the log as the cache
// changed.
func (s *shard) append(recs []KV) error { return s.appendAck(recs, nil) }

// appendAck is append with an acknowledgement: ack (if not nil) runs once
// the batch is committed or failed to be. If the storage reports
// completion before Append returns, ack is deferred to the callbacks run
// after the shard lock is released; a later report runs ack on the
// storage's goroutine, which may be inside another Append of this shard
// (the high watermark moving there completes earlier batches), so ack
// must not take the shard lock: appendThen is for continuations that do.
// If the local append itself fails, the error is returned and ack is not
// called.
func (s *shard) appendAck(recs []KV, ack func(error)) error {
	if ack == nil {
		return s.appendNotify(recs, nil, nil)
	}
	return s.appendNotify(recs, ack, ack)
}

// appendThen is append with a continuation under the shard lock: fn runs
// with the lock held once the batch is committed or failed to be, unless
// the shard was closed or unloaded meanwhile (its parked requests were
// answered NOT_COORDINATOR then). An early report (during Append) runs it
// after this lock is released on this goroutine; a later one on a
// goroutine of its own, since the report may come from inside another
// Append of this shard, holding the lock.
func (s *shard) appendThen(recs []KV, fn func(error)) error {
	locked := func(err error) {
		s.mu.Lock()
		defer s.unlock()
		if s.closed || !s.owned {
			return
		}
		fn(err)
	}
	return s.appendNotify(recs, locked, func(err error) { go locked(err) })
}

// appendNotify appends recs as one batch; early (run after the shard lock
// is released) or late (run where the storage reports it) is told the
// outcome, depending on whether the storage reported it before Append
// returned. Both nil: nobody waits.
func (s *shard) appendNotify(recs []KV, early, late func(error)) error {
	if len(recs) == 0 {
		if early != nil {
			s.out = append(s.out, func() { early(nil) })
		}
		return nil
	}
	var done func(error)
	// state: 0 while Append runs, 1 if done came first (first holds its
	// result), 2 once Append returned (done then calls late itself).
	var state atomic.Int32
	var first error
	if early != nil {
		done = func(err error) {
			if state.CompareAndSwap(0, 1) {
				first = err
				return
			}
			late(err)
		}
	}
	if err := s.c.cfg.Storage.Append(s.id, EncodeBatch(recs, s.nowMs()), done); err != nil {
		return fmt.Errorf("append to __consumer_offsets-%d: %w", s.id, err)
	}
	if early != nil && !state.CompareAndSwap(0, 2) {
		err := first
		s.out = append(s.out, func() { early(err) })
	}
	return nil
}

// timer is a cancellable scheduled callback; seq invalidates a callback
// that fired but had not yet taken the lock when the timer was replaced.
type timer struct {
	t   Timer
	seq uint64
}

// schedule (re)arms t to run fn under the shard lock after d.
func (s *shard) schedule(t *timer, d time.Duration, fn func()) {
	if t.t != nil {
		t.t.Stop()
	}
	t.seq++
	seq := t.seq
	t.t = s.c.clock.AfterFunc(d, func() {
		s.mu.Lock()
		if t.seq == seq && !s.closed {
			t.t = nil
			fn()
		}
		s.unlock()
	})
}

func (s *shard) stopTimer(t *timer) {
	if t.t != nil {
		t.t.Stop()
		t.t = nil
	}
	t.seq++
}

// load replays the partition's log into the shard. The replay fills a
// private map without holding the shard lock, so requests for the
// partition's groups keep getting COORDINATOR_LOAD_IN_PROGRESS instead of
// waiting; nothing is appended meanwhile, as writes need a loaded shard.
func (s *shard) load(gen uint64) error {
	st := s.c.cfg.Storage
	start, end, ok := st.Bounds(s.id)
	tmp := &shard{c: s.c, id: s.id, groups: map[string]*group{}}
	n := 0
	for off := start; ok && off < end; {
		if s.c.ctx.Err() != nil {
			return nil
		}
		data, err := st.Read(s.id, off, 1<<20)
		if err != nil {
			return fmt.Errorf("read __consumer_offsets-%d at %d: %w", s.id, off, err)
		}
		if len(data) == 0 {
			break
		}
		next, err := DecodeBatches(data, func(r StoredRecord) error {
			n++
			return tmp.replay(r)
		})
		if err != nil {
			return fmt.Errorf("replay __consumer_offsets-%d at %d: %w", s.id, off, err)
		}
		if next <= off {
			return fmt.Errorf("replay __consumer_offsets-%d: no progress at offset %d", s.id, off)
		}
		off = next
	}
	s.mu.Lock()
	defer s.unlock()
	if s.closed || s.gen != gen || !s.owned {
		return nil // closed, or unloaded (leadership moved) meanwhile
	}
	s.groups = tmp.groups
	for _, g := range s.groups {
		g.subscribed = g.computeSubscribedTopics()
		// Members restored from the log must heartbeat within their
		// session timeout, as Kafka reschedules them on load.
		for _, m := range g.members {
			s.scheduleHeartbeat(g, m, m.sessionTimeout())
		}
	}
	if n > 0 {
		s.c.log.Info("loaded __consumer_offsets partition", "partition", s.id, "records", n,
			"groups", len(s.groups), "log_start_offset", start, "log_end_offset", end)
	}
	s.loaded = true
	return nil
}

// replay applies one stored record to the cache.
func (s *shard) replay(r StoredRecord) error {
	if r.Transaction {
		// Transactional offset commits only count once their
		// transaction commits; kobs writes none yet, so skip them
		// rather than expose uncommitted offsets.
		return nil
	}
	version, ok, groupID, err := DecodeKey(r.Key)
	if err != nil {
		return fmt.Errorf("record at offset %d: %w", r.Offset, err)
	}
	switch version {
	case keyOffsetCommitV0, keyOffsetCommit:
		g := s.groups[ok.Group]
		if r.Value == nil {
			if g != nil {
				// The group itself stays (as in Kafka) until a group
				// tombstone or offset expiry removes it.
				g.deleteOffset(ok.Topic, ok.Partition)
			}
			return nil
		}
		v, err := DecodeOffsetValue(r.Value)
		if err != nil {
			return fmt.Errorf("record at offset %d: %w", r.Offset, err)
		}
		if g == nil {
			g = newGroup(ok.Group, s.nowMs())
			s.groups[ok.Group] = g
		}
		g.setOffset(ok.Topic, ok.Partition, v)
	case keyGroupMetadata:
		g := s.groups[groupID]
		if r.Value == nil {
			if g != nil {
				offs := g.offsets
				ng := newGroup(groupID, s.nowMs())
				ng.offsets = offs
				if len(offs) == 0 {
					delete(s.groups, groupID)
				} else {
					s.groups[groupID] = ng
				}
			}
			return nil
		}
		v, err := DecodeGroupValue(r.Value)
		if err != nil {
			return fmt.Errorf("record at offset %d: %w", r.Offset, err)
		}
		ng := groupFromValue(groupID, v)
		if g != nil {
			ng.offsets = g.offsets
		}
		s.groups[groupID] = ng
	}
	return nil
}

// ExpireOffsets removes committed offsets past offsets.retention.minutes
// under Kafka's conditions (ClassicGroup.offsetExpirationCondition) and
// deletes groups left empty without offsets, writing tombstones for both.
func (c *Coordinator) ExpireOffsets() {
	for _, s := range c.shards {
		s.mu.Lock()
		if s.loaded && !s.closed {
			s.expireOffsets()
		}
		s.unlock()
	}
}

// TopicDeleted removes every group's committed offsets for a deleted
// topic, writing tombstones as Kafka does when partitions are deleted, so a
// topic re-created under the same name does not inherit stale positions
// and lag tools do not report a topic that is gone.
func (c *Coordinator) TopicDeleted(topic string) {
	for _, s := range c.shards {
		s.mu.Lock()
		if !s.loaded || s.closed {
			s.unlock()
			continue
		}
		for id, g := range s.groups {
			parts := g.offsets[topic]
			if len(parts) == 0 {
				continue
			}
			recs := make([]KV, 0, len(parts))
			for p := range parts {
				recs = append(recs, KV{Key: EncodeOffsetKey(OffsetKey{id, topic, p})})
			}
			if err := s.append(recs); err != nil {
				c.log.Error("writing tombstones for a deleted topic failed", "group", id, "topic", topic, "err", err)
				continue
			}
			for p := range parts {
				g.deleteOffset(topic, p)
			}
			c.log.Info("removed committed offsets of deleted topic", "group", id, "topic", topic, "offsets", len(recs))
		}
		s.unlock()
	}
}

func (s *shard) expireOffsets() {
	now := s.nowMs()
	retention := s.c.cfg.OffsetsRetention.Milliseconds()
	for id, g := range s.groups {
		base, ok := g.expirationBase()
		if !ok {
			continue
		}
		var recs []KV
		type tp struct {
			topic string
			part  int32
		}
		var expired []tp
		all := true
		for topic, parts := range g.offsets {
			if g.isSubscribedTo(topic) {
				all = false
				continue
			}
			for p, o := range parts {
				exp := o.ExpireTimestamp >= 0 && now >= o.ExpireTimestamp
				if o.ExpireTimestamp < 0 {
					exp = now-base(o) >= retention
				}
				if !exp {
					all = false
					continue
				}
				recs = append(recs, KV{Key: EncodeOffsetKey(OffsetKey{id, topic, p})})
				expired = append(expired, tp{topic, p})
			}
		}
		deleteGroup := all && g.state == stateEmpty
		if deleteGroup {
			recs = append(recs, KV{Key: EncodeGroupKey(id)})
		}
		if len(recs) == 0 {
			continue
		}
		if err := s.append(recs); err != nil {
			s.c.log.Error("writing offset expiry tombstones failed", "group", id, "err", err)
			continue
		}
		for _, e := range expired {
			g.deleteOffset(e.topic, e.part)
		}
		if len(expired) > 0 {
			s.c.log.Info("expired committed offsets", "group", id, "offsets", len(expired))
		}
		if deleteGroup {
			g.transition(stateDead, now)
			delete(s.groups, id)
			s.c.log.Info("deleted empty group with no offsets left", "group", id)
		}
	}
}
