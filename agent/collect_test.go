package agent

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCollectAsksOnlyWhatItReads: on a 3-broker kfake cluster, one
// collection sends one Metadata request for every topic and none naming
// topics (kgo would send one to map OffsetFetch answers to topic ids),
// DescribeConfigs for min.insync.replicas only, ListOffsets in batches of
// listOffsetsBatch partitions, and OffsetFetch straight to the coordinator,
// again through kadm when the coordinator answers NOT_COORDINATOR; the
// offsets, lags and min ISR are right, and every phase is timed. A topic
// whose config cannot be read is one describe_configs error naming it.
func TestCollectAsksOnlyWhatItReads(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(7, "a"), kfake.SeedTopics(2, "b"))
	require.NoError(t, err)
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	for p := int32(0); p < 7; p++ {
		for i := int32(0); i <= p; i++ { // p+1 records on partition p
			require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "a", Partition: p, Value: []byte("x")}).FirstErr())
		}
	}
	_, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "min.insync.replicas", Value: kmsg.StringPtr("2")}}, "a")
	require.NoError(t, err)
	var commit kadm.Offsets
	for p := int32(0); p < 7; p++ {
		commit.Add(kadm.Offset{Topic: "a", Partition: p, At: 1, LeaderEpoch: -1})
	}
	require.NoError(t, adm.CommitAllOffsets(ctx, "g", commit))

	defer func(n int) { listOffsetsBatch = n }(listOffsetsBatch)
	listOffsetsBatch = 2

	var (
		mu             sync.Mutex
		allTopics      int
		namedTopics    int
		configNames    [][]string
		listOffsets    []int // partitions per request
		offsetFetches  int
		denyB          bool
		notCoordinator = true
	)
	c.ControlKey(int16(kmsg.Metadata), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		switch req := kr.(*kmsg.MetadataRequest); {
		case req.Topics == nil:
			allTopics++
		case len(req.Topics) > 0:
			namedTopics++
		}
		return nil, nil, false
	})
	c.ControlKey(int16(kmsg.DescribeConfigs), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kr.(*kmsg.DescribeConfigsRequest)
		mu.Lock()
		defer mu.Unlock()
		for _, rr := range req.Resources {
			configNames = append(configNames, rr.ConfigNames)
		}
		if !denyB {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
		for _, rr := range req.Resources {
			sr := kmsg.NewDescribeConfigsResponseResource()
			sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
			if rr.ResourceName == "b" {
				sr.ErrorCode = kerr.TopicAuthorizationFailed.Code
			} else {
				rc := kmsg.NewDescribeConfigsResponseResourceConfig()
				rc.Name, rc.Value = "min.insync.replicas", kmsg.StringPtr("2")
				sr.Configs = append(sr.Configs, rc)
			}
			resp.Resources = append(resp.Resources, sr)
		}
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		n := 0
		for _, rt := range kr.(*kmsg.ListOffsetsRequest).Topics {
			n += len(rt.Partitions)
		}
		mu.Lock()
		defer mu.Unlock()
		listOffsets = append(listOffsets, n)
		return nil, nil, false
	})
	c.ControlKey(int16(kmsg.OffsetFetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		offsetFetches++
		if !notCoordinator {
			return nil, nil, false
		}
		// The first one only: the coordinator moved.
		notCoordinator = false
		req := kr.(*kmsg.OffsetFetchRequest)
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		for _, rg := range req.Groups {
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group, g.ErrorCode = rg.Group, kerr.NotCoordinator.Code
			resp.Groups = append(resp.Groups, g)
		}
		return resp, nil, true
	})

	agentCl, err := kgo.NewClient((&Config{Brokers: c.ListenAddrs(), ClientID: "t"}).ClientOpts()...)
	require.NoError(t, err)
	defer agentCl.Close()
	s, err := Collect(ctx, agentCl, CollectOptions{})
	require.NoError(t, err)
	require.Empty(t, s.Errors)

	mu.Lock()
	require.Equal(t, 2, offsetFetches, "the direct OffsetFetch, then kadm's after NOT_COORDINATOR")
	require.Equal(t, 1, allTopics, "one Metadata request for every topic")
	require.NotEmpty(t, configNames)
	for _, names := range configNames {
		require.Equal(t, []string{"min.insync.replicas"}, names)
	}
	sum := 0
	for _, n := range listOffsets {
		require.LessOrEqual(t, n, 2, "ListOffsets batches of at most listOffsetsBatch partitions")
		sum += n
	}
	require.Equal(t, 2*9, sum, "start and end offsets of every partition, each asked once")
	mu.Unlock()

	require.Equal(t, 2, s.Topics["a"].MinISR)
	gl := Lags(s)["g"]
	require.NotNil(t, gl)
	require.Len(t, gl.Partitions, 7)
	for _, pl := range gl.Partitions {
		require.Equal(t, int64(1), pl.Committed)
		require.Equal(t, int64(pl.Partition)+1, pl.End)
		require.Equal(t, int64(pl.Partition), pl.Lag, "partition %d", pl.Partition)
	}
	var phases []string
	for name, d := range s.Phases {
		require.Positive(t, d, name)
		phases = append(phases, name)
	}
	slices.Sort(phases)
	require.Equal(t, []string{"describe_configs", "describe_groups", "list_end_offsets", "list_groups", "list_start_offsets", "metadata", "offset_fetch"}, phases)

	// With the coordinator where DescribeGroups said: one OffsetFetch,
	// and no Metadata request naming topics (through kadm, kgo sends one
	// to map the answer's topics to ids).
	mu.Lock()
	allTopics, namedTopics, offsetFetches = 0, 0, 0
	mu.Unlock()
	s, err = Collect(ctx, agentCl, CollectOptions{})
	require.NoError(t, err)
	require.Empty(t, s.Errors)
	require.Equal(t, int64(6), Lags(s)["g"].Partitions[6].Lag)
	mu.Lock()
	require.Equal(t, 1, offsetFetches)
	require.Equal(t, 1, allTopics)
	require.Zero(t, namedTopics, "no Metadata request naming topics")
	// Topic b's config is refused: one error names it; a is still read.
	denyB = true
	mu.Unlock()
	s, err = Collect(ctx, agentCl, CollectOptions{})
	require.NoError(t, err)
	require.Len(t, s.Errors, 1)
	require.Equal(t, "describe_configs", s.Errors[0].Stage)
	require.True(t, strings.HasPrefix(s.Errors[0].Err, "1 topics (first b): "), s.Errors[0].Err)
	require.Equal(t, 2, s.Topics["a"].MinISR)
	require.Zero(t, s.Topics["b"].MinISR, "unknown")
}
