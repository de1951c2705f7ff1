package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// memStorage is an in-memory __consumer_offsets: per partition a list of
// batches with their base offsets assigned, as the log stores them.
type memStorage struct {
	mu      sync.Mutex
	parts   map[int32][][]byte
	next    map[int32]int64
	fail    error         // returned by Append when set
	loading chan struct{} // Read blocks until closed, when set
	// hold keeps the commit acknowledgements (the ISR has not replicated
	// the batch yet) until release.
	hold bool
	held []func(error)
	// flushOnAppend reports the held acknowledgements as committed from
	// inside the next Append, as the log does when the high watermark
	// moves during a later append of the same partition, and stops
	// holding.
	flushOnAppend bool
}

func newMemStorage() *memStorage {
	return &memStorage{parts: map[int32][][]byte{}, next: map[int32]int64{}}
}

func (m *memStorage) Append(p int32, batch []byte, done func(error)) error {
	m.mu.Lock()
	if m.flushOnAppend {
		held := m.held
		m.held, m.hold, m.flushOnAppend = nil, false, false
		m.mu.Unlock()
		for _, d := range held {
			d(nil)
		}
		m.mu.Lock()
	}
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if done != nil && m.hold {
		m.held = append(m.held, done)
	} else if done != nil {
		// Committed at once, and reported from inside Append: the
		// coordinator must not run the acknowledgement under its lock.
		defer done(nil)
	}
	b := append([]byte(nil), batch...)
	binary.BigEndian.PutUint64(b, uint64(m.next[p]))
	m.next[p] += int64(binary.BigEndian.Uint32(b[57:]))
	m.parts[p] = append(m.parts[p], b)
	return nil
}

// release reports every held acknowledgement with err (nil: committed)
// and stops holding.
func (m *memStorage) release(err error) {
	m.mu.Lock()
	held := m.held
	m.held, m.hold = nil, false
	m.mu.Unlock()
	for _, d := range held {
		d(err)
	}
}

func (m *memStorage) Bounds(p int32) (int64, int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.parts[p]
	return 0, m.next[p], ok
}

func (m *memStorage) Read(p int32, offset int64, _ int32) ([]byte, error) {
	if m.loading != nil {
		<-m.loading
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []byte
	for _, b := range m.parts[p] {
		base := int64(binary.BigEndian.Uint64(b))
		last := base + int64(binary.BigEndian.Uint32(b[23:]))
		if last >= offset {
			out = append(out, b...)
		}
	}
	return out, nil
}

// records decodes everything written to partition p.
func (m *memStorage) records(t *testing.T, p int32) []StoredRecord {
	t.Helper()
	data, _ := m.Read(p, 0, 0)
	var out []StoredRecord
	_, err := DecodeBatches(data, func(r StoredRecord) error { out = append(out, r); return nil })
	require.NoError(t, err)
	return out
}

type harness struct {
	t   *testing.T
	clk *FakeClock
	st  *memStorage
	c   *Coordinator
	cfg Config
	// hung: a test found a shard lock held forever; closing the
	// coordinator would hang the cleanup too.
	hung bool
}

const testGroup = "grp"

func newHarness(t *testing.T, mod ...func(*Config)) *harness {
	h := &harness{t: t, clk: NewFakeClock(time.Unix(1_700_000_000, 0)), st: newMemStorage()}
	h.cfg = Config{
		Partitions:        3,
		MinSessionTimeout: 100 * time.Millisecond,
		MaxSessionTimeout: time.Minute,
		Storage:           h.st,
		PartitionExists:   func(topic string, p int32) bool { return topic == "t" && p >= 0 && p < 4 },
		Clock:             h.clk,
	}
	for _, f := range mod {
		f(&h.cfg)
	}
	h.start()
	return h
}

// start (re)creates the coordinator over the same storage and loads it.
func (h *harness) start() {
	if h.c != nil {
		h.c.Close()
	}
	c, err := New(h.cfg)
	require.NoError(h.t, err)
	h.c = c
	for _, s := range c.shards {
		s.owned = true
		require.NoError(h.t, s.load(s.gen))
	}
	h.t.Cleanup(func() {
		if !h.hung {
			c.Close()
		}
	})
}

// pendingJoin is a JoinGroup whose answer may come later.
type pendingJoin struct {
	ch chan *kmsg.JoinGroupResponse
}

func (p pendingJoin) done() bool { return len(p.ch) > 0 }

// wait is get for an answer that comes from another goroutine.
func (p pendingJoin) wait(t *testing.T) *kmsg.JoinGroupResponse {
	t.Helper()
	select {
	case r := <-p.ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("JoinGroup not answered")
		return nil
	}
}

func (p pendingJoin) get(t *testing.T) *kmsg.JoinGroupResponse {
	t.Helper()
	select {
	case r := <-p.ch:
		return r
	default:
		t.Fatal("JoinGroup not answered")
		return nil
	}
}

type joinOpt func(*kmsg.JoinGroupRequest)

func withVersion(v int16) joinOpt { return func(r *kmsg.JoinGroupRequest) { r.Version = v } }
func withInstance(id string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) { r.InstanceID = &id }
}
func withProtocols(names ...string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) {
		r.Protocols = nil
		for _, n := range names {
			r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: n, Metadata: []byte(n)})
		}
	}
}
func withMeta(meta string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) { r.Protocols[0].Metadata = []byte(meta) }
}
func withType(pt string) joinOpt { return func(r *kmsg.JoinGroupRequest) { r.ProtocolType = pt } }

func (h *harness) join(memberID string, opts ...joinOpt) pendingJoin {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 9
	req.Group, req.MemberID = testGroup, memberID
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 1000, 2000
	req.ProtocolType = "consumer"
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("range")}}
	for _, o := range opts {
		o(req)
	}
	p := pendingJoin{ch: make(chan *kmsg.JoinGroupResponse, 1)}
	h.c.JoinGroup(req, Client{ID: "cid", Host: "/127.0.0.1"}, func(r *kmsg.JoinGroupResponse) { p.ch <- r })
	return p
}

// joinNew performs the KIP-394 round trip and returns the parked second join.
func (h *harness) joinNew(opts ...joinOpt) (string, pendingJoin) {
	r := h.join("", opts...).get(h.t)
	require.Equal(h.t, kerr.MemberIDRequired.Code, r.ErrorCode)
	require.NotEmpty(h.t, r.MemberID)
	return r.MemberID, h.join(r.MemberID, opts...)
}

type pendingSync struct{ ch chan *kmsg.SyncGroupResponse }

func (p pendingSync) done() bool { return len(p.ch) > 0 }

// wait is get for an answer that comes from another goroutine.
func (p pendingSync) wait(t *testing.T) *kmsg.SyncGroupResponse {
	t.Helper()
	select {
	case r := <-p.ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("SyncGroup not answered")
		return nil
	}
}

func (p pendingSync) get(t *testing.T) *kmsg.SyncGroupResponse {
	t.Helper()
	select {
	case r := <-p.ch:
		return r
	default:
		t.Fatal("SyncGroup not answered")
		return nil
	}
}

func (h *harness) sync(memberID string, gen int32, assign map[string]string) pendingSync {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.Generation = testGroup, memberID, gen
	for m, a := range assign {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: []byte(a)})
	}
	p := pendingSync{ch: make(chan *kmsg.SyncGroupResponse, 1)}
	h.c.SyncGroup(req, func(r *kmsg.SyncGroupResponse) { p.ch <- r })
	return p
}

func (h *harness) heartbeat(memberID string, gen int32, instance ...string) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = 4
	req.Group, req.MemberID, req.Generation = testGroup, memberID, gen
	if len(instance) > 0 {
		req.InstanceID = &instance[0]
	}
	return h.c.Heartbeat(req).ErrorCode
}

func (h *harness) state() string {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{testGroup}
	return h.c.DescribeGroups(req).Groups[0].State
}

// commit commits offsets of topic "t" and returns the per-partition codes.
func (h *harness) commit(memberID string, gen int32, offsets map[int32]int64, md string) map[int32]int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group, req.MemberID, req.Generation = testGroup, memberID, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	for p, o := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.Metadata = p, o, &md
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	out := map[int32]int16{}
	for _, p := range h.offsetCommit(req).Topics[0].Partitions {
		out[p.Partition] = p.ErrorCode
	}
	return out
}

// fetch returns committed offsets of topic "t" partitions 0..3 (-1 = none).
func (h *harness) fetch() map[int32]int64 {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = testGroup
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1, 2, 3}}}
	resp := h.c.OffsetFetch(req)
	require.Zero(h.t, resp.ErrorCode)
	out := map[int32]int64{}
	for _, p := range resp.Topics[0].Partitions {
		out[p.Partition] = p.Offset
	}
	return out
}

// stableGroup forms a Stable two-member group and returns the members
// (leader first) and the generation.
func (h *harness) stableGroup() (leader, follower string, gen int32) {
	t := h.t
	a, ja := h.joinNew()
	b, jb := h.joinNew()
	h.clk.Advance(0) // initial rebalance delay 0
	ra, rb := ja.get(t), jb.get(t)
	require.Zero(t, ra.ErrorCode)
	require.Zero(t, rb.ErrorCode)
	require.Equal(t, ra.Generation, rb.Generation)
	leader, follower = a, b
	if ra.LeaderID != a {
		leader, follower = b, a
	}
	gen = ra.Generation
	sf := h.sync(follower, gen, nil)
	require.False(t, sf.done(), "follower must wait for the leader's assignment")
	sl := h.sync(leader, gen, map[string]string{leader: "A", follower: "B"})
	require.Equal(t, "A", string(sl.get(t).MemberAssignment))
	require.Equal(t, "B", string(sf.get(t).MemberAssignment))
	require.Equal(t, "Stable", h.state())
	return leader, follower, gen
}

func TestJoinSyncStable(t *testing.T) {
	h := newHarness(t)
	// v3 joins get their member id directly.
	r := h.join("", withVersion(3))
	h.clk.Advance(0)
	first := r.get(t)
	require.Zero(t, first.ErrorCode)
	require.Equal(t, first.MemberID, first.LeaderID)
	require.Len(t, first.Members, 1)
	require.Equal(t, "range", *first.Protocol)

	// A v9 member must first learn its id.
	id, j := h.joinNew()
	require.False(t, j.done(), "the rebalance waits for the known member to rejoin")
	require.Equal(t, "PreparingRebalance", h.state())
	require.Equal(t, kerr.RebalanceInProgress.Code, h.heartbeat(first.MemberID, first.Generation))
	j1 := h.join(first.MemberID, withVersion(3))
	a, b := j1.get(t), j.get(t)
	require.Equal(t, first.Generation+1, a.Generation)
	require.Equal(t, a.Generation, b.Generation)
	require.Equal(t, id, b.MemberID)
	require.Equal(t, first.MemberID, b.LeaderID, "the leader stays")
	require.Len(t, a.Members, 2, "the leader gets every member's metadata")
	require.Empty(t, b.Members)
	require.Equal(t, "CompletingRebalance", h.state())

	sf := h.sync(id, b.Generation, nil)
	require.False(t, sf.done())
	// Commits wait for the assignment.
	require.Equal(t, map[int32]int16{0: kerr.RebalanceInProgress.Code}, h.commit(id, b.Generation, map[int32]int64{0: 1}, ""))
	sl := h.sync(first.MemberID, a.Generation, map[string]string{first.MemberID: "x", id: "y"})
	require.Equal(t, "x", string(sl.get(t).MemberAssignment))
	require.Equal(t, "y", string(sf.get(t).MemberAssignment))
	require.Zero(t, h.heartbeat(id, b.Generation))

	// The assignment is in the log before anyone got it.
	recs := h.st.records(t, h.c.PartitionFor(testGroup))
	last := recs[len(recs)-1]
	v, err := DecodeGroupValue(last.Value)
	require.NoError(t, err)
	require.Equal(t, b.Generation, v.Generation)
	require.Len(t, v.Members, 2)
	require.Equal(t, "consumer", v.ProtocolType)
	got := map[string]string{}
	for _, m := range v.Members {
		got[m.MemberID] = string(m.Assignment)
		require.Equal(t, "/127.0.0.1", m.ClientHost)
		require.Equal(t, int32(1000), m.SessionTimeout)
	}
	require.Equal(t, map[string]string{first.MemberID: "x", id: "y"}, got)

	// A Stable member syncing again gets its assignment at once.
	require.Equal(t, "y", string(h.sync(id, b.Generation, nil).get(t).MemberAssignment))
	// A follower rejoining with the same metadata gets the current generation.
	rj := h.join(id).get(t)
	require.Zero(t, rj.ErrorCode)
	require.Equal(t, b.Generation, rj.Generation)
	require.Equal(t, "Stable", h.state())
}

func TestInitialRebalanceDelay(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = 300 * time.Millisecond })
	_, j1 := h.joinNew() // rebalance timeout 2 s
	h.clk.Advance(200 * time.Millisecond)
	_, j2 := h.joinNew()
	h.clk.Advance(150 * time.Millisecond) // first delay over, but a member arrived: extended
	require.False(t, j1.done())
	h.clk.Advance(250 * time.Millisecond)
	require.True(t, j1.done())
	r1, r2 := j1.get(t), j2.get(t)
	require.Equal(t, int32(1), r1.Generation)
	require.Equal(t, r1.Generation, r2.Generation)
}

func TestHeartbeatErrorsAndSessionExpiry(t *testing.T) {
	h := newHarness(t)
	leader, follower, gen := h.stableGroup()
	require.Zero(t, h.heartbeat(leader, gen))
	require.Equal(t, kerr.IllegalGeneration.Code, h.heartbeat(leader, gen-1))
	require.Equal(t, kerr.UnknownMemberID.Code, h.heartbeat("nobody", gen))
	req := kmsg.NewPtrHeartbeatRequest()
	require.Equal(t, kerr.InvalidGroupID.Code, h.c.Heartbeat(req).ErrorCode)

	// The leader keeps heartbeating, the follower stops: after its session
	// timeout it is removed and the group rebalances without it.
	for i := 0; i < 6; i++ {
		h.clk.Advance(200 * time.Millisecond)
		if i < 4 {
			require.Zero(t, h.heartbeat(leader, gen), "heartbeat %d", i)
		}
	}
	require.Equal(t, "PreparingRebalance", h.state())
	require.Equal(t, kerr.RebalanceInProgress.Code, h.heartbeat(leader, gen))
	require.Equal(t, kerr.UnknownMemberID.Code, h.heartbeat(follower, gen))
	r := h.join(leader).get(t)
	require.Equal(t, gen+1, r.Generation)
	require.Len(t, r.Members, 1)

	// The remaining member never syncs: removed after the rebalance
	// timeout, and the group is empty.
	h.clk.Advance(2100 * time.Millisecond)
	require.Equal(t, "Empty", h.state())
	require.Equal(t, kerr.UnknownMemberID.Code, h.heartbeat(leader, gen+1))
}

func TestRebalanceTimeoutDropsMembersThatDoNotRejoin(t *testing.T) {
	h := newHarness(t)
	leader, follower, gen := h.stableGroup()
	// The leader rejoins (forcing a rebalance); the follower keeps
	// heartbeating but never rejoins.
	j := h.join(leader)
	require.False(t, j.done())
	for i := 0; i < 9; i++ {
		h.clk.Advance(200 * time.Millisecond)
		require.Equal(t, kerr.RebalanceInProgress.Code, h.heartbeat(follower, gen))
	}
	require.False(t, j.done())
	h.clk.Advance(300 * time.Millisecond) // rebalance timeout (2 s) passed
	r := j.get(t)
	require.Equal(t, gen+1, r.Generation)
	require.Len(t, r.Members, 1)
	require.Equal(t, kerr.UnknownMemberID.Code, h.heartbeat(follower, gen))
}

func TestLeaveGroup(t *testing.T) {
	h := newHarness(t)
	leader, follower, gen := h.stableGroup()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 5
	req.Group = testGroup
	req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: follower}, {MemberID: "nobody"}}
	resp := h.c.LeaveGroup(req)
	require.Zero(t, resp.ErrorCode)
	require.Zero(t, resp.Members[0].ErrorCode)
	require.Equal(t, kerr.UnknownMemberID.Code, resp.Members[1].ErrorCode)
	require.Equal(t, kerr.RebalanceInProgress.Code, h.heartbeat(leader, gen))
	r := h.join(leader).get(t)
	require.Len(t, r.Members, 1)

	// v0-2: one member, error at the top level.
	old := kmsg.NewPtrLeaveGroupRequest()
	old.Version, old.Group, old.MemberID = 1, testGroup, "nobody"
	require.Equal(t, kerr.UnknownMemberID.Code, h.c.LeaveGroup(old).ErrorCode)
	old.MemberID = leader
	require.Zero(t, h.c.LeaveGroup(old).ErrorCode)
	require.Equal(t, "Empty", h.state())
	recs := h.st.records(t, h.c.PartitionFor(testGroup))
	v, err := DecodeGroupValue(recs[len(recs)-1].Value)
	require.NoError(t, err)
	require.Empty(t, v.Members)
	require.Equal(t, gen+2, v.Generation, "the empty generation is written")
}

func TestProtocolSelectionAndInconsistency(t *testing.T) {
	h := newHarness(t)
	_, j1 := h.joinNew(withProtocols("roundrobin", "range"))
	_, j2 := h.joinNew(withProtocols("range", "sticky"))
	h.clk.Advance(0)
	require.Equal(t, "range", *j1.get(t).Protocol, "the only protocol both support")
	j2.get(t)

	r := h.join("", withProtocols("sticky"))
	require.Equal(t, kerr.InconsistentGroupProtocol.Code, r.get(t).ErrorCode)
	r = h.join("", withType("connect"))
	require.Equal(t, kerr.InconsistentGroupProtocol.Code, r.get(t).ErrorCode)

	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.SessionTimeoutMillis = testGroup, 10
	var got *kmsg.JoinGroupResponse
	h.c.JoinGroup(req, Client{}, func(r *kmsg.JoinGroupResponse) { got = r })
	require.Equal(t, kerr.InvalidSessionTimeout.Code, got.ErrorCode)
	req.Group = ""
	h.c.JoinGroup(req, Client{}, func(r *kmsg.JoinGroupResponse) { got = r })
	require.Equal(t, kerr.InvalidGroupID.Code, got.ErrorCode)
	req.Group, req.SessionTimeoutMillis, req.MemberID = testGroup, 1000, "made-up"
	req.ProtocolType, req.Protocols = "consumer", []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	h.c.JoinGroup(req, Client{}, func(r *kmsg.JoinGroupResponse) { got = r })
	require.Equal(t, kerr.UnknownMemberID.Code, got.ErrorCode)
}

// TestCooperativeRejoinWhileStable: a member rejoining a Stable group with
// changed metadata (what cooperative-sticky does after revoking) triggers
// a rebalance; unchanged metadata does not.
func TestCooperativeRejoinWhileStable(t *testing.T) {
	h := newHarness(t)
	leader, follower, gen := h.stableGroup()
	same := h.join(follower).get(t)
	require.Equal(t, gen, same.Generation)
	require.Equal(t, "Stable", h.state())
	changed := h.join(follower, withMeta("owned: t-1"))
	require.False(t, changed.done())
	require.Equal(t, kerr.RebalanceInProgress.Code, h.heartbeat(leader, gen))
	lj := h.join(leader)
	require.Equal(t, gen+1, lj.get(t).Generation)
	require.Equal(t, gen+1, changed.get(t).Generation)
}

func TestStaticMembership(t *testing.T) {
	h := newHarness(t)
	// Static members skip MEMBER_ID_REQUIRED.
	j := h.join("", withInstance("inst-a"))
	h.clk.Advance(0)
	r := j.get(t)
	require.Zero(t, r.ErrorCode)
	oldID, gen := r.MemberID, r.Generation
	require.Equal(t, oldID, r.LeaderID)
	require.Equal(t, "A", string(h.sync(oldID, gen, map[string]string{oldID: "A"}).get(t).MemberAssignment))

	// The same instance restarts: new member id, same generation and
	// assignment, no rebalance; v9 tells the leader to skip assigning.
	r2 := h.join("", withInstance("inst-a")).get(t)
	require.Zero(t, r2.ErrorCode)
	require.NotEqual(t, oldID, r2.MemberID)
	require.Equal(t, gen, r2.Generation)
	require.True(t, r2.SkipAssignment)
	require.Equal(t, "Stable", h.state())
	require.Equal(t, "A", string(h.sync(r2.MemberID, gen, nil).get(t).MemberAssignment))

	// The old incarnation is fenced.
	require.Equal(t, kerr.FencedInstanceID.Code, h.heartbeat(oldID, gen, "inst-a"))
	require.Equal(t, kerr.FencedInstanceID.Code, h.join(oldID, withInstance("inst-a")).get(t).ErrorCode)
	require.Zero(t, h.heartbeat(r2.MemberID, gen, "inst-a"))

	// Before v9 the replaced leader is named as leader under its old id,
	// so it syncs instead of reassigning.
	r3 := h.join("", withInstance("inst-a"), withVersion(8)).get(t)
	require.Equal(t, r2.MemberID, r3.LeaderID)
	require.NotEqual(t, r3.MemberID, r3.LeaderID)

	// Admin removal by instance id alone.
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version, req.Group = 5, testGroup
	inst := "inst-a"
	req.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: &inst}}
	require.Zero(t, h.c.LeaveGroup(req).Members[0].ErrorCode)
	require.Equal(t, "Empty", h.state())
}

func TestOffsetCommitValidation(t *testing.T) {
	h := newHarness(t)
	// A simple (unmanaged) group: generation -1, no member id.
	require.Equal(t, map[int32]int16{0: 0, 1: 0}, h.commit("", -1, map[int32]int64{0: 10, 1: 20}, "m"))
	require.Equal(t, map[int32]int64{0: 10, 1: 20, 2: -1, 3: -1}, h.fetch())
	// A member of a group we do not know.
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation, req.MemberID = 8, "other", 3, "m"
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	require.Equal(t, kerr.IllegalGeneration.Code, h.offsetCommit(req).Topics[0].Partitions[0].ErrorCode)

	h.st.mu.Lock()
	h.st.parts = map[int32][][]byte{}
	h.st.next = map[int32]int64{}
	h.st.mu.Unlock()
	h.start()
	leader, _, gen := h.stableGroup()
	require.Equal(t, map[int32]int16{0: kerr.UnknownMemberID.Code}, h.commit("nobody", gen, map[int32]int64{0: 1}, ""))
	require.Equal(t, map[int32]int16{0: kerr.IllegalGeneration.Code}, h.commit(leader, gen+1, map[int32]int64{0: 1}, ""))
	require.Equal(t, map[int32]int16{0: kerr.UnknownMemberID.Code}, h.commit("", -1, map[int32]int64{0: 1}, ""),
		"a generation -1 commit to an active group")
	// Oversized metadata fails only its partition; unknown partitions
	// fail alone too.
	big := make([]byte, 4097)
	for i := range big {
		big[i] = 'x'
	}
	codes := h.commit(leader, gen, map[int32]int64{0: 5, 9: 5}, "")
	require.Equal(t, map[int32]int16{0: 0, 9: kerr.UnknownTopicOrPartition.Code}, codes)
	require.Equal(t, map[int32]int16{1: kerr.OffsetMetadataTooLarge.Code}, h.commit(leader, gen, map[int32]int64{1: 5}, string(big)))
	require.Equal(t, map[int32]int64{0: 5, 1: -1, 2: -1, 3: -1}, h.fetch())

	// A failing append is reported, and nothing is cached.
	h.st.mu.Lock()
	h.st.fail = errors.New("disk full")
	h.st.mu.Unlock()
	require.Equal(t, map[int32]int16{0: kerr.CoordinatorNotAvailable.Code}, h.commit(leader, gen, map[int32]int64{0: 6}, ""))
	h.st.mu.Lock()
	h.st.fail = fmt.Errorf("%w: batch of 2 MB", ErrRecordTooLarge)
	h.st.mu.Unlock()
	require.Equal(t, map[int32]int16{0: kerr.InvalidCommitOffsetSize.Code}, h.commit(leader, gen, map[int32]int64{0: 6}, ""))
	require.Equal(t, int64(5), h.fetch()[0])
}

// TestReload: a new coordinator over the same log restores offsets (the
// latest commit wins, tombstones delete) and the Stable group with its
// members, who keep heartbeating - or expire if they do not.
func TestReload(t *testing.T) {
	h := newHarness(t)
	leader, follower, gen := h.stableGroup()
	for i := int64(1); i <= 50; i++ {
		require.Equal(t, map[int32]int16{0: 0, 1: 0}, h.commit(leader, gen, map[int32]int64{0: i, 1: 100 + i}, ""))
	}
	h.start()
	require.Equal(t, map[int32]int64{0: 50, 1: 150, 2: -1, 3: -1}, h.fetch())
	require.Equal(t, "Stable", h.state())
	require.Zero(t, h.heartbeat(leader, gen))
	require.Equal(t, "B", string(h.sync(follower, gen, nil).get(t).MemberAssignment))

	// Only the leader heartbeats after the reload: the follower expires.
	for i := 0; i < 7; i++ {
		h.clk.Advance(200 * time.Millisecond)
		if h.state() == "Stable" {
			require.Zero(t, h.heartbeat(leader, gen))
		}
	}
	require.Equal(t, "PreparingRebalance", h.state())

	// Delete offsets of an unsubscribed topic: the consumer protocol
	// metadata here is not parseable, so "t" counts as subscribed.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = testGroup
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	require.Equal(t, kerr.GroupSubscribedToTopic.Code, h.c.OffsetDelete(od).Topics[0].Partitions[0].ErrorCode)
}

func TestLoadInProgress(t *testing.T) {
	h := newHarness(t)
	require.Equal(t, map[int32]int16{0: 0}, h.commit("", -1, map[int32]int64{0: 7}, ""))
	h.c.Close()
	h.st.loading = make(chan struct{})
	c, err := New(h.cfg)
	require.NoError(t, err)
	h.c = c
	c.Start()
	t.Cleanup(c.Close)
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group = 7, testGroup
	require.Equal(t, kerr.CoordinatorLoadInProgress.Code, c.OffsetFetch(req).ErrorCode)
	require.Equal(t, kerr.CoordinatorLoadInProgress.Code, h.heartbeat("m", 1))
	require.Equal(t, map[int32]int16{0: kerr.CoordinatorLoadInProgress.Code}, h.commit("", -1, map[int32]int64{0: 8}, ""))
	close(h.st.loading)
	require.Eventually(t, func() bool { return c.OffsetFetch(req).ErrorCode == 0 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, int64(7), h.fetch()[0])
}

func TestDeleteGroupsAndExpiry(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.OffsetsRetention = time.Hour })
	leader, _, gen := h.stableGroup()
	require.Equal(t, map[int32]int16{0: 0}, h.commit(leader, gen, map[int32]int64{0: 3}, ""))
	// Another, simple group on the side.
	other := kmsg.NewPtrOffsetCommitRequest()
	other.Version, other.Group = 8, "side"
	other.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 2, Offset: 9}}}}
	require.Zero(t, h.offsetCommit(other).Topics[0].Partitions[0].ErrorCode)

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{testGroup, "missing"}
	resp := h.c.DeleteGroups(del)
	require.Equal(t, kerr.NonEmptyGroup.Code, resp.Groups[0].ErrorCode)
	require.Equal(t, kerr.GroupIDNotFound.Code, resp.Groups[1].ErrorCode)
	require.Equal(t, "Stable", h.state(), "a refused delete changes nothing")

	// Everyone leaves; offsets stay until deleted or expired.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version, lv.Group = 5, testGroup
	for _, m := range h.c.DescribeGroups(&kmsg.DescribeGroupsRequest{Groups: []string{testGroup}}).Groups[0].Members {
		lv.Members = append(lv.Members, kmsg.LeaveGroupRequestMember{MemberID: m.MemberID})
	}
	h.c.LeaveGroup(lv)
	require.Equal(t, "Empty", h.state())
	require.Equal(t, int64(3), h.fetch()[0])

	del.Groups = []string{testGroup}
	require.Zero(t, h.c.DeleteGroups(del).Groups[0].ErrorCode)
	require.Equal(t, "Dead", h.state())
	require.Equal(t, int64(-1), h.fetch()[0])
	h.start()
	require.Equal(t, "Dead", h.state(), "tombstones delete the group on reload")
	require.Equal(t, int64(-1), h.fetch()[0])

	// The side group's offset expires after offsets.retention.minutes,
	// and the group with it.
	lg := h.c.ListGroups(kmsg.NewPtrListGroupsRequest())
	require.Len(t, lg.Groups, 1)
	require.Equal(t, "side", lg.Groups[0].Group)
	h.clk.Advance(59 * time.Minute)
	h.c.ExpireOffsets()
	require.Len(t, h.c.ListGroups(kmsg.NewPtrListGroupsRequest()).Groups, 1)
	h.clk.Advance(2 * time.Minute)
	h.c.ExpireOffsets()
	require.Empty(t, h.c.ListGroups(kmsg.NewPtrListGroupsRequest()).Groups)
	h.start()
	require.Empty(t, h.c.ListGroups(kmsg.NewPtrListGroupsRequest()).Groups)
}

// offsetCommit commits and waits for the acknowledgement.
func (h *harness) offsetCommit(req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	ch := make(chan *kmsg.OffsetCommitResponse, 1)
	h.c.OffsetCommit(req, func(r *kmsg.OffsetCommitResponse) { ch <- r })
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("offset commit not acknowledged")
		return nil
	}
}

// TestUnloadAndLoad: a partition whose leadership moves away answers
// NOT_COORDINATOR (parked joins too) and forgets its cache; loading it
// again (leadership back) replays the committed offsets from the log.
func TestUnloadAndLoad(t *testing.T) {
	h := newHarness(t)
	require.Equal(t, map[int32]int16{0: 0}, h.commit("", -1, map[int32]int64{0: 42}, ""))
	p := h.c.PartitionFor(testGroup)
	h.c.Unload(p)
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group = 5, testGroup
	require.Equal(t, kerr.NotCoordinator.Code, h.c.OffsetFetch(req).ErrorCode)
	g, _ := h.c.Counts()
	require.Zero(t, g)

	h.c.Load(p)
	require.Eventually(t, func() bool { return h.c.OffsetFetch(req).ErrorCode == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, map[int32]int64{0: 42, 1: -1, 2: -1, 3: -1}, h.fetch())
}

// The leader's assignment is handed out only once its record is committed
// (Kafka's storeGroup, acks=-1): until then the group is
// CompletingRebalance and every SyncGroup waits. A write that does not
// commit (the ISR timed out) answers REBALANCE_IN_PROGRESS and the group
// rebalances; one that lost the partition's leadership NOT_COORDINATOR.
func TestSyncGroupWaitsForCommittedAssignment(t *testing.T) {
	h := newHarness(t)
	a, ja := h.joinNew()
	b, jb := h.joinNew()
	h.clk.Advance(0)
	ra, rb := ja.get(t), jb.get(t)
	leader, follower := a, b
	if ra.LeaderID != a {
		leader, follower = b, a
	}
	gen := ra.Generation
	require.Equal(t, gen, rb.Generation)

	h.st.mu.Lock()
	h.st.hold = true
	h.st.mu.Unlock()
	sf := h.sync(follower, gen, nil)
	sl := h.sync(leader, gen, map[string]string{leader: "A", follower: "B"})
	require.False(t, sl.done(), "the leader got the assignment before its record was committed")
	require.False(t, sf.done(), "a follower got the assignment before its record was committed")
	require.Equal(t, "CompletingRebalance", h.state())
	h.st.release(nil)
	require.Equal(t, "A", string(sl.wait(t).MemberAssignment))
	require.Equal(t, "B", string(sf.wait(t).MemberAssignment))
	require.Equal(t, "Stable", h.state())

	// The next generation's assignment does not commit in time.
	j1 := h.join(leader)
	j2 := h.join(follower, withMeta("changed"))
	r1, r2 := j1.get(t), j2.get(t)
	require.Zero(t, r1.ErrorCode)
	require.Equal(t, gen+1, r2.Generation)
	h.st.mu.Lock()
	h.st.hold = true
	h.st.mu.Unlock()
	sf = h.sync(follower, gen+1, nil)
	sl = h.sync(leader, gen+1, map[string]string{leader: "A2", follower: "B2"})
	require.False(t, sl.done())
	h.st.release(fmt.Errorf("%w: offset 7", ErrTimeout))
	require.Equal(t, kerr.RebalanceInProgress.Code, sl.wait(t).ErrorCode)
	require.Equal(t, kerr.RebalanceInProgress.Code, sf.wait(t).ErrorCode)
	require.Equal(t, "PreparingRebalance", h.state())

	// Leadership of the partition lost while the write was pending.
	j1, j2 = h.join(leader), h.join(follower, withMeta("changed"))
	r1, r2 = j1.get(t), j2.get(t)
	require.Zero(t, r1.ErrorCode)
	h.st.mu.Lock()
	h.st.hold = true
	h.st.mu.Unlock()
	sl = h.sync(leader, r2.Generation, map[string]string{leader: "A3", follower: "B3"})
	sf = h.sync(follower, r2.Generation, nil)
	h.st.release(fmt.Errorf("%w: __consumer_offsets-0", ErrNotCoordinator))
	require.Equal(t, kerr.NotCoordinator.Code, sl.wait(t).ErrorCode)
	require.Equal(t, kerr.NotCoordinator.Code, sf.wait(t).ErrorCode)
}

// A static member's restart in a Stable group is answered once its new
// member id is committed; if the write fails the old id stays (reverted)
// and the join gets the storeGroup error.
func TestStaticRejoinWaitsForCommit(t *testing.T) {
	h := newHarness(t)
	j := h.join("", withInstance("inst-a"))
	h.clk.Advance(0)
	r := j.get(t)
	oldID, gen := r.MemberID, r.Generation
	require.Equal(t, "A", string(h.sync(oldID, gen, map[string]string{oldID: "A"}).get(t).MemberAssignment))

	h.st.mu.Lock()
	h.st.hold = true
	h.st.mu.Unlock()
	pj := h.join("", withInstance("inst-a"))
	require.False(t, pj.done(), "answered before the new member id was committed")
	h.st.release(fmt.Errorf("%w: offset 3", ErrTimeout))
	failed := pj.wait(t)
	require.Equal(t, kerr.RebalanceInProgress.Code, failed.ErrorCode)
	require.Zero(t, h.heartbeat(oldID, gen, "inst-a"), "the old member id is back")
	require.Equal(t, "Stable", h.state())

	h.st.mu.Lock()
	h.st.hold = true
	h.st.mu.Unlock()
	pj = h.join("", withInstance("inst-a"))
	require.False(t, pj.done())
	h.st.release(nil)
	r2 := pj.wait(t)
	require.Zero(t, r2.ErrorCode)
	require.NotEqual(t, oldID, r2.MemberID)
	require.Equal(t, gen, r2.Generation)
	require.Equal(t, kerr.FencedInstanceID.Code, h.heartbeat(oldID, gen, "inst-a"))
	require.Equal(t, "A", string(h.sync(r2.MemberID, gen, nil).get(t).MemberAssignment))
}

// The log may report an earlier batch committed from inside a later
// Append of the same partition (the high watermark moved meanwhile), while
// the coordinator holds the shard lock for that append: the pending
// SyncGroup's continuation must not take the lock there.
func TestCommitReportedDuringAnotherAppend(t *testing.T) {
	h := newHarness(t)
	a, ja := h.joinNew()
	h.clk.Advance(0)
	gen := ja.get(t).Generation
	h.st.mu.Lock()
	h.st.hold = true
	h.st.mu.Unlock()
	sl := h.sync(a, gen, map[string]string{a: "A"})
	require.False(t, sl.done())

	// Another group of the same shard commits an offset: its append
	// reports the assignment committed.
	other := ""
	for i := 0; other == ""; i++ {
		if g := fmt.Sprintf("other-%d", i); h.c.PartitionFor(g) == h.c.PartitionFor(testGroup) {
			other = g
		}
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation = 8, other, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 5
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	h.st.mu.Lock()
	h.st.flushOnAppend = true
	h.st.mu.Unlock()
	// On its own goroutine: a continuation taking the lock there would
	// hang it, and the test must fail rather than hang.
	codes := make(chan int16, 1)
	go h.c.OffsetCommit(req, func(r *kmsg.OffsetCommitResponse) { codes <- r.Topics[0].Partitions[0].ErrorCode })
	select {
	case code := <-codes:
		require.Zero(t, code)
	case <-time.After(5 * time.Second):
		h.hung = true
		t.Fatal("the offset commit hung: the assignment's continuation took the shard lock its append holds")
	}
	require.Equal(t, "A", string(sl.wait(t).MemberAssignment))
	require.Equal(t, "Stable", h.state())
}
