package perf

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// newCluster starts a one-broker kfake cluster on a free loopback port with
// the given topics (partitions each) and closes it when the test ends.
func newCluster(t *testing.T, partitions int32, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// deadAddr returns a loopback address nothing listens on: port 1
// (tcpmux), which is never served here. A port bound and released instead
// could be taken by another process (a test run in parallel) before the
// dial.
func deadAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:1"
}
