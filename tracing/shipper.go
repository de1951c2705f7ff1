package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ShipperConfig configures the shipper: a consumer group on the trace topic
// writing to an Elasticsearch-7-compatible store. Zero values are defaults.
type ShipperConfig struct {
	// Brokers are the seed brokers of the cluster holding the trace topic.
	// Required.
	Brokers []string
	// Topic is the trace topic, default DefaultTopic.
	Topic string
	// Group is the shipper's consumer group, default "kobs-trace-shipper".
	Group string
	// URL is the store (Elasticsearch, OpenSearch or kobs tracestore),
	// default http://127.0.0.1:9200.
	URL string
	// IndexPrefix prefixes the daily indexes, default IndexPrefix.
	IndexPrefix string
	// BatchEvents bounds the events shipped (and committed) per bulk,
	// default 5000.
	BatchEvents int
	// MaxBackoff caps the wait between retries while the store is down or
	// full, default 5s.
	MaxBackoff time.Duration
	// SessionTimeout is the group session timeout, default 45s (Kafka's).
	// After a crash the group waits this long before another shipper takes
	// over the crashed one's partitions.
	SessionTimeout time.Duration
	// ConsumerOpts are extra kgo options for the trace-topic consumer.
	ConsumerOpts []kgo.Opt
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// SetDefaults fills unset fields.
func (c *ShipperConfig) SetDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Group == "" {
		c.Group = "kobs-trace-shipper"
	}
	if c.URL == "" {
		c.URL = "http://127.0.0.1:9200"
	}
	if c.IndexPrefix == "" {
		c.IndexPrefix = IndexPrefix
	}
	if c.BatchEvents <= 0 {
		c.BatchEvents = 5000
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 45 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports configuration errors.
func (c *ShipperConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("trace shipper: no brokers")
	}
	return nil
}

// ShipperStats counts the shipper's work.
type ShipperStats struct {
	Shipped   int64 // events acknowledged by the store
	Corrupt   int64 // trace-topic records that are not events; skipped
	Rejected  int64 // events the store refused permanently (4xx other than 408/429); skipped
	Retries   int64 // bulk attempts that failed and were retried
	Committed int64 // offset commits after acknowledged bulks
}

// Shipper moves trace events from the trace topic to the store. Offsets are
// committed only after the store acknowledged every event up to them, and
// every document id is DocID, so a crash between the two re-ships the same
// documents instead of adding new ones.
type Shipper struct {
	cfg ShipperConfig
	log *slog.Logger
	es  *elastic.Client

	shipped, corrupt, rejected, retries, committed atomic.Int64
	drops                                          dropCounts // kobs_trace_events_dropped_total

	indexes map[string]bool    // indexes known to exist, this process
	groups  map[[2]string]bool // (topic, group) pairs written to GroupsIndex

	mu      sync.Mutex // guards the bulk outcome written by the After callback
	bulkErr error
}

// RunShipper runs a shipper until ctx is done. It is the entry point for
// "kobs trace ship" and for running a shipper beside a broker (make run):
//
//	go tracing.RunShipper(ctx, tracing.ShipperConfig{Brokers: []string{addr}, URL: storeURL})
func RunShipper(ctx context.Context, cfg ShipperConfig) error {
	s, err := NewShipper(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// NewShipper validates cfg and builds the store client. It does not contact
// the store (which may not be up yet).
func NewShipper(cfg ShipperConfig) (*Shipper, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	es, err := newESClient(cfg.URL)
	if err != nil {
		return nil, err
	}
	return &Shipper{cfg: cfg, log: cfg.Logger, es: es, indexes: map[string]bool{}, groups: map[[2]string]bool{}}, nil
}

// newESClient makes an olivere client for one URL that neither sniffs nor
// health-checks at creation, so it can be built while the store is down.
func newESClient(url string) (*elastic.Client, error) {
	es, err := elastic.NewClient(elastic.SetURL(url), elastic.SetSniff(false), elastic.SetHealthcheck(false),
		elastic.SetHttpClient(&http.Client{Timeout: 60 * time.Second}))
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client for %s: %w", url, err)
	}
	return es, nil
}

// Stats returns the counters so far.
func (s *Shipper) Stats() ShipperStats {
	return ShipperStats{Shipped: s.shipped.Load(), Corrupt: s.corrupt.Load(), Rejected: s.rejected.Load(),
		Retries: s.retries.Load(), Committed: s.committed.Load()}
}

// Run consumes and ships until ctx is done. Uncommitted events (shipped or
// not) are consumed again by the next member of the group.
func (s *Shipper) Run(ctx context.Context) error {
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Between a poll and its commit the partitions must stay ours, or
		// a rebalance could hand them to another shipper that re-ships what
		// we are about to commit (harmless, ids are idempotent) or, worse,
		// commit after us out of order.
		kgo.BlockRebalanceOnPoll(),
		kgo.ClientID("kobs-trace-shipper"),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.SessionTimeout(s.cfg.SessionTimeout),
	}
	opts = append(opts, s.cfg.ConsumerOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("trace shipper: consumer: %w", err)
	}
	// Close without committing: a commit on leave would be wrong when a
	// bulk is still unacknowledged.
	defer cl.CloseAllowingRebalance()
	// Create the trace topic if no traced client has yet: a group
	// subscribed to a missing topic only notices it at a later metadata
	// refresh, which would delay the first journeys by seconds. Failure
	// (no permission, already exists) is fine; consuming still works.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, _ = kadm.NewClient(cl).CreateTopic(cctx, -1, -1, nil, s.cfg.Topic)
	cancel()

	bp, err := s.es.BulkProcessor().
		Name("kobs-trace-shipper").
		Workers(1).
		BulkActions(-1). // one bulk per poll, flushed by us, so we know what a commit covers
		BulkSize(-1).
		FlushInterval(0).
		// One attempt per Flush; the retry loop with backoff is ours so it
		// can stop on ctx and never commit past a failure.
		Backoff(elastic.StopBackoff{}).
		RetryItemStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusServiceUnavailable, http.StatusInsufficientStorage).
		After(s.after).
		Do(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("trace shipper: bulk processor: %w", err)
	}
	defer func() {
		// Close flushes whatever is left; it is not committed, so it is
		// at most shipped twice. Bound it so a down store cannot hang exit.
		done := make(chan struct{})
		go func() { _ = bp.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}()

	s.log.Info("trace shipper started", "topic", s.cfg.Topic, "group", s.cfg.Group, "url", s.cfg.URL)
	for {
		// Records pack 1..batchEvents events (at most batchBytes), so a
		// poll of BatchEvents/16 records bounds memory (~20 MB) while a
		// stream of small records still fills a bulk; ship splits the
		// events into bulks of BatchEvents.
		fetches := cl.PollRecords(ctx, max(1, s.cfg.BatchEvents/16))
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			s.log.Warn("trace topic fetch error", "topic", t, "partition", p, "err", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		if err := s.ship(ctx, bp, recs); err != nil {
			return nil // only ctx ends a ship; nothing is committed
		}
		if err := cl.CommitRecords(ctx, recs...); err != nil {
			// The events are in the store; the next owner re-ships them
			// onto the same ids.
			s.log.Warn("trace shipper commit failed", "err", err)
		} else {
			s.committed.Add(1)
		}
		cl.AllowRebalance()
	}
}

// after records a bulk's outcome (called by the processor's worker).
func (s *Shipper) after(_ int64, reqs []elastic.BulkableRequest, res *elastic.BulkResponse, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bulkErr = err
	if res == nil {
		return
	}
	for _, item := range res.Items {
		for _, r := range item {
			switch {
			case r.Status >= 200 && r.Status < 300:
				s.shipped.Add(1)
			case r.Status == http.StatusConflict && r.Index == GroupsIndex(s.cfg.IndexPrefix):
				// The (topic, group) sighting is already recorded.
			case err == nil || !errors.Is(err, elastic.ErrBulkItemRetry) || !retryable(r.Status):
				// Refused for good (bad document): retrying would wedge
				// the shipper on one event.
				s.rejected.Add(1)
				s.log.Warn("store rejected trace event", "index", r.Index, "id", r.Id, "status", r.Status, "error", errorReason(r.Error))
			}
		}
	}
}

func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusServiceUnavailable, http.StatusInsufficientStorage:
		return true
	}
	return false
}

func errorReason(e *elastic.ErrorDetails) string {
	if e == nil {
		return ""
	}
	return e.Type + ": " + e.Reason
}

// ship writes recs to the store and returns once every event is
// acknowledged (nil) or ctx is done (its error).
func (s *Shipper) ship(ctx context.Context, bp *elastic.BulkProcessor, recs []*kgo.Record) error {
	queued := 0
	for _, r := range recs {
		// A trace-topic record carries one or more events as
		// newline-delimited JSON (see Emitter).
		for raw := range bytes.SplitSeq(r.Value, []byte{'\n'}) {
			if len(raw) == 0 {
				continue
			}
			if err := s.add(ctx, bp, r, raw); err != nil {
				return err
			}
			// Keep each bulk request within BatchEvents: a poll of
			// packed records may hold far more events than that.
			if queued++; queued >= s.cfg.BatchEvents {
				if err := s.flush(ctx, bp); err != nil {
					return err
				}
				queued = 0
			}
		}
	}
	return s.flush(ctx, bp)
}

// flush sends what the processor holds and retries with backoff until the
// store acknowledged all of it or ctx is done.
func (s *Shipper) flush(ctx context.Context, bp *elastic.BulkProcessor) error {
	backoff := 100 * time.Millisecond
	for {
		_ = bp.Flush() // always nil; the outcome comes through after
		s.mu.Lock()
		err := s.bulkErr
		s.bulkErr = nil
		s.mu.Unlock()
		if err == nil {
			return nil
		}
		// The processor keeps unacknowledged requests (failed bulk, or
		// items with retryable statuses) for the next Flush.
		s.retries.Add(1)
		s.log.Warn("trace bulk failed; retrying without committing", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// add queues one event for the store; a corrupt event is counted and
// skipped (it can never succeed, and must not hold up the rest).
func (s *Shipper) add(ctx context.Context, bp *elastic.BulkProcessor, r *kgo.Record, raw []byte) error {
	e, err := ParseEvent(raw)
	if err != nil {
		s.corrupt.Add(1)
		s.log.Warn("skipping corrupt trace event", "partition", r.Partition, "offset", r.Offset, "err", err)
		return nil
	}
	s.drops.saw(&e)
	if e.Type == TypeDrop {
		s.drops.add(&e)
	}
	idx := IndexName(s.cfg.IndexPrefix, e.TS)
	if err := s.ensureIndex(ctx, idx, Mapping); err != nil {
		return err
	}
	bp.Add(elastic.NewBulkIndexRequest().Index(idx).Id(DocID(&e, raw)).Doc(json.RawMessage(raw)))
	if e.Type == TypeConsume {
		k := [2]string{e.Topic, e.Group}
		if !s.groups[k] {
			gi := GroupsIndex(s.cfg.IndexPrefix)
			if err := s.ensureIndex(ctx, gi, GroupsMapping); err != nil {
				return err
			}
			doc := map[string]any{"topic": e.Topic, "group": e.Group, "first_ts": e.TS}
			// create, not index: first_ts stays the first sighting; a
			// 409 on re-ship is an acknowledgement for our purpose.
			bp.Add(elastic.NewBulkCreateRequest().Index(gi).Id(e.Topic + "|" + e.Group).Doc(doc))
			s.groups[k] = true
		}
	}
	return nil
}

// ensureIndex creates a daily index with the trace mapping the first time
// this process writes to it, waiting out a store that is down.
func (s *Shipper) ensureIndex(ctx context.Context, name, mapping string) error {
	if s.indexes[name] {
		return nil
	}
	backoff := 100 * time.Millisecond
	for {
		_, err := s.es.CreateIndex(name).BodyString(mapping).Do(ctx)
		if err == nil {
			s.indexes[name] = true
			return nil
		}
		if isAlreadyExists(err) {
			// Created by another shipper, or by an older version without
			// the batch fields: add any fields it lacks (PUT _mapping merges;
			// with "dynamic": false they would stay unsearchable there).
			if mapping != Mapping {
				s.indexes[name] = true
				return nil
			}
			if _, err = s.es.PutMapping().Index(name).BodyString(`{"properties": ` + mappingProperties + `}`).Do(ctx); err == nil {
				s.indexes[name] = true
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.retries.Add(1)
		s.log.Warn("cannot create trace index; retrying", "index", name, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

func isAlreadyExists(err error) bool {
	var ee *elastic.Error
	return errors.As(err, &ee) && ee.Details != nil &&
		(ee.Details.Type == "resource_already_exists_exception" || ee.Details.Type == "index_already_exists_exception")
}
