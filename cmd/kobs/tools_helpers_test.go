package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kobs runs one operator command in-process, as main would, and returns
// what it printed.
func kobs(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "kobs", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newTopicsCmd(), newGroupsCmd(), newConfigsCmd(), newDeleteRecordsCmd(), newVersionCmd())
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// kobsOK runs a command that must succeed and returns its stdout.
func kobsOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := kobs(t, args...)
	require.NoError(t, err, "kobs %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out, errOut)
	return out
}

// need returns the path of an external tool, skipping the test when it is
// absent unless KOBS_REQUIRE_INTEROP is set (make test sets it, after
// installing the tools, so a broken install fails loudly).
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("KOBS_REQUIRE_INTEROP") != "" {
		t.Fatalf("%s not found (run scripts/install-test-deps.sh)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// kcat runs kcat (librdkafka) against addr and returns its stdout.
func kcat(t *testing.T, addr string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, need(t, "kcat"), append([]string{"-b", addr}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "kcat %v: %s", args, errb.String())
	return out.String()
}

var kcatTopicLine = regexp.MustCompile(`(?m)^\s*topic "([^"]+)" with (\d+) partitions:`)

// kcatPartitions is the partition count kcat -L reports for each topic.
func kcatPartitions(t *testing.T, addr string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range kcatTopicLine.FindAllStringSubmatch(kcat(t, addr, "-L"), -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] = n
	}
	return out
}

var kcatOffsetLine = regexp.MustCompile(`(?m)^\s*(\S+) \[(\d+)\] offset (-?\d+)`)

// kcatOffsets asks kcat -Q for the offsets of topic's partitions at ts (a
// millisecond timestamp, or -2 for the start): librdkafka's
// offsetsForTimes, i.e. ListOffsets.
func kcatOffsets(t *testing.T, addr, topic string, ts int64, partitions ...int32) map[int32]int64 {
	t.Helper()
	args := []string{"-Q"}
	for _, p := range partitions {
		args = append(args, "-t", topic+":"+strconv.Itoa(int(p))+":"+strconv.FormatInt(ts, 10))
	}
	out := map[int32]int64{}
	for _, m := range kcatOffsetLine.FindAllStringSubmatch(kcat(t, addr, args...), -1) {
		p, _ := strconv.Atoi(m[2])
		o, _ := strconv.ParseInt(m[3], 10, 64)
		out[int32(p)] = o
	}
	require.Len(t, out, len(partitions), "kcat -Q answered every partition")
	return out
}

// admin returns a kadm client on addr, closed when the test ends.
func admin(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// committed is the group's committed offsets of topic, read with kadm.
func committed(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	ors, err := adm.FetchOffsets(context.Background(), group)
	require.NoError(t, err)
	out := map[int32]int64{}
	for p, or := range ors[topic] {
		require.NoError(t, or.Err)
		if or.At >= 0 {
			out[p] = or.At
		}
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lines splits output into its non-empty lines.
func nonEmptyLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// commitOffsets commits offsets for group with kadm, as an admin would.
func commitOffsets(t *testing.T, adm *kadm.Client, group, topic string, offsets map[int32]int64) {
	t.Helper()
	var commit kadm.Offsets
	for p, o := range offsets {
		commit.AddOffset(topic, p, o, -1)
	}
	resps, err := adm.CommitOffsets(context.Background(), group, commit)
	require.NoError(t, err)
	require.NoError(t, resps.Error())
}
