package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestDeleteRecords moves the log start offset, as kcat's ListOffsets for
// the start then reports.
func TestDeleteRecords(t *testing.T) {
	b := testcluster.Start(t)
	addr := b.Addr()
	adm := admin(t, addr)
	_, err := adm.CreateTopic(context.Background(), 2, 1, nil, "trim")
	require.NoError(t, err)
	fillTimed(t, addr, "trim", 2, 100, time.Now())
	require.Equal(t, map[int32]int64{0: 0, 1: 0}, kcatOffsets(t, addr, "trim", -2, 0, 1))

	file := filepath.Join(t.TempDir(), "offsets.json")
	write := func(s string) { require.NoError(t, os.WriteFile(file, []byte(s), 0o644)) }
	write(`{"partitions": [{"topic": "trim", "partition": 0, "offset": 40}, {"topic": "trim", "partition": 1, "offset": -1}], "version": 1}`)
	out := kobsOK(t, "delete-records", "--bootstrap-server", addr, "--offset-json-file", file)
	require.Equal(t, "Executing records delete operation\nRecords delete operation completed:\n"+
		"partition: trim-0\tlow_watermark: 40\npartition: trim-1\tlow_watermark: 100\n", out)
	require.Equal(t, map[int32]int64{0: 40, 1: 100}, kcatOffsets(t, addr, "trim", -2, 0, 1), "kcat sees the new log start offsets")

	// A partition the cluster refuses is printed with its error; exit 1.
	write(`{"partitions": [{"topic": "nope", "partition": 0, "offset": 1}]}`)
	out, _, err = kobs(t, "delete-records", "--bootstrap-server", addr, "--offset-json-file", file)
	require.ErrorIs(t, err, errReported)
	require.Contains(t, out, "partition: nope-0\terror: UNKNOWN_TOPIC_OR_PARTITION")

	for doc, want := range map[string]string{
		`{"partitions": [{"topic": "trim", "partition": 0, "offset": 1}, {"topic": "trim", "partition": 0, "offset": 2}]}`: "Offset json file contains duplicate topic partitions: trim-0",
		`{"version": 2, "partitions": []}`: "Not supported version field value 2",
		`{"version": 1}`:                   "Missing partitions field",
		`not json`:                         "The input string is not a valid JSON",
	} {
		write(doc)
		_, errOut, err := kobs(t, "delete-records", "--bootstrap-server", addr, "--offset-json-file", file)
		require.ErrorIs(t, err, errReported, doc)
		require.Contains(t, errOut, want, doc)
	}
	require.Equal(t, map[int32]int64{0: 40, 1: 100}, kcatOffsets(t, addr, "trim", -2, 0, 1), "bad files delete nothing")
}

func topicConfig(t *testing.T, adm *kadm.Client, topic, key string) (string, bool) {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(context.Background(), topic)
	require.NoError(t, err)
	rc, err := rcs.On(topic, nil)
	require.NoError(t, err)
	for _, c := range rc.Configs {
		if c.Key == key && c.Value != nil {
			return *c.Value, c.Source.String() == "DYNAMIC_TOPIC_CONFIG"
		}
	}
	return "", false
}

// TestConfigsCommand: kafka-configs.sh's --describe and --alter for a topic
// and a broker, checked with kadm.
func TestConfigsCommand(t *testing.T) {
	b := testcluster.Start(t)
	addr := b.Addr()
	adm := admin(t, addr)
	_, err := adm.CreateTopic(context.Background(), 1, 1, nil, "cfg")
	require.NoError(t, err)
	c := []string{"configs", "--bootstrap-server", addr, "--entity-type", "topics", "--entity-name", "cfg"}

	require.Equal(t, "Dynamic configs for topic cfg are:\n", kobsOK(t, append(c, "--describe")...))
	require.Equal(t, "Completed updating config for topic cfg.\n",
		kobsOK(t, append(c, "--alter", "--add-config", "retention.ms=1000000,cleanup.policy=[compact,delete]")...))
	v, dynamic := topicConfig(t, adm, "cfg", "retention.ms")
	require.Equal(t, "1000000", v)
	require.True(t, dynamic)
	v, _ = topicConfig(t, adm, "cfg", "cleanup.policy")
	require.Equal(t, "compact,delete", v, "square brackets group a value with commas")

	out := kobsOK(t, append(c, "--describe")...)
	ls := nonEmptyLines(out)
	require.Len(t, ls, 3, out)
	require.Equal(t, "Dynamic configs for topic cfg are:", ls[0])
	require.Regexp(t, `^  cleanup\.policy=compact,delete sensitive=false synonyms=\{DYNAMIC_TOPIC_CONFIG:cleanup\.policy=compact,delete(, .*)?\}$`, ls[1])
	require.Regexp(t, `^  retention\.ms=1000000 sensitive=false synonyms=\{DYNAMIC_TOPIC_CONFIG:retention\.ms=1000000(, .*)?\}$`, ls[2])
	all := kobsOK(t, append(c, "--describe", "--all")...)
	require.True(t, strings.HasPrefix(all, "All configs for topic cfg are:\n"))
	require.Contains(t, all, "\n  segment.bytes=")

	kobsOK(t, append(c, "--alter", "--delete-config", "retention.ms")...)
	_, dynamic = topicConfig(t, adm, "cfg", "retention.ms")
	require.False(t, dynamic, "retention.ms back to its default")

	_, errOut, err := kobs(t, append(c, "--alter", "--delete-config", "segment.ms")...)
	require.ErrorIs(t, err, errReported)
	require.Equal(t, "Invalid config(s): segment.ms\n", errOut)
	_, errOut, err = kobs(t, append(c, "--alter", "--add-config", "retention.ms=banana")...)
	require.ErrorIs(t, err, errReported)
	require.NotEmpty(t, errOut, "the broker's refusal is printed")

	// Brokers: every config with --all; the shortcut --broker.
	out = kobsOK(t, "configs", "--bootstrap-server", addr, "--broker", "1", "--describe", "--all")
	require.True(t, strings.HasPrefix(out, "All configs for broker 1 are:\n"), out)
	require.Regexp(t, `\n  log\.retention\.\S+=\S+ sensitive=false synonyms=\{`, out)

	for args, want := range map[string]string{
		"--describe --alter --entity-type topics": "Command must include exactly one action",
		"--describe":                     "At least one entity type must be specified",
		"--describe --entity-type users": "Invalid entity type users",
		"--describe --entity-type brokers --entity-name x": "must be a valid integer broker id",
		"--alter --entity-type topics --add-config a=1":    "An entity name must be specified with --alter of topics",
		"--alter --entity-type topics --entity-name t":     "At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter",
		"--describe --entity-type topics --add-config a=1": `Option "[describe]" can't be used with option "[add-config]"`,
		"--describe --topic t --entity-type topics":        "should not be used in conjunction with specific entity flags",
	} {
		_, errOut, err := kobs(t, append([]string{"configs", "--bootstrap-server", addr}, strings.Fields(args)...)...)
		require.ErrorIs(t, err, errReported, args)
		require.Contains(t, errOut, want, args)
	}
}

// TestBinaryExitCodesAndMessages runs the built binary: exit status and
// where the messages go, as a script sees them.
func TestBinaryExitCodesAndMessages(t *testing.T) {
	bin := testcluster.Binary(t)
	b := testcluster.Start(t)
	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return o.String(), e.String(), ee.ExitCode()
		}
		require.NoError(t, err)
		return o.String(), e.String(), 0
	}
	out, _, code := run("topics", "--bootstrap-server", b.Addr(), "--create", "--topic", "once")
	require.Equal(t, 0, code)
	require.Equal(t, "Created topic once.\n", out)
	_, errOut, code := run("topics", "--bootstrap-server", b.Addr(), "--create", "--topic", "once")
	require.Equal(t, 1, code)
	require.Equal(t, "Error while executing topic command : Topic 'once' already exists.\n", errOut, "printed once, in Kafka's words")
	out, _, code = run("groups", "--bootstrap-server", b.Addr(), "--describe", "--group", "ghost")
	require.Equal(t, 1, code)
	require.Contains(t, out, "Error: Consumer group 'ghost' does not exist.")

	_, errOut, code = run("broker")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no config file: give --config server.properties")
	out, _, code = run("metrics", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "CSV")
	require.NotContains(t, out, "as a table")
	out, _, code = run("version")
	require.Equal(t, 0, code)
	require.Regexp(t, `^kobs \S+.* go1\.\d+\S* \w+/\w+\n$`, out)

	// The error cases of issue 12 item 4, as the user sees them.
	for _, args := range [][]string{
		{"perf", "consume", "--bootstrap-server", "127.0.0.1:1", "--topic", "t"},
		{"perf", "produce", "--bootstrap-server", "127.0.0.1:1", "--topic", "t", "--num-records", "10", "--record-size", "10"},
	} {
		began := time.Now()
		_, errOut, code = run(args...)
		require.Equal(t, 1, code, args)
		require.Contains(t, errOut, "cannot reach bootstrap servers 127.0.0.1:1", args)
		require.Contains(t, errOut, "connection refused", args)
		require.NotContains(t, errOut, "no record within timeout", args)
		require.Less(t, time.Since(began), 5*time.Second, args)
	}

	// Kafka's flag names on the perf tools.
	out, errOut, code = run("perf", "produce", "--broker-list", b.Addr(), "--topic", "once", "--num-records", "10",
		"--record-size", "10", "--throughput", "-1", "--producer-props", "acks=1", "linger.ms=0")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "10 records sent")
	_, errOut, code = run("perf", "produce", "--bootstrap-server", b.Addr(), "--topic", "once", "--num-records", "1",
		"--record-size", "1", "--producer-props", "max.block.ms=5")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--producer-props max.block.ms: not supported")
	out, errOut, code = run("perf", "consume", "--broker-list", b.Addr(), "--topic", "once", "--from-latest", "--timeout", "500")
	require.Equal(t, 1, code, "from the end there is nothing to read: %s", out)
	require.Contains(t, errOut, "read no records")
	out, errOut, code = run("perf", "consume", "--broker-list", b.Addr(), "--topic", "once", "--messages", "10", "--timeout", "5000")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "10 records,")
}
