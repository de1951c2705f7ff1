package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestBrokerStopsWhileFindingControllers: a broker-only node whose
// controller.quorum.bootstrap.servers do not answer stops on SIGTERM at
// once, with an error naming the key, instead of after the one-minute
// discovery timeout.
func TestBrokerStopsWhileFindingControllers(t *testing.T) {
	bin := testcluster.Binary(t)
	// A port nothing listens on (one bound and closed could be taken by
	// another process before the broker dials it).
	const dead = "127.0.0.1:1"
	dir := t.TempDir()
	conf := filepath.Join(dir, "server.properties")
	require.NoError(t, os.WriteFile(conf, []byte(strings.Join([]string{
		"node.id=1",
		"cluster.id=" + metadata.NewTopicID().String(),
		"process.roles=broker",
		"listeners=PLAINTEXT://127.0.0.1:0",
		"controller.listener.names=CONTROLLER",
		"controller.quorum.bootstrap.servers=" + dead,
		"log.dirs=" + filepath.Join(dir, "data"),
		"kobs.http.listener=",
	}, "\n")+"\n"), 0o644))
	cmd := exec.Command(bin, "broker", "--config", conf)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	asking := make(chan struct{})
	var logs strings.Builder
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "asking controller.quorum.bootstrap.servers") {
				once = true
				close(asking)
			}
		}
	}()
	select {
	case <-asking:
	case <-scanned:
		t.Fatalf("broker exited before asking for the voters:\n%s", logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no \"asking controller.quorum.bootstrap.servers\" line within 30 s")
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { <-scanned; exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		require.Error(t, err, "a broker that never started exits non-zero")
		require.Contains(t, logs.String(), "stopped while no controller of ["+dead+"] had told its voters")
	case <-time.After(20 * time.Second):
		t.Fatal("SIGTERM did not stop a broker waiting for controller.quorum.bootstrap.servers within 20 s (the discovery timeout is 1 min)")
	}
}
