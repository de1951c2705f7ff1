package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultListen is the reconciler's default HTTP address (/metrics, /v1/audit/).
const DefaultListen = "127.0.0.1:8780"

// Config configures a Reconciler.
type Config struct {
	Brokers []string
	Topic   string        // audit topic, default DefaultTopic
	Bucket  time.Duration // bucket width, default one minute; a multiple of the hooks'
	Grace   time.Duration // wait after a bucket ends before judging it, default two minutes
	// SampleInterval is how often offsets are sampled and buckets
	// evaluated, default a quarter of the bucket (between 100ms and 5s).
	SampleInterval time.Duration
	Retain         time.Duration // buckets kept and reported, default 24h
	// SaveInterval is how often the state file is written, default
	// max(SampleInterval, 10s); it is also written on a clean stop. A crash
	// loses no counts: the audit topic is re-read from the saved offsets.
	SaveInterval time.Duration
	MaxFuture    time.Duration // flush counts further ahead of the reconciler's clock are out of window, default 5m
	// StateDir holds state.json; empty keeps state in memory only (a
	// restart then re-reads the audit topic but loses offset history).
	StateDir string
	// Topics selects the topics reconciled from offsets (broker tier and
	// groups without hooks); nil means every topic not starting with "__".
	Topics  *regexp.Regexp
	KgoOpts []kgo.Opt
	Logger  *slog.Logger
}

func (c *Config) defaults() error {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Bucket == 0 {
		c.Bucket = DefaultBucket
	}
	if c.Grace == 0 {
		c.Grace = 2 * time.Minute
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = min(max(c.Bucket/4, 100*time.Millisecond), 5*time.Second)
	}
	if c.SaveInterval == 0 {
		c.SaveInterval = max(c.SampleInterval, 10*time.Second)
	}
	if c.Retain == 0 {
		c.Retain = 24 * time.Hour
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case len(c.Brokers) == 0:
		return errors.New("audit: no bootstrap servers")
	case c.Bucket < time.Millisecond || c.Bucket%time.Millisecond != 0:
		return errors.New("audit: bucket must be a positive whole number of milliseconds")
	case c.Grace < 0 || c.SampleInterval < 10*time.Millisecond:
		return errors.New("audit: negative grace or sample interval below 10ms")
	case c.Retain < c.Bucket+c.Grace:
		return errors.New("audit: retain shorter than bucket + grace")
	}
	return nil
}

// Reconciler reads the audit topic, samples offsets and reconciles every
// topic per bucket; see the package documentation for the rules.
type Reconciler struct {
	cfg Config
	log *slog.Logger

	lastSave    time.Time
	mu          sync.Mutex // guards c and the sample stats; never held over network calls
	c           *core
	samples     int64
	sampleErrs  int64
	lastSample  time.Time
	lastErr     string
	reg         *prometheus.Registry
	stateErrors int64
}

// New loads the state (if StateDir holds one) and returns a reconciler;
// Run starts it.
func New(cfg Config) (*Reconciler, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	st, err := loadState(cfg.StateDir, cfg.Bucket.Milliseconds())
	if err != nil {
		return nil, err
	}
	if st == nil {
		st = newState(cfg.Bucket.Milliseconds())
		st.Since = bucketOf(time.Now().UnixMilli(), st.BucketMs)
	}
	r := &Reconciler{cfg: cfg, log: cfg.Logger, c: newCore(st, cfg.Bucket, cfg.Grace, cfg.Retain, cfg.MaxFuture)}
	r.c.evaluate(time.Now().UnixMilli())
	r.reg = prometheus.NewRegistry()
	r.reg.MustRegister(&collector{r: r})
	return r, nil
}

// Run consumes the audit topic and samples offsets until ctx ends, then
// saves the state.
func (r *Reconciler) Run(ctx context.Context) error {
	base := append([]kgo.Opt{kgo.SeedBrokers(r.cfg.Brokers...), kgo.ClientID("kobs-audit-reconciler")}, r.cfg.KgoOpts...)
	acl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("audit: admin client: %w", err)
	}
	defer acl.Close()
	adm := kadm.NewClient(acl)
	parts, err := r.auditPartitions(ctx, adm)
	if err != nil {
		return err
	}
	r.mu.Lock()
	offsets := map[int32]kgo.Offset{}
	for _, p := range parts {
		if o, ok := r.c.st.AuditOffsets[p]; ok {
			offsets[p] = kgo.NewOffset().At(o)
		} else {
			offsets[p] = kgo.NewOffset().AtStart()
		}
	}
	r.mu.Unlock()
	ccl, err := kgo.NewClient(append(base,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.Topic: offsets}),
		kgo.FetchMaxWait(min(r.cfg.SampleInterval, 500*time.Millisecond)))...)
	if err != nil {
		return fmt.Errorf("audit: audit topic consumer: %w", err)
	}
	defer ccl.Close()
	r.log.Info("audit reconciler started", "audit.topic", r.cfg.Topic, "partitions", len(parts),
		"bucket", r.cfg.Bucket, "grace", r.cfg.Grace, "state.dir", r.cfg.StateDir)

	next := time.Now()
	for ctx.Err() == nil {
		pctx, cancel := context.WithDeadline(ctx, next)
		fs := ccl.PollRecords(pctx, 10000)
		cancel()
		now := time.Now()
		r.mu.Lock()
		fs.EachRecord(func(rec *kgo.Record) {
			if err := r.c.applyRecord(rec.Value, now.UnixMilli()); err != nil {
				r.log.Warn("audit record skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
			}
			r.c.st.AuditOffsets[rec.Partition] = rec.Offset + 1
		})
		r.mu.Unlock()
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				r.log.Warn("audit topic fetch", "partition", p, "err", err)
			}
		})
		if now.Before(next) || ctx.Err() != nil {
			continue
		}
		next = now.Add(r.cfg.SampleInterval)
		r.sampleOnce(ctx, adm)
	}
	return r.save()
}

func (r *Reconciler) auditPartitions(ctx context.Context, adm *kadm.Client) ([]int32, error) {
	for {
		resp, err := adm.CreateTopic(ctx, 1, -1, nil, r.cfg.Topic)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
			r.log.Warn("audit topic not created", "err", err)
		}
		td, err := adm.ListTopicsWithInternal(ctx, r.cfg.Topic)
		if err == nil {
			if d, ok := td[r.cfg.Topic]; ok && d.Err == nil && len(d.Partitions) > 0 {
				return d.Partitions.Numbers(), nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// sampleOnce reads offsets (no lock held), then applies them, evaluates and
// saves the state.
func (r *Reconciler) sampleOnce(ctx context.Context, adm *kadm.Client) {
	s, err := r.readSample(ctx, adm)
	now := time.Now().UnixMilli()
	r.mu.Lock()
	r.samples++
	if err != nil {
		r.sampleErrs++
		r.lastErr = err.Error()
		r.log.Warn("audit offset sample incomplete", "err", err)
	}
	if s != nil {
		r.c.observe(s, now)
	}
	r.c.evaluate(now)
	r.lastSample = time.Now()
	r.mu.Unlock()
	if time.Since(r.lastSave) < r.cfg.SaveInterval {
		return
	}
	r.lastSave = time.Now()
	if err := r.save(); err != nil {
		r.log.Error("audit state not saved", "err", err)
	}
}

func (r *Reconciler) save() error {
	r.mu.Lock()
	b, err := json.Marshal(r.c.st)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if err = writeState(r.cfg.StateDir, b); err != nil {
		r.mu.Lock()
		r.stateErrors++
		r.mu.Unlock()
	}
	return err
}

func (r *Reconciler) trackedTopics(ctx context.Context, adm *kadm.Client) ([]string, error) {
	td, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range td.Sorted() {
		if d.Err != nil || d.Topic == r.cfg.Topic || strings.HasPrefix(d.Topic, "__") {
			continue
		}
		if r.cfg.Topics != nil && !r.cfg.Topics.MatchString(d.Topic) {
			continue
		}
		out = append(out, d.Topic)
	}
	return out, nil
}

func (r *Reconciler) readSample(ctx context.Context, adm *kadm.Client) (*sample, error) {
	topics, err := r.trackedTopics(ctx, adm)
	if err != nil || len(topics) == 0 {
		return nil, err
	}
	s := &sample{LogStart: map[string]map[int32]int64{}, End: map[string]map[int32]int64{},
		Boundaries: map[int64]map[string]map[int32]int64{}, Committed: map[string]map[string]map[int32]int64{}}
	var errs []error
	// The boundaries first: each is read as soon as possible after it
	// passed (see doc.go on why the first answer is kept).
	r.mu.Lock()
	bounds := r.c.boundariesToSample(time.Now().UnixMilli(), topics)
	r.mu.Unlock()
	for _, b := range bounds {
		lo, err := adm.ListOffsetsAfterMilli(ctx, b, topics...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// A partition without a record at or after b answers its end
		// offset (timestamp -1): records produced just before b may still
		// be in flight, so such a boundary is kept only once the grace
		// period after it passed; a real answer is final at once.
		settled := time.Now().UnixMilli() >= b+r.cfg.Grace.Milliseconds()
		m := map[string]map[int32]int64{}
		for t, ps := range offsetsOf(lo) {
			real := true
			for p := range ps {
				real = real && lo[t][p].Timestamp >= 0
			}
			if real || settled {
				m[t] = ps
			}
		}
		s.Boundaries[b] = m
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	errs = append(errs, err)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	errs = append(errs, err)
	s.LogStart, s.End = offsetsOf(starts), offsetsOf(ends)
	for t := range s.LogStart {
		if s.End[t] == nil {
			delete(s.LogStart, t)
		}
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		errs = append(errs, err)
	} else if names := groups.Groups(); len(names) == 0 {
		s.AllGroups = true
	} else {
		s.AllGroups = true
		resps := adm.FetchManyOffsets(ctx, names...)
		for g, resp := range resps {
			if resp.Err != nil {
				errs = append(errs, fmt.Errorf("group %s: %w", g, resp.Err))
				s.AllGroups = false
				continue
			}
			m := map[string]map[int32]int64{}
			for t, ps := range resp.Fetched {
				if !slices.Contains(topics, t) {
					continue
				}
				for p, o := range ps {
					if o.Err != nil || o.At < 0 {
						continue
					}
					if m[t] == nil {
						m[t] = map[int32]int64{}
					}
					m[t][p] = o.At
				}
			}
			s.Committed[g] = m
		}
	}
	return s, errors.Join(errs...)
}

// offsetsOf keeps the topics all of whose partitions answered.
func offsetsOf(lo kadm.ListedOffsets) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	for t, ps := range lo {
		m := make(map[int32]int64, len(ps))
		ok := true
		for p, o := range ps {
			if o.Err != nil || p < 0 {
				ok = false
				break
			}
			m[p] = o.Offset
		}
		if ok && len(m) > 0 {
			out[t] = m
		}
	}
	return out
}

// Report returns topic's buckets from since on, oldest first, then the
// out-of-window bucket if it has records.
func (r *Reconciler) Report(topic string, since time.Time) []BucketReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c.reports(topic, since.UnixMilli())
}

// Summary sums every topic's judged buckets per group, the numbers the
// gauges export.
func (r *Reconciler) Summary() []TopicSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c.summary()
}

// Status is the reconciler's own health.
type Status struct {
	BucketMs    int64            `json:"bucket_ms"`
	GraceMs     int64            `json:"grace_ms"`
	Since       time.Time        `json:"since"`
	Samples     int64            `json:"samples"`
	SampleErrs  int64            `json:"sample_errors"`
	LastSample  time.Time        `json:"last_sample"`
	LastError   string           `json:"last_error,omitempty"`
	Skipped     map[string]int64 `json:"skipped"`
	Instances   map[string]int   `json:"instances"` // "producer/alive", "consumer/dead", ...
	Topics      []string         `json:"topics"`
	AuditOffset map[int32]int64  `json:"audit_offsets"`
}

// Status reports what the reconciler has seen.
func (r *Reconciler) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{
		BucketMs: r.c.bucketMs, GraceMs: r.c.graceMs, Since: time.UnixMilli(r.c.st.Since).UTC(),
		Samples: r.samples, SampleErrs: r.sampleErrs, LastSample: r.lastSample, LastError: r.lastErr,
		Skipped: map[string]int64{}, Instances: map[string]int{}, AuditOffset: map[int32]int64{},
	}
	for k, v := range r.c.st.Skipped {
		st.Skipped[k] = v
	}
	for p, o := range r.c.st.AuditOffsets {
		st.AuditOffset[p] = o
	}
	for _, in := range r.c.st.Instances {
		st.Instances[string(in.Tier)+"/"+in.state()]++
	}
	for t := range r.c.st.Topics {
		st.Topics = append(st.Topics, t)
	}
	slices.Sort(st.Topics)
	return st
}

func (in *instance) state() string {
	switch {
	case in.Final:
		return "closed"
	case in.Dead:
		return "dead"
	}
	return "alive"
}

// Handler serves /metrics (the reconciler's own registry), and the JSON API:
// /v1/audit/status, /v1/audit/summary (every topic and group over the
// judged buckets of the retention window), /v1/audit/report?topic=T&since=1h
// (a duration back from now, or RFC 3339).
func (r *Reconciler) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/v1/audit/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, r.Status())
	})
	mux.HandleFunc("/v1/audit/summary", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, r.Summary())
	})
	mux.HandleFunc("/v1/audit/report", func(w http.ResponseWriter, req *http.Request) {
		topic := req.URL.Query().Get("topic")
		if topic == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "topic is required"})
			return
		}
		since, err := ParseSince(req.URL.Query().Get("since"), time.Now())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, ReportResponse{
			Topic: topic, BucketMs: r.c.bucketMs, GraceMs: r.c.graceMs, Buckets: r.Report(topic, since),
		})
	})
	return mux
}

// ReportResponse is the body of /v1/audit/report.
type ReportResponse struct {
	Topic    string         `json:"topic"`
	BucketMs int64          `json:"bucket_ms"`
	GraceMs  int64          `json:"grace_ms"`
	Buckets  []BucketReport `json:"buckets"`
}

// ParseSince reads "1h" (back from now), "" (an hour) or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now.Add(-time.Hour), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("since %q: negative duration", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q: neither a duration (1h) nor RFC 3339", s)
	}
	return t, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
