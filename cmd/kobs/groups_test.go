package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// fillTimed produces n records to each partition of topic, record i with
// timestamp base + i seconds, so a time maps to a known offset.
func fillTimed(t *testing.T, addr, topic string, partitions int32, n int, base time.Time) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	var rs []*kgo.Record
	for p := range partitions {
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprint(i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
		}
	}
	require.NoError(t, cl.ProduceSync(context.Background(), rs...).FirstErr())
}

// describeRows parses --describe's offsets view into rows of fields, keyed
// by TOPIC-PARTITION: kafka-consumer-groups.sh's nine columns, then the
// agent's LAG-SECONDS and STATUS (see lagSecondsNear).
func describeRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	ls := nonEmptyLines(out)
	require.NotEmpty(t, ls, out)
	require.Equal(t, strings.Fields("GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID LAG-SECONDS STATUS"), strings.Fields(ls[0]))
	rows := map[string][]string{}
	for _, l := range ls[1:] {
		f := strings.Fields(l)
		require.Len(t, f, 11, l)
		rows[f[1]+"-"+f[2]] = f
	}
	return rows
}

// lagSecondsNear checks a row's LAG-SECONDS against the age of the record
// at its committed offset (written at base + offset seconds).
func lagSecondsNear(t *testing.T, row []string, base time.Time, offset int) {
	t.Helper()
	got, err := strconv.ParseFloat(row[9], 64)
	require.NoError(t, err, row)
	want := time.Since(base.Add(time.Duration(offset) * time.Second)).Seconds()
	require.InDelta(t, want, got, 15, "LAG-SECONDS %v, record age %.1f", got, want)
}

// TestGroupsCommand drives kafka-consumer-groups.sh's actions against a real
// broker; offsets are checked with kadm and, for --to-datetime, against the
// offsets kcat's ListOffsets gives for the same time.
func TestGroupsCommand(t *testing.T) {
	b := testcluster.Start(t, testcluster.Prop("group.initial.rebalance.delay.ms", "0"))
	addr := b.Addr()
	adm := admin(t, addr)
	ctx := context.Background()
	g := []string{"groups", "--bootstrap-server", addr}
	_, err := adm.CreateTopic(ctx, 2, 1, nil, "events")
	require.NoError(t, err)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	fillTimed(t, addr, "events", 2, 100, base)

	// A live member: --describe shows it, --reset-offsets refuses.
	liveCtx, stopLive := context.WithCancel(ctx)
	member, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("events"),
		kgo.ClientID("billing-app"), kgo.DisableAutoCommit())
	require.NoError(t, err)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for liveCtx.Err() == nil {
			member.PollFetches(liveCtx)
		}
	}()
	var memberID string
	eventually(t, "billing is Stable with the member", func() bool {
		dgs, err := adm.DescribeGroups(ctx, "billing")
		if err != nil || dgs["billing"].State != "Stable" || len(dgs["billing"].Members) != 1 {
			return false
		}
		memberID = dgs["billing"].Members[0].MemberID
		return true
	})
	var commitErr error
	member.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{"events": {0: {Epoch: -1, Offset: 30}, 1: {Epoch: -1, Offset: 50}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			commitErr = err
			if resp == nil {
				return
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					commitErr = cmp.Or(commitErr, kerr.ErrorForCode(rp.ErrorCode))
				}
			}
		})
	require.NoError(t, commitErr)
	out, errOut, err := kobs(t, append(g, "--describe", "--group", "billing")...)
	require.NoError(t, err, errOut)
	rows := describeRows(t, out)
	require.Equal(t, []string{"billing", "events", "0", "30", "100", "70", memberID, rows["events-0"][7], "billing-app"}, rows["events-0"][:9])
	require.Equal(t, []string{"billing", "events", "1", "50", "100", "50", memberID, rows["events-1"][7], "billing-app"}, rows["events-1"][:9])
	// The member owns both partitions and its offsets did not move over
	// the status window while it lags: STALL.
	lagSecondsNear(t, rows["events-0"], base, 30)
	lagSecondsNear(t, rows["events-1"], base, 50)
	require.Equal(t, "STALL", rows["events-0"][10])
	require.Equal(t, "STALL", rows["events-1"][10])
	require.Contains(t, kobsOK(t, append(g, "--describe", "--group", "billing", "--members", "--verbose")...), "events(0,1)")
	state := kobsOK(t, append(g, "--describe", "--group", "billing", "--state")...)
	require.Regexp(t, `\nbilling\s+127\.0\.0\.1:\d+  \(1\)\s+\S+\s+Stable\s+1\n`, state)

	out, _, err = kobs(t, append(g, "--reset-offsets", "--group", "billing", "--topic", "events", "--to-earliest", "--execute")...)
	require.ErrorIs(t, err, errReported)
	require.Contains(t, out, "\nError: Assignments can only be reset if the group 'billing' is inactive, but the current state is Stable.\n")
	require.Equal(t, map[int32]int64{0: 30, 1: 50}, committed(t, adm, "billing", "events"), "a refused reset changes nothing")

	stopLive()
	<-polled
	member.Close()
	eventually(t, "billing is Empty", func() bool {
		dgs, err := adm.DescribeGroups(ctx, "billing")
		return err == nil && dgs["billing"].State == "Empty"
	})
	out, errOut, err = kobs(t, append(g, "--describe", "--group", "billing")...)
	require.NoError(t, err)
	require.Equal(t, "\nConsumer group 'billing' has no active members.\n", errOut)
	rows = describeRows(t, out)
	require.Equal(t, []string{"billing", "events", "0", "30", "100", "70", "-", "-", "-"}, rows["events-0"][:9])
	require.Equal(t, "STOP", rows["events-0"][10], "nobody owns the partition and it lags")
	lagSecondsNear(t, rows["events-0"], base, 30)
	require.Contains(t, nonEmptyLines(kobsOK(t, append(g, "--list")...)), "billing")

	// --to-datetime: the plan (dry run by default) changes nothing; with
	// --execute the committed offsets become what ListOffsets (asked by
	// kcat) gives for that time.
	at := base.Add(40*time.Second + 500*time.Millisecond)
	datetime := at.Format("2006-01-02T15:04:05.000")
	want := kcatOffsets(t, addr, "events", at.UnixMilli(), 0, 1)
	require.Equal(t, map[int32]int64{0: 41, 1: 41}, want, "first record at or after 40.5 s is offset 41")
	plan := kobsOK(t, append(g, "--reset-offsets", "--group", "billing", "--topic", "events", "--to-datetime", datetime)...)
	require.Equal(t, "\nGROUP                          TOPIC                          PARTITION  NEW-OFFSET     "+
		"\nbilling                        events                         0          41             "+
		"\nbilling                        events                         1          41             \n", plan)
	require.Equal(t, map[int32]int64{0: 30, 1: 50}, committed(t, adm, "billing", "events"), "--dry-run (the default) changes nothing")
	kobsOK(t, append(g, "--reset-offsets", "--group", "billing", "--topic", "events", "--to-datetime", datetime, "--dry-run")...)
	require.Equal(t, map[int32]int64{0: 30, 1: 50}, committed(t, adm, "billing", "events"), "--dry-run changes nothing")
	kobsOK(t, append(g, "--reset-offsets", "--group", "billing", "--topic", "events", "--to-datetime", datetime, "--execute")...)
	require.Equal(t, want, committed(t, adm, "billing", "events"))

	// A zone in the datetime, and one partition only.
	zoned := base.Add(70 * time.Second).In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05.000-07:00")
	kobsOK(t, append(g, "--reset-offsets", "--group", "billing", "--topic", "events:1", "--to-datetime", zoned, "--execute")...)
	require.Equal(t, map[int32]int64{0: 41, 1: 70}, committed(t, adm, "billing", "events"))

	// The other scenarios.
	for _, c := range []struct {
		args []string
		want map[int32]int64
	}{
		{[]string{"--to-earliest"}, map[int32]int64{0: 0, 1: 0}},
		{[]string{"--to-latest"}, map[int32]int64{0: 100, 1: 100}},
		{[]string{"--to-offset", "10"}, map[int32]int64{0: 10, 1: 10}},
		{[]string{"--shift-by", "5"}, map[int32]int64{0: 15, 1: 15}},
		{[]string{"--shift-by", "-1000"}, map[int32]int64{0: 0, 1: 0}}, // clamped to the log start
		{[]string{"--to-offset", "1000"}, map[int32]int64{0: 100, 1: 100}},
		{[]string{"--by-duration", "PT2H"}, map[int32]int64{0: 0, 1: 0}},      // before every record
		{[]string{"--by-duration", "PT30M"}, map[int32]int64{0: 100, 1: 100}}, // after every record: the end
		{[]string{"--to-current"}, map[int32]int64{0: 100, 1: 100}},
	} {
		args := append(append(g, "--reset-offsets", "--group", "billing", "--all-topics", "--execute"), c.args...)
		kobsOK(t, args...)
		require.Equal(t, c.want, committed(t, adm, "billing", "events"), "%v", c.args)
	}
	require.Equal(t, "events,0,100\nevents,1,100\n\n",
		kobsOK(t, append(g, "--reset-offsets", "--group", "billing", "--all-topics", "--to-latest", "--export")...))

	// --from-file replays an --export (offsets clamped to the log, as Kafka).
	plan = kobsOK(t, append(g, "--reset-offsets", "--group", "billing", "--all-topics", "--to-offset", "7", "--export")...)
	file := filepath.Join(t.TempDir(), "plan.csv")
	require.NoError(t, os.WriteFile(file, []byte(plan+"events,1,5000\n"), 0o644))
	kobsOK(t, append(g, "--reset-offsets", "--group", "billing", "--to-latest", "--all-topics", "--execute")...)
	kobsOK(t, append(g, "--reset-offsets", "--group", "billing", "--from-file", file, "--execute")...)
	require.Equal(t, map[int32]int64{0: 7, 1: 100}, committed(t, adm, "billing", "events"))
	require.NoError(t, os.WriteFile(file, []byte("events,zero,1\n"), 0o644))
	_, errOut, err = kobs(t, append(g, "--reset-offsets", "--group", "billing", "--from-file", file, "--execute")...)
	require.ErrorIs(t, err, errReported)
	require.Contains(t, errOut, "partition and offset must be numbers")

	// --list --state filters by state, case-insensitively as Kafka.
	require.Regexp(t, `(?m)^billing\s+Empty\s*$`, kobsOK(t, append(g, "--list", "--state", "empty")...))
	require.NotContains(t, kobsOK(t, append(g, "--list", "--state=stable")...), "billing")

	// --command-config: client.id is used, unknown keys named, TLS refused.
	cc := filepath.Join(t.TempDir(), "admin.properties")
	require.NoError(t, os.WriteFile(cc, []byte("client.id=ops\nretries=3\n"), 0o644))
	_, errOut, err = kobs(t, append(g, "--list", "--command-config", cc)...)
	require.NoError(t, err)
	require.Equal(t, "WARN These configurations '[retries]' were supplied but are not used yet.\n", errOut)
	require.NoError(t, os.WriteFile(cc, []byte("security.protocol=SASL_SSL\n"), 0o644))
	_, errOut, err = kobs(t, append(g, "--list", "--command-config", cc)...)
	require.ErrorIs(t, err, errReported)
	require.Contains(t, errOut, "use --tls")
	// --tls is applied: the plaintext broker does not answer a TLS handshake.
	out, _, err = kobs(t, append(g, "--list", "--tls", "--timeout", "3000")...)
	require.ErrorIs(t, err, errReported)
	require.Regexp(t, `Error: Executing consumer group command failed due to .*(?i:tls|handshake|EOF|deadline)`, out)
	t.Logf("--tls against a plaintext broker: %s", strings.TrimSpace(out))

	// --delete-offsets of one partition, then --delete of the group.
	out = kobsOK(t, append(g, "--delete-offsets", "--group", "billing", "--topic", "events:0")...)
	require.Equal(t, "Request succeed for deleting offsets with topic events:0 group billing\n"+
		"\nTOPIC                          PARTITION       STATUS         "+
		"\nevents                         0               Successful     \n", out)
	require.Equal(t, map[int32]int64{1: 100}, committed(t, adm, "billing", "events"), "partition 0's offset is gone")
	require.Equal(t, "Deletion of requested consumer groups ('billing') was successful.\n",
		kobsOK(t, append(g, "--delete", "--group", "billing")...))
	require.NotContains(t, nonEmptyLines(kobsOK(t, append(g, "--list")...)), "billing")

	out, _, err = kobs(t, append(g, "--describe", "--group", "billing")...)
	require.ErrorIs(t, err, errReported)
	require.Equal(t, "\nError: Consumer group 'billing' does not exist.\n", out)
	out, _, err = kobs(t, append(g, "--delete", "--group", "billing")...)
	require.ErrorIs(t, err, errReported)
	require.Contains(t, out, "\nError: Deletion of some consumer groups failed:\n* Group 'billing' could not be deleted due to: ")
}

// TestGroupsUsageErrors: the argument checks of ConsumerGroupCommandOptions.
func TestGroupsUsageErrors(t *testing.T) {
	for args, want := range map[string]string{
		"--list --describe":                                                   "Command must include exactly one action",
		"--describe":                                                          "Option [describe] takes one of these options: [group], [all-groups]",
		"--describe --group g --members --state":                              "takes at most one of these options",
		"--reset-offsets --group g --topic t":                                 "requires one of the following scenarios",
		"--reset-offsets --group g --to-latest":                               "One of the reset scopes should be defined: --all-topics, --topic.",
		"--reset-offsets --group g --topic t --to-latest --to-earliest":       `can't be used with option`,
		"--reset-offsets --group g --topic t --to-latest --execute --dry-run": "only accepts one of [execute] and [dry-run]",
		"--delete-offsets --group g":                                          "Option [delete-offsets] takes the following options: [group], [topic]",
		"--delete --group g --topic t":                                        "The consumer does not support topic-specific offset deletion from a consumer group.",
		"--list --topic t":                                                    `Option "[topic]" can't be used with option "[list]"`,
	} {
		_, errOut, err := kobs(t, append([]string{"groups", "--bootstrap-server", "127.0.0.1:1"}, strings.Fields(args)...)...)
		require.ErrorIs(t, err, errReported, args)
		require.Contains(t, errOut, want, args)
	}
	_, errOut, err := kobs(t, "groups", "--bootstrap-server", "127.0.0.1:1", "--reset-offsets", "--group", "g", "--topic", "t", "--to-datetime", "yesterday")
	require.ErrorIs(t, err, errReported)
	require.Contains(t, errOut, "It does not contain a 'T' according to ISO8601 format")
}

// TestOffsetColumnsExtend: a column added by an extension prints after
// CLIENT-ID, and CLIENT-ID is padded once it is not the last column.
func TestOffsetColumnsExtend(t *testing.T) {
	tb := table{cols: append(append([]column(nil), offsetColumns...), column{"LAG-SECONDS", 12, false}, column{"STATUS", 6, false})}
	tb.add("g", "t", "0", "1", "2", "1", "-", "-", "client", "0.5", "OK")
	var sb strings.Builder
	tb.write(&sb, "\n")
	ls := nonEmptyLines(sb.String())
	require.Equal(t, strings.Fields("GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID LAG-SECONDS STATUS"), strings.Fields(ls[0]))
	require.Equal(t, strings.Index(ls[0], "LAG-SECONDS"), strings.Index(ls[1], "0.5"))
	require.Equal(t, strings.Index(ls[0], "STATUS"), strings.Index(ls[1], "OK"))
}

func TestParseISODuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"PT1H":         time.Hour,
		"P1DT2H3M4.5S": 26*time.Hour + 3*time.Minute + 4500*time.Millisecond,
		"PT-30M":       -30 * time.Minute,
		"-PT10S":       -10 * time.Second,
		"pt15m":        15 * time.Minute,
		"P2D":          48 * time.Hour,
	} {
		got, err := parseISODuration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "P", "PT", "1H", "PT1X", "P1H"} {
		_, err := parseISODuration(bad)
		require.Error(t, err, bad)
	}
}

func TestParseKafkaDateTime(t *testing.T) {
	utc := time.Date(2026, 11, 29, 20, 0, 0, 123e6, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-11-29T20:00:00.123":       utc,
		"2026-11-29T20:00:00.123Z":      utc,
		"2026-11-29T21:00:00.123+01:00": utc,
		"2026-11-29T21:00:00.123+0100":  utc,
		"2026-11-29T19:00:00.123-01":    utc,
		"2026-11-29T20:00:00":           utc.Truncate(time.Second),
	} {
		got, err := parseKafkaDateTime(in)
		require.NoError(t, err, in)
		require.True(t, want.Equal(got), "%s: %s", in, got)
	}
	for _, bad := range []string{"2026-11-29", "2026-11-29T25:00:00.000", "now"} {
		_, err := parseKafkaDateTime(bad)
		require.Error(t, err, bad)
	}
}

// TestGroupsDescribeAllGroups: --all-groups prints one table per group, in
// group order, each with the agent's columns filled (they are sampled for
// all groups at once).
func TestGroupsDescribeAllGroups(t *testing.T) {
	b := testcluster.Start(t, testcluster.Prop("group.initial.rebalance.delay.ms", "0"))
	addr := b.Addr()
	adm := admin(t, addr)
	_, err := adm.CreateTopic(context.Background(), 1, 1, nil, "many")
	require.NoError(t, err)
	fillTimed(t, addr, "many", 1, 20, time.Now().Add(-time.Minute))
	names := []string{"g-a", "g-b", "g-c"}
	for i, g := range names {
		commitOffsets(t, adm, g, "many", map[int32]int64{0: int64(5 * (i + 1))})
	}
	out, errOut, err := kobs(t, "groups", "--bootstrap-server", addr, "--describe", "--all-groups", "--status-window", "1s")
	require.NoError(t, err, errOut)
	var seen []string
	for _, l := range nonEmptyLines(out) {
		f := strings.Fields(l)
		if f[0] == "GROUP" {
			continue
		}
		require.Len(t, f, 11, l)
		require.NotEqual(t, "-", f[9], "LAG-SECONDS filled: %s", l)
		require.NotEqual(t, "-", f[10], "STATUS filled: %s", l)
		seen = append(seen, f[0]+"@"+f[3])
	}
	require.Equal(t, []string{"g-a@5", "g-b@10", "g-c@15"}, seen)
	for _, g := range names {
		require.Contains(t, errOut, "Consumer group '"+g+"' has no active members.")
	}
}
