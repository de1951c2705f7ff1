package replica

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/metadata"
)

func newTestManager(t *testing.T, self int32, dirs ...string) *Manager {
	t.Helper()
	if len(dirs) == 0 {
		dirs = []string{t.TempDir()}
	}
	m := NewManager(ManagerConfig{
		NodeID: self, LogDirs: dirs,
		LogConfig: func(map[string]string) klog.Config { return klog.DefaultConfig() },
		MinISR: func(o map[string]string) int {
			if o["min.insync.replicas"] == "2" {
				return 2
			}
			return 1
		},
	})
	t.Cleanup(func() { _ = m.Close() })
	return m
}

var imageOffset int64

func image(topic string, id metadata.TopicID, configs map[string]string, parts ...metadata.Partition) *metadata.Image {
	imageOffset++
	img := metadata.Empty("c")
	img.Offset = imageOffset
	mt := &metadata.Topic{Name: topic, ID: id, Configs: configs, Partitions: parts}
	img.Topics[topic], img.ByID[id] = mt, mt
	return img
}

// TestManagerFollowsImages: an image opens the replicas assigned to this
// broker (and only those), sets their state, and a later image without
// them deletes their directories.
func TestManagerFollowsImages(t *testing.T) {
	dir := t.TempDir()
	m := newTestManager(t, 2, dir)
	id := metadata.NewTopicID()
	img := image("t", id, map[string]string{"min.insync.replicas": "2"},
		metadata.Partition{Leader: 1, LeaderEpoch: 3, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}},
		metadata.Partition{Leader: 1, LeaderEpoch: 1, Replicas: []int32{1, 3}, ISR: []int32{1, 3}},
	)
	m.OnImage(nil, img)
	require.Equal(t, 1, m.Len())
	p := m.Partition("t", 0)
	require.NotNil(t, p)
	require.Nil(t, m.Partition("t", 1), "not a replica of partition 1")
	st := p.State()
	require.False(t, st.IsLeader())
	require.Equal(t, int32(3), st.LeaderEpoch)
	require.Equal(t, 2, st.MinISR)
	got, err := ReadPartitionMetadata(filepath.Join(dir, "t-0"))
	require.NoError(t, err)
	require.Equal(t, id, got)

	// This broker becomes leader with a shrunk ISR.
	img2 := image("t", id, nil,
		metadata.Partition{Leader: 2, LeaderEpoch: 4, Replicas: []int32{1, 2, 3}, ISR: []int32{2}},
		metadata.Partition{Leader: 1, LeaderEpoch: 1, Replicas: []int32{1, 3}, ISR: []int32{1, 3}},
	)
	m.OnImage(img, img2)
	st = m.Partition("t", 0).State()
	require.True(t, st.IsLeader())
	require.True(t, st.UnderReplicated())
	require.False(t, st.UnderMinISR(), "min.insync.replicas back to the default of 1")
	require.True(t, st.AtMinISR())

	empty := metadata.Empty("c")
	empty.Offset = 100
	m.OnImage(img2, empty)
	require.Zero(t, m.Len())
	_, err = os.Stat(filepath.Join(dir, "t-0"))
	require.True(t, os.IsNotExist(err), "deleted replica's directory is gone: %v", err)
}

// TestManagerLoadFindsPartitions: Load reopens what Create made.
func TestManagerLoadFindsPartitions(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	m := newTestManager(t, 1, dirs...)
	id := metadata.NewTopicID()
	for i := int32(0); i < 4; i++ {
		_, err := m.Create("x", id, i, nil)
		require.NoError(t, err)
	}
	// Placement: the fewest partitions per dir, so two in each.
	per := map[string]int{}
	for _, p := range m.All() {
		per[p.LogDir]++
	}
	require.Equal(t, map[string]int{dirs[0]: 2, dirs[1]: 2}, per)
	require.NoError(t, m.Close())

	m2 := newTestManager(t, 1, dirs...)
	found, err := m2.Load(func(string) bool { return true }, func(string) map[string]string { return nil })
	require.NoError(t, err)
	require.Len(t, found, 4)
	for _, f := range found {
		require.Equal(t, id, f.TopicID)
	}
}

// TestCreateFailureLeavesNoDirectory: a partition whose log cannot be
// opened (here: out of file descriptors after its directory was made)
// leaves no directory behind, so neither a retry nor the next start trips
// over a half-made partition. The soft RLIMIT_NOFILE is lowered step by
// step from the lowest free descriptor number until Create succeeds; every failed attempt
// must have cleaned up.
func TestCreateFailureLeavesNoDirectory(t *testing.T) {
	dir := t.TempDir()
	m := newTestManager(t, 1, dir)
	var orig syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig))
	// RLIMIT_NOFILE bounds descriptor numbers: start at the lowest free one.
	probeFile, err := os.Open(os.DevNull)
	require.NoError(t, err)
	lowestFree := probeFile.Fd()
	require.NoError(t, probeFile.Close())
	failures := 0
	var p *Partition
	for extra := 0; extra < 64 && p == nil; extra++ {
		lim := orig
		lim.Cur = uint64(lowestFree) + uint64(extra)
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
		p, err = m.Create("t", metadata.NewTopicID(), 0, nil)
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig))
		if err != nil {
			failures++
			require.NoDirExists(t, filepath.Join(dir, "t-0"), "attempt with %d descriptors: %v", lim.Cur, err)
		}
	}
	require.NotNil(t, p)
	require.Positive(t, failures, "no attempt ran out of descriptors")
	require.DirExists(t, filepath.Join(dir, "t-0"))
}

// TestCleanupNeedsNoDescriptor: the cleanup of a half-made partition runs
// when descriptors have run out, so it must not need a new one (CI once
// saw os.RemoveAll fail there with "openfdat: too many open files").
func TestCleanupNeedsNoDescriptor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "t-0")
	require.NoError(t, os.Mkdir(dir, 0o755))
	for _, n := range []string{"00000000000000000000.log", "00000000000000000000.index", "partition.metadata"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644))
	}
	d, err := os.Open(dir)
	require.NoError(t, err)
	defer d.Close()
	// RLIMIT_NOFILE bounds descriptor numbers, not their count: the
	// lowest free number as the limit leaves no descriptor to open.
	probeFile, err := os.Open(os.DevNull)
	require.NoError(t, err)
	lowestFree := probeFile.Fd()
	require.NoError(t, probeFile.Close())
	var orig syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig))
	lim := orig
	lim.Cur = uint64(lowestFree)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	_, probe := os.Open(dir)
	err = removeThrough(d, dir)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig))
	require.ErrorIs(t, probe, syscall.EMFILE, "the limit left a descriptor spare; the test proves nothing")
	require.NoError(t, err)
	require.NoDirExists(t, dir)
}
