package group

import (
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	errUnknownMemberID  = kerr.UnknownMemberID.Code
	errFencedInstanceID = kerr.FencedInstanceID.Code
)

// Client identifies the connection a request came from, for member
// descriptions (DescribeGroups shows them).
type Client struct {
	ID   string // the request header's client id
	Host string // Kafka shows the address as "/127.0.0.1"
}

func joinError(code int16, memberID string) *kmsg.JoinGroupResponse {
	r := kmsg.NewPtrJoinGroupResponse()
	r.ErrorCode, r.MemberID, r.Generation = code, memberID, -1
	return r
}

func syncError(code int16) *kmsg.SyncGroupResponse {
	r := kmsg.NewPtrSyncGroupResponse()
	r.ErrorCode = code
	r.MemberAssignment = []byte{}
	return r
}

// appendErrorCode is Kafka's appendGroupMetadataErrorToResponseError for a
// failed __consumer_offsets append.
func appendErrorCode(err error) int16 {
	if errors.Is(err, ErrRecordTooLarge) {
		return kerr.UnknownServerError.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}

func (s *shard) reply(f func()) { s.out = append(s.out, f) }

// completeJoin answers m's parked JoinGroup, if any.
func (s *shard) completeJoin(m *member, resp *kmsg.JoinGroupResponse) bool {
	cb := m.joinCb
	if cb == nil {
		return false
	}
	m.joinCb = nil
	s.reply(func() { cb(resp) })
	return true
}

// completeSync answers m's parked SyncGroup, if any.
func (s *shard) completeSync(m *member, resp *kmsg.SyncGroupResponse) bool {
	cb := m.syncCb
	if cb == nil {
		return false
	}
	m.syncCb = nil
	s.reply(func() { cb(resp) })
	return true
}

// current reports this group's current generation to a member; the
// leader gets every member's metadata for the selected protocol.
func (g *group) joinResponse(m *member, withMembers bool) *kmsg.JoinGroupResponse {
	r := kmsg.NewPtrJoinGroupResponse()
	r.Generation = g.generation
	pt := g.protocolType
	r.ProtocolType = &pt
	r.Protocol = g.protocol
	if g.leader != nil {
		r.LeaderID = *g.leader
	}
	r.MemberID = m.id
	if withMembers {
		for _, o := range g.members {
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID, jm.InstanceID = o.id, o.instanceID
			if g.protocol != nil {
				jm.ProtocolMetadata = orEmpty(o.metadataFor(*g.protocol))
			}
			r.Members = append(r.Members, jm)
		}
	}
	return r
}

// JoinGroup handles a JoinGroup request; respond is called exactly once,
// possibly later from a timer (a parked join waits for the rebalance).
func (c *Coordinator) JoinGroup(req *kmsg.JoinGroupRequest, client Client, respond func(*kmsg.JoinGroupResponse)) {
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	switch {
	case req.Group == "":
		respond(joinError(kerr.InvalidGroupID.Code, req.MemberID))
		return
	case session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout:
		respond(joinError(kerr.InvalidSessionTimeout.Code, req.MemberID))
		return
	}
	if code := joinFits(req, client); code != 0 {
		respond(joinError(code, ""))
		return
	}
	if req.Version == 0 {
		// v0 has no rebalance timeout; the session timeout served as both.
		req.RebalanceTimeoutMillis = req.SessionTimeoutMillis
	}
	s, code := c.lock(req.Group)
	if code != 0 {
		respond(joinError(code, req.MemberID))
		return
	}
	defer s.unlock()
	s.join(req, client, respond)
}

func (s *shard) join(req *kmsg.JoinGroupRequest, client Client, respond func(*kmsg.JoinGroupResponse)) {
	fail := func(code int16, memberID string) {
		s.reply(func() { respond(joinError(code, memberID)) })
	}
	g := s.groups[req.Group]
	unknown := req.MemberID == ""
	if g == nil {
		if !unknown {
			fail(errUnknownMemberID, req.MemberID)
			return
		}
		g = newGroup(req.Group, s.nowMs())
		if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
			fail(kerr.InconsistentGroupProtocol.Code, "")
			return
		}
		// Kafka commits a new group with an empty metadata record so it
		// exists (and can be described) even if nothing else is written.
		if err := s.append([]KV{{Key: EncodeGroupKey(g.id), Value: EncodeGroupValue(g.metadataValue())}}); err != nil {
			s.c.log.Warn("writing new group metadata failed", "group", g.id, "err", err)
			fail(appendErrorCode(err), "")
			return
		}
		s.groups[g.id] = g
	}
	if unknown {
		s.joinNewMember(g, req, client, respond)
	} else {
		s.joinExistingMember(g, req, client, respond)
	}
}

func (s *shard) joinNewMember(g *group, req *kmsg.JoinGroupRequest, client Client, respond func(*kmsg.JoinGroupResponse)) {
	switch {
	case g.state == stateDead:
		s.reply(func() { respond(joinError(kerr.CoordinatorNotAvailable.Code, "")) })
		return
	case !g.supportsProtocols(req.ProtocolType, req.Protocols):
		s.reply(func() { respond(joinError(kerr.InconsistentGroupProtocol.Code, "")) })
		return
	}
	id := newMemberID(client.ID, req.InstanceID)
	if req.InstanceID != nil {
		if old, ok := g.static[*req.InstanceID]; ok {
			s.replaceStaticMember(g, req, old, id, respond)
			return
		}
		s.addMemberAndRebalance(g, req, id, client, respond)
		return
	}
	if req.Version >= 4 {
		// KIP-394: hand out the member id first; the member is only
		// added when it rejoins with it, so a client that times out and
		// retries does not leave defunct members in the rebalance.
		t := &timer{}
		g.pending[id] = t
		s.schedule(t, time.Duration(req.SessionTimeoutMillis)*time.Millisecond, func() { s.expirePending(g, id) })
		s.c.log.Debug("member id required", "group", g.id, "member", id)
		s.reply(func() { respond(joinError(kerr.MemberIDRequired.Code, id)) })
		return
	}
	s.addMemberAndRebalance(g, req, id, client, respond)
}

func (s *shard) joinExistingMember(g *group, req *kmsg.JoinGroupRequest, client Client, respond func(*kmsg.JoinGroupResponse)) {
	id := req.MemberID
	fail := func(code int16) { s.reply(func() { respond(joinError(code, id)) }) }
	switch {
	case g.state == stateDead:
		fail(kerr.CoordinatorNotAvailable.Code)
		return
	case !g.supportsProtocols(req.ProtocolType, req.Protocols):
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	if t, ok := g.pending[id]; ok && req.InstanceID == nil {
		s.stopTimer(t)
		s.addMemberAndRebalance(g, req, id, client, respond)
		return
	}
	if code := g.validateMember(id, req.InstanceID); code != 0 {
		fail(code)
		return
	}
	m := g.member(id)
	switch g.state {
	case statePreparingRebalance:
		s.updateMember(m, req, respond)
		s.maybePrepareRebalanceOrCompleteJoin(g, "member rejoined during rebalance")
	case stateCompletingRebalance:
		if m.matches(req.Protocols) {
			// Same metadata (the member probably lost the first
			// response): answer with the current generation.
			resp := g.joinResponse(m, g.isLeader(id))
			s.reply(func() { respond(resp) })
			return
		}
		s.updateMember(m, req, respond)
		s.maybePrepareRebalanceOrCompleteJoin(g, "member "+id+" changed its metadata")
	case stateStable:
		if g.isLeader(id) || !m.matches(req.Protocols) {
			// A leader's rejoin lets it trigger rebalances for changes
			// invisible to member metadata (new partitions); changed
			// metadata (cooperative owned partitions, subscriptions)
			// needs one too.
			s.updateMember(m, req, respond)
			s.maybePrepareRebalanceOrCompleteJoin(g, "member "+id+" rejoined a stable group")
			return
		}
		resp := g.joinResponse(m, false)
		s.reply(func() { respond(resp) })
	default:
		fail(errUnknownMemberID)
	}
}

// updateMember records a rejoining member's protocols and timeouts and
// parks its JoinGroup.
func (s *shard) updateMember(m *member, req *kmsg.JoinGroupRequest, respond func(*kmsg.JoinGroupResponse)) {
	m.protocols = slices.Clone(req.Protocols)
	m.rebalanceTimeout = req.RebalanceTimeoutMillis
	m.sessionTimeoutMs = req.SessionTimeoutMillis
	// A second JoinGroup for the same member (a client that retried on a
	// new connection) supersedes the first; answer the old one so its
	// connection is not left waiting.
	s.completeJoin(m, joinError(kerr.RebalanceInProgress.Code, m.id))
	m.joinCb = respond
}

func (s *shard) addMemberAndRebalance(g *group, req *kmsg.JoinGroupRequest, id string, client Client, respond func(*kmsg.JoinGroupResponse)) {
	m := &member{
		id: id, clientID: client.ID, clientHost: client.Host,
		rebalanceTimeout: req.RebalanceTimeoutMillis, sessionTimeoutMs: req.SessionTimeoutMillis,
		protocolType: req.ProtocolType, protocols: slices.Clone(req.Protocols),
		joinCb: respond, isNew: true,
	}
	if req.InstanceID != nil {
		inst := *req.InstanceID
		m.instanceID = &inst
	}
	if g.state == statePreparingRebalance && g.prevState == stateEmpty {
		g.newMemberAdded = true // extends the initial rebalance delay
	}
	g.add(m)
	// A parked join of a new member cannot heartbeat; bound it so a client
	// that gave up does not stay in the group forever.
	s.scheduleHeartbeat(g, m, s.c.cfg.NewMemberJoinTimeout)
	s.c.log.Info("member joined group", "group", g.id, "member", id, "client_id", client.ID, "state", g.state.String())
	s.maybePrepareRebalanceOrCompleteJoin(g, "member "+id+" joined")
}

// replaceStaticMember is Kafka's updateStaticMemberThenRebalanceOrCompleteJoin:
// a known group.instance.id joining without a member id takes over the old
// member's place under a new id, fencing the old id.
func (s *shard) replaceStaticMember(g *group, req *kmsg.JoinGroupRequest, oldID, newID string, respond func(*kmsg.JoinGroupResponse)) {
	m := g.member(oldID)
	if m == nil {
		s.reply(func() { respond(joinError(errUnknownMemberID, "")) })
		return
	}
	currentLeader := g.leader
	s.completeJoin(m, joinError(errFencedInstanceID, oldID))
	s.completeSync(m, syncError(errFencedInstanceID))
	old := *m
	rename := func(from, to string) {
		m.id = to
		g.static[*m.instanceID] = to
		if g.isLeader(from) {
			l := to
			g.leader = &l
		}
		if g.pendingSync[from] {
			delete(g.pendingSync, from)
			g.pendingSync[to] = true
		}
	}
	rename(oldID, newID)
	m.protocols = slices.Clone(req.Protocols)
	m.rebalanceTimeout, m.sessionTimeoutMs = req.RebalanceTimeoutMillis, req.SessionTimeoutMillis
	m.joinCb = respond
	s.scheduleHeartbeat(g, m, m.sessionTimeout())
	s.c.log.Info("static member replaced", "group", g.id, "member", newID, "old_member", oldID, "group_instance_id", *m.instanceID)

	switch g.state {
	case stateStable:
		if g.protocol != nil && *g.protocol == g.selectProtocol() {
			// The selected protocol stays: persist the new member id and,
			// once that is committed (Kafka's storeGroup, acks=-1), hand
			// back the current assignment without a rebalance. The join
			// stays parked meanwhile: if a rebalance starts, it answers it.
			gen := g.generation
			stored := func(err error) {
				if s.groups[g.id] != g || m.joinCb == nil || m.id != newID {
					return // answered by a rebalance, or replaced again
				}
				if err != nil {
					s.c.log.Warn("persisting replaced static member failed; reverting", "group", g.id, "member", newID, "err", err)
					rename(newID, oldID)
					m.protocols, m.rebalanceTimeout, m.sessionTimeoutMs = old.protocols, old.rebalanceTimeout, old.sessionTimeoutMs
					m.joinCb = nil
					s.scheduleHeartbeat(g, m, m.sessionTimeout())
					resp := joinError(storeErrorCode(err), "")
					resp.Generation, resp.Protocol = g.generation, g.protocol
					if currentLeader != nil {
						resp.LeaderID = *currentLeader
					}
					s.reply(func() { respond(resp) })
					return
				}
				if g.state != stateStable || g.generation != gen {
					return // the join phase under way answers it
				}
				var resp *kmsg.JoinGroupResponse
				if req.Version >= 9 {
					// KIP-814: a static leader learns it leads but is told to
					// skip the assignment it already made.
					lead := g.isLeader(newID)
					resp = g.joinResponse(m, lead)
					resp.SkipAssignment = lead
				} else {
					// Older leaders would reassign; naming the previous
					// leader id makes the replaced leader act as a follower
					// and just sync its current assignment.
					resp = g.joinResponse(m, false)
					resp.LeaderID = ""
					if currentLeader != nil {
						resp.LeaderID = *currentLeader
					}
				}
				s.completeJoin(m, resp)
			}
			if err := s.appendThen([]KV{{Key: EncodeGroupKey(g.id), Value: EncodeGroupValue(g.metadataValue())}}, stored); err != nil {
				stored(err)
			}
			return
		}
		s.maybePrepareRebalanceOrCompleteJoin(g, "static member "+newID+" changed the selected protocol")
	case stateCompletingRebalance:
		// The leader may already be assigning with the old member id.
		s.prepareRebalance(g, "static member "+newID+" rejoined during CompletingRebalance")
	default:
		s.maybeCompleteJoinPhase(g)
	}
}

func (s *shard) maybePrepareRebalanceOrCompleteJoin(g *group, reason string) {
	switch g.state {
	case stateStable, stateCompletingRebalance, stateEmpty:
		s.prepareRebalance(g, reason)
	default:
		s.maybeCompleteJoinPhase(g)
	}
}

func (s *shard) prepareRebalance(g *group, reason string) {
	if g.state == stateCompletingRebalance {
		s.resetAndPropagate(g, kerr.RebalanceInProgress.Code)
	}
	s.removeSyncExpiration(g)
	initial := g.state == stateEmpty
	if initial {
		// group.initial.rebalance.delay.ms: give the other members of a
		// starting group time to join before the first generation.
		delay := s.c.cfg.InitialRebalanceDelay
		remaining := max(g.rebalanceTimeout()-delay, 0)
		g.newMemberAdded = false
		s.schedule(&g.joinTimer, delay, func() { s.tryCompleteInitialRebalance(g, delay, remaining) })
	}
	g.transition(statePreparingRebalance, s.nowMs())
	s.c.log.Info("preparing to rebalance group", "group", g.id, "generation", g.generation, "reason", reason)
	if !initial {
		s.maybeCompleteJoinElseSchedule(g)
	}
}

func (s *shard) maybeCompleteJoinElseSchedule(g *group) {
	if g.hasAllMembersJoined() {
		s.completeJoinPhase(g)
		return
	}
	s.schedule(&g.joinTimer, g.rebalanceTimeout(), func() { s.completeJoinPhaseIfCurrent(g) })
}

func (s *shard) tryCompleteInitialRebalance(g *group, delay, remaining time.Duration) {
	if s.groups[g.id] != g {
		return
	}
	if g.newMemberAdded && remaining != 0 {
		g.newMemberAdded = false
		nd := min(s.c.cfg.InitialRebalanceDelay, remaining)
		nr := max(remaining-delay, 0)
		s.schedule(&g.joinTimer, nd, func() { s.tryCompleteInitialRebalance(g, nd, nr) })
		return
	}
	s.completeJoinPhase(g)
}

func (s *shard) maybeCompleteJoinPhase(g *group) {
	// A group starting from Empty completes on the initial delay timer.
	if g.state != statePreparingRebalance || g.prevState == stateEmpty || !g.hasAllMembersJoined() {
		return
	}
	s.completeJoinPhase(g)
}

func (s *shard) completeJoinPhaseIfCurrent(g *group) {
	if s.groups[g.id] == g {
		s.completeJoinPhase(g)
	}
}

// completeJoinPhase ends PreparingRebalance: dynamic members that did not
// rejoin are dropped, the generation advances, and every waiting member
// gets its JoinGroup answer (the leader with all members' metadata).
func (s *shard) completeJoinPhase(g *group) {
	s.stopTimer(&g.joinTimer)
	for _, m := range slices.Clone(g.members) {
		if m.joinCb == nil && m.instanceID == nil {
			s.stopTimer(&m.hb)
			g.remove(m.id)
			s.c.log.Info("removed member that did not rejoin in time", "group", g.id, "member", m.id)
		}
	}
	if g.state == stateDead {
		return
	}
	if !g.electJoinedLeader() && len(g.members) > 0 {
		// Only static members that have not rejoined remain: wait
		// another rebalance timeout for them (or their expiry).
		s.c.log.Warn("group could not complete rebalance because no members rejoined", "group", g.id)
		s.schedule(&g.joinTimer, g.rebalanceTimeout(), func() { s.completeJoinPhaseIfCurrent(g) })
		return
	}
	g.generation++
	now := s.nowMs()
	g.pendingSync = map[string]bool{}
	if len(g.members) == 0 {
		g.protocol = nil
		g.subscribed = nil
		g.transition(stateEmpty, now)
		if err := s.append([]KV{{Key: EncodeGroupKey(g.id), Value: EncodeGroupValue(g.metadataValue())}}); err != nil {
			// No member depends on this generation; the previous record
			// stays authoritative until the next write.
			s.c.log.Warn("writing empty group metadata failed", "group", g.id, "err", err)
		}
		s.c.log.Info("group is empty", "group", g.id, "generation", g.generation)
		return
	}
	p := g.selectProtocol()
	g.protocol = &p
	g.subscribed = g.computeSubscribedTopics()
	g.transition(stateCompletingRebalance, now)
	s.c.log.Info("group generation complete; awaiting sync", "group", g.id, "generation", g.generation,
		"members", len(g.members), "protocol", p)
	for _, m := range g.members {
		s.completeJoin(m, g.joinResponse(m, g.isLeader(m.id)))
		s.scheduleHeartbeat(g, m, m.sessionTimeout())
		m.isNew = false
		g.pendingSync[m.id] = true
	}
	gen := g.generation
	s.schedule(&g.syncTimer, g.rebalanceTimeout(), func() { s.expirePendingSync(g, gen) })
}

// electJoinedLeader keeps the leader if it rejoined, else promotes any
// member that did; false if no member rejoined.
func (g *group) electJoinedLeader() bool {
	if g.leader == nil {
		return false
	}
	if l := g.member(*g.leader); l != nil && l.joinCb != nil {
		return true
	}
	for _, m := range g.members {
		if m.joinCb != nil {
			id := m.id
			g.leader = &id
			return true
		}
	}
	return false
}

func (s *shard) resetAndPropagate(g *group, code int16) {
	for _, m := range g.members {
		m.assignment = nil
	}
	s.propagateAssignment(g, code)
}

// propagateAssignment answers every parked SyncGroup.
func (s *shard) propagateAssignment(g *group, code int16) {
	for _, m := range g.members {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = code
		resp.MemberAssignment = orEmpty(m.assignment)
		if code == 0 {
			pt := g.protocolType
			resp.ProtocolType, resp.Protocol = &pt, g.protocol
		}
		if s.completeSync(m, resp) {
			// Expiry was suspended while the member awaited sync.
			s.scheduleHeartbeat(g, m, m.sessionTimeout())
		}
	}
}

func (s *shard) removeSyncExpiration(g *group) {
	g.pendingSync = map[string]bool{}
	s.stopTimer(&g.syncTimer)
}

func (s *shard) removePendingSync(g *group, id string) {
	delete(g.pendingSync, id)
	switch g.state {
	case stateCompletingRebalance, stateStable:
		if len(g.pendingSync) == 0 {
			s.stopTimer(&g.syncTimer)
		}
	default:
		s.stopTimer(&g.syncTimer)
	}
}

// expirePendingSync drops members that never sent SyncGroup within the
// rebalance timeout and rebalances without them.
func (s *shard) expirePendingSync(g *group, gen int32) {
	if s.groups[g.id] != g || gen != g.generation {
		return
	}
	if g.state != stateCompletingRebalance && g.state != stateStable || len(g.pendingSync) == 0 {
		return
	}
	var ids []string
	for id := range g.pendingSync {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if m := g.member(id); m != nil {
			s.stopTimer(&m.hb)
			s.completeJoin(m, joinError(errUnknownMemberID, ""))
			g.remove(id)
		}
	}
	s.c.log.Info("removed members that did not sync in time", "group", g.id, "members", ids)
	s.prepareRebalance(g, "members did not sync in time")
}

func (s *shard) scheduleHeartbeat(g *group, m *member, d time.Duration) {
	s.schedule(&m.hb, d, func() { s.expireHeartbeat(g, m) })
}

// expireHeartbeat removes a member whose session timed out, unless it is
// parked in a JoinGroup or SyncGroup (which counts as alive) and not new.
func (s *shard) expireHeartbeat(g *group, m *member) {
	if s.groups[g.id] != g || g.member(m.id) != m || g.state == stateDead {
		return
	}
	if !m.isNew && (m.joinCb != nil || m.syncCb != nil) {
		return
	}
	s.c.log.Info("member session expired", "group", g.id, "member", m.id, "session_timeout_ms", m.sessionTimeoutMs)
	s.removeMemberAndUpdate(g, m, "member "+m.id+" session expired")
}

func (s *shard) removeMemberAndUpdate(g *group, m *member, reason string) {
	s.completeJoin(m, joinError(errUnknownMemberID, ""))
	s.completeSync(m, syncError(errUnknownMemberID))
	s.stopTimer(&m.hb)
	g.remove(m.id)
	switch {
	case g.state == stateStable || g.state == stateCompletingRebalance:
		s.maybePrepareRebalanceOrCompleteJoin(g, reason)
	case g.state == statePreparingRebalance && g.hasAllMembersJoined():
		s.completeJoinPhase(g)
	}
}

func (s *shard) expirePending(g *group, id string) {
	if s.groups[g.id] != g {
		return
	}
	if _, ok := g.pending[id]; !ok {
		return
	}
	delete(g.pending, id)
	s.c.log.Debug("pending member expired", "group", g.id, "member", id)
	if g.state == statePreparingRebalance && g.hasAllMembersJoined() {
		s.completeJoinPhase(g)
	}
}
