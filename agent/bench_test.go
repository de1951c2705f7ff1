package agent

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkCycle is one agent cycle over a kfake cluster of 10,000
// partitions, one record each, and 20 groups committed at offset 0, so
// every group partition lags by one (make bench measures 100,000 and 100
// with the agent in its own process: scripts/bench-agent.sh). KOBS_BENCH_TOPICS and
// KOBS_BENCH_GROUPS scale it (topics of 100 partitions; each group commits
// on 10 topics) for profiling a full-size cycle in one process:
//
//	KOBS_BENCH_TOPICS=1000 KOBS_BENCH_GROUPS=100 KOBS_BENCH_CPUPROFILE=cpu.out go test -run '^$' -bench Cycle ./agent/
//
// KOBS_BENCH_CPUPROFILE profiles the timed cycles only (go test's
// -cpuprofile would also cover producing and committing the set-up);
// KOBS_BENCH_HEAPPROFILE writes what is live after the last cycle (the
// agent's state and the last view, beside kfake's data).
func BenchmarkCycle(b *testing.B) {
	topics, groups := envInt(b, "KOBS_BENCH_TOPICS", 100), envInt(b, "KOBS_BENCH_GROUPS", 20)
	const parts = 100
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("t%03d", i)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(parts, names...))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(1<<20), kgo.DisableIdempotentWrite())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	for _, name := range names {
		for p := int32(0); p < parts; p++ {
			cl.Produce(ctx, &kgo.Record{Topic: name, Partition: p, Value: []byte("x")}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	for g := 0; g < groups; g++ {
		var offs kadm.Offsets
		for p := int32(0); p < parts; p++ {
			for k := 0; k < min(10, topics); k++ {
				offs.Add(kadm.Offset{Topic: names[(g*10+k)%topics], Partition: p, At: 0, LeaderEpoch: -1})
			}
		}
		if err := adm.CommitAllOffsets(ctx, fmt.Sprintf("g%d", g), offs); err != nil {
			b.Fatal(err)
		}
	}
	a, err := New(Config{Brokers: c.ListenAddrs(), Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	if err := a.Cycle(ctx); err != nil {
		b.Fatal(err)
	}
	if path := os.Getenv("KOBS_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.Cycle(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if path := os.Getenv("KOBS_BENCH_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
