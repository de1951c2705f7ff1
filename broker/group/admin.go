package group

import (
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka's AclOperation bits a group supports (READ, DELETE, DESCRIBE); with
// no authorizer every one is allowed.
const groupAuthorizedOperations = 1<<3 | 1<<6 | 1<<8

// DescribeGroups handles a DescribeGroups request. An unknown group is
// described as Dead without an error, as Kafka does before v6.
func (c *Coordinator) DescribeGroups(req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = id
		dg.AuthorizedOperations = -1 << 31 // not requested
		if req.IncludeAuthorizedOperations {
			dg.AuthorizedOperations = groupAuthorizedOperations
		}
		s, code := c.lock(id)
		if code != 0 {
			dg.ErrorCode = code
			resp.Groups = append(resp.Groups, dg)
			continue
		}
		g := s.groups[id]
		if g == nil {
			dg.State = stateDead.String()
		} else {
			dg.State = g.state.String()
			dg.ProtocolType = g.protocolType
			stable := g.state == stateStable && g.protocol != nil
			if stable {
				dg.Protocol = *g.protocol
			}
			for _, m := range g.members {
				dm := kmsg.NewDescribeGroupsResponseGroupMember()
				dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
				dm.ProtocolMetadata, dm.MemberAssignment = []byte{}, []byte{}
				if stable {
					// Metadata and assignment are only meaningful once the
					// generation is stable (describeNoMetadata otherwise).
					dm.ProtocolMetadata = orEmpty(m.metadataFor(*g.protocol))
					dm.MemberAssignment = orEmpty(m.assignment)
				}
				dg.Members = append(dg.Members, dm)
			}
		}
		s.unlock()
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

// ListGroups handles a ListGroups request; v4's states filter matches
// case-insensitively. Partitions still loading make the top-level error
// COORDINATOR_LOAD_IN_PROGRESS while the loaded ones are listed.
func (c *Coordinator) ListGroups(req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	filter := map[string]bool{}
	for _, st := range req.StatesFilter {
		filter[strings.ToLower(st)] = true
	}
	for _, s := range c.shards {
		s.mu.Lock()
		switch {
		case s.closed:
			resp.ErrorCode = kerr.NotCoordinator.Code
		case !s.owned:
			// Another broker coordinates this partition's groups.
		case !s.loaded:
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		default:
			for _, g := range s.groups {
				if len(filter) > 0 && !filter[strings.ToLower(g.state.String())] {
					continue
				}
				lg := kmsg.NewListGroupsResponseGroup()
				lg.Group, lg.ProtocolType, lg.GroupState = g.id, g.protocolType, g.state.String()
				lg.GroupType = "classic"
				resp.Groups = append(resp.Groups, lg)
			}
		}
		s.unlock()
	}
	sort.Slice(resp.Groups, func(i, j int) bool { return resp.Groups[i].Group < resp.Groups[j].Group })
	return resp
}

// DeleteGroups handles a DeleteGroups request: only empty groups can be
// deleted; their offsets and metadata are tombstoned.
func (c *Coordinator) DeleteGroups(req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = id
		dg.ErrorCode = c.deleteGroup(id)
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (c *Coordinator) deleteGroup(id string) int16 {
	s, code := c.lock(id)
	if code != 0 {
		return code
	}
	defer s.unlock()
	g := s.groups[id]
	switch {
	case g == nil || g.state == stateDead:
		return kerr.GroupIDNotFound.Code
	case g.state != stateEmpty:
		return kerr.NonEmptyGroup.Code
	}
	var recs []KV
	for t, parts := range g.offsets {
		for p := range parts {
			recs = append(recs, KV{Key: EncodeOffsetKey(OffsetKey{id, t, p})})
		}
	}
	recs = append(recs, KV{Key: EncodeGroupKey(id)})
	if err := s.append(recs); err != nil {
		c.log.Warn("deleting group failed", "group", id, "err", err)
		return appendErrorCode(err)
	}
	s.stopTimer(&g.joinTimer)
	s.stopTimer(&g.syncTimer)
	for _, t := range g.pending {
		s.stopTimer(t)
	}
	g.transition(stateDead, s.nowMs())
	delete(s.groups, id)
	c.log.Info("deleted group", "group", id, "offsets", len(recs)-1)
	return 0
}
