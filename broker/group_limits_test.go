package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestLongGroupIDRefusedNothingLost commits with a 70,000-byte group id
// over TCP: __consumer_offsets records hold int16-length strings, so the
// commit must be refused (INVALID_GROUP_ID), never acknowledged, and the
// other groups' offsets must survive a restart.
func TestLongGroupIDRefusedNothingLost(t *testing.T) {
	p := testcluster.StartProcess(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connect := func() (*kgo.Client, *kadm.Client) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
		require.NoError(t, err)
		return cl, kadm.NewClient(cl)
	}
	cl, adm := connect()
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "orders")
	require.NoError(t, err)

	var kept kadm.Offsets
	kept.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 42, LeaderEpoch: -1})
	testcluster.Eventually(t, 10*time.Second, func() error {
		r, err := adm.CommitOffsets(ctx, "kept", kept)
		if err == nil {
			err = r.Error()
		}
		return err
	})

	long := strings.Repeat("g", 70_000)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group = long
	req.Generation = -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "orders"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 7
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Len(t, resp.Topics, 1)
	require.Equal(t, kerr.InvalidGroupID.Code, resp.Topics[0].Partitions[0].ErrorCode,
		"got %v", kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode))

	fetchLong := func(cl *kgo.Client) int16 {
		f := kmsg.NewPtrOffsetFetchRequest()
		f.Version = 7
		f.Group = long
		fr, err := f.RequestWith(ctx, cl)
		require.NoError(t, err)
		return fr.ErrorCode
	}
	require.Equal(t, kerr.InvalidGroupID.Code, fetchLong(cl), "the refused commit is not readable")
	cl.Close()

	p.Stop()
	p.Restart()
	cl, adm = connect()
	defer cl.Close()
	got := fetchCommitted(t, adm, "kept")
	o, ok := got.Lookup("orders", 0)
	require.True(t, ok)
	require.Equal(t, int64(42), o.At, "the other group's offset survives the restart")
	require.Equal(t, kerr.InvalidGroupID.Code, fetchLong(cl))
	require.NotContains(t, p.Logs(), "level=ERROR", "the restart read __consumer_offsets cleanly")
}
