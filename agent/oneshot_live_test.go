package agent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/agent"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestDescribeGroupOneShot is the API `kobs groups --describe` uses: no
// running agent, offsets lag equal to the cluster's, exact lag seconds and
// a status from a short window.
func TestDescribeGroupOneShot(t *testing.T) {
	b := testcluster.Start(t)
	brokers := []string{b.Addr()}
	const topic, group, parts = "clicks", "sessions", int32(2)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, parts, 1, nil, topic)
	require.NoError(t, err)
	prod := newProducer(t, brokers, topic, parts)
	for i := 0; i < 10; i++ {
		require.NoError(t, prod.round(ctx))
	}
	// Commit offset 4 on both partitions for a group with no members.
	var os kadm.Offsets
	for p := int32(0); p < parts; p++ {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: 4, LeaderEpoch: -1})
	}
	require.NoError(t, adm.CommitAllOffsets(ctx, group, os))

	before := time.Now()
	g, err := agent.DescribeGroup(ctx, cl, group, agent.DescribeOptions{
		Samples: 2, Every: 100 * time.Millisecond, ExactOpts: []kgo.Opt{kgo.SeedBrokers(brokers...)},
	})
	after := time.Now()
	require.NoError(t, err)
	require.True(t, g.NoMembers)
	require.Len(t, g.Partitions, int(parts))
	for _, p := range g.Partitions {
		require.Equal(t, int64(4), p.Committed)
		require.Equal(t, int64(10), p.End)
		require.Equal(t, int64(6), p.Lag)
		// Nobody owns the partitions and the offset did not move over the
		// (full) window of two samples: STOP.
		require.Equal(t, agent.StatusStop, p.Status)
		require.Equal(t, agent.SecondsExact, p.LagSecondsSource)
		written, ok := prod.timeOf(p.Partition, 4)
		require.True(t, ok)
		// The record's age when DescribeGroup measured it: between its
		// age at the call and at the return (50 ms for the timestamp's
		// millisecond and the answer's rounding), whatever the machine's
		// load, where "within 1 s of its age after the call" was not.
		lo, hi := before.Sub(written).Seconds()-0.05, after.Sub(written).Seconds()+0.05
		require.True(t, lo <= p.LagSeconds && p.LagSeconds <= hi, "lag seconds %v, record age %.3f..%.3f during the call", p.LagSeconds, lo+0.05, hi-0.05)
		require.Greater(t, p.LagSeconds, 0.05)
	}
	require.Equal(t, int64(12), g.TotalLag)
	require.Equal(t, agent.StatusStop, g.Status)

	_, err = agent.DescribeGroup(ctx, cl, "no-such-group", agent.DescribeOptions{Samples: 2, Every: time.Millisecond})
	require.True(t, errors.Is(err, agent.ErrGroupNotFound), "got %v", err)
}
