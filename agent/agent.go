package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Lag-seconds modes.
const (
	ModeInterpolated = "interpolated"
	ModeExact        = "exact"
)

// Config configures an Agent.
type Config struct {
	// Brokers are the bootstrap servers (host:port).
	Brokers []string
	// ClientID is the Kafka client id the agent's requests carry.
	ClientID string
	// Interval between collection cycles (default 10s).
	Interval time.Duration
	// Timeout bounds one cycle (default 4/5 of Interval, so a cycle
	// against a dead cluster fails before the next one is due).
	Timeout time.Duration
	// ReadCommitted measures lag against last stable offsets.
	ReadCommitted bool
	// LagSeconds is ModeInterpolated (default) or ModeExact.
	LagSeconds string
	// ExactMaxReads bounds the partitions whose record is read per cycle
	// in exact mode (default 1000).
	ExactMaxReads int
	// StatusWindow is the number of cycles the status rules look at
	// (default 10, Burrow's default intervals).
	StatusWindow int
	// HistoryPoints is the size of each partition's (end offset, time)
	// table (default 60, kafka-lag-exporter's default).
	HistoryPoints int
	// Opts are extra kgo options: TLS (kgo.DialTLSConfig), SASL
	// (kgo.SASL) and the like.
	Opts []kgo.Opt
	// Logger receives one line per failed cycle (default: discard).
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("agent: no bootstrap servers")
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = c.Interval * 4 / 5
	}
	if c.ClientID == "" {
		c.ClientID = "kobs-agent"
	}
	switch c.LagSeconds {
	case "":
		c.LagSeconds = ModeInterpolated
	case ModeInterpolated, ModeExact:
	default:
		return fmt.Errorf("agent: lag seconds mode %q: want %s or %s", c.LagSeconds, ModeInterpolated, ModeExact)
	}
	if c.ExactMaxReads <= 0 {
		c.ExactMaxReads = 1000
	}
	if c.StatusWindow <= 0 {
		c.StatusWindow = 10
	}
	if c.StatusWindow < 2 {
		return errors.New("agent: status window must be at least 2 cycles")
	}
	if c.HistoryPoints <= 0 {
		c.HistoryPoints = 60
	}
	if c.HistoryPoints < 2 {
		return errors.New("agent: history needs at least 2 points")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// ClientOpts are the kgo options that connect to the configured cluster.
func (c *Config) ClientOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(c.ClientID), kgo.MaxVersions(agentVersions())}
	return append(opts, c.Opts...)
}

// agentVersions are kgo's versions with OffsetFetch capped at v9, which
// names topics: from v10 the answer carries topic ids, which kgo resolves
// with a Metadata request and then keeps every partition of those topics
// in its cache (50 MB at 100,000 partitions) that the agent never reads.
func agentVersions() *kversion.Versions {
	v := kversion.Stable()
	if maxV, ok := v.LookupMaxKeyVersion(int16(kmsg.OffsetFetch)); ok && maxV > 9 {
		v.SetMaxKeyVersion(int16(kmsg.OffsetFetch), 9)
	}
	return v
}

// View is what the last successful cycle found. It is immutable.
type View struct {
	Snapshot   *Snapshot
	Groups     map[string]*GroupLag
	GroupNames []string
	Failing    []FailingPartition
	ByBroker   map[int32][]TopicPartition

	failingOnce sync.Once
	failingByTP map[TopicPartition]*FailingPartition
}

// Health is the state of the collection itself.
type Health struct {
	// Up: the last cycle read the cluster's metadata and the data is no
	// older than two intervals.
	Up bool `json:"up"`
	// Stale: the data served is not from a recent successful cycle.
	Stale       bool      `json:"stale"`
	AgeSeconds  float64   `json:"age_seconds"` // since the served data was collected; -1 if none
	LastAttempt time.Time `json:"last_attempt"`
	LastSuccess time.Time `json:"last_success"`
	LastError   string    `json:"last_error,omitempty"`
	// CycleSeconds is the duration of the last cycle.
	CycleSeconds float64 `json:"cycle_seconds"`
	// CyclePhases is how long each part of the last successful cycle
	// took (Snapshot.Phases), in seconds.
	CyclePhases  map[string]float64 `json:"cycle_phases_seconds,omitempty"`
	Interval     string             `json:"interval"`
	Cycles       uint64             `json:"cycles"`
	FailedCycles uint64             `json:"failed_cycles"`
	// Partial: the last successful cycle missed parts, listed in Errors.
	Partial     bool           `json:"partial"`
	Errors      []CollectError `json:"errors,omitempty"`
	Unreachable []int32        `json:"unreachable_brokers,omitempty"`
	// ExactSkipped counts lag-seconds lookups over the per-cycle bound
	// (exact mode) in the last cycle.
	ExactSkipped int `json:"exact_lag_skipped,omitempty"`
}

type health struct {
	lastAttempt, lastSuccess time.Time
	lastErr                  string
	cycleSeconds             float64
	cycles, failed           uint64
	up                       bool
	exactSkipped             int
}

// Agent collects every Interval and serves the result.
type Agent struct {
	cfg Config
	cl  *kgo.Client

	// Touched only by the cycle (cycles never overlap).
	tables map[string]*topicTables
	groups map[string]*groupWindows
	cycle  uint64 // evaluations so far: marks what each one saw
	since  sinceTracker
	exact  *exactReader

	view atomic.Pointer[View]
	mu   sync.Mutex // guards h
	h    health

	reg          *prometheus.Registry
	errorsTotal  *prometheus.CounterVec
	exactSkipped prometheus.Counter
}

// New creates an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(cfg.ClientOpts()...)
	if err != nil {
		return nil, fmt.Errorf("agent: kafka client: %w", err)
	}
	a := &Agent{
		cfg: cfg, cl: cl,
		tables: map[string]*topicTables{},
		groups: map[string]*groupWindows{},
	}
	if cfg.LagSeconds == ModeExact {
		a.exact = &exactReader{opts: cfg.ClientOpts(), readCommitted: cfg.ReadCommitted, maxReads: cfg.ExactMaxReads}
	}
	a.registerMetrics()
	return a, nil
}

// Config returns the agent's configuration with defaults applied.
func (a *Agent) Config() Config { return a.cfg }

// Close releases the Kafka client.
func (a *Agent) Close() { a.cl.Close() }

// Run collects now and then every Interval until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		_ = a.Cycle(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Cycle runs one collection cycle, bounded by Timeout, and publishes its
// result. On failure the previous view is kept but reported stale.
func (a *Agent) Cycle(ctx context.Context) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	snap, err := Collect(ctx, a.cl, CollectOptions{ReadCommitted: a.cfg.ReadCommitted})
	if errors.Is(err, context.DeadlineExceeded) || (err != nil && ctx.Err() != nil) {
		err = fmt.Errorf("cycle timed out after %v: %w", a.cfg.Timeout, err)
	}
	if err != nil {
		a.errorsTotal.WithLabelValues("cycle").Inc()
		a.cfg.Logger.Warn("agent cycle failed", "err", err)
		a.mu.Lock()
		a.h.lastAttempt, a.h.lastErr, a.h.up = start, err.Error(), false
		a.h.cycleSeconds = time.Since(start).Seconds()
		a.h.cycles++
		a.h.failed++
		a.mu.Unlock()
		return err
	}
	for _, e := range snap.Errors {
		a.errorsTotal.WithLabelValues(e.Stage).Inc()
	}
	began := time.Now()
	v := a.evaluate(ctx, snap)
	snap.Phases["evaluate"] = time.Since(began)
	a.view.Store(v)
	a.mu.Lock()
	a.h.lastAttempt, a.h.lastSuccess, a.h.lastErr, a.h.up = start, snap.Time, "", true
	a.h.cycleSeconds = time.Since(start).Seconds()
	a.h.cycles++
	a.mu.Unlock()
	return nil
}

// View returns the last successful cycle's view, or nil before one.
func (a *Agent) View() *View { return a.view.Load() }

// Health reports the collection's state at now. Data is stale when the
// last cycle failed or the last success is older than two intervals (a
// cycle that hangs cannot keep old data looking fresh).
func (a *Agent) Health(now time.Time) Health {
	a.mu.Lock()
	h := a.h
	a.mu.Unlock()
	out := Health{
		LastAttempt: h.lastAttempt, LastSuccess: h.lastSuccess, LastError: h.lastErr,
		CycleSeconds: h.cycleSeconds, Interval: a.cfg.Interval.String(),
		Cycles: h.cycles, FailedCycles: h.failed, AgeSeconds: -1, ExactSkipped: h.exactSkipped,
	}
	if !h.lastSuccess.IsZero() {
		out.AgeSeconds = now.Sub(h.lastSuccess).Seconds()
	}
	out.Up = h.up && !h.lastSuccess.IsZero() && now.Sub(h.lastSuccess) <= 2*a.cfg.Interval
	out.Stale = !out.Up
	if v := a.View(); v != nil {
		out.Partial = len(v.Snapshot.Errors) > 0
		out.Errors = v.Snapshot.Errors
		out.Unreachable = v.Snapshot.Unreachable
		out.CyclePhases = make(map[string]float64, len(v.Snapshot.Phases))
		for name, d := range v.Snapshot.Phases {
			out.CyclePhases[name] = d.Seconds()
		}
	}
	return out
}
