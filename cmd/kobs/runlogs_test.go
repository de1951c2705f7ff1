package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// runOnce starts "kobs run" on dir's data, waits for its ready line, stops
// it with SIGINT and returns everything it logged.
func runOnce(t *testing.T, bin, dir string) []string {
	t.Helper()
	conf := filepath.Join(dir, "server.properties")
	cmd := exec.Command(bin, "run", "--config", conf, "--log-level", "debug",
		"--tracestore-dir", filepath.Join(dir, "tracestore"), "--tracestore-listen", "127.0.0.1:0",
		"--audit-listen", "127.0.0.1:0", "--audit-state-dir", filepath.Join(dir, "audit"),
		"--agent-listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var (
		mu    sync.Mutex
		lines []string
	)
	ready := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
			if strings.Contains(sc.Text(), `msg="kobs ready"`) {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-scanned:
		t.Fatalf("kobs run exited before ready:\n%s", strings.Join(lines, "\n"))
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("kobs run not ready after 60s")
	}
	// The shipper creates the trace topic right after start; give its
	// request a moment to reach the broker before stopping.
	eventually(t, "the trace shipper started", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, "component=trace-shipper") {
				return true
			}
		}
		return false
	})
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { <-scanned; done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "kobs run exits 0 on SIGINT")
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("kobs run did not stop within 30s of SIGINT")
	}
	return lines
}

// TestRunLogLines: "kobs run" logs each key once per line, no err=<nil> on
// a clean shutdown, a final "kobs stopped" line, and no refusal at info for
// the trace topic that already exists when it restarts on the same data.
func TestRunLogLines(t *testing.T) {
	bin := testcluster.Binary(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server.properties"), []byte("node.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs="+
		filepath.Join(dir, "broker")+"\nkobs.http.listener=127.0.0.1:0\ngroup.initial.rebalance.delay.ms=0\n"), 0o644))
	for i := range 2 {
		lines := runOnce(t, bin, dir)
		all := strings.Join(lines, "\n")
		for _, l := range lines {
			require.LessOrEqual(t, strings.Count(l, " component="), 1, "a key repeated: %s", l)
		}
		require.NotContains(t, all, "err=<nil>")
		require.Contains(t, lines[len(lines)-1], `msg="kobs stopped"`, "run %d:\n%s", i, all)
		if i == 1 {
			require.NotContains(t, all, "TOPIC_ALREADY_EXISTS", "the restart finds its trace topic; that is no news")
		}
	}
}
