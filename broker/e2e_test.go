package broker_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// workload is one topic produced with one acks setting and codec.
type workload struct {
	topic      string
	partitions int32
	acks       kgo.Acks
	codec      kgo.CompressionCodec
	records    int
}

func workloads(perTopic int) []workload {
	acks := []struct {
		name string
		acks kgo.Acks
	}{{"acks0", kgo.NoAck()}, {"acks1", kgo.LeaderAck()}, {"acksall", kgo.AllISRAcks()}}
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()},
	}
	var out []workload
	for _, a := range acks {
		for _, c := range codecs {
			out = append(out, workload{topic: "e2e-" + a.name + "-" + c.name, partitions: 3, acks: a.acks, codec: c.codec, records: perTopic})
		}
	}
	return out
}

// produceWorkload writes w.records records spread round-robin over the
// partitions; each value carries its per-partition sequence number so the
// reader can check order and completeness.
func produceWorkload(addr string, w workload) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequiredAcks(w.acks), kgo.DisableIdempotentWrite(),
		kgo.ProducerBatchCompression(w.codec), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seq := make([]uint64, w.partitions)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := 0; i < w.records; i++ {
		p := int32(i) % w.partitions
		v := make([]byte, 64)
		binary.BigEndian.PutUint64(v, seq[p])
		seq[p]++
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: w.topic, Partition: p, Key: []byte(fmt.Sprint(i)), Value: v}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("produce to %s: %w", w.topic, firstErr)
	}
	return cl.Flush(ctx)
}

// verifyWorkload reads every partition from the start and checks that each
// holds exactly its sequence 0..n-1 in order.
func verifyWorkload(t *testing.T, addr string, w workload) {
	t.Helper()
	want := make([]uint64, w.partitions)
	for i := 0; i < w.records; i++ {
		want[int32(i)%w.partitions]++
	}
	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < w.partitions; p++ {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.topic: offsets}),
		kgo.FetchMaxWait(200*time.Millisecond))
	require.NoError(t, err)
	defer cl.Close()
	got := make([]uint64, w.partitions)
	total, wantTotal := 0, w.records
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for total < wantTotal {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "%s: read %d of %d records", w.topic, total, wantTotal)
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			seq := binary.BigEndian.Uint64(r.Value)
			if seq != got[r.Partition] {
				t.Fatalf("%s/%d offset %d: sequence %d, want %d", r.Topic, r.Partition, r.Offset, seq, got[r.Partition])
			}
			got[r.Partition]++
			total++
		})
	}
	require.Equal(t, want, got, "%s: records per partition", w.topic)
}

func createTopics(t *testing.T, addr string, ws []workload) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, w := range ws {
		resp, err := adm.CreateTopic(context.Background(), w.partitions, 1, nil, w.topic)
		require.NoError(t, err)
		require.NoError(t, resp.Err)
	}
}

// TestProduceConsumeRestart is the broker core's end-to-end check over TCP:
// 15 topics (acks 0/1/all x every codec) of 3 partitions, 105k records, read
// back in order per partition; then again after a clean stop and restart,
// and again after kill -9 and restart.
func TestProduceConsumeRestart(t *testing.T) {
	perTopic := 7000
	if testing.Short() {
		perTopic = 700
	}
	p := testcluster.StartProcess(t, testcluster.Prop("log.segment.bytes", "1048576"))
	ws := workloads(perTopic)
	createTopics(t, p.Addr(), ws)
	errs := make(chan error, len(ws))
	for _, w := range ws {
		go func() { errs <- produceWorkload(p.Addr(), w) }()
	}
	for range ws {
		require.NoError(t, <-errs)
	}
	for _, w := range ws {
		verifyWorkload(t, p.Addr(), w)
	}

	// SIGTERM: a clean exit that flushes and leaves clean-shutdown markers.
	p.Stop()
	require.NoError(t, p.ExitErr(), "kobs broker must exit 0 on SIGTERM")
	require.Contains(t, p.Logs(), "kobs broker stopped")
	markers, err := filepath.Glob(filepath.Join(p.Dir(), "e2e-*", ".kobs_cleanshutdown"))
	require.NoError(t, err)
	require.Len(t, markers, len(ws)*3, "every partition closed cleanly")
	p.Restart()
	for _, w := range ws {
		verifyWorkload(t, p.Addr(), w)
	}

	p.Kill()
	p.Restart()
	for _, w := range ws {
		verifyWorkload(t, p.Addr(), w)
	}
}
