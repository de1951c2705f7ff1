package agent

// Status is a Burrow-style verdict on a partition or group. The rules are
// in agent/README.md ("Status rules"); the numeric codes are Burrow's, so
// dashboards and alerts built on Burrow's exporters read the same numbers.
type Status string

// The statuses, mildest first except NOOFFSET, which is not a verdict.
const (
	StatusNoOffset Status = "NOOFFSET" // no committed offset: nothing to judge
	StatusOK       Status = "OK"
	StatusWarn     Status = "WARN"
	StatusStall    Status = "STALL"
	StatusStop     Status = "STOP"
	StatusRewind   Status = "REWIND"
	StatusErr      Status = "ERR"
)

// Code is Burrow's number for the status (protocol.StatusConstant):
// NOTFOUND 0, OK 1, WARN 2, ERR 3, STOP 4, STALL 5, REWIND 6.
func (s Status) Code() int {
	switch s {
	case StatusOK:
		return 1
	case StatusWarn:
		return 2
	case StatusErr:
		return 3
	case StatusStop:
		return 4
	case StatusStall:
		return 5
	case StatusRewind:
		return 6
	}
	return 0
}

// severity orders statuses for a group's worst-partition verdict.
func (s Status) severity() int {
	switch s {
	case StatusOK:
		return 1
	case StatusWarn:
		return 2
	case StatusStall:
		return 3
	case StatusStop:
		return 4
	case StatusRewind:
		return 5
	case StatusErr:
		return 6
	}
	return 0
}

// Worse returns the more severe of two statuses.
func Worse(a, b Status) Status {
	if b.severity() > a.severity() {
		return b
	}
	return a
}

// observation is one cycle's view of a group's partition. It holds no
// pointer, so the garbage collector never scans the windows.
type observation struct {
	committed int64
	lag       int64
}

// window is the sliding window of a group partition's last observations.
type window struct {
	obs  []observation
	size int
	// cycle is the last evaluation that saw the partition committed; a
	// window not seen in the evaluation before is stale and starts over.
	cycle uint64
}

func (w *window) add(o observation) {
	if w.obs == nil {
		w.obs = make([]observation, 0, w.size)
	}
	if len(w.obs) == w.size {
		copy(w.obs, w.obs[1:])
		w.obs = w.obs[:len(w.obs)-1]
	}
	w.obs = append(w.obs, o)
}

// complete is the share of the window filled, as Burrow's "complete".
func (w *window) complete() float64 { return float64(len(w.obs)) / float64(w.size) }

// evaluate applies the status rules to the window (whose newest
// observation is the current one). owned says whether a live group member
// is assigned the partition; readable whether its end offset could be
// listed this cycle.
func (w *window) evaluate(owned, readable bool) Status {
	if !readable {
		return StatusErr
	}
	n := len(w.obs)
	if n == 0 {
		return StatusOK
	}
	cur := w.obs[n-1]
	// Rule 1: caught up now.
	if cur.lag == 0 {
		return StatusOK
	}
	// Rule 2: the committed offset went backwards (a reset or a
	// reprocessing), anywhere in the window.
	for i := 1; i < n; i++ {
		if w.obs[i].committed < w.obs[i-1].committed {
			return StatusRewind
		}
	}
	// Rule 3: caught up at some point in the window: a burst, not a
	// problem yet.
	for _, o := range w.obs {
		if o.lag == 0 {
			return StatusOK
		}
	}
	// The remaining rules judge a trend: they need a full window.
	if n < w.size {
		return StatusOK
	}
	// Rule 4: the committed offset did not move across the window while
	// there was lag: STALL when a member owns the partition (the consumer
	// is there but not progressing), STOP when none does (no consumer).
	moved := false
	for i := 1; i < n; i++ {
		if w.obs[i].committed != w.obs[i-1].committed {
			moved = true
			break
		}
	}
	if !moved {
		if owned {
			return StatusStall
		}
		return StatusStop
	}
	// Rule 5: the consumer moves but its lag never shrank and grew over
	// the window: it is slower than the producers.
	decreased := false
	for i := 1; i < n; i++ {
		if w.obs[i].lag < w.obs[i-1].lag {
			decreased = true
			break
		}
	}
	if !decreased && cur.lag > w.obs[0].lag {
		return StatusWarn
	}
	// Rule 6: otherwise OK.
	return StatusOK
}
