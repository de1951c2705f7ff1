package broker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// smallDisk mounts an 8 MiB tmpfs for a log dir and unmounts it when the
// test ends. Mounting needs root (CAP_SYS_ADMIN): under make test
// (KOBS_REQUIRE_TMPFS) its absence fails the test, elsewhere it skips.
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	require.NoError(t, os.Mkdir(dir, 0o755))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		if os.Getenv("KOBS_REQUIRE_TMPFS") != "" {
			t.Fatalf("mount a tmpfs for a full-disk test (needs root): %v", err)
		}
		t.Skipf("mount a tmpfs for a full-disk test (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a file until the disk is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return path
		}
	}
}

// TestDeleteTopicOnFullDisk: a DeleteTopics whose metadata change cannot
// be written (the metadata log's disk is full) answers KAFKA_STORAGE_ERROR
// naming the cause, and the topic, its directory and its records stay,
// also across a restart (issue 11 item 6: before the metadata quorum it
// answered NONE and the topic came back after a restart; with the quorum
// it answered REQUEST_TIMED_OUT after 13 s while the lone voter took a
// new term every ~130 ms). The log says once that the metadata log cannot
// be written and once that it can again, and the controller recovers
// without a restart once space returns.
func TestDeleteTopicOnFullDisk(t *testing.T) {
	dir := smallDisk(t)
	logs := &syncBuf{}
	opts := append(fastRestart, testcluster.Dir(dir), testcluster.Logs(logs))
	b := testcluster.Start(t, opts...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	_, err = adm.CreateTopic(ctx, 1, 1, nil, "gone")
	require.NoError(t, err)
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "gone", Value: []byte("kept")}).FirstErr())

	filler := fill(t, dir)
	// The metadata log (bbolt) may still have free pages in its file:
	// spend them with topic creations (rolled back: their directories
	// cannot be made) until an append needs the file to grow and fails.
	full := false
	for i := 0; i < 500 && !full; i++ {
		r, err := adm.CreateTopic(ctx, 1, 1, nil, "pad-"+strings.Repeat("p", 200)+string(rune('a'+i%26))+strings.Repeat("q", i/26))
		switch {
		case errors.Is(err, kerr.KafkaStorageError) && strings.Contains(r.ErrMessage, "metadata log"):
			t.Logf("CreateTopics when the metadata log fills: %v: %s", err, r.ErrMessage)
			require.Contains(t, r.ErrMessage, "no space left on device")
			full = true
		case errors.Is(err, kerr.KafkaStorageError): // rolled back: no directory
		case err != nil:
			t.Fatalf("a failed metadata append must answer KAFKA_STORAGE_ERROR, got %v: %s", err, r.ErrMessage)
		default:
			t.Fatalf("a topic was created on a full disk")
		}
	}
	require.True(t, full, "the metadata log never failed to append on a full disk")
	require.Zero(t, partitionDirs(t, dir, "pad-"), "rolled-back topics left directories")

	resp, err := adm.DeleteTopics(ctx, "gone")
	require.NoError(t, err)
	t.Logf("DeleteTopics on a full disk: %v: %s", resp["gone"].Err, resp["gone"].ErrMessage)
	require.ErrorIs(t, resp["gone"].Err, kerr.KafkaStorageError, "a delete that could not be written must not be acknowledged")
	require.Contains(t, resp["gone"].ErrMessage, "no space left on device")
	md, err := adm.ListTopics(ctx)
	require.NoError(t, err)
	require.True(t, md.Has("gone"))
	require.DirExists(t, filepath.Join(dir, "gone-0"))
	require.Equal(t, 1, strings.Count(logs.String(), "metadata log cannot be written"), "said once")
	offline := func() float64 {
		v, ok := jolokiaValue(t, b, "kafka.log:type=LogManager,name=OfflineLogDirectoryCount", "Value")
		require.True(t, ok)
		return v
	}
	require.Equal(t, 1.0, offline(), "the log dir of the unwritable metadata log counts as offline")

	// Space returns: the controller takes over again by itself.
	require.NoError(t, os.Remove(filler))
	testcluster.Eventually(t, 30*time.Second, func() error {
		_, err := adm.CreateTopic(ctx, 1, 1, nil, "after")
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		return err
	})
	require.Contains(t, logs.String(), "metadata log writable again")
	require.Zero(t, offline())
	t.Logf("controller terms while the metadata log was full: %s", activeEpochs(logs.String()))
	cl.Close()

	_ = b.Close() // checkpoints may have failed on the full disk; what matters is the restart
	b = testcluster.Start(t, opts...)
	cl, err = kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"gone": {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cl.Close()
	md, err = kadm.NewClient(cl).ListTopics(ctx)
	require.NoError(t, err)
	require.True(t, md.Has("gone"), "the topic whose delete failed is still there after a restart")
	require.True(t, md.Has("after"))
	fetchCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	fs := cl.PollFetches(fetchCtx)
	require.NoError(t, fs.Err())
	require.Equal(t, "kept", string(fs.Records()[0].Value))
}

// activeEpochs lists the epochs of the "active controller" log lines.
func activeEpochs(logs string) string {
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `msg="active controller"`) {
			if i := strings.Index(line, "epoch="); i >= 0 {
				out = append(out, strings.Fields(line[i+len("epoch="):])[0])
			}
		}
	}
	return strings.Join(out, " ")
}
