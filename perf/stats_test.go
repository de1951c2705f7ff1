package perf

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPercentileMatchesKafkaIndexing(t *testing.T) {
	// 1..1000 ms: Kafka picks index floor(p*n), so p50 is the 501st value.
	sorted := make([]time.Duration, 1000)
	for i := range sorted {
		sorted[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{0.5, 501 * time.Millisecond},
		{0.95, 951 * time.Millisecond},
		{0.99, 991 * time.Millisecond},
		{0.999, 1000 * time.Millisecond},
		{1, 1000 * time.Millisecond}, // clamped, not out of range
	} {
		require.Equal(t, tc.want, percentile(sorted, tc.p), "p=%v", tc.p)
	}
	require.Zero(t, percentile(nil, 0.5))
}

func TestLatencyRecorder(t *testing.T) {
	l := newLatencyRecorder(100)
	for i := range 10_000 {
		l.record(time.Duration(i) * time.Microsecond)
	}
	l.record(-time.Second) // clamped to 0
	require.Len(t, l.samples, 100, "sample must stay bounded")
	s := l.stats()
	require.Equal(t, 9999*time.Microsecond, s.Max)
	// The mean covers every observation, not the sample: 0..9999µs plus one
	// zero is 49,995,000µs over 10,001 observations.
	require.InDelta(t, 49_995_000.0/10_001, float64(s.Avg)/float64(time.Microsecond), 0.01)
	require.LessOrEqual(t, s.P50, s.P95)
	require.LessOrEqual(t, s.P95, s.P99)
	require.LessOrEqual(t, s.P99, s.P999)
	require.LessOrEqual(t, s.P999, s.Max)
	// A uniform sample of a uniform stream has its median near the middle;
	// 100 samples make ±20% of the range a very safe bound.
	require.InDelta(t, 5000, s.P50.Microseconds(), 2000)

	require.Equal(t, LatencyStats{}, newLatencyRecorder(10).stats())
}

func TestThrottlerRate(t *testing.T) {
	// A fake clock that only moves by 10µs per operation and by sleeps: the
	// throttler alone must stretch 1000 operations at 500/s to about 2s.
	now := time.Unix(0, 0)
	var slept time.Duration
	th := newThrottler(500, now)
	th.now = func() time.Time { return now }
	th.sleep = func(_ context.Context, d time.Duration) error {
		slept += d
		now = now.Add(d)
		return nil
	}
	for i := range int64(1000) {
		now = now.Add(10 * time.Microsecond)
		if th.shouldThrottle(i+1, now) {
			require.NoError(t, th.throttle(context.Background()))
		}
	}
	require.InDelta(t, 2.0, now.Sub(time.Unix(0, 0)).Seconds(), 0.05)
	require.Greater(t, slept, time.Duration(0))

	unlimited := newThrottler(-1, time.Unix(0, 0))
	require.False(t, unlimited.shouldThrottle(1e9, time.Unix(1, 0)))
}

func TestThrottlerHonoursContext(t *testing.T) {
	// One op per 100 s: a 100 s debt per op, so a throttle that ignored its
	// context would sleep far past the 10 s bound, which leaves room for a
	// scheduling stall on a loaded machine (100 ms left none).
	th := newThrottler(0.01, time.Now().Add(-time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	began := time.Now()
	require.ErrorIs(t, th.throttle(ctx), context.Canceled)
	require.Less(t, time.Since(began), 10*time.Second)
}
