package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestAgentCommand runs `kobs agent` as an operator would, against a real
// broker: it prints its address, serves /v1/health and kafka_exporter's
// names on /metrics, and stops on SIGINT.
func TestAgentCommand(t *testing.T) {
	b := testcluster.Start(t)
	bin := testcluster.Binary(t)
	cmd := exec.Command(bin, "agent", "--bootstrap-servers", b.Addr(), "--listen", "127.0.0.1:0", "--interval", "500ms")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, `msg="kobs agent ready"`) {
				for _, f := range strings.Fields(line) {
					if v, ok := strings.CutPrefix(f, "listen="); ok {
						ready <- v
					}
				}
			}
		}
		exited <- cmd.Wait()
	}()
	var url string
	select {
	case url = <-ready:
	case err := <-exited:
		t.Fatalf("kobs agent exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("kobs agent not ready after 30s")
	}
	testcluster.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body := string(raw); !strings.Contains(body, "\nkobs_agent_up 1\n") || !strings.Contains(body, "\nkafka_brokers 1\n") {
			return fmt.Errorf("agent not up:\n%s", body)
		}
		// Health answers from the latest cycle: with --interval 500ms one
		// cycle that timed out or ran late since the scrape says 503
		// (stale), so it is part of the condition, not read once after.
		resp, err = http.Get(url + "/v1/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/v1/health: HTTP %d", resp.StatusCode)
		}
		return nil
	})

	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-exited:
		require.NoError(t, err, "kobs agent exits 0 on SIGINT")
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("kobs agent did not stop on SIGINT")
	}
}

// TestAgentFlagErrors: a bad flag is refused with a clear error before
// anything connects.
func TestAgentFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--isolation", "snapshot"}, `--isolation "snapshot"`},
		{[]string{"--lag-seconds", "guess"}, `lag seconds mode "guess"`},
		{[]string{"--sasl-mechanism", "GSSAPI"}, `--sasl-mechanism "GSSAPI"`},
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--status-window", "1"}, "status window must be at least 2"},
	} {
		root := &cobra.Command{Use: "kobs", SilenceUsage: true, SilenceErrors: true}
		root.AddCommand(newAgentCmd())
		root.SetArgs(append([]string{"agent", "--listen", "127.0.0.1:0"}, c.args...))
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := root.ExecuteContext(ctx)
		cancel()
		require.ErrorContains(t, err, c.want, c.args)
	}
}
