package audit

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// This file is the reconciler's core: applying flushes and offset samples
// to the state and evaluating buckets. It does no I/O, so it is tested and
// benchmarked without a cluster; Reconciler (reconciler.go) drives it.

// Bucket and group statuses.
const (
	StatusPending     = "pending"    // the bucket is open or within its grace period
	StatusComplete    = "complete"   // every record was consumed exactly once
	StatusMissing     = "missing"    // records were not consumed (Missing says how many)
	StatusDuplicated  = "duplicated" // records were consumed more than once (Duplicates says how many)
	StatusLate        = "late"       // complete, but only after the grace period
	StatusUncertain   = "uncertain"  // an audited client died between flushes or flushes were lost
	StatusOutOfWindow = "out_of_window"
)

// BucketReport is the reconciliation of one topic in one bucket.
type BucketReport struct {
	Topic  string    `json:"topic"`
	Bucket int64     `json:"bucket"` // start, unix ms; OutOfWindow (-1) for the out-of-window bucket
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Status string    `json:"status"`
	// Producer is the audited producers' acknowledged records (nil: no
	// audited producer wrote to the topic in this bucket).
	Producer      *int64           `json:"producer,omitempty"`
	ProducerBytes int64            `json:"producer_bytes,omitempty"`
	Producers     map[string]int64 `json:"producers,omitempty"` // by client id
	// Broker is the records the log holds for the bucket, from the offsets
	// at its boundaries (nil: a boundary was not sampled).
	Broker *int64 `json:"broker,omitempty"`
	// ProducerVsBroker: complete (equal), not_stored (acknowledged to
	// audited producers but not in the log's bucket), unaudited (in the log
	// but not counted by audited producers: producers without the hook, or
	// CreateTime reordering at a boundary), uncertain, or empty when one
	// side is unknown. Delta is Producer - Broker.
	ProducerVsBroker string        `json:"producer_vs_broker,omitempty"`
	Delta            int64         `json:"delta,omitempty"`
	Uncertain        []string      `json:"uncertain,omitempty"` // why
	Groups           []GroupReport `json:"groups,omitempty"`
}

// GroupReport is one consumer group's reconciliation in a bucket.
type GroupReport struct {
	Group string `json:"group"`
	// Source says which tiers the group's numbers come from: "hook"
	// (consume counts), "offsets" (committed offsets), or "hook+offsets".
	Source string `json:"source"`
	// Consumed is the records the group's audited consumers polled,
	// re-reads included (nil without the hook).
	Consumed *int64 `json:"consumed,omitempty"`
	// Reached is the distinct records of the bucket below the group's
	// committed offsets that were still in the log when it got there (nil
	// without committed offsets or broker boundaries).
	Reached    *int64 `json:"reached,omitempty"`
	Expected   int64  `json:"expected"`
	Lost       int64  `json:"lost,omitempty"` // deleted by retention before the group reached them (part of Missing)
	Missing    int64  `json:"missing"`
	Duplicates int64  `json:"duplicates"`
	Status     string `json:"status"`
}

type groupAgg struct {
	Missing, Duplicates, Reached, Expected int64
}

// core is the state plus the aggregates the metrics read.
type core struct {
	st        *state
	bucketMs  int64
	graceMs   int64
	retainMs  int64
	futureMs  int64
	agg       map[string]map[string]*groupAgg // topic -> group -> closed buckets in the window
	uncertain map[string]int                  // topic -> closed uncertain buckets in the window
}

func newCore(st *state, bucket, grace, retain, future time.Duration) *core {
	return &core{
		st: st, bucketMs: bucket.Milliseconds(), graceMs: grace.Milliseconds(), retainMs: retain.Milliseconds(),
		futureMs: future.Milliseconds(), agg: map[string]map[string]*groupAgg{}, uncertain: map[string]int{},
	}
}

func key3(a, b, c string) string { return a + "\x00" + b + "\x00" + c }

// applyRecord applies one audit-topic record; a corrupt or foreign one is
// counted in Skipped and returned as an error for the caller to log.
func (c *core) applyRecord(value []byte, nowMs int64) error {
	f, err := decodeFlush(value)
	if err != nil {
		if errors.Is(err, errForeign) {
			c.st.Skipped["foreign"]++
		} else {
			c.st.Skipped["corrupt"]++
		}
		return err
	}
	c.apply(f, nowMs)
	return nil
}

func (c *core) topic(t string) *topicState {
	ts := c.st.Topics[t]
	if ts == nil {
		ts = newTopicState()
		c.st.Topics[t] = ts
	}
	return ts
}

// apply adds one flush's counts unless this (instance, seq) was applied.
func (c *core) apply(f *Flush, nowMs int64) {
	in := c.st.Instances[f.Instance]
	if in == nil {
		in = &instance{Tier: f.Tier, Client: f.Client, Host: f.Host, PID: f.PID}
		c.st.Instances[f.Instance] = in
	}
	if in.applied(f.Seq) {
		c.st.Skipped["resent"]++ // a re-sent flush: counted once already
		return
	}
	in.markApplied(f.Seq, f.TS)
	in.FlushMs = f.FlushMs
	in.LastTS = max(in.LastTS, f.TS)
	in.Final = in.Final || f.Final
	if in.Dead { // it came back: its counts are whole again
		in.Dead = false
		in.Uncertain = slices.DeleteFunc(in.Uncertain, func(w window) bool { return w.Reason == reasonDied })
	}
	mismatch := c.bucketMs%f.BucketMs != 0
	for _, n := range f.Counts {
		in.addTopic(n.Topic)
		c.st.Totals[key3(n.Topic, string(f.Tier), groupLabel(f))] += n.Records
		b := n.Bucket
		if b != OutOfWindow {
			if mismatch {
				c.st.Skipped["bucket_width_mismatch"]++
				b = OutOfWindow
			} else {
				b = bucketOf(b, c.bucketMs)
				if b < nowMs-c.retainMs || b > nowMs+c.futureMs {
					b = OutOfWindow // older than the state keeps, or from a clock far ahead
				}
			}
		}
		if b == OutOfWindow {
			c.st.OOW[key3(n.Topic, string(f.Tier), f.Client)] += n.Records
			continue
		}
		if b < c.st.Since {
			// Counts from before the reconciler began (it reads the audit
			// topic from the start): sample those boundaries too.
			c.st.Since = b
		}
		bs := c.bucket(n.Topic, b)
		m := &bs.Producer
		if f.Tier == TierConsumer {
			m = &bs.Consumer
		}
		if *m == nil {
			*m = map[string]*tally{}
		}
		tl := (*m)[f.Client]
		if tl == nil {
			tl = &tally{}
			(*m)[f.Client] = tl
		}
		tl.Records += n.Records
		tl.Bytes += n.Bytes
		bs.settled = false
	}
}

// groupLabel is the group label of records_total: the group for the
// consumer tier, empty for producers (client ids would explode the series).
func groupLabel(f *Flush) string {
	if f.Tier == TierConsumer {
		return f.Client
	}
	return ""
}

func (c *core) bucket(topic string, b int64) *bucketState {
	ts := c.topic(topic)
	bs := ts.Buckets[b]
	if bs == nil {
		bs = &bucketState{}
		ts.Buckets[b] = bs
	}
	return bs
}

// sample is one round of offsets read from the cluster.
type sample struct {
	// Topics: topic -> log start and end offsets per partition.
	LogStart, End map[string]map[int32]int64
	// Boundaries: boundary ms -> topic -> partition -> first offset with a
	// timestamp at or after the boundary (the end offset when none).
	Boundaries map[int64]map[string]map[int32]int64
	// Committed: group -> topic -> partition -> committed offset.
	Committed map[string]map[string]map[int32]int64
	// AllGroups: Committed holds every group of the cluster, so a group
	// missing from it is gone.
	AllGroups bool
}

// boundariesToSample are the bucket boundaries not yet sampled, up to now.
func (c *core) boundariesToSample(nowMs int64, topics []string) []int64 {
	from := max(c.st.Since, bucketOf(nowMs-c.retainMs, c.bucketMs))
	var out []int64
	for b := from; b <= nowMs; b += c.bucketMs {
		for _, t := range topics {
			if ts := c.st.Topics[t]; ts == nil || ts.Boundaries[b] == nil {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

const reasonDied = "audited client stopped between flushes without closing"

// observe applies an offset sample taken at nowMs.
func (c *core) observe(s *sample, nowMs int64) {
	for t, parts := range s.LogStart {
		ts := c.topic(t)
		for p, o := range parts {
			ts.LogStart[p] = o
		}
		for p, o := range s.End[t] {
			ts.End[p] = o
		}
		// Every bucket since the reconciler began exists, so topics
		// without audited clients are reconciled from offsets alone.
		for b := max(c.st.Since, bucketOf(nowMs-c.retainMs, c.bucketMs)); b <= nowMs; b += c.bucketMs {
			c.bucket(t, b)
		}
	}
	for b, topics := range s.Boundaries {
		for t, parts := range topics {
			ts := c.topic(t)
			if ts.Boundaries[b] == nil { // the first answer at or after the boundary is kept: see doc.go
				ts.Boundaries[b] = parts
				if bs := ts.Buckets[b-c.bucketMs]; bs != nil {
					bs.settled = false
				}
			}
		}
	}
	// Records a group had not committed at the previous sample and that
	// are below the log start now were deleted before the group got there.
	for g, topics := range s.Committed {
		prev := c.st.Committed[g]
		for t, parts := range topics {
			ts := c.st.Topics[t]
			if ts == nil {
				continue
			}
			if len(prev[t]) == 0 && len(parts) > 0 {
				// A group new to the topic: judged buckets gain a group.
				for _, bs := range ts.Buckets {
					bs.settled = false
				}
			}
			for p, off := range parts {
				base := off
				if po, ok := prev[t][p]; ok {
					base = po
				}
				if ls, ok := ts.LogStart[p]; ok && base < ls {
					if ts.Lost[g] == nil {
						ts.Lost[g] = map[int32][]rng{}
					}
					ts.Lost[g][p] = addRange(ts.Lost[g][p], rng{base, ls})
				}
			}
		}
		c.st.Committed[g] = topics
	}
	if s.AllGroups {
		// Groups that are gone (deleted, or their offsets expired) are no
		// longer expected to consume.
		for g := range c.st.Committed {
			if _, ok := s.Committed[g]; !ok {
				delete(c.st.Committed, g)
				for _, ts := range c.st.Topics {
					delete(ts.Lost, g)
					for _, bs := range ts.Buckets {
						bs.settled = false
					}
				}
			}
		}
	}
	for _, in := range c.st.Instances {
		// A gap in the sequence that stayed open past the grace period is
		// a lost flush: the counts between its neighbours are incomplete.
		if len(in.Above) > 0 && nowMs-in.ContigTS > c.graceMs+2*in.FlushMs {
			from := in.ContigTS - in.FlushMs
			next := in.acceptGap()
			c.addUncertain(in, window{From: from, To: next, Reason: "flushes lost"})
		}
		// An instance that has not flushed for two flush intervals and did
		// not close died: the counts since its last flush are gone.
		if !in.Final && !in.Dead && in.LastTS != 0 && nowMs-in.LastTS > 2*in.FlushMs+1000 {
			in.Dead = true
			c.addUncertain(in, window{From: in.LastTS - in.FlushMs, To: in.LastTS + in.FlushMs + 1000, Reason: reasonDied})
		}
	}
	c.prune(nowMs)
}

// addUncertain records an instance's uncertain window and has the buckets
// it touches evaluated again, even those already judged complete.
func (c *core) addUncertain(in *instance, w window) {
	in.Uncertain = append(in.Uncertain, w)
	for _, t := range in.Topics {
		if ts := c.st.Topics[t]; ts != nil {
			for b, bs := range ts.Buckets {
				if b < w.To && b+c.bucketMs >= w.From {
					bs.settled = false
				}
			}
		}
	}
}

// prune drops buckets and boundaries older than the retention window.
func (c *core) prune(nowMs int64) {
	horizon := bucketOf(nowMs-c.retainMs, c.bucketMs)
	for t, ts := range c.st.Topics {
		for b, bs := range ts.Buckets {
			if b < horizon {
				c.account(t, bs.result, nil)
				delete(ts.Buckets, b)
			}
		}
		for b := range ts.Boundaries {
			if b < horizon {
				delete(ts.Boundaries, b)
			}
		}
	}
	for id, in := range c.st.Instances {
		if (in.Final || in.Dead) && in.LastTS < horizon {
			delete(c.st.Instances, id)
		}
	}
}

type uncertainIdx struct {
	// flushedTo: topic -> the oldest last flush among the live audited
	// producers of the topic; a bucket ending after it waits for their
	// next flush before it is judged.
	flushedTo map[string]int64
	producer  map[string][]window            // topic -> windows
	consumer  map[string]map[string][]window // topic -> group -> windows
}

func (c *core) uncertainIndex() uncertainIdx {
	idx := uncertainIdx{flushedTo: map[string]int64{}, producer: map[string][]window{}, consumer: map[string]map[string][]window{}}
	for _, in := range c.st.Instances {
		if in.Tier == TierProducer && !in.Final && !in.Dead {
			for _, t := range in.Topics {
				if v, ok := idx.flushedTo[t]; !ok || in.LastTS < v {
					idx.flushedTo[t] = in.LastTS
				}
			}
		}
		if len(in.Uncertain) == 0 {
			continue
		}
		for _, t := range in.Topics {
			if in.Tier == TierProducer {
				idx.producer[t] = append(idx.producer[t], in.Uncertain...)
			} else {
				if idx.consumer[t] == nil {
					idx.consumer[t] = map[string][]window{}
				}
				idx.consumer[t][in.Client] = append(idx.consumer[t][in.Client], in.Uncertain...)
			}
		}
	}
	return idx
}

func overlaps(ws []window, from, to int64) []string {
	var why []string
	for _, w := range ws {
		if w.From < to && w.To >= from && !slices.Contains(why, w.Reason) {
			why = append(why, w.Reason)
		}
	}
	return why
}

// evaluate reconciles every bucket that may have changed.
func (c *core) evaluate(nowMs int64) {
	idx := c.uncertainIndex()
	for t, ts := range c.st.Topics {
		groups := c.groupsOf(t)
		for b, bs := range ts.Buckets {
			if bs.settled {
				continue
			}
			r := c.reconcile(t, ts, b, bs, groups, idx, nowMs)
			c.account(t, bs.result, r)
			bs.result = r
			bs.settled = r.Status == StatusComplete || r.Status == StatusLate
		}
	}
}

// groupsOf are the groups with committed offsets on topic t.
func (c *core) groupsOf(t string) []string {
	var gs []string
	for g, topics := range c.st.Committed {
		if len(topics[t]) > 0 {
			gs = append(gs, g)
		}
	}
	slices.Sort(gs)
	return gs
}

func (c *core) closed(b, nowMs int64) bool { return nowMs >= b+c.bucketMs+c.graceMs }

// account moves a bucket's contribution to the aggregates from old to new.
func (c *core) account(t string, old, new *BucketReport) {
	for sign, r := range map[int64]*BucketReport{-1: old, 1: new} {
		if r == nil || r.Status == StatusPending {
			continue
		}
		if r.Status == StatusUncertain {
			c.uncertain[t] += int(sign)
		}
		m := c.agg[t]
		if m == nil {
			m = map[string]*groupAgg{}
			c.agg[t] = m
		}
		for _, g := range r.Groups {
			if g.Reached == nil && g.Consumed == nil {
				continue // nothing known of the group in this bucket
			}
			a := m[g.Group]
			if a == nil {
				a = &groupAgg{}
				m[g.Group] = a
			}
			reached := g.Expected - g.Missing
			a.Missing += sign * g.Missing
			a.Duplicates += sign * g.Duplicates
			a.Reached += sign * reached
			a.Expected += sign * g.Expected
		}
	}
}

func (c *core) reconcile(t string, ts *topicState, b int64, bs *bucketState, offsetGroups []string, idx uncertainIdx, nowMs int64) *BucketReport {
	end := b + c.bucketMs
	r := &BucketReport{Topic: t, Bucket: b, Start: time.UnixMilli(b).UTC(), End: time.UnixMilli(end).UTC()}
	if len(bs.Producer) > 0 {
		var n int64
		r.Producers = map[string]int64{}
		for id, tl := range bs.Producer {
			n += tl.Records
			r.ProducerBytes += tl.Bytes
			r.Producers[id] = tl.Records
		}
		r.Producer = &n
	}
	lo, hi := ts.Boundaries[b], ts.Boundaries[end]
	if lo != nil && hi != nil {
		var n int64
		for p, e := range hi {
			n += e - lo[p]
		}
		r.Broker = &n
		if !bs.BrokerCounted {
			bs.BrokerCounted = true
			c.st.Totals[key3(t, string(TierBroker), "")] += n
		}
	}
	closed := c.closed(b, nowMs)
	if ft, ok := idx.flushedTo[t]; ok && ft < end {
		closed = false // an audited producer has not flushed past the bucket yet
	}
	r.Uncertain = overlaps(idx.producer[t], b, end)
	switch {
	case len(r.Uncertain) > 0:
		r.ProducerVsBroker = StatusUncertain
	case r.Producer != nil && r.Broker != nil:
		r.Delta = *r.Producer - *r.Broker
		switch {
		case r.Delta == 0:
			r.ProducerVsBroker = StatusComplete
		case r.Delta > 0:
			r.ProducerVsBroker = "not_stored"
		default:
			r.ProducerVsBroker = "unaudited"
		}
	}
	expected, known := int64(0), false
	switch {
	case r.Broker != nil:
		expected, known = *r.Broker, true
	case r.Producer != nil && len(r.Uncertain) == 0:
		expected, known = *r.Producer, true
	}

	names := slices.Clone(offsetGroups) // sorted
	for g := range bs.Consumer {
		if _, found := slices.BinarySearch(offsetGroups, g); !found {
			names = append(names, g)
		}
	}
	if len(names) > len(offsetGroups) {
		slices.Sort(names)
	}
	worst := StatusComplete
	for _, g := range names {
		gr := GroupReport{Group: g, Expected: expected}
		if tl := bs.Consumer[g]; tl != nil {
			n := tl.Records
			gr.Consumed = &n
			gr.Source = "hook"
		}
		committed := c.st.Committed[g][t]
		if len(committed) > 0 && r.Broker != nil {
			var reached, lost int64
			for p, e := range hi {
				s := lo[p]
				lost += overlap(ts.Lost[g][p], s, e)
				co, ok := committed[p]
				if !ok || co < s {
					continue
				}
				top := min(co, e)
				reached += top - s - overlap(ts.Lost[g][p], s, top)
			}
			gr.Reached, gr.Lost = &reached, lost
			if d := reached - bs.ReachedCounted[g]; d > 0 {
				if bs.ReachedCounted == nil {
					bs.ReachedCounted = map[string]int64{}
				}
				bs.ReachedCounted[g] = reached
				c.st.Totals[key3(t, string(TierCommitted), g)] += d
			}
			gr.Source = strings.TrimPrefix(gr.Source+"+offsets", "+")
		}
		groupKnown := known && (gr.Reached != nil || gr.Consumed != nil)
		switch {
		case !groupKnown:
		case gr.Reached != nil:
			gr.Missing = max(0, expected-*gr.Reached)
			if gr.Consumed != nil {
				gr.Duplicates = max(0, *gr.Consumed-*gr.Reached)
			}
		case gr.Consumed != nil:
			gr.Missing = max(0, expected-*gr.Consumed)
			gr.Duplicates = max(0, *gr.Consumed-expected)
		}
		why := overlaps(idx.consumer[t][g], b, end)
		switch {
		case !closed:
			gr.Status = StatusPending
		case !groupKnown || len(why) > 0:
			gr.Status = StatusUncertain
		case gr.Missing > 0:
			gr.Status = StatusMissing
			if bs.MissedAtClose == nil {
				bs.MissedAtClose = map[string]bool{}
			}
			bs.MissedAtClose[g] = true
		case gr.Duplicates > 0:
			gr.Status = StatusDuplicated
		case bs.MissedAtClose[g]:
			gr.Status = StatusLate
		default:
			gr.Status = StatusComplete
		}
		for _, w := range why {
			r.Uncertain = append(r.Uncertain, "group "+g+": "+w)
		}
		if rank(gr.Status) > rank(worst) {
			worst = gr.Status
		}
		r.Groups = append(r.Groups, gr)
	}
	switch {
	case !closed:
		r.Status = StatusPending
	case r.ProducerVsBroker == StatusUncertain:
		r.Status = StatusUncertain
	case r.ProducerVsBroker == "not_stored" && rank(worst) < rank(StatusMissing):
		r.Status = StatusMissing
	case !known:
		r.Status = StatusUncertain
		r.Uncertain = append(r.Uncertain, "no broker offsets and no audited producer count for this bucket")
	default:
		r.Status = worst
	}
	return r
}

func rank(s string) int {
	switch s {
	case StatusComplete:
		return 0
	case StatusLate:
		return 1
	case StatusDuplicated:
		return 2
	case StatusMissing:
		return 3
	case StatusUncertain:
		return 4
	case StatusPending:
		return 5
	}
	return 0
}

// outOfWindow reports the out-of-window counts of topic t.
func (c *core) outOfWindow(t string) *BucketReport {
	var r *BucketReport
	for k, n := range c.st.OOW {
		parts := strings.SplitN(k, "\x00", 3)
		if parts[0] != t {
			continue
		}
		if r == nil {
			r = &BucketReport{Topic: t, Bucket: OutOfWindow, Status: StatusOutOfWindow}
		}
		switch Tier(parts[1]) {
		case TierProducer:
			if r.Producer == nil {
				r.Producer = new(int64)
				r.Producers = map[string]int64{}
			}
			*r.Producer += n
			r.Producers[parts[2]] += n
		case TierConsumer:
			nn := n
			r.Groups = append(r.Groups, GroupReport{Group: parts[2], Source: "hook", Consumed: &nn, Status: StatusOutOfWindow})
		}
	}
	if r != nil {
		slices.SortFunc(r.Groups, func(a, b GroupReport) int { return strings.Compare(a.Group, b.Group) })
	}
	return r
}

// reports returns topic's buckets starting at or after sinceMs, oldest
// first, with the out-of-window bucket last when there is one.
func (c *core) reports(topic string, sinceMs int64) []BucketReport {
	ts := c.st.Topics[topic]
	out := []BucketReport{} // [] rather than null in JSON
	if ts != nil {
		for b, bs := range ts.Buckets {
			if b >= bucketOf(sinceMs, c.bucketMs) && bs.result != nil {
				out = append(out, *bs.result)
			}
		}
	}
	slices.SortFunc(out, func(a, b BucketReport) int { return int(a.Bucket - b.Bucket) })
	if r := c.outOfWindow(topic); r != nil {
		out = append(out, *r)
	}
	return out
}

// TopicSummary is one topic's judged buckets within the retention window.
type TopicSummary struct {
	Topic     string         `json:"topic"`
	Uncertain int            `json:"uncertain_buckets"`
	Groups    []GroupSummary `json:"groups"`
}

// GroupSummary sums a group's judged buckets of a topic.
type GroupSummary struct {
	Group        string  `json:"group"`
	Expected     int64   `json:"expected"`
	Missing      int64   `json:"missing"`
	Duplicates   int64   `json:"duplicates"`
	Completeness float64 `json:"completeness"` // (expected - missing) / expected, 1 when none expected
}

func (c *core) summary() []TopicSummary {
	out := []TopicSummary{}
	for t := range c.st.Topics {
		ts := TopicSummary{Topic: t, Uncertain: c.uncertain[t], Groups: []GroupSummary{}}
		for g, a := range c.agg[t] {
			ratio := 1.0
			if a.Expected > 0 {
				ratio = float64(a.Reached) / float64(a.Expected)
			}
			ts.Groups = append(ts.Groups, GroupSummary{Group: g, Expected: a.Expected, Missing: a.Missing, Duplicates: a.Duplicates, Completeness: ratio})
		}
		slices.SortFunc(ts.Groups, func(a, b GroupSummary) int { return strings.Compare(a.Group, b.Group) })
		out = append(out, ts)
	}
	slices.SortFunc(out, func(a, b TopicSummary) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}
