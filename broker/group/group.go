package group

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// state is a classic group's state (Kafka's ClassicGroupState).
type state int8

const (
	stateEmpty state = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s state) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	default:
		return "Dead"
	}
}

// consumerProtocolType is the protocol type of Kafka consumers, whose
// metadata kobs parses to know the subscribed topics.
const consumerProtocolType = "consumer"

// member is one member of a classic group.
type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	rebalanceTimeout int32 // ms
	sessionTimeoutMs int32
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol // in the member's preference order
	assignment       []byte

	// joinCb is set while the member's JoinGroup is parked (awaiting
	// join), syncCb while its SyncGroup is.
	joinCb func(*kmsg.JoinGroupResponse)
	syncCb func(*kmsg.SyncGroupResponse)
	// isNew: joined in the current rebalance and not yet answered; such a
	// member may expire even while awaiting join.
	isNew bool
	hb    timer
}

func (m *member) sessionTimeout() time.Duration {
	return time.Duration(m.sessionTimeoutMs) * time.Millisecond
}

// metadataFor returns the member's metadata for protocol name.
func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}

// matches reports whether protocols are exactly the member's (names,
// metadata and order), Kafka's ClassicGroupMember.matches.
func (m *member) matches(protocols []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(m.protocols, protocols, func(a, b kmsg.JoinGroupRequestProtocol) bool {
		return a.Name == b.Name && bytes.Equal(a.Metadata, b.Metadata)
	})
}

// group is one classic group with its committed offsets.
type group struct {
	id        string
	state     state
	prevState state
	stateTs   int64 // ms of the last transition (currentStateTimestamp); -1 unknown

	protocolType string // "" until the first member joins (or for simple groups)
	protocol     *string
	generation   int32
	leader       *string

	members []*member         // in join order (Kafka's insertion order)
	static  map[string]string // group.instance.id -> member id
	// pending are member ids handed out with MEMBER_ID_REQUIRED that have
	// not joined yet, each with its expiry timer.
	pending        map[string]*timer
	pendingSync    map[string]bool
	newMemberAdded bool
	joinTimer      timer
	syncTimer      timer
	// subscribed are the topics the members consume (consumer protocol
	// only); nil when unknown.
	subscribed map[string]bool

	offsets map[string]map[int32]OffsetValue
}

func newGroup(id string, nowMs int64) *group {
	return &group{id: id, state: stateEmpty, prevState: stateEmpty, stateTs: nowMs,
		static: map[string]string{}, pending: map[string]*timer{}, pendingSync: map[string]bool{},
		offsets: map[string]map[int32]OffsetValue{}}
}

// groupFromValue restores a group from its GroupMetadataValue, as Kafka
// does on load: Empty without members, otherwise Stable with the stored
// assignment.
func groupFromValue(id string, v GroupValue) *group {
	g := newGroup(id, v.CurrentStateTimestamp)
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	g.protocol = v.Protocol
	g.leader = v.Leader
	for _, mv := range v.Members {
		m := &member{
			id: mv.MemberID, instanceID: mv.GroupInstanceID, clientID: mv.ClientID, clientHost: mv.ClientHost,
			rebalanceTimeout: mv.RebalanceTimeout, sessionTimeoutMs: mv.SessionTimeout,
			protocolType: v.ProtocolType, assignment: mv.Assignment,
		}
		if m.rebalanceTimeout < 0 {
			m.rebalanceTimeout = m.sessionTimeoutMs
		}
		if v.Protocol != nil {
			m.protocols = []kmsg.JoinGroupRequestProtocol{{Name: *v.Protocol, Metadata: mv.Subscription}}
		}
		g.members = append(g.members, m)
		if m.instanceID != nil {
			g.static[*m.instanceID] = m.id
		}
	}
	if len(g.members) > 0 {
		g.state, g.prevState = stateStable, stateStable
	}
	return g
}

func (g *group) transition(to state, nowMs int64) {
	g.prevState, g.state, g.stateTs = g.state, to, nowMs
}

func (g *group) member(id string) *member {
	for _, m := range g.members {
		if m.id == id {
			return m
		}
	}
	return nil
}

func (g *group) isLeader(id string) bool { return g.leader != nil && *g.leader == id }

// rebalanceTimeout is the longest rebalance timeout of the members.
func (g *group) rebalanceTimeout() time.Duration {
	var ms int32
	for _, m := range g.members {
		ms = max(ms, m.rebalanceTimeout)
	}
	return time.Duration(ms) * time.Millisecond
}

func (g *group) numAwaitingJoin() int {
	n := 0
	for _, m := range g.members {
		if m.joinCb != nil {
			n++
		}
	}
	return n
}

func (g *group) hasAllMembersJoined() bool {
	return g.numAwaitingJoin() == len(g.members) && len(g.pending) == 0
}

// candidateProtocols are the protocols every member supports.
func (g *group) candidateProtocols() map[string]bool {
	if len(g.members) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, p := range g.members[0].protocols {
		out[p.Name] = true
	}
	for _, m := range g.members[1:] {
		for name := range out {
			if !hasProtocol(m.protocols, name) {
				delete(out, name)
			}
		}
	}
	return out
}

func hasProtocol(ps []kmsg.JoinGroupRequestProtocol, name string) bool {
	return slices.ContainsFunc(ps, func(p kmsg.JoinGroupRequestProtocol) bool { return p.Name == name })
}

// supportsProtocols is Kafka's ClassicGroup.supportsProtocols: an empty
// group takes any non-empty protocol type and list; otherwise the type must
// match and one of the protocols must be supported by every member.
func (g *group) supportsProtocols(protocolType string, ps []kmsg.JoinGroupRequestProtocol) bool {
	if g.state == stateEmpty {
		return protocolType != "" && len(ps) > 0
	}
	if g.protocolType != protocolType {
		return false
	}
	cands := g.candidateProtocols()
	for _, p := range ps {
		if cands[p.Name] {
			return true
		}
	}
	return false
}

// selectProtocol lets each member vote for its most preferred candidate
// protocol and picks the one with most votes; ties go to the protocol the
// earliest member prefers, so the choice is deterministic.
func (g *group) selectProtocol() string {
	cands := g.candidateProtocols()
	votes := map[string]int{}
	var order []string
	for _, m := range g.members {
		for _, p := range m.protocols {
			if cands[p.Name] {
				if votes[p.Name] == 0 {
					order = append(order, p.Name)
				}
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, name := range order {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// add adds a member; the first member fixes the protocol type and the
// first member to join leads.
func (g *group) add(m *member) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	g.members = append(g.members, m)
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	delete(g.pending, m.id)
	if g.leader == nil {
		id := m.id
		g.leader = &id
	}
}

// remove drops a member; a removed leader is replaced by the first
// remaining member.
func (g *group) remove(id string) {
	i := slices.IndexFunc(g.members, func(m *member) bool { return m.id == id })
	if i < 0 {
		return
	}
	m := g.members[i]
	g.members = slices.Delete(g.members, i, i+1)
	if m.instanceID != nil && g.static[*m.instanceID] == id {
		delete(g.static, *m.instanceID)
	}
	delete(g.pendingSync, id)
	if g.isLeader(id) {
		g.leader = nil
		if len(g.members) > 0 {
			l := g.members[0].id
			g.leader = &l
		}
	}
}

// validateMember is Kafka's ClassicGroup.validateMember: a static member
// must present the member id registered for its instance id
// (FENCED_INSTANCE_ID otherwise), and the member must exist.
func (g *group) validateMember(memberID string, instanceID *string) int16 {
	if instanceID != nil {
		existing, ok := g.static[*instanceID]
		if !ok {
			return errUnknownMemberID
		}
		if existing != memberID {
			return errFencedInstanceID
		}
	}
	if g.member(memberID) == nil {
		return errUnknownMemberID
	}
	return 0
}

// computeSubscribedTopics parses the consumer protocol metadata of the
// selected protocol; nil if the group is not a consumer group or any
// member's metadata does not parse.
func (g *group) computeSubscribedTopics() map[string]bool {
	if g.protocolType != consumerProtocolType || g.protocol == nil {
		return nil
	}
	out := map[string]bool{}
	for _, m := range g.members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadataFor(*g.protocol)); err != nil {
			return nil
		}
		for _, t := range md.Topics {
			out[t] = true
		}
	}
	return out
}

// isSubscribedTo is Kafka's isSubscribedToTopic: known subscriptions
// decide; unknown ones count as subscribed for a non-empty consumer group.
func (g *group) isSubscribedTo(topic string) bool {
	if g.subscribed != nil {
		return g.subscribed[topic]
	}
	return g.protocolType == consumerProtocolType && len(g.members) > 0
}

// expirationBase is Kafka's offsetExpirationCondition: which timestamp an
// offset's retention counts from, or false if offsets must not expire now.
func (g *group) expirationBase() (func(OffsetValue) int64, bool) {
	if g.protocolType == "" {
		return func(o OffsetValue) int64 { return o.CommitTimestamp }, true
	}
	switch {
	case g.state == stateEmpty:
		ts := g.stateTs
		return func(o OffsetValue) int64 {
			if ts >= 0 {
				return ts
			}
			return o.CommitTimestamp
		}, true
	case g.state == stateStable && g.protocolType == consumerProtocolType && g.subscribed != nil:
		return func(o OffsetValue) int64 { return o.CommitTimestamp }, true
	}
	return nil, false
}

func (g *group) setOffset(topic string, partition int32, v OffsetValue) {
	parts := g.offsets[topic]
	if parts == nil {
		parts = map[int32]OffsetValue{}
		g.offsets[topic] = parts
	}
	parts[partition] = v
}

func (g *group) deleteOffset(topic string, partition int32) {
	if parts := g.offsets[topic]; parts != nil {
		delete(parts, partition)
		if len(parts) == 0 {
			delete(g.offsets, topic)
		}
	}
}

func (g *group) hasOffset(topic string, partition int32) bool {
	_, ok := g.offsets[topic][partition]
	return ok
}

// metadataValue is the GroupMetadataValue for the group as it is now.
func (g *group) metadataValue() GroupValue {
	v := GroupValue{ProtocolType: g.protocolType, Generation: g.generation, Protocol: g.protocol,
		Leader: g.leader, CurrentStateTimestamp: g.stateTs}
	if g.state == stateEmpty || g.state == stateDead {
		v.Leader = nil
		return v
	}
	for _, m := range g.members {
		var sub []byte
		if g.protocol != nil {
			sub = m.metadataFor(*g.protocol)
		}
		v.Members = append(v.Members, MemberValue{
			MemberID: m.id, GroupInstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			RebalanceTimeout: m.rebalanceTimeout, SessionTimeout: m.sessionTimeoutMs,
			Subscription: orEmpty(sub), Assignment: orEmpty(m.assignment),
		})
	}
	return v
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// newMemberID is Kafka's generateMemberId: the client id (or the group
// instance id for static members), "-", a random UUID.
func newMemberID(clientID string, instanceID *string) string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}
