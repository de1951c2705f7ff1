package group

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup handles a SyncGroup request. Followers of a rebalancing group
// are parked until the leader's assignment is persisted; respond is called
// exactly once.
func (c *Coordinator) SyncGroup(req *kmsg.SyncGroupRequest, respond func(*kmsg.SyncGroupResponse)) {
	if req.Group == "" {
		respond(syncError(kerr.InvalidGroupID.Code))
		return
	}
	s, code := c.lock(req.Group)
	if code != 0 {
		respond(syncError(code))
		return
	}
	defer s.unlock()
	s.sync(req, respond)
}

// inconsistent is Kafka's isProtocolInconsistent: both given and different.
func inconsistent(req *string, group string, groupSet bool) bool {
	return req != nil && groupSet && *req != group
}

func (s *shard) sync(req *kmsg.SyncGroupRequest, respond func(*kmsg.SyncGroupResponse)) {
	fail := func(code int16) { s.reply(func() { respond(syncError(code)) }) }
	g := s.groups[req.Group]
	if g == nil || g.state == stateEmpty {
		fail(errUnknownMemberID)
		return
	}
	if g.state == stateDead {
		fail(kerr.CoordinatorNotAvailable.Code)
		return
	}
	if code := g.validateMember(req.MemberID, req.InstanceID); code != 0 {
		fail(code)
		return
	}
	protocol := ""
	if g.protocol != nil {
		protocol = *g.protocol
	}
	switch {
	case req.Generation != g.generation:
		fail(kerr.IllegalGeneration.Code)
		return
	case inconsistent(req.ProtocolType, g.protocolType, g.protocolType != ""),
		inconsistent(req.Protocol, protocol, g.protocol != nil):
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	m := g.member(req.MemberID)
	switch g.state {
	case statePreparingRebalance:
		fail(kerr.RebalanceInProgress.Code)
	case stateCompletingRebalance:
		s.completeSync(m, syncError(kerr.RebalanceInProgress.Code)) // superseded by this request
		m.syncCb = respond
		s.removePendingSync(g, m.id)
		if !g.isLeader(m.id) {
			return
		}
		assign := make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			assign[a.MemberID] = a.MemberAssignment
		}
		s.storeAssignment(g, m.id, assign)
	case stateStable:
		s.removePendingSync(g, m.id)
		resp := kmsg.NewPtrSyncGroupResponse()
		pt := g.protocolType
		resp.ProtocolType, resp.Protocol = &pt, g.protocol
		resp.MemberAssignment = orEmpty(m.assignment)
		s.reply(func() { respond(resp) })
	}
}

// Heartbeat handles a Heartbeat request.
func (c *Coordinator) Heartbeat(req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	s, code := c.lock(req.Group)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	defer s.unlock()
	resp.ErrorCode = s.heartbeat(req)
	return resp
}

func (s *shard) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	g := s.groups[req.Group]
	switch {
	case g == nil:
		return errUnknownMemberID
	case g.state == stateDead:
		return kerr.CoordinatorNotAvailable.Code
	}
	if code := g.validateMember(req.MemberID, req.InstanceID); code != 0 {
		return code
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	m := g.member(req.MemberID)
	switch g.state {
	case stateEmpty:
		return errUnknownMemberID
	case statePreparingRebalance:
		s.scheduleHeartbeat(g, m, m.sessionTimeout())
		return kerr.RebalanceInProgress.Code
	default: // CompletingRebalance (heartbeats may start after the join response) and Stable
		s.scheduleHeartbeat(g, m, m.sessionTimeout())
		return 0
	}
}

// LeaveGroup handles a LeaveGroup request: v0-v2 name one member, v3+ a
// batch (by member id, or by group.instance.id alone for admin removal).
func (c *Coordinator) LeaveGroup(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	s, code := c.lock(req.Group)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	defer s.unlock()
	g := s.groups[req.Group]
	switch {
	case g == nil:
		resp.ErrorCode = errUnknownMemberID
		return resp
	case g.state == stateDead:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	left := 0
	for _, lm := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = lm.MemberID, lm.InstanceID
		switch {
		case lm.MemberID == "":
			id, ok := "", false
			if lm.InstanceID != nil {
				id, ok = g.static[*lm.InstanceID]
			}
			if !ok {
				rm.ErrorCode = errUnknownMemberID
				break
			}
			s.removeLeavingMember(g, id)
			left++
		case g.pending[lm.MemberID] != nil:
			s.stopTimer(g.pending[lm.MemberID])
			delete(g.pending, lm.MemberID)
			left++
		default:
			if rm.ErrorCode = g.validateMember(lm.MemberID, lm.InstanceID); rm.ErrorCode == 0 {
				s.removeLeavingMember(g, lm.MemberID)
				left++
			}
		}
		resp.Members = append(resp.Members, rm)
	}
	if left > 0 {
		switch g.state {
		case stateStable, stateCompletingRebalance:
			s.maybePrepareRebalanceOrCompleteJoin(g, "members left the group")
		case statePreparingRebalance:
			s.maybeCompleteJoinPhase(g)
		}
	}
	if req.Version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	return resp
}

func (s *shard) removeLeavingMember(g *group, id string) {
	m := g.member(id)
	s.stopTimer(&m.hb)
	s.completeJoin(m, joinError(errUnknownMemberID, ""))
	s.completeSync(m, syncError(errUnknownMemberID))
	g.remove(id)
	s.c.log.Info("member left group", "group", g.id, "member", id)
}

// storeAssignment writes the leader's assignment and hands it out once the
// record is committed (on the partition's ISR), as Kafka's storeGroup
// (appendForGroup with acks=-1): a coordinator failover then cannot
// forget a generation members act on. Until then the group stays
// CompletingRebalance and the members' SyncGroups stay parked; if the
// group moved on meanwhile (a member joined or left, a new generation)
// the outcome is dropped, as Kafka's callback does.
func (s *shard) storeAssignment(g *group, leader string, assign map[string][]byte) {
	// The record carries the new assignment; the members get it on commit.
	prev := make(map[string][]byte, len(g.members))
	for _, o := range g.members {
		prev[o.id] = o.assignment
		o.assignment = orEmpty(assign[o.id]) // missing members get an empty assignment
	}
	rec := KV{Key: EncodeGroupKey(g.id), Value: EncodeGroupValue(g.metadataValue())}
	for _, o := range g.members {
		o.assignment = prev[o.id]
	}
	gen := g.generation
	stored := func(err error) {
		if s.groups[g.id] != g || g.state != stateCompletingRebalance || g.generation != gen {
			return
		}
		if err != nil {
			code := storeErrorCode(err)
			s.c.log.Warn("storing group assignment failed", "group", g.id, "generation", gen, "leader", leader,
				"err", err, "error_code", kerr.ErrorForCode(code))
			s.resetAndPropagate(g, code)
			s.maybePrepareRebalanceOrCompleteJoin(g, "storing the assignment failed")
			return
		}
		for _, o := range g.members {
			o.assignment = orEmpty(assign[o.id])
		}
		s.propagateAssignment(g, 0)
		g.transition(stateStable, s.nowMs())
		s.c.log.Info("group stable", "group", g.id, "generation", g.generation, "members", len(g.members))
	}
	if err := s.appendThen([]KV{rec}, stored); err != nil {
		stored(err)
	}
}

// storeErrorCode maps a failed group metadata write to the SyncGroup (and
// JoinGroup) answer, as Kafka's GroupMetadataManager.storeGroup does.
func storeErrorCode(err error) int16 {
	switch {
	case errors.Is(err, ErrNotCoordinator):
		return kerr.NotCoordinator.Code
	case errors.Is(err, ErrTimeout):
		return kerr.RebalanceInProgress.Code
	case errors.Is(err, ErrRecordTooLarge):
		return kerr.UnknownServerError.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}
