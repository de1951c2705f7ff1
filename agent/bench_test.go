package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkCycle is one agent cycle over a kfake cluster of 10,000
// partitions and 20 groups (make bench measures 100,000 and 100 with the
// agent in its own process: scripts/bench-agent.sh).
func BenchmarkCycle(b *testing.B) {
	const topics, parts, groups = 100, 100, 20
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("t%03d", i)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(parts, names...))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	for g := 0; g < groups; g++ {
		var os kadm.Offsets
		for p := int32(0); p < parts; p++ {
			os.Add(kadm.Offset{Topic: names[g], Partition: p, At: 0, LeaderEpoch: -1})
		}
		if err := adm.CommitAllOffsets(ctx, fmt.Sprintf("g%d", g), os); err != nil {
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
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.Cycle(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
