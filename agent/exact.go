package agent

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// exactReader reads the timestamp of the record at a committed offset: the
// write time of the oldest record the group has not consumed. Answers are
// cached by (partition, offset) since a record's timestamp never changes,
// and each cycle reads at most maxReads partitions (the rest keep the
// interpolated estimate and are counted as skipped).
type exactReader struct {
	opts          []kgo.Opt
	readCommitted bool
	maxReads      int
	cache         map[exactKey]time.Time
}

type exactKey struct {
	tp     TopicPartition
	offset int64
}

// exactResult is one cycle's answers.
type exactResult struct {
	times   map[exactKey]time.Time
	read    int // offsets read from the cluster this cycle
	skipped int // offsets over the maxReads bound
	err     error
}

// lookup returns the record time at each wanted (partition, committed
// offset), reading the misses with a consumer client that fetches each
// partition once from the offset (one Fetch per leader, at most one small
// batch per partition). Groups at different offsets of one partition take
// one more round each.
func (r *exactReader) lookup(ctx context.Context, want map[exactKey]bool) exactResult {
	res := exactResult{times: make(map[exactKey]time.Time, len(want))}
	next := make(map[exactKey]time.Time, len(want))
	// Deterministic order, so the same offsets are read first each cycle
	// when over the bound.
	keys := make([]exactKey, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b exactKey) int {
		switch {
		case a.tp.Topic != b.tp.Topic:
			return strings.Compare(a.tp.Topic, b.tp.Topic)
		case a.tp.Partition != b.tp.Partition:
			return int(a.tp.Partition - b.tp.Partition)
		}
		return cmp.Compare(a.offset, b.offset)
	})
	var rounds []map[TopicPartition]int64
	for _, k := range keys {
		if t, ok := r.cache[k]; ok {
			res.times[k] = t
			next[k] = t
			continue
		}
		if res.read >= r.maxReads {
			res.skipped++
			continue
		}
		res.read++
		placed := false
		for _, round := range rounds {
			if _, ok := round[k.tp]; !ok {
				round[k.tp] = k.offset
				placed = true
				break
			}
		}
		if !placed {
			rounds = append(rounds, map[TopicPartition]int64{k.tp: k.offset})
		}
	}
	for _, round := range rounds {
		got, err := r.read(ctx, round)
		if err != nil && res.err == nil {
			res.err = err
		}
		for tp, t := range got {
			k := exactKey{tp, round[tp]}
			res.times[k] = t
			next[k] = t
		}
	}
	// Keep only what this cycle used: the cache never outgrows the
	// number of lagging (group, partition) pairs.
	r.cache = next
	return res
}

func (r *exactReader) read(ctx context.Context, offsets map[TopicPartition]int64) (map[TopicPartition]time.Time, error) {
	consume := map[string]map[int32]kgo.Offset{}
	for tp, o := range offsets {
		if consume[tp.Topic] == nil {
			consume[tp.Topic] = map[int32]kgo.Offset{}
		}
		consume[tp.Topic][tp.Partition] = kgo.NewOffset().At(o)
	}
	iso := kgo.ReadUncommitted()
	if r.readCommitted {
		iso = kgo.ReadCommitted()
	}
	opts := append(slices.Clone(r.opts),
		kgo.ConsumePartitions(consume),
		kgo.FetchIsolationLevel(iso),
		// The broker always returns the first batch whole: ask for as
		// little as possible beyond it.
		kgo.FetchMaxPartitionBytes(1),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	got := make(map[TopicPartition]time.Time, len(offsets))
	var firstErr error
	for len(got) < len(offsets) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(topic string, p int32, err error) {
			if firstErr == nil {
				firstErr = fmt.Errorf("read %s-%d: %w", topic, p, err)
			}
		})
		var done map[string][]int32
		fs.EachRecord(func(rec *kgo.Record) {
			tp := TopicPartition{rec.Topic, rec.Partition}
			if _, ok := got[tp]; ok || rec.Offset < offsets[tp] {
				return
			}
			got[tp] = rec.Timestamp
			if done == nil {
				done = map[string][]int32{}
			}
			done[tp.Topic] = append(done[tp.Topic], tp.Partition)
		})
		if done != nil {
			cl.PauseFetchPartitions(done)
		}
	}
	if len(got) < len(offsets) && firstErr == nil {
		firstErr = fmt.Errorf("read %d of %d record timestamps before the deadline", len(got), len(offsets))
	}
	return got, firstErr
}
