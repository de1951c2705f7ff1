package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// A command is one write, as it travels to the active controller.
const (
	opCreateTopics     = "createTopics"
	opDeleteTopics     = "deleteTopics"
	opCreatePartitions = "createPartitions"
	opAlterConfigs     = "alterConfigs"
	opAlterPartition   = "alterPartition"
	opAlterPartitions  = "alterPartitions"
	opRegister         = "register"
	opHeartbeat        = "heartbeat"
	opElectLeaders     = "electLeaders"
	opReassign         = "reassign"
	opBootstrap        = "bootstrap"
)

type command struct {
	Op             string                 `json:"op"`
	Topics         []TopicSpec            `json:"topics,omitempty"`
	Names          []string               `json:"names,omitempty"`
	Topic          string                 `json:"topic,omitempty"`
	Count          int32                  `json:"count,omitempty"`
	Assignment     [][]int32              `json:"assignment,omitempty"`
	Configs        map[string]*string     `json:"configs,omitempty"`
	Replace        bool                   `json:"replace,omitempty"`
	AlterPartition *AlterPartitionRequest `json:"alterPartition,omitempty"`
	// AlterPartitions are several ISR changes decided in order and
	// committed as one entry (a broker's batch, AlterPartitions).
	AlterPartitions []AlterPartitionRequest `json:"alterPartitions,omitempty"`
	Register        *registration           `json:"register,omitempty"`
	Heartbeat       *heartbeat              `json:"heartbeat,omitempty"`
	Election        ElectionType            `json:"election,omitempty"`
	Partitions      []TopicPartition        `json:"partitions,omitempty"`
	Reassignments   []Reassignment          `json:"reassignments,omitempty"`
	// DryRun decides but writes nothing (CreateTopics and
	// CreatePartitions with validateOnly).
	DryRun bool `json:"dryRun,omitempty"`
}

type registration struct {
	Broker      metadata.Broker `json:"broker"`
	Incarnation string          `json:"incarnation"`
}

type heartbeat struct {
	ID       int32 `json:"id"` // broker id, -1 for a controller-only voter
	Voter    int32 `json:"voter"`
	Epoch    int64 `json:"epoch"`
	Offset   int64 `json:"offset"`  // metadata offset applied by the sender
	LastLog  int64 `json:"lastLog"` // sender's raft last log index (voters)
	Shutdown bool  `json:"shutdown,omitempty"`
}

type result struct {
	Errs      []*wireError        `json:"errs,omitempty"`
	Partition *metadata.Partition `json:"partition,omitempty"`
	// Partitions answer AlterPartitions, one per request (as Errs).
	Partitions []metadata.Partition `json:"partitions,omitempty"`
	Epoch      int64                `json:"epoch,omitempty"`
	Fenced     bool                 `json:"fenced,omitempty"`
	Quorum     *QuorumInfo          `json:"quorum,omitempty"`
	// Offset is the metadata offset the command's records (if any) are
	// applied at on the active controller: the forwarding node waits to
	// apply it too, so a caller reads its own write from its own image.
	Offset int64 `json:"offset"`
}

// execute runs a command on the active controller: decide against the
// current state, append the records as one entry, wait until it is
// committed and applied here.
func (c *Controller) execute(cmd *command) (*result, error) {
	if cmd.Op == opHeartbeat && cmd.Heartbeat != nil {
		// Liveness is recorded before queueing behind other operations: a
		// slow commit must not make a broker look silent and get it fenced.
		c.touch(cmd.Heartbeat)
		if res, ok := c.quietHeartbeat(cmd.Heartbeat); ok {
			return res, nil
		}
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if !c.active.Load() {
		return nil, errorf(ErrNotController, "node %d is not the active controller", c.cfg.NodeID)
	}
	p := newPlanner(c.fsm.state(), &c.cfg)
	res := &result{}
	var err error
	switch cmd.Op {
	case opCreateTopics:
		for _, s := range cmd.Topics {
			res.Errs = append(res.Errs, toWire(p.createTopic(s)))
		}
	case opDeleteTopics:
		for _, n := range cmd.Names {
			res.Errs = append(res.Errs, toWire(p.deleteTopic(n)))
		}
	case opCreatePartitions:
		err = p.createPartitions(cmd.Topic, cmd.Count, cmd.Assignment)
	case opAlterConfigs:
		err = p.alterConfigs(cmd.Topic, cmd.Configs, cmd.Replace)
	case opAlterPartition:
		var part metadata.Partition
		part, err = p.alterPartition(*cmd.AlterPartition)
		res.Partition = &part
	case opAlterPartitions:
		// In order: a later change of the same partition sees the
		// earlier one's partition epoch.
		for _, r := range cmd.AlterPartitions {
			part, perr := p.alterPartition(r)
			res.Partitions = append(res.Partitions, part)
			res.Errs = append(res.Errs, toWire(perr))
		}
	case opRegister:
		err = c.register(p, cmd.Register)
	case opHeartbeat:
		res.Fenced, err = c.heartbeat(p, cmd.Heartbeat)
	case opElectLeaders:
		for _, tp := range cmd.Partitions {
			res.Errs = append(res.Errs, toWire(p.electLeader(tp, cmd.Election)))
		}
	case opReassign:
		for _, r := range cmd.Reassignments {
			res.Errs = append(res.Errs, toWire(p.reassign(TopicPartition{r.Topic, r.Partition}, r.Replicas)))
		}
	case opBootstrap:
		err = c.bootstrap(p, cmd.Topics)
	case opDescribeQuorum:
		res.Quorum = c.describeQuorum()
	default:
		return nil, errorf(ErrInvalidRequest, "unknown controller command %q", cmd.Op)
	}
	if p.err != nil {
		return nil, errorf(ErrUnknownServer, "controller produced a record that does not apply: %v", p.err)
	}
	if cmd.DryRun {
		return res, err
	}
	if cerr := c.commit(p); cerr != nil {
		return nil, cerr
	}
	res.Offset = c.fsm.state().img.Offset
	switch cmd.Op {
	case opRegister:
		if b := c.fsm.state().img.Brokers[cmd.Register.Broker.ID]; b != nil {
			res.Epoch = b.Epoch
		}
	case opAlterPartition:
		if err == nil {
			part := c.fsm.state().img.Partition(cmd.AlterPartition.Topic, cmd.AlterPartition.Partition)
			if part != nil {
				res.Partition = part
			}
		}
	case opAlterPartitions:
		img := c.fsm.state().img
		for i, r := range cmd.AlterPartitions {
			if res.Errs[i] == nil {
				if part := img.Partition(r.Topic, r.Partition); part != nil {
					res.Partitions[i] = *part
				}
			}
		}
	}
	return res, err
}

// commit appends the planner's records as one log entry and waits until
// this node applied it.
func (c *Controller) commit(p *planner) error {
	if len(p.recs) == 0 {
		return nil
	}
	data, err := encodeEntry(p.recs)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := c.raft.Apply(data, 10*time.Second).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			c.active.Store(false)
			return errorf(ErrNotController, "node %d lost leadership while committing: %v", c.cfg.NodeID, err)
		}
		if isStorageError(err) {
			// raft stepped down (it does on a failed append); the change
			// was not committed.
			c.active.Store(false)
			return errorf(ErrKafkaStorage, "metadata log append failed on node %d, the change was not made: %v", c.cfg.NodeID, err)
		}
		return errorf(ErrTimeout, "metadata log append: %v", err)
	}
	c.m.committed(len(p.recs), time.Since(start), p.elected, p.unclean)
	return nil
}

// register records a broker registration. A second live process with the
// same node.id (another incarnation, unfenced and heartbeating within the
// session timeout) is refused with DUPLICATE_BROKER_REGISTRATION. A fenced
// incarnation has no valid session (Kafka's hasValidSession): a newly
// active controller gives every broker a fresh session, fenced ones too,
// and a fenced broker restarting then must not be taken for a clash.
func (c *Controller) register(p *planner, r *registration) error {
	id := r.Broker.ID
	st := c.fsm.state()
	if old := st.img.Brokers[id]; old != nil && st.incarnations[id] == r.Incarnation {
		return nil // a retry of a registration that was committed
	} else if old != nil {
		c.hbMu.Lock()
		s := c.sessions[id]
		alive := !old.Fenced && s != nil && time.Since(s.lastSeen) < c.cfg.SessionTimeout
		c.hbMu.Unlock()
		if alive {
			return errorf(ErrDuplicateBrokerRegistration, "node.id %d is already registered by another live process (epoch %d)", id, old.Epoch)
		}
		// The previous incarnation is gone: fence it first so its
		// leaderships move, then register the new one.
		p.fenceBroker(id)
	}
	p.emit(record{Broker: &brokerRecord{ID: id, Incarnation: r.Incarnation, Rack: r.Broker.Rack, Endpoints: r.Broker.Endpoints}})
	c.hbMu.Lock()
	c.sessions[id] = &session{lastSeen: time.Now()}
	c.hbMu.Unlock()
	return nil
}

// touch renews the session of a heartbeat's broker if the heartbeat is of
// its registered epoch.
func (c *Controller) touch(hb *heartbeat) {
	now := time.Now()
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	if hb.Voter >= 0 {
		c.voterLEO[hb.Voter] = replicaProgress{LEO: uint64(hb.LastLog), Seen: now}
	}
	if b := c.fsm.state().img.Brokers[hb.ID]; hb.ID >= 0 && b != nil && b.Epoch == hb.Epoch {
		s := c.sessions[hb.ID]
		if s == nil {
			s = &session{}
			c.sessions[hb.ID] = s
		}
		s.lastSeen, s.offset = now, hb.Offset
	}
}

// quietHeartbeat answers a heartbeat that changes nothing (a voter's
// progress report, or a registered broker of the current epoch that is not
// shutting down and is either unfenced or fenced and not caught up yet)
// without opMu or a raft commit: liveness is the active controller's
// memory (touch), as in Kafka's BrokerHeartbeatManager, and only state
// changes become records. A heartbeat must not queue behind a burst of
// AlterPartition commits, or the broker is fenced for the controller's
// slowness.
func (c *Controller) quietHeartbeat(hb *heartbeat) (*result, bool) {
	if !c.active.Load() || hb.Shutdown {
		return nil, false
	}
	if hb.ID < 0 {
		return &result{}, true
	}
	b := c.fsm.state().img.Brokers[hb.ID]
	if b == nil || b.Epoch != hb.Epoch || b.Fenced && hb.Offset >= b.Epoch {
		return nil, false
	}
	return &result{Fenced: b.Fenced}, true
}

// heartbeat renews a broker's session; a fenced broker that has applied
// the log up to its own registration is unfenced (caught up, as Kafka's
// BrokerHeartbeatManager decides). Shutdown fences it now.
func (c *Controller) heartbeat(p *planner, hb *heartbeat) (fenced bool, err error) {
	if hb.ID < 0 {
		return false, nil
	}
	b := p.img().Brokers[hb.ID]
	if b == nil {
		return true, errorf(ErrBrokerIDNotRegistered, "broker %d is not registered", hb.ID)
	}
	if b.Epoch != hb.Epoch {
		return true, errorf(ErrStaleBrokerEpoch, "broker %d heartbeat with epoch %d, registered epoch is %d", hb.ID, hb.Epoch, b.Epoch)
	}
	switch {
	case hb.Shutdown:
		p.fenceBroker(hb.ID)
		return true, nil
	case b.Fenced && hb.Offset >= b.Epoch:
		p.unfenceBroker(hb.ID)
		return false, nil
	}
	return b.Fenced, nil
}

// bootstrap imports legacy single-node topics, once per cluster.
func (c *Controller) bootstrap(p *planner, topics []TopicSpec) error {
	if c.fsm.state().migrated {
		return nil
	}
	for _, t := range topics {
		if p.img().Topics[t.Name] != nil {
			continue
		}
		if err := p.createTopic(t); err != nil {
			return fmt.Errorf("migrate topic %s: %w", t.Name, err)
		}
	}
	p.emit(record{Migrated: &migratedRecord{Topics: len(topics)}})
	return nil
}

// leaderLoop follows raft leadership: a new leader first applies all that
// earlier leaders committed (Barrier), writes its controller record, then
// runs the periodic duties (fencing silent brokers, preferred leader
// rebalancing) until it loses leadership.
//
// Sessions are checked when the earliest one can expire, not on the next
// tick, as Kafka's QuorumController schedules its next fencing check at
// the oldest broker contact plus the session timeout.
func (c *Controller) leaderLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(min(c.cfg.HeartbeatInterval/2, 250*time.Millisecond))
	defer tick.Stop()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	var nextRebalance time.Time
	var prev raftContact
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.raft.LeaderCh():
		case <-tick.C:
		case <-expiry.C:
		}
		isLeader := c.raft.State() == raft.Leader
		switch {
		case isLeader && !c.active.Load():
			err := c.becomeActive(prev)
			prev = raftContact{} // only a leader seen since our own leadership counts
			if err != nil {
				lvl := slog.LevelWarn
				if c.store.Quiet() {
					lvl = slog.LevelDebug // the metadata log's own lines say why
				}
				c.logger.Log(c.ctx, lvl, "becoming active controller failed", "err", err)
				continue
			}
			nextRebalance = time.Now().Add(c.cfg.LeaderImbalanceCheckInterval)
		case !isLeader && c.active.Load():
			c.opMu.Lock()
			c.active.Store(false)
			c.opMu.Unlock()
			c.logger.Info("no longer the active controller")
		case isLeader:
			c.checkSessions()
			if c.cfg.AutoLeaderRebalance && time.Now().After(nextRebalance) {
				c.rebalance()
				nextRebalance = time.Now().Add(c.cfg.LeaderImbalanceCheckInterval)
			}
		default:
			prev = c.sampleRaftLeader(prev)
		}
		if at, ok := c.nextSessionExpiry(); ok {
			expiry.Reset(max(time.Until(at), 0) + time.Millisecond)
		}
	}
}

// raftContact is the raft leader a follower last knew and when it last
// heard from it.
type raftContact struct {
	leader int32
	at     time.Time
}

// sampleRaftLeader records, while this voter follows, who leads and raft's
// last contact with the leader. The leader stays known for the raft
// heartbeat timeout after its last contact (a second or more, many ticks),
// so the sample taken last before an election holds the final contact. A
// leadership too short for any tick to see leaves the one before it
// recorded; the worst that does is fence that earlier leader's broker at
// once, and it is unfenced at its next heartbeat if it is alive.
func (c *Controller) sampleRaftLeader(prev raftContact) raftContact {
	at := c.raft.LastContact()
	_, id := c.raft.LeaderWithID()
	n, err := strconv.ParseInt(string(id), 10, 32)
	if id == "" || err != nil || int32(n) == c.cfg.NodeID || at.IsZero() {
		return prev
	}
	return raftContact{leader: int32(n), at: at}
}

// nextSessionExpiry is when the earliest session of an unfenced broker
// runs out, while this node is the active controller.
func (c *Controller) nextSessionExpiry() (time.Time, bool) {
	if !c.active.Load() {
		return time.Time{}, false
	}
	img := c.fsm.state().img
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	var next time.Time
	for id, s := range c.sessions {
		if b := img.Brokers[id]; b == nil || b.Fenced {
			continue
		}
		if at := s.lastSeen.Add(c.cfg.SessionTimeout); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero()
}

func (c *Controller) becomeActive(prev raftContact) error {
	if err := c.raft.Barrier(10 * time.Second).Error(); err != nil {
		return err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	// Every broker gets a full session from now: the old controller's
	// heartbeat times died with it. Except the old controller itself when
	// it is also a broker (combined roles): its heartbeats went to itself,
	// and the raft contact this node had with it is the latest sign of
	// life anyone has, so its session runs from there. Without this, a
	// dead combined node was fenced a whole session timeout after the
	// election, on top of the raft timeout that led to it.
	now := time.Now()
	c.hbMu.Lock()
	c.sessions = map[int32]*session{}
	c.voterLEO = map[int32]replicaProgress{}
	for id := range c.fsm.state().img.Brokers {
		c.sessions[id] = &session{lastSeen: now}
	}
	if s := c.sessions[prev.leader]; s != nil && prev.at.Before(now) {
		s.lastSeen = prev.at
		c.logger.Info("previous active controller is a broker: its session runs from the last raft contact",
			"broker", prev.leader, "last_contact", prev.at)
	}
	c.hbMu.Unlock()
	term, _ := parseUint(c.raft.Stats()["term"])
	p := newPlanner(c.fsm.state(), &c.cfg)
	p.emit(record{Controller: &controllerRecord{ID: c.cfg.NodeID, Epoch: term}})
	c.active.Store(true)
	if err := c.commit(p); err != nil {
		c.active.Store(false)
		return err
	}
	c.m.newActive()
	c.logger.Info("active controller", "epoch", term)
	return nil
}

// checkSessions fences brokers whose last heartbeat is older than
// broker.session.timeout.ms.
func (c *Controller) checkSessions() {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if !c.active.Load() {
		return
	}
	p := newPlanner(c.fsm.state(), &c.cfg)
	now := time.Now()
	c.hbMu.Lock()
	var expired []int32
	for _, id := range p.img().BrokerIDs() {
		b := p.img().Brokers[id]
		s := c.sessions[id]
		if s == nil {
			s = &session{lastSeen: now}
			c.sessions[id] = s
		}
		if !b.Fenced && now.Sub(s.lastSeen) > c.cfg.SessionTimeout {
			expired = append(expired, id)
		}
	}
	c.hbMu.Unlock()
	for _, id := range expired {
		c.logger.Warn("fencing broker: no heartbeat within broker.session.timeout.ms", "broker", id, "timeout", c.cfg.SessionTimeout)
		p.fenceBroker(id)
		c.m.timedOutHeartbeats.Add(1)
	}
	if err := c.commit(p); err != nil {
		c.logger.Warn("fencing not committed", "err", err)
	}
}

// rebalance moves leadership back to preferred replicas
// (auto.leader.rebalance.enable).
func (c *Controller) rebalance() {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if !c.active.Load() {
		return
	}
	p := newPlanner(c.fsm.state(), &c.cfg)
	for _, tp := range p.imbalanced() {
		_ = p.electLeader(tp, ElectPreferred)
	}
	if err := c.commit(p); err != nil {
		c.logger.Warn("preferred leader election not committed", "err", err)
	}
}

// lifecycle registers this broker and heartbeats every
// broker.heartbeat.interval.ms (more often while fenced, to be unfenced as
// soon as it caught up). A voter without the broker role only reports its
// log progress.
func (c *Controller) lifecycle(self metadata.Broker) {
	defer c.wg.Done()
	self.ID = c.cfg.NodeID
	var dupSince time.Time
	lastAck, warned := time.Now(), false
	for c.ctx.Err() == nil {
		if c.cfg.Roles.Broker && c.epoch.Load() == 0 {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.SessionTimeout)
			res, err := c.submit(ctx, &command{Op: opRegister, Register: &registration{Broker: self, Incarnation: c.incarnation}})
			cancel()
			switch {
			case errors.Is(err, ErrDuplicateBrokerRegistration):
				// The previous process of this node may be dead but
				// within its session: wait it out once.
				if dupSince.IsZero() {
					dupSince = time.Now()
				}
				if time.Since(dupSince) > c.cfg.SessionTimeout+c.cfg.HeartbeatInterval {
					c.fatalOnce.Do(func() {
						c.fatal <- fmt.Errorf("node.id: %d is in use by another live broker: %w", c.cfg.NodeID, err)
					})
					c.logger.Error("refusing to start: node.id clash", "err", err)
					return
				}
				c.sleep(c.cfg.HeartbeatInterval / 2)
				continue
			case err != nil:
				c.logger.Info("broker registration pending", "err", err)
				c.sleep(100 * time.Millisecond)
				continue
			}
			c.epoch.Store(res.Epoch)
			c.fencedSelf.Store(true)
			c.logger.Info("broker registered", "epoch", res.Epoch)
		}
		hb := &heartbeat{ID: -1, Voter: -1, Epoch: c.epoch.Load(), Offset: c.fsm.state().img.Offset}
		if c.cfg.Roles.Broker {
			hb.ID = c.cfg.NodeID
		}
		if c.raft != nil {
			hb.Voter = c.cfg.NodeID
			hb.LastLog = int64(c.raft.LastIndex())
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HeartbeatInterval)
		res, err := c.submit(ctx, &command{Op: opHeartbeat, Heartbeat: hb})
		cancel()
		switch {
		case errors.Is(err, ErrStaleBrokerEpoch) || errors.Is(err, ErrBrokerIDNotRegistered):
			c.logger.Warn("broker registration lost; registering again", "err", err)
			c.epoch.Store(0)
			continue
		case err != nil:
			if time.Since(lastAck) > c.cfg.SessionTimeout && !warned {
				c.logger.Warn("no heartbeat acknowledged within broker.session.timeout.ms: the controller will fence (or has fenced) this node", "since", lastAck, "err", err)
				warned = true
			} else {
				c.logger.Debug("heartbeat failed", "err", err)
			}
		default:
			if warned {
				c.logger.Info("heartbeats acknowledged again", "fenced", res.Fenced)
			}
			lastAck, warned = time.Now(), false
			c.fencedSelf.Store(res.Fenced)
			// A broker is ready once unfenced; a controller-only node
			// once an active controller answers: the quorum has formed.
			if !res.Fenced || !c.cfg.Roles.Broker {
				c.readyOnce.Do(func() { close(c.ready) })
			}
		}
		wait := c.cfg.HeartbeatInterval
		if c.fencedSelf.Load() && c.cfg.Roles.Broker {
			wait = min(wait, 100*time.Millisecond)
		}
		c.sleep(wait)
	}
}

func (c *Controller) sleep(d time.Duration) {
	select {
	case <-c.ctx.Done():
	case <-time.After(d):
	}
}

// serveFetch answers a broker-only node's fetch: the entries after
// req.After, waiting up to MaxWaitMs for one, or the whole state when
// they are no longer in memory.
func (c *Controller) serveFetch(req *fetchRequest) *fetchResponse {
	deadline := time.After(time.Duration(min(req.MaxWaitMs, 5000)) * time.Millisecond)
	for {
		entries, ok, changed := c.fsm.since(req.After, 1000)
		if !ok {
			var buf bytes.Buffer
			if err := c.fsm.state().encode(&buf); err != nil {
				return &fetchResponse{}
			}
			return &fetchResponse{Snapshot: buf.Bytes()}
		}
		if len(entries) > 0 {
			return &fetchResponse{Entries: entries}
		}
		select {
		case <-changed:
		case <-deadline:
			return &fetchResponse{}
		case <-c.ctx.Done():
			return &fetchResponse{}
		}
	}
}

// fetchLoop is how a broker-only node follows the metadata log: it fetches
// from the active controller (or any voter until it knows which), applying
// entries through the same code as the voters.
func (c *Controller) fetchLoop() {
	defer c.wg.Done()
	ids := make([]int32, 0, len(c.cfg.Voters))
	for id := range c.cfg.Voters {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	try := 0
	for c.ctx.Err() == nil {
		id := c.leaderHint.Load()
		if id < 0 || try > 0 {
			id = ids[try%len(ids)]
		}
		after := uint64(c.fsm.state().img.Offset)
		resp, err := c.fetcher(c.cfg.Voters[id]).call(&rpcRequest{Op: "fetch", Fetch: &fetchRequest{After: after, MaxWaitMs: 500}, ClusterID: c.cfg.ClusterID}, time.Now().Add(5*time.Second))
		if err == nil && resp.Err != nil {
			err = fromWire(resp.Err)
		}
		if err != nil {
			c.logger.Debug("metadata fetch failed", "voter", id, "err", err)
			try++
			c.sleep(100 * time.Millisecond)
			continue
		}
		try = 0
		if resp.Leader >= 0 {
			c.leaderHint.Store(resp.Leader)
		}
		if f := resp.Fetch; f != nil {
			if len(f.Snapshot) > 0 {
				st, err := decodeState(bytes.NewReader(f.Snapshot))
				if err != nil {
					c.fsm.loadErrors.Add(1)
					c.logger.Error("metadata snapshot from voter unreadable", "voter", id, "err", err)
					c.sleep(time.Second)
					continue
				}
				c.fsm.install(st)
			}
			for _, e := range f.Entries {
				c.fsm.applyEntry(e.Index, e.Data)
			}
		}
	}
}

func parseUint(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }

// callCtx bounds a write with a default deadline when ctx has none.
func callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, 30*time.Second)
}

// CreateTopics creates topics; one error per spec, nil where it worked.
func (c *Controller) CreateTopics(ctx context.Context, specs []TopicSpec) []error {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	res, err := c.submit(ctx, &command{Op: opCreateTopics, Topics: specs})
	return perItem(len(specs), res, err)
}

// ValidateCreateTopics is CreateTopics with validateOnly: the active
// controller checks the specs against the live cluster (names, existing
// topics, replication factor against unfenced brokers, assignments) and
// creates nothing.
func (c *Controller) ValidateCreateTopics(ctx context.Context, specs []TopicSpec) []error {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	res, err := c.submit(ctx, &command{Op: opCreateTopics, Topics: specs, DryRun: true})
	return perItem(len(specs), res, err)
}

// DeleteTopics deletes topics; one error per name.
func (c *Controller) DeleteTopics(ctx context.Context, names []string) []error {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	res, err := c.submit(ctx, &command{Op: opDeleteTopics, Names: names})
	return perItem(len(names), res, err)
}

func perItem(n int, res *result, err error) []error {
	out := make([]error, n)
	for i := range out {
		switch {
		case err != nil:
			out[i] = err
		case i < len(res.Errs):
			out[i] = fromWire(res.Errs[i])
		}
	}
	return out
}

// CreatePartitions grows topic to count partitions, with an optional
// manual assignment of the new ones.
func (c *Controller) CreatePartitions(ctx context.Context, topic string, count int32, assignment [][]int32) error {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	_, err := c.submit(ctx, &command{Op: opCreatePartitions, Topic: topic, Count: count, Assignment: assignment})
	return err
}

// ValidateCreatePartitions is CreatePartitions with validateOnly.
func (c *Controller) ValidateCreatePartitions(ctx context.Context, topic string, count int32, assignment [][]int32) error {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	_, err := c.submit(ctx, &command{Op: opCreatePartitions, Topic: topic, Count: count, Assignment: assignment, DryRun: true})
	return err
}

// AlterConfigs changes topic config overrides: a nil value deletes the
// key. With replace (the non-incremental AlterConfigs) every override not
// in changes is deleted too. Values are validated by the caller.
func (c *Controller) AlterConfigs(ctx context.Context, topic string, changes map[string]*string, replace bool) error {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	_, err := c.submit(ctx, &command{Op: opAlterConfigs, Topic: topic, Configs: changes, Replace: replace})
	return err
}

// AlterPartitions asks for several ISR changes at once, committed as one
// metadata log entry: what a broker sends for the changes that queued
// while its previous request was in flight (Kafka's AlterPartitionManager).
// Each change gets its partition as it now stands and its own error.
func (c *Controller) AlterPartitions(ctx context.Context, reqs []AlterPartitionRequest) ([]metadata.Partition, []error) {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	res, err := c.submit(ctx, &command{Op: opAlterPartitions, AlterPartitions: reqs})
	parts := make([]metadata.Partition, len(reqs))
	if res != nil {
		copy(parts, res.Partitions)
	}
	return parts, perItem(len(reqs), res, err)
}

// AlterPartition asks for an ISR change; the answer is the partition as
// it now stands (also on a refusal, so the leader learns the current
// epochs).
func (c *Controller) AlterPartition(ctx context.Context, req AlterPartitionRequest) (metadata.Partition, error) {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	res, err := c.submit(ctx, &command{Op: opAlterPartition, AlterPartition: &req})
	if res != nil && res.Partition != nil {
		return *res.Partition, err
	}
	return metadata.Partition{}, err
}

// ElectLeaders runs preferred or unclean elections; one error per
// partition (ErrElectionNotNeeded where nothing had to change).
func (c *Controller) ElectLeaders(ctx context.Context, typ ElectionType, parts []TopicPartition) []error {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	res, err := c.submit(ctx, &command{Op: opElectLeaders, Election: typ, Partitions: parts})
	return perItem(len(parts), res, err)
}

// AlterReassignments starts, replaces or cancels (nil Replicas)
// reassignments; one error per entry.
func (c *Controller) AlterReassignments(ctx context.Context, rs []Reassignment) []error {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	res, err := c.submit(ctx, &command{Op: opReassign, Reassignments: rs})
	return perItem(len(rs), res, err)
}

// ReassignmentState is one ongoing reassignment.
type ReassignmentState struct {
	TopicPartition
	Replicas, Adding, Removing []int32
}

// ListReassignments lists ongoing reassignments from this node's image,
// of the given partitions or (nil) of all.
func (c *Controller) ListReassignments(parts []TopicPartition) []ReassignmentState {
	img := c.Image()
	var out []ReassignmentState
	add := func(tp TopicPartition, p *metadata.Partition) {
		if p != nil && (len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0) {
			out = append(out, ReassignmentState{tp, slices.Clone(p.Replicas), slices.Clone(p.AddingReplicas), slices.Clone(p.RemovingReplicas)})
		}
	}
	if parts != nil {
		for _, tp := range parts {
			add(tp, img.Partition(tp.Topic, tp.Partition))
		}
		return out
	}
	for _, n := range img.TopicNames() {
		t := img.Topics[n]
		for i := range t.Partitions {
			add(TopicPartition{n, int32(i)}, &t.Partitions[i])
		}
	}
	return out
}

// Bootstrap imports topics of a legacy single-node data dir
// (kobs-topics.json, see ReadLegacyTopics) into the metadata log. It runs
// once per cluster: after the first Bootstrap (even of no topics) later
// calls do nothing, and topics that exist already are kept as they are.
func (c *Controller) Bootstrap(ctx context.Context, topics []TopicSpec) error {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	_, err := c.submit(ctx, &command{Op: opBootstrap, Topics: topics})
	return err
}
