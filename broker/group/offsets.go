package group

import (
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// validateOffsetCommit is Kafka's ClassicGroup.validateOffsetCommit.
func (g *group) validateOffsetCommit(memberID string, instanceID *string, gen int32) int16 {
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable.Code
	}
	if gen < 0 && g.state == stateEmpty {
		// Admin clients and consumers that assign partitions themselves
		// commit with generation -1 to groups without members.
		return 0
	}
	if gen >= 0 || memberID != "" || instanceID != nil {
		if code := g.validateMember(memberID, instanceID); code != 0 {
			return code
		}
		if gen != g.generation {
			return kerr.IllegalGeneration.Code
		}
	} else if g.state != stateEmpty {
		return errUnknownMemberID
	}
	if g.state == stateCompletingRebalance {
		// The member has its new generation from JoinGroup but no
		// assignment yet: committing now would be for partitions it may
		// lose.
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// OffsetCommit handles an OffsetCommit request. The accepted offsets are
// appended to the local log and cached under the shard lock; respond is
// called (never under the lock) once the batch is committed to the
// partition's ISR, or with Kafka's error codes if that failed.
func (c *Coordinator) OffsetCommit(req *kmsg.OffsetCommitRequest, respond func(*kmsg.OffsetCommitResponse)) {
	resp := c.offsetCommit(req, respond)
	if resp != nil {
		respond(resp)
	}
}

// offsetCommit answers at once (a non-nil response) or arranges for
// respond to be called after the append commits.
func (c *Coordinator) offsetCommit(req *kmsg.OffsetCommitRequest, respond func(*kmsg.OffsetCommitResponse)) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	type ref struct{ t, p int }
	var valid []ref
	for ti, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for pi, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			if !c.cfg.PartitionExists(rt.Topic, rp.Partition) {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				valid = append(valid, ref{ti, pi})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	setAll := func(code int16) {
		for _, v := range valid {
			resp.Topics[v.t].Partitions[v.p].ErrorCode = code
		}
	}
	if len(valid) == 0 {
		return resp
	}
	memberID, gen := req.MemberID, req.Generation
	if req.Version == 0 {
		memberID, gen = "", -1
	}
	// Kafka accepts the empty group id here, for old clients.
	s, code := c.lock(req.Group)
	if code != 0 {
		setAll(code)
		return resp
	}
	defer s.unlock()
	g := s.groups[req.Group]
	created := false
	if g == nil {
		if gen >= 0 {
			// A member of a group this coordinator does not know.
			setAll(kerr.IllegalGeneration.Code)
			return resp
		}
		g, created = newGroup(req.Group, s.nowMs()), true
	} else if code := g.validateOffsetCommit(memberID, req.InstanceID, gen); code != 0 {
		setAll(code)
		return resp
	}
	if m := g.member(memberID); m != nil && (g.state == stateStable || g.state == statePreparingRebalance) {
		// A commit proves the member alive, as a heartbeat does.
		s.scheduleHeartbeat(g, m, m.sessionTimeout())
	}

	now := s.nowMs()
	expire := int64(-1)
	if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis != -1 {
		expire = now + req.RetentionTimeMillis
	}
	type pending struct {
		topic string
		part  int32
		val   OffsetValue
	}
	var recs []KV
	var commits []pending
	var committed []ref
	for _, v := range valid {
		rt := req.Topics[v.t]
		rp := rt.Partitions[v.p]
		md := ""
		if rp.Metadata != nil {
			md = *rp.Metadata
		}
		if len(md) > c.cfg.MaxMetadataBytes {
			resp.Topics[v.t].Partitions[v.p].ErrorCode = kerr.OffsetMetadataTooLarge.Code
			continue
		}
		epoch := int32(-1)
		if req.Version >= 6 {
			epoch = rp.LeaderEpoch
		}
		val := OffsetValue{Offset: rp.Offset, LeaderEpoch: epoch, Metadata: md, CommitTimestamp: now, ExpireTimestamp: expire}
		recs = append(recs, KV{Key: EncodeOffsetKey(OffsetKey{req.Group, rt.Topic, rp.Partition}), Value: EncodeOffsetValue(val)})
		commits = append(commits, pending{rt.Topic, rp.Partition, val})
		committed = append(committed, v)
	}
	if len(recs) == 0 {
		return resp
	}
	fail := func(err error) {
		// Kafka's appendForGroup error mapping for offset commits.
		code := kerr.CoordinatorNotAvailable.Code
		switch {
		case errors.Is(err, ErrRecordTooLarge):
			code = kerr.InvalidCommitOffsetSize.Code
		case errors.Is(err, ErrNotCoordinator):
			code = kerr.NotCoordinator.Code
		case errors.Is(err, ErrTimeout):
			code = kerr.RequestTimedOut.Code
		}
		c.log.Warn("offset commit failed", "group", req.Group, "partitions", len(recs), "err", err)
		for _, v := range committed {
			resp.Topics[v.t].Partitions[v.p].ErrorCode = code
		}
	}
	err := s.appendAck(recs, func(err error) {
		if err != nil {
			fail(err)
		}
		respond(resp)
	})
	if err != nil {
		fail(err)
		return resp
	}
	// Cached now, in log order: a later commit of the same partition
	// overwrites this one in both. If the batch does not commit, this
	// broker is losing the partition's leadership and unloads the
	// shard, cache included.
	if created {
		s.groups[g.id] = g
	}
	for _, p := range commits {
		g.setOffset(p.topic, p.part, p.val)
	}
	return nil
}

// fetchOffsets returns a group's committed offsets: all of them when
// topics is nil, else the requested partitions (-1 where none).
func (c *Coordinator) fetchOffsets(groupID string, topics []kmsg.OffsetFetchRequestTopic, all bool) ([]kmsg.OffsetFetchResponseTopic, int16) {
	s, code := c.lock(groupID)
	if code != 0 {
		return nil, code
	}
	defer s.unlock()
	g := s.groups[groupID]
	part := func(p int32, o OffsetValue, ok bool) kmsg.OffsetFetchResponseTopicPartition {
		sp := kmsg.NewOffsetFetchResponseTopicPartition()
		sp.Partition = p
		sp.Offset, sp.LeaderEpoch, sp.Metadata = -1, -1, strp("")
		if ok {
			sp.Offset, sp.LeaderEpoch, sp.Metadata = o.Offset, o.LeaderEpoch, strp(o.Metadata)
		}
		return sp
	}
	var out []kmsg.OffsetFetchResponseTopic
	if all {
		if g == nil {
			return nil, 0
		}
		names := make([]string, 0, len(g.offsets))
		for t := range g.offsets {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			st := kmsg.NewOffsetFetchResponseTopic()
			st.Topic = t
			parts := make([]int32, 0, len(g.offsets[t]))
			for p := range g.offsets[t] {
				parts = append(parts, p)
			}
			sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
			for _, p := range parts {
				st.Partitions = append(st.Partitions, part(p, g.offsets[t][p], true))
			}
			out = append(out, st)
		}
		return out, 0
	}
	for _, rt := range topics {
		st := kmsg.NewOffsetFetchResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			var o OffsetValue
			ok := false
			if g != nil {
				o, ok = g.offsets[rt.Topic][p]
			}
			st.Partitions = append(st.Partitions, part(p, o, ok))
		}
		out = append(out, st)
	}
	return out, 0
}

func strp(s string) *string { return &s }

// OffsetFetch handles an OffsetFetch request (one group before v8, a list
// of groups from v8).
func (c *Coordinator) OffsetFetch(req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			gr := kmsg.NewOffsetFetchResponseGroup()
			gr.Group = rg.Group
			var topics []kmsg.OffsetFetchRequestTopic
			for _, t := range rg.Topics {
				topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
			got, code := c.fetchOffsets(rg.Group, topics, rg.Topics == nil)
			gr.ErrorCode = code
			for _, t := range got {
				gt := kmsg.NewOffsetFetchResponseGroupTopic()
				gt.Topic = t.Topic
				for _, p := range t.Partitions {
					gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					gp.Partition, gp.Offset, gp.LeaderEpoch, gp.Metadata = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata
					gt.Partitions = append(gt.Partitions, gp)
				}
				gr.Topics = append(gr.Topics, gt)
			}
			resp.Groups = append(resp.Groups, gr)
		}
		return resp
	}
	// Null topics (fetch all) exists from v2.
	got, code := c.fetchOffsets(req.Group, req.Topics, req.Version >= 2 && req.Topics == nil)
	switch {
	case code == 0:
		resp.Topics = got
	case req.Version >= 2:
		resp.ErrorCode = code
	default:
		// v0-v1 have no group-level error: every partition carries it.
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetFetchResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewOffsetFetchResponseTopicPartition()
				sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode = p, -1, -1, strp(""), code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
	}
	return resp
}

// OffsetDelete handles an OffsetDelete request: offsets of topics the group
// does not consume are deleted (tombstoned).
func (c *Coordinator) OffsetDelete(req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
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
	case g == nil || g.state == stateDead:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	case g.state != stateEmpty && g.protocolType != consumerProtocolType:
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp
	}
	type tp struct {
		topic string
		part  int32
	}
	var recs []KV
	var dels []tp
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		subscribed := g.isSubscribedTo(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case !c.cfg.PartitionExists(rt.Topic, rp.Partition):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case subscribed:
				sp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			case g.hasOffset(rt.Topic, rp.Partition):
				recs = append(recs, KV{Key: EncodeOffsetKey(OffsetKey{g.id, rt.Topic, rp.Partition})})
				dels = append(dels, tp{rt.Topic, rp.Partition})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if err := s.append(recs); err != nil {
		c.log.Warn("offset delete failed", "group", g.id, "err", err)
		resp.ErrorCode = appendErrorCode(err)
		resp.Topics = nil
		return resp
	}
	for _, d := range dels {
		g.deleteOffset(d.topic, d.part)
	}
	return resp
}
