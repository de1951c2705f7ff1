package broker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/broker/group"
	"github.com/kobs-dev/kobs/broker/telemetry"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// partitionSize is the partition's bytes as DescribeLogDirs reports them.
func partitionSize(t *testing.T, adm *kadm.Client, topic string, partition int32) int64 {
	t.Helper()
	all, err := adm.DescribeAllLogDirs(context.Background(), kadm.TopicsSet{topic: {partition: {}}})
	require.NoError(t, err)
	size := int64(-1)
	all.Each(func(d kadm.DescribedLogDir) {
		if p, ok := d.Topics.Lookup(topic, partition); ok {
			size = p.Size
		}
	})
	require.GreaterOrEqual(t, size, int64(0), "partition %s-%d not described", topic, partition)
	return size
}

// activeBase is the base offset of the partition's newest .log file.
func activeBase(t *testing.T, dir, partDir string) int64 {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, partDir, "*.log"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	sort.Strings(segs)
	base, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(segs[len(segs)-1]), ".log"), 10, 64)
	require.NoError(t, err)
	return base
}

// produced records what producing assigned: offset -> key/value.
type produced map[int64][2]string

// produceRound writes one update of every key in keys, value "<key>-v<ver>-<pad>".
func produceRound(t *testing.T, cl *kgo.Client, topic string, keys []string, ver int, into produced) {
	t.Helper()
	pad := strings.Repeat("p", 60)
	var recs []*kgo.Record
	for _, k := range keys {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(k), Value: fmt.Appendf(nil, "%s-v%03d-%s", k, ver, pad)})
	}
	res := cl.ProduceSync(context.Background(), recs...)
	require.NoError(t, res.FirstErr())
	for _, r := range res {
		into[r.Record.Offset] = [2]string{string(r.Record.Key), string(r.Record.Value)}
	}
}

// consumeAll reads topic-0 from the start to its end offset.
func consumeAll(t *testing.T, addr, topic string, end int64) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if len(out) > 0 && out[len(out)-1].Offset >= end-1 {
			return out
		}
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consumed %d records, up to offset %v, want end %d", len(out), lastOffset(out), end)
		fs.EachError(func(_ string, _ int32, err error) { require.NoError(t, err) })
		out = append(out, fs.Records()...)
	}
}

func lastOffset(rs []*kgo.Record) int64 {
	if len(rs) == 0 {
		return -1
	}
	return rs[len(rs)-1].Offset
}

// checkCompactedTopic checks what a consumer of a compacted topic is
// promised: every record it sees is the one produced at that offset; per key
// the versions only go up and end with the latest; a deleted key is either
// absent or ends with its tombstone.
func checkCompactedTopic(t *testing.T, got []*kgo.Record, sent produced, latest map[string]int64) map[string]int {
	t.Helper()
	perKey := map[string]int{}
	lastOff := map[string]int64{}
	for _, r := range got {
		w, ok := sent[r.Offset]
		require.True(t, ok, "offset %d was never produced", r.Offset)
		require.Equal(t, w[0], string(r.Key), "key at offset %d", r.Offset)
		require.Equal(t, w[1], string(r.Value), "value at offset %d", r.Offset)
		if prev, ok := lastOff[string(r.Key)]; ok {
			require.Greater(t, r.Offset, prev)
		}
		lastOff[string(r.Key)] = r.Offset
		perKey[string(r.Key)]++
	}
	for k, off := range latest {
		if got, ok := lastOff[k]; ok || sent[off][1] != "" {
			require.Equal(t, off, got, "key %s must end with its latest record", k)
		}
	}
	return perKey
}

// TestCompactionE2E: a cleanup.policy=compact topic with small segments
// shrinks to a bound while 50 keys x 200 updates are produced, a consumer
// from the start sees exactly the latest value of every key below the
// active segment, a tombstone disappears after delete.retention.ms, a
// null-key record is refused, and all of it survives a restart.
func TestCompactionE2E(t *testing.T) {
	p := testcluster.StartProcess(t, testcluster.Prop("log.cleaner.backoff.ms", "100"))
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()), kgo.DefaultProduceTopic("compacted"), kgo.ProducerLinger(0))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	const segBytes = 8192
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.bytes":             kadm.StringPtr(fmt.Sprint(segBytes)),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
		"delete.retention.ms":       kadm.StringPtr("100"),
	}, "compacted")
	require.NoError(t, err)
	require.NoError(t, resp.Err)

	// Kafka refuses records without a key in a compacted topic.
	err = cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr()
	require.ErrorIs(t, err, kerr.InvalidRecord)

	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%02d", i)
	}
	sent := produced{}
	var rawBytes int64
	for ver := range 200 {
		produceRound(t, cl, "compacted", keys, ver, sent)
		rawBytes += int64(len(keys) * 80)
	}
	// A tombstone for key-00, then more updates of the others so it leaves
	// the active segment.
	res := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("key-00")})
	require.NoError(t, res.FirstErr())
	sent[res[0].Record.Offset] = [2]string{"key-00", ""}
	for ver := 200; ver < 220; ver++ {
		produceRound(t, cl, "compacted", keys[1:], ver, sent)
	}
	latest := map[string]int64{}
	for off, kv := range sent {
		latest[kv[0]] = max(latest[kv[0]], off)
	}

	// Everything below the active segment compacts to one record per key:
	// ~50 records of ~100 bytes plus empty producer headers, plus the
	// active segment (< segment.bytes) and at most one more segment the
	// cleaner has not reached yet.
	bound := int64(3 * segBytes)
	var size int64
	testcluster.Eventually(t, 30*time.Second, func() error {
		size = partitionSize(t, adm, "compacted", 0)
		if size > bound {
			return fmt.Errorf("partition is %d bytes, want <= %d (raw ~%d)", size, bound, rawBytes)
		}
		return nil
	})
	end := int64(len(sent))

	verify := func(addr string) {
		// The tombstone goes once delete.retention.ms passed after its first
		// clean; a clean needs new dirty data, so keep some coming.
		ver := 300
		testcluster.Eventually(t, 30*time.Second, func() error {
			active := activeBase(t, p.Dir(), "compacted-0")
			got := consumeAll(t, addr, "compacted", end)
			checkCompactedTopic(t, got, sent, latest)
			// Below the active segment (once the cleaner got there) a key
			// appears once; only the active segment may repeat keys.
			seen := map[string]bool{}
			perKey := map[string]int{}
			for _, r := range got {
				perKey[string(r.Key)]++
				if r.Offset >= active {
					continue
				}
				if seen[string(r.Key)] {
					return fmt.Errorf("key %s repeated at offset %d below the active segment at %d", r.Key, r.Offset, active)
				}
				seen[string(r.Key)] = true
			}
			if perKey["key-00"] > 0 {
				// Dirty data so the cleaner runs past the delete horizon.
				c2, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("compacted"))
				require.NoError(t, err)
				defer c2.Close()
				for range 3 {
					produceRound(t, c2, "compacted", keys[1:], ver, sent)
					ver++
				}
				for off, kv := range sent {
					latest[kv[0]] = max(latest[kv[0]], off)
				}
				end = int64(0)
				for off := range sent {
					end = max(end, off+1)
				}
				return errors.New("tombstone for key-00 still there")
			}
			require.Len(t, perKey, 49, "every other key keeps its latest value")
			return nil
		})
	}
	verify(p.Addr())

	p.Stop()
	require.NoError(t, p.ExitErr())
	p.Restart()
	got := consumeAll(t, p.Addr(), "compacted", end)
	perKey := checkCompactedTopic(t, got, sent, latest)
	require.Len(t, perKey, 49)
	cl2, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	require.NoError(t, err)
	defer cl2.Close()
	require.LessOrEqual(t, partitionSize(t, kadm.NewClient(cl2), "compacted", 0), bound)
	// Producing still works after the restart (producer state replayed
	// from compacted batches).
	require.NoError(t, cl2.ProduceSync(ctx, &kgo.Record{Topic: "compacted", Key: []byte("key-01"), Value: []byte("after restart")}).FirstErr())
}

// TestConsumerOffsetsCompacted: __consumer_offsets (cleanup.policy=compact,
// created by the group coordinator) stays small under many commits of one
// group/partition, and the latest commit survives kill -9.
func TestConsumerOffsetsCompacted(t *testing.T) {
	p := testcluster.StartProcess(t,
		testcluster.Prop("group.initial.rebalance.delay.ms", "0"),
		testcluster.Prop("offsets.topic.num.partitions", "4"),
		testcluster.Prop("offsets.topic.segment.bytes", "4096"),
		testcluster.Prop("log.cleaner.backoff.ms", "100"))
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	require.NoError(t, err)
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, 1, 1, nil, "t")
	require.NoError(t, err)
	const n = 5000
	for i := 1; i <= n; i++ {
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: "t", Partition: 0, At: int64(i), LeaderEpoch: -1})
		resp, err := adm.CommitOffsets(ctx, "g", os)
		require.NoError(t, err)
		require.NoError(t, resp.Error())
	}
	part := group.PartitionFor("g", 4)
	// 5000 commits are ~600 KB uncompacted. Compacted: a few hundred bytes
	// of clean segments, the active segment, and dirty segments up to the
	// clean section's size times the default min.cleanable.dirty.ratio 0.5,
	// plus the segment that just rolled: five segments is a safe bound.
	const offsetsBound = 5 * 4096
	testcluster.Eventually(t, 30*time.Second, func() error {
		if size := partitionSize(t, adm, "__consumer_offsets", part); size > offsetsBound {
			return fmt.Errorf("__consumer_offsets-%d is %d bytes", part, size)
		}
		return nil
	})
	cl.Close()

	p.Kill()
	p.Restart()
	cl, err = kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm = kadm.NewClient(cl)
	got := fetchCommitted(t, adm, "g")
	o, ok := got.Lookup("t", 0)
	require.True(t, ok)
	require.Equal(t, int64(n), o.At)
	require.LessOrEqual(t, partitionSize(t, adm, "__consumer_offsets", part), int64(offsetsBound))
}

// TestCleanerGauges: Kafka's LogCleaner and LogCleanerManager gauges. A
// clean that cannot write its new segment (a directory in the way of its
// .cleaned file) makes the partition uncleanable: counted with its bytes
// for its log dir, and logged; once the way is clear, the next pass
// cleans it and the count returns to 0. The recopy percent is the last
// clean's bytes written over bytes read.
func TestCleanerGauges(t *testing.T) {
	b := testcluster.Start(t, testcluster.Prop("log.cleaner.backoff.ms", "50"))
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("cg"), kgo.ProducerLinger(0))
	require.NoError(t, err)
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.bytes":             kadm.StringPtr("8192"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
	}, "cg")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	// The first segment's cleaned file cannot be created.
	blocker := filepath.Join(b.Dir, "cg-0", "00000000000000000000.log.cleaned")
	require.NoError(t, os.MkdirAll(filepath.Join(blocker, "x"), 0o755))

	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
	}
	sent := produced{}
	for ver := range 60 {
		produceRound(t, cl, "cg", keys, ver, sent)
	}
	g := func(name string) int64 {
		return gauge(t, b.Broker, name)
	}
	uncleanable := telemetry.Name("kafka.log", "LogCleanerManager", "uncleanable-partitions-count", "logDirectory", b.Dir).String()
	uncleanableBytes := telemetry.Name("kafka.log", "LogCleanerManager", "uncleanable-bytes", "logDirectory", b.Dir).String()
	testcluster.Eventually(t, 30*time.Second, func() error {
		if n := g(uncleanable); n != 1 {
			return fmt.Errorf("uncleanable partitions %d", n)
		}
		return nil
	})
	require.Positive(t, g(uncleanableBytes))
	require.Zero(t, g("kafka.log:type=LogCleaner,name=DeadThreadCount"))

	require.NoError(t, os.RemoveAll(blocker))
	testcluster.Eventually(t, 30*time.Second, func() error {
		if n := g(uncleanable); n != 0 {
			return fmt.Errorf("uncleanable partitions %d", n)
		}
		if p := g("kafka.log:type=LogCleaner,name=cleaner-recopy-percent"); p <= 0 || p >= 100 {
			return fmt.Errorf("cleaner-recopy-percent %d", p)
		}
		return nil
	})
	require.Zero(t, g(uncleanableBytes))
	// Passes run every log.cleaner.backoff.ms.
	testcluster.Eventually(t, 30*time.Second, func() error {
		if ms := g("kafka.log:type=LogCleanerManager,name=time-since-last-run-ms"); ms > 5000 {
			return fmt.Errorf("time-since-last-run-ms %d", ms)
		}
		return nil
	})
}
