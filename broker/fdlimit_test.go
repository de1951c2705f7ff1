package broker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// nofileExecEnv carries, as JSON, the free descriptors to allow and the
// argv to exec under them (TestNofileExecHelper).
const nofileExecEnv = "KOBS_TEST_NOFILE_EXEC"

// TestNofileExecHelper is not a test: run as a child process, it lowers
// its RLIMIT_NOFILE (soft and hard, so the broker cannot raise it back)
// and execs the given command, which inherits the limit.
func TestNofileExecHelper(t *testing.T) {
	spec := os.Getenv(nofileExecEnv)
	if spec == "" {
		t.Skip("helper process: execs kobs under a lowered RLIMIT_NOFILE")
	}
	var s struct {
		Free uint64
		Argv []string
	}
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	// RLIMIT_NOFILE bounds descriptor numbers, not counts: count from
	// the lowest free one.
	f, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	low := uint64(f.Fd())
	f.Close()
	lim := syscall.Rlimit{Cur: low + s.Free, Max: low + s.Free}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "helper: setrlimit:", err)
		os.Exit(2)
	}
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, nofileExecEnv+"=") {
			env = append(env, e)
		}
	}
	err = syscall.Exec(s.Argv[0], s.Argv, env)
	fmt.Fprintln(os.Stderr, "helper: exec:", err)
	os.Exit(2)
}

// brokerUnderNofile starts `kobs broker` on dir with free file
// descriptors, returning the command, its stderr lines and, once it
// printed its ready line, its address (or "" when it exited first).
func brokerUnderNofile(t *testing.T, dir string, free uint64, props map[string]string) (*exec.Cmd, string, *syncBuf) {
	t.Helper()
	conf := fmt.Sprintf("node.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs=%s\nkobs.http.listener=127.0.0.1:0\n"+
		"broker.session.timeout.ms=2000\nbroker.heartbeat.interval.ms=500\n", dir)
	for k, v := range props {
		conf += k + "=" + v + "\n"
	}
	confPath := filepath.Join(t.TempDir(), "server.properties")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o644))
	spec, err := json.Marshal(map[string]any{"Free": free, "Argv": []string{testcluster.Binary(t), "broker", "--config", confPath}})
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNofileExecHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), nofileExecEnv+"="+string(spec))
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := &syncBuf{}
	ready := make(chan string, 1)
	go func() {
		defer close(ready)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			if strings.Contains(line, "kobs broker ready") {
				for _, f := range strings.Fields(line) {
					if v, ok := strings.CutPrefix(f, "listeners="); ok {
						ready <- strings.Split(v, ",")[0]
					}
				}
			}
		}
	}()
	select {
	case addr := <-ready:
		return cmd, addr, logs
	case <-time.After(60 * time.Second):
		t.Fatalf("kobs broker neither ready nor exited in 60 s:\n%s", logs.String())
		return nil, "", nil
	}
}

// treeState is every file under dir with its size and modification time.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fmt.Sprintf("%d %v", info.Size(), info.ModTime().UnixNano())
		return nil
	}))
	return out
}

// TestStartRefusedWhenPartitionsExceedFileLimit: a broker whose log dirs
// hold more partitions than its file descriptor limit allows (issue 11:
// it failed half-way with "too many open files") refuses to start with a
// message naming the limit and how to raise it, and changes nothing on
// disk; under a limit that fits, it starts on the same data.
func TestStartRefusedWhenPartitionsExceedFileLimit(t *testing.T) {
	dir := t.TempDir()
	b := testcluster.Start(t, append(fastRestart, testcluster.Dir(dir))...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = kadm.NewClient(cl).CreateTopic(ctx, 150, 1, nil, "wide")
	require.NoError(t, err)
	for _, p := range []int32{0, 75, 149} {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "wide", Partition: p, Value: []byte("kept")}).FirstErr())
	}
	cl.Close()
	require.NoError(t, b.Close())
	before := treeState(t, dir)

	// 300 descriptors: the derived kobs.max.partitions.per.broker is ~50.
	cmd, addr, logs := brokerUnderNofile(t, dir, 300, nil)
	require.Empty(t, addr, "started with 150 partitions under a 300-descriptor limit")
	require.Error(t, cmd.Wait())
	t.Logf("refused:\n%s", logs.String())
	require.Contains(t, logs.String(), "hold 150 partitions, more than kobs.max.partitions.per.broker=")
	require.Contains(t, logs.String(), "raise the file descriptor limit")
	require.Contains(t, logs.String(), "nothing on disk was changed")
	require.Equal(t, before, treeState(t, dir))

	// The key set past what the descriptors allow: refused on the segments.
	cmd, addr, logs = brokerUnderNofile(t, dir, 300, map[string]string{"kobs.max.partitions.per.broker": "100000"})
	require.Empty(t, addr)
	require.Error(t, cmd.Wait())
	require.Contains(t, logs.String(), "hold 150 segments in 150 partitions")
	require.Contains(t, logs.String(), "RLIMIT_NOFILE")
	require.Equal(t, before, treeState(t, dir))

	// Raised, as the message says: it starts and serves what was written.
	_, addr, logs = brokerUnderNofile(t, dir, 1200, nil)
	require.NotEmpty(t, addr, "not started with 1,200 descriptors:\n%s", logs.String())
	cl, err = kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	var ends kadm.ListedOffsets
	testcluster.Eventually(t, 30*time.Second, func() error {
		ends, err = kadm.NewClient(cl).ListEndOffsets(ctx, "wide")
		if err == nil {
			err = ends.Error()
		}
		return err
	})
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	require.Equal(t, int64(3), total)
}
