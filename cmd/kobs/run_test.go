package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
	"github.com/kobs-dev/kobs/tracing"
)

// TestRunJourneyWithinAMinute is make run's promise: "kobs run" on the
// embedded defaults, a traced producer, and the journey of its messages is
// queryable on the trace store soon after.
func TestRunJourneyWithinAMinute(t *testing.T) {
	bin := testcluster.Binary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "server.properties")
	require.NoError(t, os.WriteFile(conf, []byte("node.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs="+
		filepath.Join(dir, "broker")+"\nkobs.http.listener=127.0.0.1:0\ngroup.initial.rebalance.delay.ms=0\n"), 0o644))
	cmd := exec.Command(bin, "run", "--config", conf, "--tracestore-dir", filepath.Join(dir, "tracestore"),
		"--tracestore-listen", "127.0.0.1:0", "--audit-listen", "127.0.0.1:0", "--audit-state-dir", filepath.Join(dir, "audit"),
		"--agent-listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, `msg="kobs ready"`) {
				kv := map[string]string{}
				for _, f := range strings.Fields(line) {
					if k, v, ok := strings.Cut(f, "="); ok {
						kv[k] = v
					}
				}
				ready <- kv
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	var where map[string]string
	select {
	case where = <-ready:
	case err := <-exited:
		t.Fatalf("kobs run exited before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("kobs run not ready after 60s")
	}

	// The agent beside the broker watches it: /v1/health says up.
	testcluster.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(where["agent"] + "/v1/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("agent at %q: /v1/health %d", where["agent"], resp.StatusCode)
		}
		return nil
	})

	ph, err := tracing.NewProducerHook()
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(where["kafka"]), kgo.WithHooks(ph), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	r := &kgo.Record{Topic: "newcomer", Value: []byte("hello")}
	require.NoError(t, cl.ProduceSync(context.Background(), r).FirstErr())
	cl.Close()
	ph.Close()
	var msgID string
	for _, h := range r.Headers {
		if h.Key == "kobs-msg-id" {
			msgID = string(h.Value)
		}
	}
	require.NotEmpty(t, msgID)

	// The journey must be this record's: its message id and topic, the
	// producer's acknowledgement, and where the broker stored it (the
	// partition and offset the producer was told).
	deadline := time.Now().Add(60 * time.Second)
	url := where["tracestore"] + "/v1/trace/msg/" + msgID
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			var body struct {
				Journeys []tracing.Journey `json:"journeys"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if derr == nil && resp.StatusCode == http.StatusOK && len(body.Journeys) == 1 &&
				body.Journeys[0].Produced != nil && body.Journeys[0].Stored != nil {
				j := body.Journeys[0]
				t.Logf("journey of %s: %+v stored %+v", msgID, j, *j.Stored)
				require.Equal(t, msgID, j.MsgID)
				require.Equal(t, "newcomer", j.Topic)
				require.Empty(t, j.Produced.Error)
				require.Equal(t, r.Partition, j.Stored.Partition)
				require.Equal(t, r.Offset, j.Stored.Offset)
				// The shipper's metrics are on the trace store's /metrics.
				// It counts a bulk once the store's answer is back, a moment
				// after the store made the journey searchable: wait for it.
				stored := regexp.MustCompile(`(?m)^kobs_trace_shipper_events_total\{outcome="stored"\} [1-9]`)
				testcluster.Eventually(t, 30*time.Second, func() error {
					mresp, err := http.Get(where["trace.metrics"])
					if err != nil {
						return err
					}
					metrics, err := io.ReadAll(mresp.Body)
					mresp.Body.Close()
					if err != nil {
						return err
					}
					if mresp.StatusCode != http.StatusOK || !stored.Match(metrics) {
						return fmt.Errorf("HTTP %d, no stored events counted:\n%s", mresp.StatusCode, metrics)
					}
					return nil
				})
				return
			}
			last = fmt.Sprint(resp.StatusCode, body, derr)
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no journey for %s within a minute; last answer: %s", msgID, last)
}
