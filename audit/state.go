package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/kobs-dev/kobs/internal/fsutil"
)

// state is everything the reconciler knows. It lives in memory and in
// <state dir>/state.json, written atomically after each sample together with
// the audit-topic offsets it covers: on restart the reconciler reloads it and
// resumes reading the audit topic exactly after the last applied flush, so
// no flush is applied twice or skipped. Boundary offsets and lost ranges are
// history that cannot be re-read from the cluster (retention deletes it),
// which is why the state is a file and not rebuilt from the audit topic.
type state struct {
	Version      int                  `json:"version"`
	BucketMs     int64                `json:"bucket_ms"`
	Since        int64                `json:"since"`         // first bucket boundary the broker tier covers
	AuditOffsets map[int32]int64      `json:"audit_offsets"` // next offset to read per audit-topic partition
	Instances    map[string]*instance `json:"instances"`
	Topics       map[string]*topicState
	// Committed is the last sampled committed offset of every group:
	// group -> topic -> partition -> offset.
	Committed map[string]map[string]map[int32]int64 `json:"committed"`
	Skipped   map[string]int64                      `json:"skipped"`       // audit records skipped, by reason
	Totals    map[string]int64                      `json:"totals"`        // records_total by "topic\x00tier\x00group"
	OOW       map[string]int64                      `json:"out_of_window"` // out-of-window records by "topic\x00tier\x00group"
}

const stateVersion = 1

func newState(bucketMs int64) *state {
	return &state{
		Version: stateVersion, BucketMs: bucketMs, AuditOffsets: map[int32]int64{},
		Instances: map[string]*instance{}, Topics: map[string]*topicState{},
		Committed: map[string]map[string]map[int32]int64{}, Skipped: map[string]int64{},
		Totals: map[string]int64{}, OOW: map[string]int64{},
	}
}

// instance is one hook instance as seen through its flushes.
type instance struct {
	Tier     Tier             `json:"tier"`
	Client   string           `json:"client"`
	Host     string           `json:"host,omitempty"`
	PID      int              `json:"pid,omitempty"`
	FlushMs  int64            `json:"flush_ms"`
	Contig   uint64           `json:"contig"`          // every seq <= Contig is applied
	Above    map[uint64]int64 `json:"above,omitempty"` // applied seqs beyond a gap -> their flush time
	LastTS   int64            `json:"last_ts"`         // newest flush time
	ContigTS int64            `json:"contig_ts"`       // flush time of seq Contig (0 when unknown)
	Final    bool             `json:"final,omitempty"`
	Topics   []string         `json:"topics"`
	// Uncertain are the time ranges where this instance's counts may be
	// incomplete: it died between flushes, or flushes went missing.
	Uncertain []window `json:"uncertain,omitempty"`
	Dead      bool     `json:"dead,omitempty"`
}

type window struct {
	From   int64  `json:"from"`
	To     int64  `json:"to"`
	Reason string `json:"reason"`
}

func (in *instance) applied(seq uint64) bool {
	_, ok := in.Above[seq]
	return seq <= in.Contig || ok
}

func (in *instance) markApplied(seq uint64, ts int64) {
	if seq != in.Contig+1 {
		if in.Above == nil {
			in.Above = map[uint64]int64{}
		}
		in.Above[seq] = ts
		return
	}
	in.Contig, in.ContigTS = seq, ts
	for {
		t, ok := in.Above[in.Contig+1]
		if !ok {
			break
		}
		delete(in.Above, in.Contig+1)
		in.Contig++
		in.ContigTS = t
	}
}

// acceptGap gives up on the missing seqs below the first applied one beyond
// the gap and returns the flush time of that one.
func (in *instance) acceptGap() int64 {
	var first uint64
	for s := range in.Above {
		if first == 0 || s < first {
			first = s
		}
	}
	ts := in.Above[first]
	in.Contig = first - 1
	for {
		t, ok := in.Above[in.Contig+1]
		if !ok {
			break
		}
		delete(in.Above, in.Contig+1)
		in.Contig++
		in.ContigTS = t
	}
	return ts
}

func (in *instance) addTopic(t string) {
	if i, found := slices.BinarySearch(in.Topics, t); !found {
		in.Topics = slices.Insert(in.Topics, i, t)
	}
}

func (in *instance) hasTopic(t string) bool {
	_, found := slices.BinarySearch(in.Topics, t)
	return found
}

// topicState is one topic's partitions, bucket boundary offsets, counts and
// the ranges each group lost to retention.
type topicState struct {
	LogStart   map[int32]int64            `json:"log_start"`
	End        map[int32]int64            `json:"end"`
	Boundaries map[int64]map[int32]int64  `json:"boundaries"` // boundary ms -> partition -> first offset at or after it
	Buckets    map[int64]*bucketState     `json:"buckets"`
	Lost       map[string]map[int32][]rng `json:"lost,omitempty"` // group -> partition -> offsets deleted before the group reached them
}

func newTopicState() *topicState {
	return &topicState{
		LogStart: map[int32]int64{}, End: map[int32]int64{}, Boundaries: map[int64]map[int32]int64{},
		Buckets: map[int64]*bucketState{}, Lost: map[string]map[int32][]rng{},
	}
}

type tally struct {
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
}

type bucketState struct {
	Producer map[string]*tally `json:"producer,omitempty"` // by client id
	Consumer map[string]*tally `json:"consumer,omitempty"` // by group
	// BrokerCounted says the broker count went into Totals already.
	BrokerCounted bool `json:"broker_counted,omitempty"`
	// ReachedCounted: per group, the reached records that went into the
	// committed tier of Totals already.
	ReachedCounted map[string]int64 `json:"reached_counted,omitempty"`
	// MissedAtClose: groups that were missing records when the grace period
	// ended; if they complete later the bucket is "late" for them.
	MissedAtClose map[string]bool `json:"missed_at_close,omitempty"`

	// Evaluation cache, rebuilt after a restart.
	result  *BucketReport
	settled bool
}

// rng is a half-open offset range [From, To).
type rng struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// addRange merges r into sorted, non-overlapping rs.
func addRange(rs []rng, r rng) []rng {
	if r.To <= r.From {
		return rs
	}
	out := make([]rng, 0, len(rs)+1)
	for _, x := range rs {
		if x.To < r.From || x.From > r.To {
			out = append(out, x)
			continue
		}
		r.From, r.To = min(r.From, x.From), max(r.To, x.To)
	}
	out = append(out, r)
	slices.SortFunc(out, func(a, b rng) int { return int(a.From - b.From) })
	return out
}

// overlap is how many offsets of rs lie in [from, to).
func overlap(rs []rng, from, to int64) int64 {
	var n int64
	for _, x := range rs {
		if lo, hi := max(x.From, from), min(x.To, to); hi > lo {
			n += hi - lo
		}
	}
	return n
}

const stateFile = "state.json"

func loadState(dir string, bucketMs int64) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read state: %w", err)
	}
	s := newState(bucketMs)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("audit: state %s is corrupt (move it away to start over): %w", filepath.Join(dir, stateFile), err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("audit: state version %d, want %d", s.Version, stateVersion)
	}
	if s.BucketMs != bucketMs {
		return nil, fmt.Errorf("audit: state in %s was built with %dms buckets, not %dms: use the same --bucket or another --state-dir", dir, s.BucketMs, bucketMs)
	}
	for _, t := range s.Topics {
		for _, m := range []*map[int64]*bucketState{&t.Buckets} {
			if *m == nil {
				*m = map[int64]*bucketState{}
			}
		}
		if t.Boundaries == nil {
			t.Boundaries = map[int64]map[int32]int64{}
		}
		if t.Lost == nil {
			t.Lost = map[string]map[int32][]rng{}
		}
		if t.LogStart == nil {
			t.LogStart = map[int32]int64{}
		}
		if t.End == nil {
			t.End = map[int32]int64{}
		}
	}
	return s, nil
}

// writeState writes an encoded state atomically; an empty dir keeps none.
func writeState(dir string, b []byte) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("audit: state dir: %w", err)
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, stateFile), b)
}
