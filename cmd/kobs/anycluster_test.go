package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestToolsAgainstKfake runs the operator tools against another Kafka
// implementation, franz-go's kfake, to back the claim that they work
// against any Kafka-protocol cluster: each step is checked with kadm or
// kcat, as against kobs.
func TestToolsAgainstKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	adm := admin(t, addr)

	topics := []string{"topics", "--bootstrap-server", addr}
	require.Equal(t, "Created topic ledger.\n", kobsOK(t, append(topics, "--create", "--topic", "ledger", "--partitions", "2")...))
	require.Equal(t, 2, kcatPartitions(t, addr)["ledger"])
	kobsOK(t, append(topics, "--alter", "--topic", "ledger", "--partitions", "3")...)
	require.Equal(t, 3, kcatPartitions(t, addr)["ledger"])

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	fillTimed(t, addr, "ledger", 3, 50, base)
	start := map[int32]int64{0: 10, 1: 20, 2: 30}
	commitOffsets(t, adm, "clerks", "ledger", start)

	g := []string{"groups", "--bootstrap-server", addr}
	out, _, err := kobs(t, append(g, "--describe", "--group", "clerks", "--status-window", "0")...)
	require.NoError(t, err)
	rows := describeRows(t, out)
	require.Equal(t, []string{"clerks", "ledger", "2", "30", "50", "20", "-", "-", "-"}, rows["ledger-2"][:9])

	at := base.Add(25 * time.Second)
	want := kcatOffsets(t, addr, "ledger", at.UnixMilli(), 0, 1, 2)
	kobsOK(t, append(g, "--reset-offsets", "--group", "clerks", "--all-topics", "--to-datetime", at.UTC().Format("2006-01-02T15:04:05.000"))...)
	require.Equal(t, start, committed(t, adm, "clerks", "ledger"), "dry run")
	kobsOK(t, append(g, "--reset-offsets", "--group", "clerks", "--all-topics", "--to-datetime", at.UTC().Format("2006-01-02T15:04:05.000"), "--execute")...)
	require.Equal(t, want, committed(t, adm, "clerks", "ledger"))
	require.Equal(t, map[int32]int64{0: 25, 1: 25, 2: 25}, want)

	file := filepath.Join(t.TempDir(), "offsets.json")
	require.NoError(t, writeFile(file, `{"partitions": [{"topic": "ledger", "partition": 1, "offset": 15}], "version": 1}`))
	require.Contains(t, kobsOK(t, "delete-records", "--bootstrap-server", addr, "--offset-json-file", file), "partition: ledger-1\tlow_watermark: 15\n")
	require.Equal(t, map[int32]int64{1: 15}, kcatOffsets(t, addr, "ledger", -2, 1))

	cfg := []string{"configs", "--bootstrap-server", addr, "--entity-type", "topics", "--entity-name", "ledger"}
	kobsOK(t, append(cfg, "--alter", "--add-config", "retention.ms=60000")...)
	v, dynamic := topicConfig(t, adm, "ledger", "retention.ms")
	require.Equal(t, "60000", v)
	require.True(t, dynamic)

	require.Equal(t, "Deletion of requested consumer groups ('clerks') was successful.\n", kobsOK(t, append(g, "--delete", "--group", "clerks")...))
	kobsOK(t, append(topics, "--delete", "--topic", "ledger")...)
	eventually(t, "kcat -L no longer lists ledger", func() bool { _, ok := kcatPartitions(t, addr)["ledger"]; return !ok })
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
