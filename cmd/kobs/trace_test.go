package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
	"github.com/kobs-dev/kobs/tracing"
	"github.com/kobs-dev/kobs/tracing/store"
)

// runKobs runs the kobs binary and returns its combined output and exit code.
func runKobs(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err, "%s", out)
	return "", -1
}

// TestCLIJourney reproduces the README's journey from the command line:
// perf produce --trace, perf consume --trace --group g1 (all) and g2 (the
// first five), the shipper, and trace get: produced, stored, consumed by
// g1, waiting for g2. It also checks the three answers of trace get (a
// journey, a record in Kafka without trace events, nothing at all) and
// their exit codes.
func TestCLIJourney(t *testing.T) {
	bin := testcluster.Binary(t)
	b := testcluster.Start(t, testcluster.Prop("num.partitions", "1"), testcluster.Prop("group.initial.rebalance.delay.ms", "0"))
	st, err := store.Open(store.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- st.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	shipped := make(chan error, 1)
	go func() {
		shipped <- tracing.RunShipper(ctx, tracing.ShipperConfig{Brokers: []string{b.Addr()}, URL: url,
			ConsumerOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)}})
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-shipped)
		require.NoError(t, <-served)
		require.NoError(t, st.Close())
	})

	out, code := runKobs(t, bin, "perf", "produce", "--bootstrap-server", b.Addr(), "--topic", "demo", "--num-records", "20",
		"--record-size", "100", "--acks", "1", "--trace")
	require.Zero(t, code, out)
	// Scripts read the closing line: its format is fixed.
	require.Regexp(t, regexp.MustCompile(`(?m)^trace events: 20 written to __kobs_trace, 0 dropped \(buffer full\), 0 failed$`), out)

	out, code = runKobs(t, bin, "perf", "consume", "--bootstrap-server", b.Addr(), "--topic", "demo", "--messages", "20",
		"--group", "g1", "--trace", "--timeout", "30000")
	require.Zero(t, code, out)
	require.Contains(t, out, "trace events: 20 written to __kobs_trace")
	out, code = runKobs(t, bin, "perf", "consume", "--bootstrap-server", b.Addr(), "--topic", "demo", "--messages", "5",
		"--group", "g2", "--trace", "--timeout", "30000")
	require.Zero(t, code, out)

	// --group commits what it read.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for group, want := range map[string]int64{"g1": 20, "g2": 5} {
		offs, err := adm.FetchOffsets(context.Background(), group)
		require.NoError(t, err)
		o, ok := offs.Lookup("demo", 0)
		require.True(t, ok, group)
		require.Equal(t, want, o.At, group)
	}

	// Offset 10: read by g1, not by g2.
	get := []string{"trace", "get", "--url", url, "--bootstrap-server", b.Addr(), "--topic", "demo", "--partition", "0", "--offset", "10"}
	testcluster.Eventually(t, 60*time.Second, func() error {
		out, code = runKobs(t, bin, get...)
		for _, want := range []string{"produced  ", "stored    broker", "partition 0 offset 10", "consumed  group g1", "waiting   group g2"} {
			if !strings.Contains(out, want) || code != 0 {
				return fmt.Errorf("exit %d, no %q in:\n%s", code, want, out)
			}
		}
		return nil
	})
	t.Logf("journey:\n%s", out)

	// A record without trace events (an untraced producer): found in
	// Kafka, shown with its headers, exit 2.
	require.NoError(t, cl.ProduceSync(context.Background(), &kgo.Record{Topic: "demo", Value: []byte("untraced")}).FirstErr())
	get[len(get)-1] = "20"
	out, code = runKobs(t, bin, get...)
	require.Equal(t, traceExitIncomplete, code, out)
	require.Contains(t, out, "record demo[0]@20 exists in Kafka")
	require.Contains(t, out, "headers: none")

	// Nothing there: exit 3, and the log's range is named.
	get[len(get)-1] = "999"
	out, code = runKobs(t, bin, get...)
	require.Equal(t, traceExitNotFound, code, out)
	require.Contains(t, out, "no record at demo[0]@999: offset outside the log (the partition holds offsets 0 to 20)")
	out, code = runKobs(t, bin, "trace", "get", "--url", url, "--msg-id", "0123456789abcdef0123456789abcdef")
	require.Equal(t, traceExitNotFound, code, out)
	require.Contains(t, out, "no such message id")
}
