package agent

import (
	"math"
	"sort"
	"time"
)

// point is one sample of a partition's end offset; the time is in Unix
// nanoseconds (16 bytes a point: 100,000 partitions of 60 points are 96 MB).
type point struct {
	offset int64
	at     int64
}

// offsetTable is a partition's recent (end offset, time) samples, the
// lookup table kafka-lag-exporter keeps (LookupTable.scala): a sliding
// window of at most limit points, offsets never decreasing, and a flat run
// kept as one segment by moving its right end. Once full it is a ring
// (head is the oldest point), so a new sample overwrites the oldest
// instead of moving the other limit-1.
type offsetTable struct {
	points []point
	head   int
	limit  int
}

// at returns the i-th point, oldest first.
func (t *offsetTable) at(i int) *point {
	i += t.head
	if i >= len(t.points) {
		i -= len(t.points)
	}
	return &t.points[i]
}

// add records a sample. An out-of-order sample is ignored; an offset below
// the newest one means the partition was truncated or recreated, so the
// table restarts from it (kafka-lag-exporter ignores such a point and keeps
// interpolating over offsets that no longer exist).
func (t *offsetTable) add(offset int64, when time.Time) {
	at := when.UnixNano()
	n := len(t.points)
	if n > 0 {
		last := t.at(n - 1)
		if at <= last.at {
			return
		}
		if offset < last.offset {
			t.points, t.head = t.points[:0], 0
			n = 0
		} else if offset == last.offset && n > 1 && t.at(n-2).offset == offset {
			last.at = at
			return
		}
	}
	if n == t.limit {
		t.points[t.head] = point{offset, at}
		if t.head++; t.head == n {
			t.head = 0
		}
		return
	}
	if n == cap(t.points) {
		// Grow by doubling, but never past the limit: 100,000 tables
		// of 60 points would otherwise hold 64.
		grown := make([]point, n, min(max(2*n, 2), t.limit))
		copy(grown, t.points)
		t.points = grown
	}
	t.points = append(t.points, point{offset, at})
}

// Lag-seconds sources, reported with each estimate.
const (
	SecondsNone         = ""             // no estimate: no commit, or too few samples
	SecondsZero         = "caught_up"    // committed offset is at the end
	SecondsInterpolated = "interpolated" // between two samples
	SecondsExtrapolated = "extrapolated" // before the oldest sample, along the table's trend
	SecondsLowerBound   = "lower_bound"  // before the oldest sample of a flat table: at least this old
	SecondsExact        = "exact"        // from the timestamp of the record at the committed offset
)

// lagSeconds estimates how long ago the record at offset committed was
// written, seen at time now: the moment the end offset passed committed
// (reached committed+1) is interpolated between the two samples around it,
// or extrapolated along the table's whole trend when it is older than the
// table. It returns NaN and SecondsNone with fewer than two samples.
func (t *offsetTable) lagSeconds(committed int64, now time.Time) (float64, string) {
	n := len(t.points)
	if n > 0 && committed >= t.at(n-1).offset {
		return 0, SecondsZero
	}
	if n < 2 {
		return math.NaN(), SecondsNone
	}
	target := committed + 1
	// The first point at or past target (offsets never decrease).
	i := sort.Search(n, func(i int) bool { return t.at(i).offset >= target })
	var at int64
	source := SecondsInterpolated
	switch {
	case i == 0:
		first, last := *t.at(0), *t.at(n - 1)
		if last.offset == first.offset {
			return clampSeconds(now.Sub(time.Unix(0, first.at))), SecondsLowerBound
		}
		at = interpolate(first, last, target)
		source = SecondsExtrapolated
	default:
		// points[i-1].offset < target <= points[i].offset (i < n because
		// committed < the newest offset).
		at = interpolate(*t.at(i - 1), *t.at(i), target)
	}
	return clampSeconds(now.Sub(time.Unix(0, at))), source
}

// interpolate solves for the time at which the line through l and r
// reaches offset (l.offset != r.offset).
func interpolate(l, r point, offset int64) int64 {
	dt := float64(r.at - l.at)
	do := float64(r.offset - l.offset)
	return r.at - int64(float64(r.offset-offset)*dt/do)
}

func clampSeconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}
