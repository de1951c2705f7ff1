package broker_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/group"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// groupProps are the broker settings group tests use: no initial rebalance
// delay and a low minimum session timeout so expiry tests stay fast.
func groupProps() []testcluster.Opt {
	return []testcluster.Opt{
		testcluster.Prop("group.initial.rebalance.delay.ms", "0"),
		testcluster.Prop("group.min.session.timeout.ms", "500"),
		testcluster.Prop("offsets.topic.num.partitions", "4"),
	}
}

// seenSet counts how often each record value was processed, and by whom.
type seenSet struct {
	mu     sync.Mutex
	counts map[string]int
	total  int
}

func newSeenSet() *seenSet { return &seenSet{counts: map[string]int{}} }

func (s *seenSet) add(v string) {
	s.mu.Lock()
	s.counts[v]++
	s.total++
	s.mu.Unlock()
}

func (s *seenSet) size() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.counts), s.total
}

// duplicates lists values processed more than once.
func (s *seenSet) duplicates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for v, n := range s.counts {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s x%d", v, n))
		}
	}
	sort.Strings(out)
	return out
}

// groupConsumer is one franz-go group member that processes records into a
// seenSet and commits what it processed: marks are set before a rebalance
// may run (BlockRebalanceOnPoll), and committed periodically and whenever
// partitions are revoked, which is what makes consumption exactly-once
// across rebalances.
type groupConsumer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startGroupConsumer(t *testing.T, addr, group, topic string, seen *seenSet, extra ...kgo.Opt) *groupConsumer {
	t.Helper()
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(3 * time.Second),
		kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(200 * time.Millisecond),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			if err := cl.CommitMarkedOffsets(ctx); err != nil {
				t.Logf("commit on revoke: %v", err)
			}
		}),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	c := &groupConsumer{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			fs := cl.PollRecords(ctx, 200)
			fs.EachRecord(func(r *kgo.Record) { seen.add(string(r.Value)) })
			cl.MarkCommitRecords(fs.Records()...)
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

// stop ends the poll loop and closes the client, which commits the marks
// (revoke callback) and leaves the group.
func (c *groupConsumer) stop() {
	c.cancel()
	<-c.done
	c.cl.Close()
}

func produceValues(t *testing.T, cl *kgo.Client, topic, prefix string, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
}

// assignment returns member id -> assigned partitions of topic, as the
// group's Stable generation reports it.
func assignment(ctx context.Context, adm *kadm.Client, group, topic string) (map[string][]int32, error) {
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, err
	}
	g := gs[group]
	if g.Err != nil {
		return nil, g.Err
	}
	if g.State != "Stable" {
		return nil, fmt.Errorf("group %s is %s", group, g.State)
	}
	out := map[string][]int32{}
	for _, m := range g.Members {
		ca, ok := m.Assigned.AsConsumer()
		if !ok {
			return nil, fmt.Errorf("member %s has no consumer assignment", m.MemberID)
		}
		for _, at := range ca.Topics {
			if at.Topic == topic {
				ps := append([]int32(nil), at.Partitions...)
				sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
				out[m.MemberID] = append(out[m.MemberID], ps...)
			}
		}
		if _, ok := out[m.MemberID]; !ok {
			out[m.MemberID] = nil
		}
	}
	return out, nil
}

// balanced checks that members split partitions 0..n-1 evenly, each
// partition owned once.
func balanced(a map[string][]int32, members, n int) error {
	if len(a) != members {
		return fmt.Errorf("%d members, want %d: %v", len(a), members, a)
	}
	owned := map[int32]string{}
	for m, ps := range a {
		if len(ps) != n/members {
			return fmt.Errorf("member %s owns %v, want %d partitions: %v", m, ps, n/members, a)
		}
		for _, p := range ps {
			if o, dup := owned[p]; dup {
				return fmt.Errorf("partition %d owned by %s and %s", p, o, m)
			}
			owned[p] = m
		}
	}
	if len(owned) != n {
		return fmt.Errorf("%d of %d partitions assigned: %v", len(owned), n, a)
	}
	return nil
}

// TestGroupBalancers runs three franz-go members with each client-side
// assignor (the broker only picks the common protocol and hands the leader
// every member's metadata): each ends up with two of six partitions.
func TestGroupBalancers(t *testing.T) {
	b := testcluster.Start(t, groupProps()...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	for _, bal := range []struct {
		name string
		b    kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer()},
		{"roundrobin", kgo.RoundRobinBalancer()},
		{"sticky", kgo.StickyBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(bal.name, func(t *testing.T) {
			topic, group := "bal-"+bal.name, "g-bal-"+bal.name
			_, err := adm.CreateTopic(ctx, 6, 1, nil, topic)
			require.NoError(t, err)
			seen := newSeenSet()
			for i := 0; i < 3; i++ {
				startGroupConsumer(t, b.Addr(), group, topic, seen, kgo.Balancers(bal.b))
			}
			testcluster.Eventually(t, 20*time.Second, func() error {
				a, err := assignment(ctx, adm, group, topic)
				if err != nil {
					return err
				}
				return balanced(a, 3, 6)
			})
			gs, err := adm.DescribeGroups(ctx, group)
			require.NoError(t, err)
			require.Equal(t, bal.b.ProtocolName(), gs[group].Protocol)
			require.Equal(t, "consumer", gs[group].ProtocolType)
		})
	}
}

// TestGroupRebalanceExactlyOnce: three members consume a six-partition
// topic; one leaves mid-stream, the other two take over its partitions well
// within the session timeout, and every record is processed exactly once.
func TestGroupRebalanceExactlyOnce(t *testing.T) {
	for _, bal := range []struct {
		name string
		b    kgo.GroupBalancer
	}{
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
		{"range", kgo.RangeBalancer()},
	} {
		t.Run(bal.name, func(t *testing.T) {
			b := testcluster.Start(t, groupProps()...)
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(time.Millisecond))
			require.NoError(t, err)
			defer cl.Close()
			adm := kadm.NewClient(cl)
			ctx := context.Background()
			const topic, group = "eo", "g-eo"
			_, err = adm.CreateTopic(ctx, 6, 1, nil, topic)
			require.NoError(t, err)

			produceValues(t, cl, topic, "a", 3000)
			seen := newSeenSet()
			// A session long enough that "well within it" leaves a loaded
			// machine seconds for the two rebalance rounds.
			const session = 10 * time.Second
			var members []*groupConsumer
			for i := 0; i < 3; i++ {
				members = append(members, startGroupConsumer(t, b.Addr(), group, topic, seen, kgo.Balancers(bal.b), kgo.SessionTimeout(session)))
			}
			testcluster.Eventually(t, 20*time.Second, func() error {
				a, err := assignment(ctx, adm, group, topic)
				if err != nil {
					return err
				}
				return balanced(a, 3, 6)
			})
			// Leave while records are still flowing.
			produced := make(chan error, 1)
			go func() {
				recs := make([]*kgo.Record, 3000)
				for i := range recs {
					recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("b-%d", i))}
				}
				produced <- cl.ProduceSync(ctx, recs...).FirstErr()
			}()
			testcluster.Eventually(t, 20*time.Second, func() error {
				if n, _ := seen.size(); n < 3500 {
					return fmt.Errorf("%d records processed", n)
				}
				return nil
			})
			left := time.Now()
			members[2].stop()
			// The leaver's LeaveGroup starts the rebalance at once: a broker
			// that noticed only its session expiring would take longer.
			testcluster.Eventually(t, session*4/5, func() error {
				a, err := assignment(ctx, adm, group, topic)
				if err != nil {
					return err
				}
				return balanced(a, 2, 6)
			})
			t.Logf("%s: two members own all partitions %v after the third left", bal.name, time.Since(left))

			require.NoError(t, <-produced)
			produceValues(t, cl, topic, "c", 3000)
			testcluster.Eventually(t, 30*time.Second, func() error {
				if n, _ := seen.size(); n < 9000 {
					return fmt.Errorf("%d of 9000 records processed", n)
				}
				return nil
			})
			members[0].stop()
			members[1].stop()
			distinct, total := seen.size()
			require.Empty(t, seen.duplicates())
			require.Equal(t, 9000, distinct)
			require.Equal(t, 9000, total)

			// Everything processed was committed: the group's offsets are
			// the end offsets.
			ends, err := adm.ListEndOffsets(ctx, topic)
			require.NoError(t, err)
			offs, err := adm.FetchOffsets(ctx, group)
			require.NoError(t, err)
			ends.Each(func(lo kadm.ListedOffset) {
				o, ok := offs.Lookup(topic, lo.Partition)
				require.True(t, ok, "no commit for partition %d", lo.Partition)
				require.Equal(t, lo.Offset, o.At, "partition %d", lo.Partition)
			})
		})
	}
}

// TestGroupOffsetsSurviveKill commits offsets through a franz-go group,
// kills the broker with SIGKILL, restarts it and checks the group resumes
// exactly where it committed: nothing re-read, nothing skipped.
func TestGroupOffsetsSurviveKill(t *testing.T) {
	p := testcluster.StartProcess(t, groupProps()...)
	ctx := context.Background()
	const topic, group = "restart", "g-restart"
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	require.NoError(t, err)
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, 6, 1, nil, topic)
	require.NoError(t, err)
	produceValues(t, cl, topic, "a", 1200)

	first := newSeenSet()
	c := startGroupConsumer(t, p.Addr(), group, topic, first)
	testcluster.Eventually(t, 20*time.Second, func() error {
		if n, _ := first.size(); n < 1200 {
			return fmt.Errorf("%d of 1200 processed", n)
		}
		return nil
	})
	c.stop()
	before, err := adm.FetchOffsets(ctx, group)
	require.NoError(t, err)
	require.NoError(t, before.Error())
	cl.Close()

	for _, how := range []string{"kill", "stop"} {
		if how == "kill" {
			p.Kill()
		} else {
			p.Stop()
		}
		p.Restart()
		cl, err = kgo.NewClient(kgo.SeedBrokers(p.Addr()))
		require.NoError(t, err)
		adm = kadm.NewClient(cl)
		after := fetchCommitted(t, adm, group)
		require.Equal(t, before.Offsets(), after.Offsets(), "offsets after %s", how)
		produceValues(t, cl, topic, "b-"+how, 600)

		second := newSeenSet()
		c = startGroupConsumer(t, p.Addr(), group, topic, second)
		testcluster.Eventually(t, 20*time.Second, func() error {
			if n, _ := second.size(); n < 600 {
				return fmt.Errorf("%d of 600 processed after %s", n, how)
			}
			return nil
		})
		c.stop()
		// Only the new records: the committed ones were not re-read.
		second.mu.Lock()
		for v := range second.counts {
			require.True(t, strings.HasPrefix(v, "b-"+how+"-"), "re-read %s after %s", v, how)
		}
		second.mu.Unlock()
		require.Empty(t, second.duplicates())
		before, err = adm.FetchOffsets(ctx, group)
		require.NoError(t, err)
		cl.Close()
	}
}

// TestGroupManyCommitsLatestWins commits the same group/partition many
// times (the log keeps every record until compaction) and checks that a
// restart loads the latest, for a clean stop and for SIGKILL.
func TestGroupManyCommitsLatestWins(t *testing.T) {
	p := testcluster.StartProcess(t, append(groupProps(),
		// Small segments so the commits span many of them.
		testcluster.Prop("offsets.topic.segment.bytes", "4096"))...)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	require.NoError(t, err)
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, 2, 1, nil, "many")
	require.NoError(t, err)
	const n = 2000
	for i := 1; i <= n; i++ {
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: "many", Partition: 0, At: int64(i), LeaderEpoch: -1, Metadata: fmt.Sprint("m", i)})
		os.Add(kadm.Offset{Topic: "many", Partition: 1, At: int64(2 * i), LeaderEpoch: -1})
		resp, err := adm.CommitOffsets(ctx, "g-many", os)
		require.NoError(t, err)
		require.NoError(t, resp.Error())
	}
	cl.Close()
	segs, err := filepath.Glob(filepath.Join(p.Dir(), fmt.Sprintf("__consumer_offsets-%d", group.PartitionFor("g-many", 4)), "*.log"))
	require.NoError(t, err)
	require.Greater(t, len(segs), 10, "the commits should span many segments")
	for _, how := range []string{"stop", "kill"} {
		if how == "kill" {
			p.Kill()
		} else {
			p.Stop()
		}
		p.Restart()
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
		require.NoError(t, err)
		adm := kadm.NewClient(cl)
		got := fetchCommitted(t, adm, "g-many")
		o0, _ := got.Lookup("many", 0)
		o1, _ := got.Lookup("many", 1)
		require.Equal(t, int64(n), o0.At, "after %s", how)
		require.Equal(t, fmt.Sprint("m", n), o0.Metadata, "after %s", how)
		require.Equal(t, int64(2*n), o1.At, "after %s", how)
		cl.Close()
	}
}

// rawJoin sends a JoinGroup v9 for member (possibly "") of group.
func rawJoin(t *testing.T, cl *kgo.Client, group, member, ptype string, session int32) *kmsg.JoinGroupResponse {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 9
	req.Group, req.MemberID, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = group, member, session, 5000
	req.ProtocolType = ptype
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{"bad-t"}
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta.AppendTo(nil)}}
	resp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	return resp
}

// TestGroupBadInput sends invalid group requests over TCP: each gets the
// error code Kafka returns, and a live group and its offsets are untouched.
func TestGroupBadInput(t *testing.T) {
	b := testcluster.Start(t, groupProps()...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, 2, 1, nil, "bad-t")
	require.NoError(t, err)

	// FindCoordinator: v4 batches keys, v0 answers at the top level.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorKeys = 4, []string{"a", "b"}
	fcr, err := fc.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Len(t, fcr.Coordinators, 2)
	for _, c := range fcr.Coordinators {
		require.Zero(t, c.ErrorCode)
		require.Equal(t, int32(1), c.NodeID)
	}
	fc = kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorKey = 0, "a"
	fcr, err = fc.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Zero(t, fcr.ErrorCode)
	require.NotZero(t, fcr.Port)

	// A live group built by hand: MEMBER_ID_REQUIRED round trip, join, sync.
	first := rawJoin(t, cl, "live", "", "consumer", 3000)
	require.Equal(t, kerr.MemberIDRequired.Code, first.ErrorCode)
	joined := rawJoin(t, cl, "live", first.MemberID, "consumer", 3000)
	require.Zero(t, joined.ErrorCode)
	require.Equal(t, first.MemberID, joined.LeaderID)
	member, gen := joined.MemberID, joined.Generation
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.MemberID, sync.Generation = 5, "live", member, gen
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: []byte{}}}
	sr, err := sync.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Zero(t, sr.ErrorCode)

	commit := func(group, memberID string, gen int32, topic string, part int32, md string) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version, req.Group, req.MemberID, req.Generation = 8, group, memberID, gen
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{
			{Partition: part, Offset: 42, LeaderEpoch: -1, Metadata: &md}}}}
		resp, err := req.RequestWith(ctx, cl)
		require.NoError(t, err)
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	require.Zero(t, commit("live", member, gen, "bad-t", 0, "ok"))
	require.Equal(t, kerr.UnknownMemberID.Code, commit("live", "intruder", gen, "bad-t", 1, ""))
	require.Equal(t, kerr.IllegalGeneration.Code, commit("live", member, gen+5, "bad-t", 1, ""))
	require.Equal(t, kerr.UnknownTopicOrPartition.Code, commit("live", member, gen, "no-such-topic", 0, ""))
	require.Equal(t, kerr.UnknownTopicOrPartition.Code, commit("live", member, gen, "bad-t", 7, ""))
	require.Equal(t, kerr.OffsetMetadataTooLarge.Code, commit("live", member, gen, "bad-t", 1, strings.Repeat("m", 4097)))
	require.Zero(t, commit("simple", "", -1, "bad-t", 1, ""))

	hb := func(group, memberID string, gen int32) int16 {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Version, req.Group, req.MemberID, req.Generation = 4, group, memberID, gen
		resp, err := req.RequestWith(ctx, cl)
		require.NoError(t, err)
		return resp.ErrorCode
	}
	require.Zero(t, hb("live", member, gen))
	require.Equal(t, kerr.IllegalGeneration.Code, hb("live", member, gen-1))
	require.Equal(t, kerr.UnknownMemberID.Code, hb("nope", "x", 1))
	require.Equal(t, kerr.InvalidGroupID.Code, hb("", "x", 1))

	require.Equal(t, kerr.InvalidGroupID.Code, rawJoin(t, cl, "", "", "consumer", 3000).ErrorCode)
	require.Equal(t, kerr.InvalidSessionTimeout.Code, rawJoin(t, cl, "live", "", "consumer", 10).ErrorCode)
	require.Equal(t, kerr.InconsistentGroupProtocol.Code, rawJoin(t, cl, "live", "", "connect", 3000).ErrorCode)
	require.Equal(t, kerr.UnknownMemberID.Code, rawJoin(t, cl, "live", "made-up", "consumer", 3000).ErrorCode)

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version, del.Groups = 2, []string{"live", "never-existed", "simple"}
	dr, err := del.RequestWith(ctx, cl)
	require.NoError(t, err)
	codes := map[string]int16{}
	for _, g := range dr.Groups {
		codes[g.Group] = g.ErrorCode
	}
	require.Equal(t, map[string]int16{"live": kerr.NonEmptyGroup.Code, "never-existed": kerr.GroupIDNotFound.Code, "simple": 0}, codes)

	od := kmsg.NewPtrOffsetDeleteRequest()
	odr, err := od.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, kerr.InvalidGroupID.Code, odr.ErrorCode)
	od.Group = "live"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "bad-t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	odr, err = od.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, kerr.GroupSubscribedToTopic.Code, odr.Topics[0].Partitions[0].ErrorCode)

	// None of that disturbed the live group.
	require.Zero(t, hb("live", member, gen))
	offs, err := adm.FetchOffsets(ctx, "live")
	require.NoError(t, err)
	o, ok := offs.Lookup("bad-t", 0)
	require.True(t, ok)
	require.Equal(t, int64(42), o.At)
	require.Equal(t, "ok", o.Metadata)
	_, ok = offs.Lookup("bad-t", 1)
	require.False(t, ok, "the rejected commits left no offset")
	listed, err := adm.ListGroups(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"live"}, listed.Groups())
	described, err := adm.DescribeGroups(ctx, "live")
	require.NoError(t, err)
	require.Equal(t, "Stable", described["live"].State)
}

// TestGroupStaticMember: a static member (group.instance.id) that restarts
// within its session timeout gets its partitions back without a rebalance;
// one that stays away is removed when its session expires.
func TestGroupStaticMember(t *testing.T) {
	b := testcluster.Start(t, groupProps()...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()
	adm := kadm.NewClient(cl)
	const topic, group = "static", "g-static"
	_, err = adm.CreateTopic(ctx, 4, 1, nil, topic)
	require.NoError(t, err)
	seen := newSeenSet()
	opts := []kgo.Opt{kgo.InstanceID("instance-1"), kgo.SessionTimeout(4 * time.Second)}
	c := startGroupConsumer(t, b.Addr(), group, topic, seen, opts...)
	var memberID string
	testcluster.Eventually(t, 10*time.Second, func() error {
		a, err := assignment(ctx, adm, group, topic)
		if err != nil {
			return err
		}
		for m := range a {
			memberID = m
		}
		return balanced(a, 1, 4)
	})
	produceValues(t, cl, topic, "a", 400)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n, _ := seen.size(); n < 400 {
			return fmt.Errorf("%d of 400", n)
		}
		return nil
	})
	c.stop() // a static member does not leave the group

	gs, err := adm.DescribeGroups(ctx, group)
	require.NoError(t, err)
	require.Equal(t, "Stable", gs[group].State)
	require.Len(t, gs[group].Members, 1)
	require.Equal(t, "instance-1", *gs[group].Members[0].InstanceID)

	c = startGroupConsumer(t, b.Addr(), group, topic, seen, opts...)
	produceValues(t, cl, topic, "b", 400)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n, _ := seen.size(); n < 800 {
			return fmt.Errorf("%d of 800", n)
		}
		return nil
	})
	gs, err = adm.DescribeGroups(ctx, group)
	require.NoError(t, err)
	require.Len(t, gs[group].Members, 1)
	require.NotEqual(t, memberID, gs[group].Members[0].MemberID, "the restarted instance has a new member id")
	require.Empty(t, seen.duplicates())
	c.stop()

	// Gone for longer than the session timeout: removed, the group empties.
	testcluster.Eventually(t, 20*time.Second, func() error {
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return err
		}
		if gs[group].State != "Empty" {
			return fmt.Errorf("group is %s", gs[group].State)
		}
		return nil
	})
}

// TestGroupOffsetsIgnoreTimeRetention: __consumer_offsets is compacted, not
// trimmed by time, so committed offsets outlive an aggressive
// log.retention.ms that deletes other topics' old segments.
func TestGroupOffsetsIgnoreTimeRetention(t *testing.T) {
	dir := t.TempDir()
	props := append(groupProps(),
		testcluster.Dir(dir),
		testcluster.Prop("log.retention.ms", "1"),
		testcluster.Prop("log.retention.check.interval.ms", "50"),
		testcluster.Prop("offsets.topic.segment.bytes", "1024"),
		// The restart below registers again without waiting out a 9 s session.
		testcluster.Prop("broker.session.timeout.ms", "2000"), testcluster.Prop("broker.heartbeat.interval.ms", "500"))
	b := testcluster.Start(t, props...)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, 1, 1, nil, "kept")
	require.NoError(t, err)
	commit := func(group string, at int64) {
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: "kept", Partition: 0, At: at, LeaderEpoch: -1})
		resp, err := adm.CommitOffsets(ctx, group, os)
		require.NoError(t, err)
		require.NoError(t, resp.Error())
	}
	// One commit of g-kept, then enough commits of another group on the
	// same __consumer_offsets partition that g-kept's record ends up in an
	// old segment, which time retention would delete.
	filler := ""
	for i := 0; filler == ""; i++ {
		if g := fmt.Sprint("filler-", i); group.PartitionFor(g, 4) == group.PartitionFor("g-kept", 4) {
			filler = g
		}
	}
	commit("g-kept", 77)
	for i := 1; i <= 100; i++ {
		commit(filler, int64(i))
	}
	// Evidence that retention passes ran after the commits: a topic of
	// small segments, written after them, loses its old segments to
	// log.retention.ms. A pass that deleted them started after they
	// rolled, so it also visited every __consumer_offsets partition with
	// g-kept's record in an old segment.
	_, err = adm.CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": kmsg.StringPtr("1024")}, "trimmed")
	require.NoError(t, err)
	for range 20 { // one ~250-byte batch each: several 1024-byte segments
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "trimmed", Value: []byte(strings.Repeat("x", 200))}).FirstErr())
	}
	testcluster.Eventually(t, 10*time.Second, func() error {
		start, err := adm.ListStartOffsets(ctx, "trimmed")
		if err != nil {
			return err
		}
		if o, _ := start.Lookup("trimmed", 0); o.Offset == 0 {
			return errors.New("no retention pass has deleted a segment of topic trimmed yet")
		}
		return nil
	})
	cl.Close()
	require.NoError(t, b.Close())

	b = testcluster.Start(t, props...)
	cl, err = kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm = kadm.NewClient(cl)
	got := fetchCommitted(t, adm, "g-kept")
	o, ok := got.Lookup("kept", 0)
	require.True(t, ok, "the committed offset was lost")
	require.Equal(t, int64(77), o.At)
}
