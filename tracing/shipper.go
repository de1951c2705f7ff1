package tracing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	// BatchEvents bounds the events per bulk request, default 5000.
	BatchEvents int
	// BatchBytes bounds the bytes per bulk request, default 5 MiB (the
	// BulkProcessor's default; Elasticsearch advises 5-15 MB).
	BatchBytes int
	// Workers is the number of bulk requests in flight, default 2: one is
	// indexed by the store while the next one fills.
	Workers int
	// FlushInterval bounds how long an event waits for its bulk to fill
	// when the trace topic is quiet, default 200ms.
	FlushInterval time.Duration
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
	if c.BatchBytes <= 0 {
		c.BatchBytes = 5 << 20
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 200 * time.Millisecond
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
//
// The events go through olivere's BulkProcessor as it is meant to be used:
// the poll loop adds one request per event and goes on polling while the
// processor's workers send bulks (bounded by BatchEvents, BatchBytes and
// FlushInterval) and retry failed ones with backoff. Each request carries
// its trace-topic record; the After callback counts acknowledgements per
// record, and the poll loop commits, per partition, the offset below the
// first record that still has events unacknowledged (commitTracker).
type Shipper struct {
	cfg ShipperConfig
	log *slog.Logger
	es  *elastic.Client

	shipped, corrupt, rejected, retries, committed atomic.Int64
	drops                                          dropCounts // kobs_trace_events_dropped_total

	// Used by the poll loop only.
	bp      *elastic.BulkProcessor
	indexes map[string]bool // indexes known to exist, this process
	groups  map[string]bool // topic "\x00" group pairs written to GroupsIndex
	day     dailyIndex
	seen    []byte // client id and tier of the last event (drops.saw)
	key     []byte // scratch
	idBuf   []byte // scratch
	action  []byte // scratch

	track    commitTracker
	retry    retryQueue
	procMu   sync.Mutex    // held by a rebalance callback using the processor, and to stop it
	stopping bool          // the processor is closing: rebalance callbacks leave it alone
	flushed  chan struct{} // closed when the last Flush returned
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
	es, err := newESClient(cfg.URL, elastic.SetErrorLog(slogPrinter{cfg.Logger}), elastic.SetDecoder(bulkDecoder{}))
	if err != nil {
		return nil, err
	}
	return &Shipper{cfg: cfg, log: cfg.Logger, es: es, indexes: map[string]bool{}, groups: map[string]bool{}}, nil
}

// newESClient makes an olivere client for one URL that neither sniffs nor
// health-checks at creation, so it can be built while the store is down.
func newESClient(url string, opts ...elastic.ClientOptionFunc) (*elastic.Client, error) {
	es, err := elastic.NewClient(append([]elastic.ClientOptionFunc{elastic.SetURL(url), elastic.SetSniff(false), elastic.SetHealthcheck(false),
		elastic.SetHttpClient(&http.Client{Timeout: 60 * time.Second})}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client for %s: %w", url, err)
	}
	return es, nil
}

// slogPrinter passes olivere's error log (a bulk that failed and will be
// retried, a node marked dead) to the shipper's logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.log.Warn(fmt.Sprintf(format, v...)) }

// Stats returns the counters so far.
func (s *Shipper) Stats() ShipperStats {
	return ShipperStats{Shipped: s.shipped.Load(), Corrupt: s.corrupt.Load(), Rejected: s.rejected.Load(),
		Retries: s.retries.Load(), Committed: s.committed.Load()}
}

// revokeWait bounds how long a rebalance waits for the bulks in flight
// before the partitions are given up uncommitted (the next owner re-ships
// their events onto the same ids); it stays below kgo's default rebalance
// timeout of 60s.
const revokeWait = 20 * time.Second

// Run consumes and ships until ctx is done. Uncommitted events (shipped or
// not) are consumed again by the next member of the group.
func (s *Shipper) Run(ctx context.Context) error {
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Rebalance callbacks run only between polls (after
		// AllowRebalance), never while the poll loop adds records of a
		// partition that is being revoked.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.ClientID("kobs-trace-shipper"),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.SessionTimeout(s.cfg.SessionTimeout),
	}
	opts = append(opts, s.cfg.ConsumerOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("trace shipper: consumer: %w", err)
	}
	defer cl.CloseAllowingRebalance()
	// Create the trace topic if no traced client has yet: a group
	// subscribed to a missing topic only notices it at a later metadata
	// refresh, which would delay the first journeys by seconds. Failure
	// (no permission, already exists) is fine; consuming still works.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, _ = kadm.NewClient(cl).CreateTopic(cctx, -1, -1, nil, s.cfg.Topic)
	cancel()

	s.bp, err = s.es.BulkProcessor().
		Name("kobs-trace-shipper").
		Workers(s.cfg.Workers).
		BulkActions(s.cfg.BatchEvents).
		BulkSize(s.cfg.BatchBytes).
		FlushInterval(s.cfg.FlushInterval).
		// A failed bulk is retried whole until the store takes it or the
		// shipper stops; its records, and the ones after them in their
		// partitions, stay uncommitted meanwhile.
		Backoff(shipBackoff{s: s, ctx: ctx}).
		// Items the store refused with a retryable status are retried by
		// retryQueue, not by the processor: after an item retry the
		// processor's After callback sees only the last attempt's
		// response, so the first attempt's permanent refusals would go
		// uncounted.
		RetryItemStatusCodes().
		After(s.after).
		// Not ctx: a bulk in flight when the shipper stops is finished,
		// so that its events can still be committed.
		Do(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("trace shipper: bulk processor: %w", err)
	}
	s.retry.start(ctx, s)
	defer s.stop(cl)

	s.log.Info("trace shipper started", "topic", s.cfg.Topic, "group", s.cfg.Group, "url", s.cfg.URL)
	// Commits ride on the poll loop (a rebalance cannot run meanwhile),
	// so a poll waits at most this long while the topic is quiet.
	commitEvery := s.cfg.FlushInterval
	lastCommit := time.Now()
	for {
		pctx, cancel := context.WithTimeout(ctx, commitEvery)
		fetches := cl.PollRecords(pctx, s.cfg.BatchEvents)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("trace topic fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		var err error
		fetches.EachRecord(func(r *kgo.Record) {
			if err == nil {
				err = s.addRecord(ctx, r)
			}
		})
		if err != nil {
			return nil // only ctx ends an add; the stop commits what was stored
		}
		if time.Since(lastCommit) >= commitEvery {
			s.commit(ctx, cl, nil)
			lastCommit = time.Now()
		}
		cl.AllowRebalance()
	}
}

// stop finishes the bulks in flight (within bounds: the store may be down),
// commits what the store acknowledged, and stops the processor.
func (s *Shipper) stop(cl *kgo.Client) {
	s.procMu.Lock() // a rebalance callback still using the processor finishes first
	defer s.procMu.Unlock()
	s.stopping = true // any later one (the client leaving the group) leaves it alone
	flushed := s.flushWithin(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.commit(ctx, cl, nil)
	if !flushed {
		// A worker is still retrying (its backoff ends with ctx) or the
		// store does not answer: closing now would race the flush.
		s.log.Warn("trace shipper: bulks still unacknowledged at stop; their events are not committed")
		return
	}
	done := make(chan struct{})
	go func() {
		s.retry.stop() // before Close: an Add after it would panic
		_ = s.bp.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// flushWithin asks the processor to send what it holds and waits for the
// outcome, at most d; it reports whether the flush finished. A flush that
// outlived its wait (the store is down) is waited for by the next call
// instead of starting another.
func (s *Shipper) flushWithin(d time.Duration) bool {
	if s.flushed == nil || isClosed(s.flushed) {
		done := make(chan struct{})
		s.flushed = done
		go func() { _ = s.bp.Flush(); close(done) }()
	}
	select {
	case <-s.flushed:
		return true
	case <-time.After(d):
		return false
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// revoked is called before partitions move to another shipper: the bulks in
// flight are finished and what they stored is committed, so the next owner
// starts where this one stopped.
func (s *Shipper) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	if s.stopping {
		s.track.forget(parts) // stop committed what was stored
		return
	}
	if !s.flushWithin(revokeWait) {
		s.log.Warn("trace shipper: bulks still unacknowledged at a rebalance; their partitions are handed over uncommitted", "partitions", parts)
	}
	s.commit(ctx, cl, parts)
	s.track.forget(parts)
}

// lost is called when partitions were taken away (the session expired):
// nothing of them may be committed any more.
func (s *Shipper) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	s.track.forget(parts)
}

// commit commits, for the partitions in only (all when nil), the offsets up
// to which the store acknowledged every event.
func (s *Shipper) commit(ctx context.Context, cl *kgo.Client, only map[string][]int32) {
	offsets := s.track.ready(only)
	if len(offsets) == 0 {
		return
	}
	var failed error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			failed = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerrOf(p.ErrorCode); err != nil && failed == nil {
					failed = err
				}
			}
		}
	})
	if failed != nil {
		// The events are in the store; the next commit (or the next
		// owner, re-shipping onto the same ids) covers them.
		s.log.Warn("trace shipper commit failed", "err", failed)
		return
	}
	s.track.committed(offsets)
	s.committed.Add(1)
}

// addRecord hands the events of one trace-topic record to the processor.
func (s *Shipper) addRecord(ctx context.Context, r *kgo.Record) error {
	rec := s.track.begin(r)
	defer s.track.done(rec) // the hold begin took
	// A trace-topic record carries one or more events as newline-delimited
	// JSON (see Emitter).
	for raw := range bytes.SplitSeq(r.Value, []byte{'\n'}) {
		if len(raw) == 0 {
			continue
		}
		if err := s.add(ctx, rec, r, raw); err != nil {
			return err
		}
	}
	return nil
}

// add queues one event for the store; a corrupt event is counted and
// skipped (it can never succeed, and must not hold up the rest).
func (s *Shipper) add(ctx context.Context, rec *pendingRecord, r *kgo.Record, raw []byte) error {
	h, err := scanEvent(raw)
	if err != nil {
		s.corrupt.Add(1)
		s.log.Warn("skipping corrupt trace event", "partition", r.Partition, "offset", r.Offset, "err", err)
		return nil
	}
	s.sawClient(&h)
	if h.typ == TypeDrop {
		s.drops.add(string(h.clientID), h.tier(), string(h.reason), h.dropped)
	}
	idx := s.day.name(s.cfg.IndexPrefix, h.ts)
	if err := s.ensureIndex(ctx, idx, Mapping); err != nil {
		return err
	}
	// The action line is written here, once: the processor asks for it
	// to size the bulk and again to send it.
	s.idBuf = appendDocID(s.idBuf[:0], h.msgID, h.typ, h.group, raw)
	s.action = appendIndexAction(s.action[:0], idx, s.idBuf)
	s.track.hold(rec)
	s.bp.Add(&eventRequest{lines: []string{string(s.action), string(raw)}, rec: rec})
	if h.typ != TypeConsume {
		return nil
	}
	s.key = append(append(append(s.key[:0], h.topic...), 0), h.group...)
	if s.groups[string(s.key)] {
		return nil
	}
	gi := GroupsIndex(s.cfg.IndexPrefix)
	if err := s.ensureIndex(ctx, gi, GroupsMapping); err != nil {
		return err
	}
	topic, group := string(h.topic), string(h.group)
	doc := map[string]any{"topic": topic, "group": group, "first_ts": h.ts}
	// create, not index: first_ts stays the first sighting; a 409 on
	// re-ship is an acknowledgement for our purpose.
	s.track.hold(rec)
	s.bp.Add(&shipRequest{elastic.NewBulkCreateRequest().Index(gi).Id(topic + "|" + group).Doc(doc), rec})
	s.groups[string(s.key)] = true
	return nil
}

// sawClient starts the drop series of an event's client (drops.saw), cheaply
// for a run of events from one client.
func (s *Shipper) sawClient(h *eventHead) {
	tier := h.tier()
	if len(s.seen) == len(h.clientID)+1 && bytes.Equal(s.seen[:len(h.clientID)], h.clientID) && s.seen[len(h.clientID)] == tier[0] {
		return
	}
	s.drops.saw(string(h.clientID), tier)
	s.seen = append(append(s.seen[:0], h.clientID...), tier[0])
}

// tier is the tier label of the event's client: consumer events name a
// group.
func (h *eventHead) tier() string {
	if len(h.group) > 0 {
		return "consumer"
	}
	return "producer"
}

// dailyIndex caches the name of the daily index of the last event's day.
type dailyIndex struct {
	from, to int64 // [from, to) in Unix ms
	index    string
	prefix   string
}

func (d *dailyIndex) name(prefix string, ts int64) string {
	if ts < d.from || ts >= d.to || prefix != d.prefix {
		day := time.UnixMilli(ts).UTC().Truncate(24 * time.Hour)
		d.from, d.to = day.UnixMilli(), day.Add(24*time.Hour).UnixMilli()
		d.index, d.prefix = IndexName(prefix, ts), prefix
	}
	return d.index
}

// tracked is a bulk request that knows its trace-topic record.
type tracked interface {
	elastic.BulkableRequest
	record() *pendingRecord
}

// eventRequest is the index request of one event: the action line and the
// event's bytes as read from the trace topic. It is a BulkableRequest of
// its own rather than olivere's BulkIndexRequest, which marshals the
// action and copies the document for every event.
type eventRequest struct {
	lines []string // action, document
	rec   *pendingRecord
}

func (r *eventRequest) Source() ([]string, error) { return r.lines, nil }
func (r *eventRequest) String() string            { return strings.Join(r.lines, "\n") }
func (r *eventRequest) record() *pendingRecord    { return r.rec }

// appendIndexAction appends the _bulk action line that indexes a document
// with this id into index.
func appendIndexAction(b []byte, index string, id []byte) []byte {
	b = append(b, `{"index":{"_index":`...)
	b = appendJSONString(b, index)
	b = append(b, `,"_id":`...)
	b = appendJSONBytes(b, id)
	return append(b, "}}"...)
}

// shipRequest is any other olivere request (a group sighting) with the
// trace-topic record it came from.
type shipRequest struct {
	elastic.BulkableRequest
	rec *pendingRecord
}

func (r *shipRequest) record() *pendingRecord { return r.rec }

// after records a bulk's outcome (called by the processor's workers).
func (s *Shipper) after(_ int64, reqs []elastic.BulkableRequest, res *elastic.BulkResponse, err error) {
	if err != nil {
		// The backoff gave up: the shipper is stopping. Nothing of this
		// bulk counts as stored.
		return
	}
	if res == nil || len(res.Items) != len(reqs) {
		// Not Elasticsearch's answer (one item per request, in order): no
		// item can be trusted, so all are sent again.
		s.log.Warn("store answered a bulk with a different number of items; retrying it", "requests", len(reqs))
		s.retry.add(reqs...)
		return
	}
	retried := 0
	for i, item := range res.Items {
		req := reqs[i].(tracked)
		var r *elastic.BulkResponseItem
		for _, v := range item {
			r = v
		}
		switch {
		case len(item) != 1 || r == nil:
			// Not an item of Elasticsearch's shape: send it again.
			s.retry.add(req)
			retried++
			continue
		case r.Status >= 200 && r.Status < 300:
			s.shipped.Add(1)
		case r.Status == http.StatusConflict && r.Index == GroupsIndex(s.cfg.IndexPrefix):
			// The (topic, group) sighting is already recorded.
		case retryable(r.Status):
			s.retry.add(req)
			retried++
			continue
		default:
			// Refused for good (bad document): retrying would wedge the
			// shipper on one event.
			s.rejected.Add(1)
			s.log.Warn("store rejected trace event", "index", r.Index, "id", r.Id, "status", r.Status, "error", errorReason(r.Error))
		}
		s.track.done(req.record())
	}
	if retried == 0 {
		s.retry.succeeded()
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

// shipBackoff is the processor's backoff for a failed bulk request (store
// down, 429 for the whole request): exponential from 100ms to MaxBackoff,
// counted, until the shipper stops.
type shipBackoff struct {
	s   *Shipper
	ctx context.Context
}

func (b shipBackoff) Next(retry int) (time.Duration, bool) {
	if b.ctx.Err() != nil {
		return 0, false
	}
	b.s.retries.Add(1)
	return backoffAt(retry, b.s.cfg.MaxBackoff), true
}

// backoffAt is the wait before the retry-th retry: 100ms doubling up to
// max.
func backoffAt(retry int, max time.Duration) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < retry && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// retryQueue sends items the store refused with a retryable status (its
// queue or disk full: 429, 507, ...) again, after a backoff that grows while
// bulks keep having such items. The After callback cannot add them to the
// processor itself: it runs on a worker, and Add waits for a free worker.
type retryQueue struct {
	mu      sync.Mutex
	reqs    []elastic.BulkableRequest
	streak  int // rounds in a row with retryable items
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
}

func (q *retryQueue) start(ctx context.Context, s *Shipper) {
	q.wake, q.done, q.stopped = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(q.stopped)
		for {
			select {
			case <-q.wake:
			case <-q.done:
				return
			case <-ctx.Done():
				return // nothing is sent after the stop
			}
			q.mu.Lock()
			q.streak++
			wait := backoffAt(q.streak, s.cfg.MaxBackoff)
			q.mu.Unlock()
			select {
			case <-time.After(wait):
			case <-q.done:
				return
			case <-ctx.Done():
				return
			}
			q.mu.Lock()
			reqs := q.reqs
			q.reqs = nil
			q.mu.Unlock()
			s.retries.Add(1)
			s.log.Warn("store refused trace events for now (queue or disk full); retrying them without committing", "events", len(reqs), "backoff", wait)
			for _, r := range reqs {
				if ctx.Err() != nil {
					return
				}
				s.bp.Add(r)
			}
		}
	}()
}

func (q *retryQueue) add(reqs ...elastic.BulkableRequest) {
	q.mu.Lock()
	q.reqs = append(q.reqs, reqs...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// succeeded resets the backoff after a bulk without retryable items.
func (q *retryQueue) succeeded() {
	q.mu.Lock()
	q.streak = 0
	q.mu.Unlock()
}

func (q *retryQueue) stop() {
	if q.done != nil {
		close(q.done)
		<-q.stopped
	}
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
