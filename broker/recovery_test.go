package broker_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// lastBatch walks a segment file's batches and returns the file position
// and base offset of the last complete one (pos -1 if there is none).
func lastBatch(t *testing.T, path string) (pos int64, base int64, length int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	pos, base = -1, -1
	for off := int64(0); off+12 <= int64(len(b)); {
		l := int64(binary.BigEndian.Uint32(b[off+8:])) + 12
		if off+l > int64(len(b)) {
			break
		}
		pos, base, length = off, int64(binary.BigEndian.Uint64(b[off:])), l
		off += l
	}
	return pos, base, length
}

// TestRecoveryAfterKillAndTornTail kills the broker with SIGKILL while a
// producer is writing, tears the last batch of the last segment in half,
// restarts, and checks that the torn batch is gone, every record
// acknowledged before it reads back unchanged, and ListOffsets by
// timestamp answers from the rebuilt indexes.
func TestRecoveryAfterKillAndTornTail(t *testing.T) {
	p := testcluster.StartProcess(t, testcluster.Prop("log.segment.bytes", "65536"))
	const topic = "recovery"
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.RecordRetries(0), kgo.ProducerLinger(time.Millisecond), kgo.RecordDeliveryTimeout(5*time.Second),
		kgo.ProducerBatchMaxBytes(16<<10))
	require.NoError(t, err)
	_, err = kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, nil, topic)
	require.NoError(t, err)

	// Timestamps rise 1 ms per record from a fixed base, so the record
	// for any timestamp is known exactly.
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var (
		mu    sync.Mutex
		acked = map[int64]string{} // offset -> value
		ackTS = map[int64]int64{}  // offset -> timestamp ms
	)
	ctx, cancel := context.WithCancel(context.Background())
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; ctx.Err() == nil; i++ {
			v := fmt.Sprintf("value-%08d", i)
			ts := base.Add(time.Duration(i) * time.Millisecond)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(v), Timestamp: ts}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[r.Offset], ackTS[r.Offset] = v, r.Timestamp.UnixMilli()
					mu.Unlock()
				}
			})
		}
	}()
	testcluster.Eventually(t, time.Minute, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 20000 {
			return fmt.Errorf("%d acked", len(acked))
		}
		return nil
	})
	p.Kill() // mid-produce
	cancel()
	<-produced
	cl.Close()
	// kgo's Close does not wait for every promise goroutine: a callback of a
	// record acknowledged just before the kill can still run. Read copies.
	mu.Lock()
	ackedAt, tsAt := maps.Clone(acked), maps.Clone(ackTS)
	mu.Unlock()

	// Tear the last complete batch of the newest segment in half.
	dir := filepath.Join(p.Dir(), topic+"-0")
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	require.NoError(t, err)
	require.Greater(t, len(segs), 2, "expected several segments")
	sort.Strings(segs)
	// The newest segment may have just rolled and be empty: then remove
	// it (as if the roll never reached the disk) and tear the batch
	// before it.
	var last string
	pos, tornBase, length := int64(-1), int64(-1), int64(0)
	for i := len(segs) - 1; i >= 0 && pos < 0; i-- {
		last = segs[i]
		if pos, tornBase, length = lastBatch(t, last); pos < 0 {
			for _, ext := range []string{".log", ".index", ".timeindex"} {
				require.NoError(t, os.RemoveAll(last[:len(last)-len(".log")]+ext))
			}
		}
	}
	require.GreaterOrEqual(t, pos, int64(0), "no complete batch in any segment")
	require.NoError(t, os.Truncate(last, pos+length/2))
	t.Logf("segments=%d torn batch base offset=%d acked=%d", len(segs), tornBase, len(ackedAt))

	p.Restart()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()))
	require.NoError(t, err)
	defer cl2.Close()
	adm := kadm.NewClient(cl2)
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	require.NoError(t, err)
	end, _ := ends.Lookup(topic, 0)
	require.NoError(t, end.Err)
	require.Equal(t, tornBase, end.Offset, "log end offset must be the torn batch's base offset")

	// Every acknowledged record before the torn batch reads back.
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cons.Close()
	next := int64(0)
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	for next < tornBase {
		fs := cons.PollFetches(rctx)
		require.NoError(t, rctx.Err(), "read up to %d of %d", next, tornBase)
		fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
		fs.EachRecord(func(r *kgo.Record) {
			require.Equal(t, next, r.Offset)
			if v, ok := ackedAt[r.Offset]; ok {
				require.Equal(t, v, string(r.Value), "offset %d", r.Offset)
			}
			next++
		})
	}
	missing := 0
	for off := range ackedAt {
		if off < tornBase {
			_, ok := ackedAt[off]
			require.True(t, ok)
		} else {
			missing++
		}
	}
	t.Logf("acked records at/after the torn batch (lost with it): %d", missing)

	// ListOffsets by timestamp from the rebuilt time indexes: for acked
	// records, the exact offset of that timestamp.
	var sample []int64
	for off := range ackedAt {
		if off < tornBase {
			sample = append(sample, off)
		}
	}
	sort.Slice(sample, func(i, j int) bool { return sample[i] < sample[j] })
	for i := 0; i < len(sample); i += len(sample)/50 + 1 {
		off := sample[i]
		got, err := adm.ListOffsetsAfterMilli(context.Background(), tsAt[off], topic)
		require.NoError(t, err)
		o, _ := got.Lookup(topic, 0)
		require.NoError(t, o.Err)
		require.Equal(t, off, o.Offset, "timestamp %d", tsAt[off])
	}
	after, err := adm.ListOffsetsAfterMilli(context.Background(), time.Now().Add(time.Hour).UnixMilli(), topic)
	require.NoError(t, err)
	o, _ := after.Lookup(topic, 0)
	// kadm maps "no such record" (-1) to the end offset, as Kafka's admin client does.
	require.Equal(t, tornBase, o.Offset)

	// The log takes new writes at the recovered end.
	r := cl2.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte("after")})
	require.NoError(t, r.FirstErr())
	require.Equal(t, tornBase, r[0].Record.Offset)
}

// TestHighWatermarkCheckpointInterval: the high watermark checkpoint
// (replication-offset-checkpoint) follows
// replica.high.watermark.checkpoint.interval.ms, not the hour-long
// log.flush.offset.checkpoint.interval.ms set here, which the
// recovery-point checkpoint follows.
func TestHighWatermarkCheckpointInterval(t *testing.T) {
	b := testcluster.Start(t,
		testcluster.Prop("replica.high.watermark.checkpoint.interval.ms", "100"),
		testcluster.Prop("log.flush.offset.checkpoint.interval.ms", "3600000"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	defer cl.Close()
	produceN(t, cl, "hw", 7, time.Now())
	testcluster.Eventually(t, 10*time.Second, func() error {
		got, err := os.ReadFile(filepath.Join(b.Dir, "replication-offset-checkpoint"))
		if err != nil {
			return err
		}
		if want := "hw 0 7\n"; !strings.Contains(string(got), want) {
			return fmt.Errorf("checkpoint %q has no %q", got, want)
		}
		return nil
	})
	_, err = os.Stat(filepath.Join(b.Dir, "recovery-point-offset-checkpoint"))
	require.True(t, os.IsNotExist(err), "recovery-point checkpoint written before its interval: %v", err)
}
