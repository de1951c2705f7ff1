package perf

import (
	"context"
	"time"
)

// minSleep is the smallest sleep the throttler takes. Sleeping once per record
// at high targets would cost more in timer overhead than the sleep itself, so,
// like Kafka's ThroughputThrottler (MIN_SLEEP_NS = 2ms), we let the debt pile
// up and pay it in one go.
const minSleep = 2 * time.Millisecond

// throttler caps a loop at target operations per second. It is Kafka's
// ThroughputThrottler: after each operation the caller asks shouldThrottle
// with the count so far; when the average rate since start is above target,
// throttle adds one operation's worth of time (1s/target) to a sleep debt
// and sleeps once the debt reaches minSleep. Because the check is on the
// average since start, a slow start is made up later with a burst; that is
// Kafka's behaviour and what makes its numbers comparable with ours.
type throttler struct {
	target  float64 // operations per second; negative means unlimited
	start   time.Time
	perOp   time.Duration
	deficit time.Duration
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error
}

func newThrottler(target float64, start time.Time) *throttler {
	t := &throttler{target: target, start: start, now: time.Now, sleep: sleepCtx}
	if target > 0 {
		t.perOp = time.Duration(float64(time.Second) / target)
	}
	return t
}

// shouldThrottle reports whether sent operations by sendStart exceed the
// target rate.
func (t *throttler) shouldThrottle(sent int64, sendStart time.Time) bool {
	if t.target < 0 {
		return false
	}
	elapsed := sendStart.Sub(t.start).Seconds()
	return elapsed > 0 && float64(sent)/elapsed > t.target
}

// throttle pays one operation's worth of sleep debt, sleeping when the debt
// is large enough. It returns early with ctx's error if ctx ends.
func (t *throttler) throttle(ctx context.Context) error {
	t.deficit += t.perOp
	if t.deficit < minSleep {
		return nil
	}
	began := t.now()
	err := t.sleep(ctx, t.deficit)
	// Oversleeping is not carried forward as credit (Kafka does not either):
	// the average-rate check in shouldThrottle already corrects for it.
	t.deficit -= min(t.deficit, t.now().Sub(began))
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
