package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/audit"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestAuditCLI: "kobs audit run" reconciles an audited producer and group,
// and "kobs audit report" prints the bucket complete with the counts.
func TestAuditCLI(t *testing.T) {
	bin := testcluster.Binary(t)
	b := testcluster.Start(t, testcluster.Prop("group.initial.rebalance.delay.ms", "0"))
	addr := b.Addr()

	cmd := exec.Command(bin, "audit", "run", "--bootstrap-servers", addr, "--listen", "127.0.0.1:0",
		"--bucket", "1s", "--grace", "1s", "--state-dir", t.TempDir())
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	listen := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "kobs audit ready") {
				for _, f := range strings.Fields(line) {
					if v, ok := strings.CutPrefix(f, "listen="); ok {
						listen <- v
					}
				}
			}
		}
	}()
	var url string
	select {
	case url = <-listen:
	case <-time.After(60 * time.Second):
		t.Fatal("kobs audit run not ready")
	}

	const topic, n = "cli", 500
	ph, err := audit.NewProducerHook(audit.Bucket(time.Second))
	require.NoError(t, err)
	pcl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.WithHooks(ph), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		pcl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}, nil)
	}
	require.NoError(t, pcl.Flush(context.Background()))
	pcl.Close()
	ph.Close()

	ch, err := audit.NewConsumerHook(audit.Bucket(time.Second))
	require.NoError(t, err)
	ccl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("cli-group"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.WithHooks(ch))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for got := 0; got < n; {
		fs := ccl.PollRecords(ctx, n-got)
		require.NoError(t, ctx.Err())
		got += fs.NumRecords()
	}
	require.NoError(t, ccl.CommitUncommittedOffsets(ctx))
	ccl.Close()
	ch.Close()

	var out string
	testcluster.Eventually(t, 30*time.Second, func() error {
		var buf bytes.Buffer
		c := exec.Command(bin, "audit", "report", "--server", url, "--topic", topic, "--since", "5m")
		c.Stdout, c.Stderr = &buf, os.Stderr
		if err := c.Run(); err != nil {
			return err
		}
		out = buf.String()
		var produced, consumed int
		for _, line := range strings.Split(out, "\n") {
			var p, br int
			if _, err := fmt.Sscanf(line, "  producer %d  broker %d  producer vs broker: complete", &p, &br); err == nil && p == br {
				produced += p
			}
			if f := strings.Fields(line); len(f) == 9 && f[0] == "cli-group" && f[8] == "complete" {
				var c int
				fmt.Sscan(f[2], &c)
				consumed += c
			}
		}
		if produced != n || consumed != n || strings.Contains(out, "PENDING") {
			return fmt.Errorf("produced %d consumed %d complete:\n%s", produced, consumed, out)
		}
		return nil
	})
	t.Logf("kobs audit report:\n%s", out)

	// Without --topic: a row per topic and group.
	var buf bytes.Buffer
	c := exec.Command(bin, "audit", "report", "--server", url)
	c.Stdout, c.Stderr = &buf, os.Stderr
	require.NoError(t, c.Run())
	t.Logf("kobs audit report (summary):\n%s", buf.String())
	require.Regexp(t, `(?m)^cli\s+cli-group\s+500\s+0\s+0\s+1\.0000\s+0$`, buf.String())
}
