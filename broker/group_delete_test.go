package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestDeletedTopicOffsetsRemoved: deleting a topic removes the committed
// offsets groups held for it, and a re-created topic starts without them.
func TestDeletedTopicOffsetsRemoved(t *testing.T) {
	b := testcluster.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	for _, topic := range []string{"doomed", "kept"} {
		_, err := adm.CreateTopic(ctx, 2, 1, nil, topic)
		require.NoError(t, err)
	}
	offs := kadm.Offsets{}
	offs.AddOffset("doomed", 0, 5, -1)
	offs.AddOffset("doomed", 1, 6, -1)
	offs.AddOffset("kept", 0, 7, -1)
	resp, err := adm.CommitOffsets(ctx, "g", offs)
	require.NoError(t, err)
	require.NoError(t, resp.Error())

	_, err = adm.DeleteTopic(ctx, "doomed")
	require.NoError(t, err)
	_, err = adm.CreateTopic(ctx, 2, 1, nil, "doomed")
	require.NoError(t, err)

	got, err := adm.FetchOffsets(ctx, "g")
	require.NoError(t, err)
	_, ok := got.Lookup("doomed", 0)
	require.False(t, ok, "offsets of the deleted topic must be gone")
	k, ok := got.Lookup("kept", 0)
	require.True(t, ok)
	require.Equal(t, int64(7), k.At)
}

// fetchCommitted reads a group's committed offsets, retrying while the
// coordinator is still loading __consumer_offsets after a (re)start.
func fetchCommitted(t *testing.T, adm *kadm.Client, group string) kadm.OffsetResponses {
	t.Helper()
	var got kadm.OffsetResponses
	testcluster.Eventually(t, 10*time.Second, func() error {
		var err error
		got, err = adm.FetchOffsets(context.Background(), group)
		if err == nil {
			err = got.Error()
		}
		return err
	})
	return got
}
