package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
	"github.com/kobs-dev/kobs/tracing"
)

// TestTopicsCommand drives kafka-topics.sh's actions against a real broker
// and checks each with kcat (librdkafka) or kadm.
func TestTopicsCommand(t *testing.T) {
	b := testcluster.Start(t)
	addr := b.Addr()
	bs := []string{"topics", "--bootstrap-server", addr}
	adm := admin(t, addr)

	out := kobsOK(t, append(bs, "--create", "--topic", "orders", "--partitions", "3", "--config", "retention.ms=3600000")...)
	require.Equal(t, "Created topic orders.\n", out)
	require.Equal(t, 3, kcatPartitions(t, addr)["orders"], "kcat -L sees the new topic")

	// Describe: Kafka's header line, then one tab-led line per partition.
	out = kobsOK(t, append(bs, "--describe", "--topic", "orders")...)
	ls := nonEmptyLines(out)
	require.Len(t, ls, 4, out)
	require.Regexp(t, `^Topic: orders\tTopicId: [A-Za-z0-9_-]{22}\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: (.*,)?retention\.ms=3600000(,.*)?$`, ls[0])
	for i, l := range ls[1:] {
		require.Equal(t, "\tTopic: orders\tPartition: "+itoa32(int32(i))+"\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: N/A\tLastKnownElr: N/A", l)
	}

	// Creating it again fails with Kafka's words; --if-not-exists does not.
	out, errOut, err := kobs(t, append(bs, "--create", "--topic", "orders")...)
	require.ErrorIs(t, err, errReported)
	require.Empty(t, out)
	require.Regexp(t, `^Error while executing topic command : .*already exists`, errOut)
	kobsOK(t, append(bs, "--create", "--topic", "orders", "--if-not-exists")...)

	require.Contains(t, nonEmptyLines(kobsOK(t, append(bs, "--list")...)), "orders")

	// Alter: more partitions (seen by kcat), and a config as kafka-topics.sh
	// before 4.0 allowed (seen by kadm).
	kobsOK(t, append(bs, "--alter", "--topic", "orders", "--partitions", "5")...)
	require.Equal(t, 5, kcatPartitions(t, addr)["orders"])
	kobsOK(t, append(bs, "--alter", "--topic", "orders", "--config", "retention.ms=7200000")...)
	rcs, err := adm.DescribeTopicConfigs(context.Background(), "orders")
	require.NoError(t, err)
	rc, err := rcs.On("orders", nil)
	require.NoError(t, err)
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			require.Equal(t, "7200000", *c.Value)
		}
	}
	_, errOut, err = kobs(t, append(bs, "--alter", "--topic", "orders", "--partitions", "2")...)
	require.Error(t, err, "partitions can only grow")
	require.Contains(t, errOut, "Error while executing topic command : ")

	// Delete: gone from kcat -L; then describe and delete say it is missing
	// unless --if-exists.
	kobsOK(t, append(bs, "--delete", "--topic", "orders")...)
	eventually(t, "kcat -L no longer lists orders", func() bool { _, ok := kcatPartitions(t, addr)["orders"]; return !ok })
	for _, action := range []string{"--describe", "--delete", "--alter"} {
		args := append(bs, action, "--topic", "orders")
		if action == "--alter" {
			args = append(args, "--partitions", "9")
		}
		_, errOut, err = kobs(t, args...)
		require.ErrorIs(t, err, errReported, action)
		require.Equal(t, "Error while executing topic command : Topic 'orders' does not exist as expected\n", errOut)
		require.Empty(t, kobsOK(t, append(args, "--if-exists")...), action)
	}
}

// TestTopicsUsageErrors: the argument checks of TopicCommandOptions.
func TestTopicsUsageErrors(t *testing.T) {
	for args, want := range map[string]string{
		"--list --bootstrap-server 127.0.0.1:1 --create": "Command must include exactly one action",
		"--list": `Missing required argument "[bootstrap-server]"`,
		"--bootstrap-server 127.0.0.1:1 --create":                                                         `Missing required argument "[topic]"`,
		"--bootstrap-server 127.0.0.1:1 --alter --topic t":                                                `Missing required argument "[partitions]"`,
		"--bootstrap-server 127.0.0.1:1 --list --partitions 3":                                            `Option "[partitions]" can't be used with option "[list]"`,
		"--bootstrap-server 127.0.0.1:1 --describe --if-not-exists":                                       `Option "[if-not-exists]" can't be used with option "[describe]"`,
		"--bootstrap-server 127.0.0.1:1 --describe --topics-with-overrides --under-replicated-partitions": `can't be used with option`,
	} {
		_, errOut, err := kobs(t, append([]string{"topics"}, strings.Fields(args)...)...)
		require.ErrorIs(t, err, errReported, args)
		require.Contains(t, errOut, want, args)
	}
	// An unreachable cluster is named at once.
	_, errOut, err := kobs(t, "topics", "--bootstrap-server", "127.0.0.1:1", "--list")
	require.ErrorIs(t, err, errReported)
	require.Contains(t, errOut, "connection refused")
}

// TestTopicsDescribeFilters: --under-min-isr-partitions and
// --at-min-isr-partitions against a real broker (one replica per partition,
// so ISR is 1: under a min.insync.replicas of 2, at one of 1); the other
// filters print nothing for a healthy single broker.
func TestTopicsDescribeFilters(t *testing.T) {
	b := testcluster.Start(t)
	bs := []string{"topics", "--bootstrap-server", b.Addr()}
	kobsOK(t, append(bs, "--create", "--topic", "strict", "--partitions", "2", "--config", "min.insync.replicas=2")...)
	kobsOK(t, append(bs, "--create", "--topic", "loose", "--partitions", "1", "--config", "min.insync.replicas=1")...)
	only := []string{"--describe", "--topic", "strict|loose"}
	partLine := regexp.MustCompile(`^\tTopic: (\S+)\tPartition: (\d+)\t`)
	topicsIn := func(out string) []string {
		var ts []string
		for _, l := range nonEmptyLines(out) {
			m := partLine.FindStringSubmatch(l)
			require.NotNil(t, m, "only partition lines with a filter: %q", l)
			ts = append(ts, m[1]+"-"+m[2])
		}
		return ts
	}
	require.Equal(t, []string{"strict-0", "strict-1"}, topicsIn(kobsOK(t, append(append(bs, only...), "--under-min-isr-partitions")...)))
	require.Equal(t, []string{"loose-0"}, topicsIn(kobsOK(t, append(append(bs, only...), "--at-min-isr-partitions")...)))
	require.Empty(t, kobsOK(t, append(append(bs, only...), "--under-replicated-partitions")...))
	require.Empty(t, kobsOK(t, append(append(bs, only...), "--unavailable-partitions")...))
	// Several filters print a partition matching any of them.
	require.Equal(t, []string{"loose-0", "strict-0", "strict-1"},
		topicsIn(kobsOK(t, append(append(bs, only...), "--at-min-isr-partitions", "--under-min-isr-partitions")...)))
	// --topics-with-overrides prints only the header lines.
	out := kobsOK(t, append(append(bs, only...), "--topics-with-overrides")...)
	require.Len(t, nonEmptyLines(out), 2, out)
}

// TestPartitionHealth covers the filters a single broker cannot show: a
// shrunken ISR, no leader, a leader that is not a live broker.
func TestPartitionHealth(t *testing.T) {
	live := map[int32]bool{1: true, 2: true, 3: true}
	p := func(leader int32, replicas, isr []int32) kadm.PartitionDetail {
		return kadm.PartitionDetail{Leader: leader, Replicas: replicas, ISR: isr}
	}
	for name, c := range map[string]struct {
		p                                   kadm.PartitionDetail
		under, underMin, atMin, unavailable bool
	}{
		"healthy":          {p(1, []int32{1, 2, 3}, []int32{1, 2, 3}), false, false, false, false},
		"one follower out": {p(1, []int32{1, 2, 3}, []int32{1, 2}), true, false, true, false},
		"two out":          {p(1, []int32{1, 2, 3}, []int32{1}), true, true, false, false},
		"no leader":        {p(-1, []int32{1, 2, 3}, []int32{}), true, true, false, true},
		"leader not alive": {p(4, []int32{4, 2, 3}, []int32{4, 2, 3}), false, false, false, true},
	} {
		h := partitionHealth{p: c.p, minIsr: 2, live: live}
		require.Equal(t, c.under, h.underReplicated(), name)
		require.Equal(t, c.underMin, h.underMinIsr(), name)
		require.Equal(t, c.atMin, h.atMinIsr(), name)
		require.Equal(t, c.unavailable, h.unavailable(), name)
	}
}

// TestReadmeGoSnippet is the README's promise: franz-go does not ask for
// auto-creation, so producing to a new topic fails with
// UNKNOWN_TOPIC_OR_PARTITION until "kobs topics --create" made it.
func TestReadmeGoSnippet(t *testing.T) {
	b := testcluster.Start(t)
	ph, err := tracing.NewProducerHook()
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.WithHooks(ph), kgo.UnknownTopicRetries(1))
	require.NoError(t, err)
	defer ph.Close()
	defer cl.Close()
	ctx := context.Background()
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("hello")}).FirstErr()
	require.ErrorIs(t, err, kerr.UnknownTopicOrPartition)
	kobsOK(t, "topics", "--bootstrap-server", b.Addr(), "--create", "--topic", "orders", "--partitions", "3")
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("hello")}).FirstErr())
}

// TestTopicsDescribeFiltersDegraded runs the describe filters end to end
// over a degraded cluster: franz-go's kfake with three brokers, whose
// Metadata answer this test controls (a one-node kobs cannot lose a
// replica), and min.insync.replicas=2 set through kfake's own configs.
func TestTopicsDescribeFiltersDegraded(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(4, "pay"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	addrs := c.ListenAddrs()
	adm := admin(t, addrs[0])
	two := "2"
	_, err = adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "min.insync.replicas", Value: &two}}, "pay")
	require.NoError(t, err)
	td, err := adm.ListTopics(context.Background(), "pay")
	require.NoError(t, err)
	payID := td["pay"].ID

	// Partition 0 healthy; 1 lost a follower (at min ISR); 2 lost two
	// (under min ISR); 3 has no leader; 4 is led by broker 5, which is not
	// among the live brokers.
	parts := []struct {
		leader       int32
		replicas, is []int32
	}{
		{0, []int32{0, 1, 2}, []int32{0, 1, 2}},
		{1, []int32{1, 2, 0}, []int32{1, 0}},
		{2, []int32{2, 0, 1}, []int32{2}},
		{-1, []int32{0, 1, 2}, []int32{}},
		{5, []int32{5, 0, 1}, []int32{5, 0, 1}},
	}
	c.ControlKey(int16(kmsg.Metadata), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kr.(*kmsg.MetadataRequest)
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		for i, a := range addrs {
			host, port, _ := strings.Cut(a, ":")
			b := kmsg.NewMetadataResponseBroker()
			b.NodeID, b.Host = int32(i), host
			p, _ := strconv.Atoi(port)
			b.Port = int32(p)
			resp.Brokers = append(resp.Brokers, b)
		}
		resp.ControllerID = 0
		st := kmsg.NewMetadataResponseTopic()
		name := "pay"
		st.Topic, st.TopicID = &name, payID
		for i, p := range parts {
			sp := kmsg.NewMetadataResponseTopicPartition()
			sp.Partition, sp.Leader, sp.Replicas, sp.ISR = int32(i), p.leader, p.replicas, p.is
			if p.leader < 0 {
				sp.ErrorCode = kerr.LeaderNotAvailable.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
		return resp, nil, true
	})

	bs := []string{"topics", "--bootstrap-server", addrs[0], "--describe"}
	want := func(flag string, lines ...string) {
		t.Helper()
		require.Equal(t, lines, nonEmptyLines(kobsOK(t, append(bs, flag)...)), flag)
	}
	line := func(p int, leader, replicas, isr string) string {
		return "\tTopic: pay\tPartition: " + strconv.Itoa(p) + "\tLeader: " + leader + "\tReplicas: " + replicas + "\tIsr: " + isr + "\tElr: N/A\tLastKnownElr: N/A"
	}
	want("--under-replicated-partitions", line(1, "1", "1,2,0", "1,0"), line(2, "2", "2,0,1", "2"), line(3, "none", "0,1,2", ""))
	want("--under-min-isr-partitions", line(2, "2", "2,0,1", "2"), line(3, "none", "0,1,2", ""))
	want("--at-min-isr-partitions", line(1, "1", "1,2,0", "1,0"))
	want("--unavailable-partitions", line(3, "none", "0,1,2", ""), line(4, "5", "5,0,1", "5,0,1"))
	out := kobsOK(t, append(bs, "--topic", "pay")...)
	require.Regexp(t, `^Topic: pay\tTopicId: \S+\tPartitionCount: 5\tReplicationFactor: 3\tConfigs: (.*,)?min\.insync\.replicas=2(,.*)?\n`, out)
}
