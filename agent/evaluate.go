package agent

import (
	"context"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// topicTables are a topic's offset tables, indexed by partition.
type topicTables struct {
	tabs  []offsetTable
	cycle uint64 // the last evaluation whose metadata listed the topic
}

// groupWindows are a group's status windows: topic -> windows indexed by
// partition. Slices, not a map keyed by (group, topic, partition): at 100
// groups of 1,000 partitions the hashing of two strings per partition
// cost more than the status rules.
type groupWindows struct {
	topics map[string]*topicWindows
	cycle  uint64 // the last evaluation that listed the group
}

type topicWindows struct {
	ws    []window
	cycle uint64 // the last evaluation in which the group committed to the topic
}

// evaluate turns a snapshot into a view: it feeds the offset tables and
// status windows, computes lag and lag seconds per group, and classifies
// failing ISRs. Groups are independent, so they are evaluated on up to
// GOMAXPROCS goroutines (the cluster has answered; the cores are the
// agent's), beside the classification.
func (a *Agent) evaluate(ctx context.Context, s *Snapshot) *View {
	now := s.Time
	a.cycle++
	a.feedTables(s, now)

	names := s.GroupNames()
	states := make([]*groupWindows, len(names))
	for i, name := range names {
		st := a.groups[name]
		if st == nil {
			st = &groupWindows{topics: map[string]*topicWindows{}}
			a.groups[name] = st
		}
		st.cycle = a.cycle
		states[i] = st
	}
	for name, st := range a.groups {
		if st.cycle != a.cycle {
			delete(a.groups, name)
		}
	}

	var (
		failing []FailingPartition
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		failing = Classify(s)
		a.since.stamp(failing, now)
	}()
	results := make([]*GroupLag, len(names))
	var next atomic.Int64
	workers := max(1, min(runtime.GOMAXPROCS(0), len(names)))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(names); i = int(next.Add(1) - 1) {
				results[i] = a.evaluateGroup(s, s.Groups[names[i]], states[i], now)
			}
		}()
	}
	wg.Wait()
	lags := make(map[string]*GroupLag, len(names))
	for i, name := range names {
		lags[name] = results[i]
	}

	if a.exact != nil {
		a.exactLagSeconds(ctx, s, results, now)
	}
	for _, gl := range results {
		gl.Status = StatusOK
		if gl.Err != "" {
			gl.Status = StatusErr
		}
		for i := range gl.Partitions {
			pl := &gl.Partitions[i]
			gl.Status = Worse(gl.Status, pl.Status)
			if !math.IsNaN(pl.LagSeconds) && (math.IsNaN(gl.MaxLagSeconds) || pl.LagSeconds > gl.MaxLagSeconds) {
				gl.MaxLagSeconds = pl.LagSeconds
			}
		}
	}
	return &View{
		Snapshot: s, Groups: lags, GroupNames: names,
		Failing: failing, ByBroker: ByBroker(failing),
	}
}

// feedTables adds each partition's end offset to its table. Tables of
// topics gone from the metadata are dropped, and those of partitions past
// a topic's highest listed one.
func (a *Agent) feedTables(s *Snapshot, now time.Time) {
	for name, t := range s.Topics {
		tt := a.tables[name]
		if tt == nil {
			tt = &topicTables{}
			a.tables[name] = tt
		}
		tt.cycle = a.cycle
		n := 0
		for _, p := range t.Partitions {
			n = max(n, int(p.Partition)+1)
		}
		if n < len(tt.tabs) {
			clear(tt.tabs[n:])
			tt.tabs = tt.tabs[:n]
		}
		for len(tt.tabs) < n {
			tt.tabs = append(tt.tabs, offsetTable{limit: a.cfg.HistoryPoints})
		}
		for _, p := range t.Partitions {
			if p.Partition >= 0 && p.End >= 0 {
				tt.tabs[p.Partition].add(p.End, now)
			}
		}
	}
	for name, tt := range a.tables {
		if tt.cycle != a.cycle {
			delete(a.tables, name)
		}
	}
}

// table is a partition's offset table, or nil.
func (a *Agent) table(tp TopicPartition) *offsetTable {
	tt := a.tables[tp.Topic]
	if tt == nil || tp.Partition < 0 || int(tp.Partition) >= len(tt.tabs) {
		return nil
	}
	return &tt.tabs[tp.Partition]
}

// evaluateGroup computes one group's lag, feeds its status windows and
// applies the status rules and the interpolated lag seconds. It touches
// only st and reads the tables, so groups run in parallel.
func (a *Agent) evaluateGroup(s *Snapshot, g *Group, st *groupWindows, now time.Time) *GroupLag {
	gl := groupLag(s, g)
	var (
		topic string
		tw    *topicWindows
		tt    *topicTables
	)
	for i := range gl.Partitions {
		pl := &gl.Partitions[i]
		if pl.NoCommit() {
			pl.Status = StatusNoOffset
			continue
		}
		if tw == nil || pl.Topic != topic {
			topic = pl.Topic
			tw = st.topics[topic]
			if tw == nil {
				tw = &topicWindows{}
				st.topics[topic] = tw
			}
			tw.cycle = a.cycle
			tt = a.tables[topic]
		}
		if pl.Partition < 0 {
			continue
		}
		for int(pl.Partition) >= len(tw.ws) {
			tw.ws = append(tw.ws, window{size: a.cfg.StatusWindow})
		}
		w := &tw.ws[pl.Partition]
		if w.cycle != a.cycle-1 {
			// Not committed in the last evaluation: a new window, as
			// if the partition had never been seen.
			w.obs = w.obs[:0]
		}
		w.cycle = a.cycle
		if pl.End >= 0 {
			w.add(observation{committed: pl.Committed, lag: pl.Lag})
		}
		pl.Status = w.evaluate(pl.owned, pl.End >= 0)
		pl.Complete = w.complete()
		if pl.End >= 0 {
			if tt != nil && int(pl.Partition) < len(tt.tabs) {
				pl.LagSeconds, pl.LagSecondsSource = tt.tabs[pl.Partition].lagSeconds(pl.Committed, now)
			}
			if pl.Lag == 0 {
				pl.LagSeconds, pl.LagSecondsSource = 0, SecondsZero
			}
		}
	}
	for name, tw := range st.topics {
		if tw.cycle != a.cycle {
			delete(st.topics, name)
		}
	}
	return gl
}

// exactLagSeconds replaces the interpolated lag seconds of every lagging
// partition with the age of the record at its committed offset, within
// the per-cycle read bound.
func (a *Agent) exactLagSeconds(ctx context.Context, s *Snapshot, results []*GroupLag, now time.Time) {
	want := map[exactKey]bool{}
	for _, gl := range results {
		for i := range gl.Partitions {
			pl := &gl.Partitions[i]
			if !pl.NoCommit() && pl.End >= 0 && pl.Lag != 0 {
				want[exactKey{TopicPartition{pl.Topic, pl.Partition}, pl.Committed}] = true
			}
		}
	}
	if len(want) == 0 {
		want = nil
	}
	res := a.exact.lookup(ctx, want)
	if res.err != nil {
		a.errorsTotal.WithLabelValues("exact_lag").Inc()
		s.Errors = append(s.Errors, CollectError{Stage: "exact_lag", Broker: -1, Err: res.err.Error()})
	}
	a.exactSkipped.Add(float64(res.skipped))
	a.mu.Lock()
	a.h.exactSkipped = res.skipped
	a.mu.Unlock()
	for _, gl := range results {
		for i := range gl.Partitions {
			pl := &gl.Partitions[i]
			if pl.Lag <= 0 {
				continue
			}
			if t, ok := res.times[exactKey{TopicPartition{pl.Topic, pl.Partition}, pl.Committed}]; ok {
				pl.LagSeconds, pl.LagSecondsSource = clampSeconds(now.Sub(t)), SecondsExact
			}
		}
	}
}
