package tracing

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/olivere/elastic/v7"
)

// Query selects messages. Exactly one selector is used, in this order:
// MsgID, TraceID, Key (optionally within Topic), Topic+Partition+Offset,
// Topic (+From/To).
type Query struct {
	MsgID     string
	TraceID   string
	Key       string
	Topic     string
	Partition int32 // -1: any
	Offset    int64 // -1: any
	From, To  time.Time
	// Limit caps the journeys returned, default 100, at most 10000.
	Limit int
}

// NewQuery returns a Query with no partition or offset selected.
func NewQuery() Query { return Query{Partition: -1, Offset: -1} }

// ErrBadQuery marks queries that select nothing meaningful.
var ErrBadQuery = errors.New("bad trace query")

func (q *Query) validate() error {
	switch {
	case q.MsgID != "", q.TraceID != "", q.Key != "":
	case q.Topic != "" && (q.Offset >= 0) != (q.Partition >= 0):
		return fmt.Errorf("%w: an offset needs a partition and a partition needs an offset", ErrBadQuery)
	case q.Topic != "":
	default:
		return fmt.Errorf("%w: give a message id, trace id, key, topic+partition+offset or topic (+ time range)", ErrBadQuery)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, maxJourneys)
	return nil
}

const maxJourneys = 10000

// Produced is the producer's side of a journey.
type Produced struct {
	ClientID  string    `json:"client_id,omitempty"`
	Host      string    `json:"host,omitempty"`
	SentAt    time.Time `json:"sent_at"`
	AckedAt   time.Time `json:"acked_at"`
	LatencyUS int64     `json:"latency_us"`
	Error     string    `json:"error,omitempty"`
}

// Stored is where the broker stored the message, from the acknowledgement.
type Stored struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	// BrokerTime is the record timestamp after the ack: the broker's log
	// append time on LogAppendTime topics, the create time otherwise.
	BrokerTime time.Time `json:"broker_time"`
}

// Consumed is one delivery of the message to a consumer-group member.
type Consumed struct {
	Group    string    `json:"group"`
	Member   string    `json:"member,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	Host     string    `json:"host,omitempty"`
	At       time.Time `json:"at"`
	E2EUS    int64     `json:"e2e_us"`
}

// Journey is one message's way through the cluster.
type Journey struct {
	MsgID    string     `json:"msg_id"`
	TraceID  string     `json:"trace_id,omitempty"`
	Topic    string     `json:"topic"`
	Key      string     `json:"key,omitempty"`
	Size     int        `json:"size"`
	Produced *Produced  `json:"produced,omitempty"` // nil: the producer was not traced (or its event is not shipped yet)
	Stored   *Stored    `json:"stored,omitempty"`   // nil: not acknowledged
	Consumed []Consumed `json:"consumed"`
	// NotConsumedBy lists the groups known to consume the topic (seen in
	// any consume event of it) that have not consumed this message yet.
	NotConsumedBy []string `json:"not_consumed_by"`
	// Incomplete is set when a client recorded dropping some of this
	// message's trace events (Gaps says who and when): hops missing from
	// the journey may still have happened.
	Incomplete bool  `json:"incomplete"`
	Gaps       []Gap `json:"gaps,omitempty"`
}

// Gap is a drop event: trace events a client could not write to the trace
// topic in a time window.
type Gap struct {
	ClientID string    `json:"client_id,omitempty"`
	Host     string    `json:"host,omitempty"`
	Group    string    `json:"group,omitempty"`
	Topic    string    `json:"topic"`
	Reason   string    `json:"reason"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	// Dropped counts the events lost in the window (of any message);
	// IDsRecorded is false when the window lost more events than a drop
	// event lists ids for, so the gap may concern messages it does not name.
	Dropped     int64 `json:"dropped"`
	IDsRecorded bool  `json:"ids_recorded"`
}

func gapOf(e *Event) Gap {
	return Gap{ClientID: e.ClientID, Host: e.Host, Group: e.Group, Topic: e.Topic, Reason: e.Error,
		From: time.UnixMilli(e.FirstTS).UTC(), To: time.UnixMilli(e.TS).UTC(), Dropped: e.Dropped,
		IDsRecorded: int64(len(e.DroppedIDs)) >= e.Dropped}
}

// Querier answers journey queries from any Elasticsearch-7-compatible store.
type Querier struct {
	es     *elastic.Client
	prefix string
}

// NewQuerier returns a querier for the store at url; prefix "" means
// IndexPrefix.
func NewQuerier(url, prefix string) (*Querier, error) {
	if prefix == "" {
		prefix = IndexPrefix
	}
	es, err := newESClient(url)
	if err != nil {
		return nil, err
	}
	return &Querier{es: es, prefix: prefix}, nil
}

// dailyPattern matches the daily indexes but not GroupsIndex (index
// patterns only know "*", and every daily index starts with a year).
func (q *Querier) dailyPattern() string { return q.prefix + "2*" }

// Journeys returns the journeys of the messages q selects, oldest first.
func (qr *Querier) Journeys(ctx context.Context, q Query) ([]Journey, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	var ids []string
	if q.MsgID != "" {
		ids = []string{q.MsgID}
	} else {
		var err error
		if ids, err = qr.selectMsgIDs(ctx, q); err != nil {
			return nil, err
		}
	}
	if len(ids) == 0 {
		return []Journey{}, nil
	}
	events, err := qr.eventsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	gaps, err := qr.gapsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	known := map[string][]string{}
	byMsg := map[string][]Event{}
	for _, e := range events {
		byMsg[e.MsgID] = append(byMsg[e.MsgID], e)
	}
	out := make([]Journey, 0, len(byMsg))
	for _, id := range ids {
		evs, ok := byMsg[id]
		if !ok && len(gaps[id]) == 0 {
			continue
		}
		j := assemble(id, evs)
		if g := gaps[id]; len(g) > 0 {
			j.Incomplete, j.Gaps = true, g
			if j.Topic == "" {
				j.Topic = g[0].Topic
			}
		}
		groups, ok := known[j.Topic]
		if !ok {
			if groups, err = qr.knownGroups(ctx, j.Topic); err != nil {
				return nil, err
			}
			known[j.Topic] = groups
		}
		for _, g := range groups {
			if !slices.ContainsFunc(j.Consumed, func(c Consumed) bool { return c.Group == g }) {
				j.NotConsumedBy = append(j.NotConsumedBy, g)
			}
		}
		out = append(out, j)
	}
	slices.SortStableFunc(out, func(a, b Journey) int { return cmp.Compare(journeyTime(a), journeyTime(b)) })
	return out, nil
}

func journeyTime(j Journey) int64 {
	if j.Produced != nil {
		return j.Produced.SentAt.UnixMilli()
	}
	if len(j.Consumed) > 0 {
		return j.Consumed[0].At.UnixMilli()
	}
	return 0
}

// assemble builds one journey from its events (any order).
func assemble(id string, evs []Event) Journey {
	j := Journey{MsgID: id, Consumed: []Consumed{}, NotConsumedBy: []string{}}
	for _, e := range evs {
		if j.Topic == "" {
			j.Topic, j.Key, j.Size = e.Topic, e.Key, e.Size
		}
		if j.TraceID == "" {
			j.TraceID = e.TraceID
		}
		switch e.Type {
		case TypeProduce:
			// A retried produce of the same record id keeps the successful one.
			if j.Produced != nil && j.Produced.Error == "" {
				continue
			}
			j.Topic, j.Key, j.Size, j.TraceID = e.Topic, e.Key, e.Size, cmp.Or(e.TraceID, j.TraceID)
			j.Produced = &Produced{ClientID: e.ClientID, Host: e.Host, SentAt: time.UnixMilli(e.SendTS).UTC(),
				AckedAt: time.UnixMilli(e.TS).UTC(), LatencyUS: e.LatencyUS, Error: e.Error}
			if e.Error == "" {
				j.Stored = &Stored{Partition: e.Partition, Offset: e.Offset, BrokerTime: time.UnixMilli(e.RecordTS).UTC()}
			}
		case TypeConsume:
			j.Consumed = append(j.Consumed, Consumed{Group: e.Group, Member: e.Member, ClientID: e.ClientID, Host: e.Host,
				At: time.UnixMilli(e.TS).UTC(), E2EUS: e.E2EUS})
			if j.Stored == nil {
				// No produce event (untraced or unshipped producer): the
				// consumer saw where it is stored.
				j.Stored = &Stored{Partition: e.Partition, Offset: e.Offset, BrokerTime: time.UnixMilli(e.RecordTS).UTC()}
			}
		}
	}
	slices.SortStableFunc(j.Consumed, func(a, b Consumed) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), a.At.Compare(b.At))
	})
	return j
}

// selectMsgIDs finds the message ids a non-id query selects, newest
// produce first, up to q.Limit. Batch produce events hold many messages:
// they are found by their multi-valued fields (msg_ids, keys, trace_ids) or
// their offset range, and only the records that match are taken from them.
func (qr *Querier) selectMsgIDs(ctx context.Context, q Query) ([]string, error) {
	b := elastic.NewBoolQuery()
	// match says which of a batch event's records the query selects.
	var match func(e *Event, i int) bool
	switch {
	case q.TraceID != "":
		// A minted message id is its record's trace id, and a batch event
		// lists a trace id only when it differs from the message id.
		b.Filter(elastic.NewBoolQuery().Should(elastic.NewTermQuery("trace_id", q.TraceID),
			elastic.NewTermQuery("trace_ids", q.TraceID), elastic.NewTermQuery("msg_ids", q.TraceID)))
		match = func(e *Event, i int) bool { return e.record(i).TraceID == q.TraceID }
	case q.Key != "":
		b.Filter(elastic.NewBoolQuery().Should(elastic.NewTermQuery("key", q.Key), elastic.NewTermQuery("keys", q.Key)))
		if q.Topic != "" {
			b.Filter(elastic.NewTermQuery("topic", q.Topic))
		}
		match = func(e *Event, i int) bool { return len(e.Keys) > 0 && e.Keys[i] == q.Key }
	case q.Partition >= 0:
		b.Filter(elastic.NewTermQuery("topic", q.Topic),
			elastic.NewTermQuery("partition", strconv.Itoa(int(q.Partition))),
			elastic.NewBoolQuery().Should(elastic.NewTermQuery("offset", strconv.FormatInt(q.Offset, 10)),
				elastic.NewBoolQuery().Filter(elastic.NewRangeQuery("offset").Lte(q.Offset), elastic.NewRangeQuery("last_offset").Gte(q.Offset))))
		match = func(e *Event, i int) bool { return e.Offset+int64(i) == q.Offset }
	default:
		// A topic's messages are the ones produced to it; consume events
		// would repeat them once per group.
		b.Filter(elastic.NewTermQuery("topic", q.Topic), elastic.NewTermQuery("type", TypeProduce))
		match = func(*Event, int) bool { return true }
	}
	if !q.From.IsZero() || !q.To.IsZero() {
		r := elastic.NewRangeQuery("ts")
		if !q.From.IsZero() {
			r.Gte(q.From.UnixMilli())
		}
		if !q.To.IsZero() {
			r.Lte(q.To.UnixMilli())
		}
		b.Filter(r)
	}
	// Drop events name no partition, offset, key or trace; keep them out.
	b.MustNot(elastic.NewTermQuery("type", TypeDrop))
	seen := map[string]bool{}
	var ids []string
	take := func(id string) bool {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		return len(ids) == q.Limit
	}
	// Each message has 1 + (groups) events; page until Limit distinct ids.
	for from := 0; len(ids) < q.Limit && from < maxJourneys*4; {
		size := min(q.Limit*4, 10000)
		res, err := qr.es.Search(qr.dailyPattern()).Query(b).Sort("ts", false).From(from).Size(size).
			FetchSourceContext(elastic.NewFetchSourceContext(true).Include("msg_id", "msg_ids", "offset", "keys", "trace_ids")).
			IgnoreUnavailable(true).AllowNoIndices(true).Do(ctx)
		if err != nil {
			return nil, fmt.Errorf("trace query: search: %w", err)
		}
	hits:
		for _, h := range res.Hits.Hits {
			var e Event
			if json.Unmarshal(h.Source, &e) != nil {
				continue
			}
			if !e.Batch() {
				if take(e.MsgID) {
					break
				}
				continue
			}
			// Newest first: the last record of a batch was produced last.
			for i := len(e.MsgIDs) - 1; i >= 0; i-- {
				if match(&e, i) && take(e.MsgIDs[i]) {
					break hits
				}
			}
		}
		if len(res.Hits.Hits) < size {
			break
		}
		from += size
	}
	return ids, nil
}

// eventsOf returns every stored event of the given messages, batch
// produce events expanded to the wanted messages' own events.
func (qr *Querier) eventsOf(ctx context.Context, ids []string) ([]Event, error) {
	var out []Event
	for chunk := range slices.Chunk(ids, 1000) {
		vals := make([]any, len(chunk))
		// A batch event holding ids of several chunks is found once per
		// chunk: each time it gives the events of this chunk's ids only.
		want := make(map[string]bool, len(chunk))
		for i, id := range chunk {
			vals[i] = id
			want[id] = true
		}
		for from := 0; ; {
			const size = 10000
			q := elastic.NewBoolQuery().Filter(elastic.NewBoolQuery().Should(elastic.NewTermsQuery("msg_id", vals...),
				elastic.NewTermsQuery("msg_ids", vals...))).MustNot(elastic.NewTermQuery("type", TypeDrop))
			res, err := qr.es.Search(qr.dailyPattern()).Query(q).
				Sort("ts", true).From(from).Size(size).IgnoreUnavailable(true).AllowNoIndices(true).Do(ctx)
			if err != nil {
				return nil, fmt.Errorf("trace query: events: %w", err)
			}
			for _, h := range res.Hits.Hits {
				var e Event
				if json.Unmarshal(h.Source, &e) != nil {
					continue
				}
				if !e.Batch() {
					out = append(out, e)
					continue
				}
				for i, id := range e.MsgIDs {
					if want[id] {
						out = append(out, e.record(i))
					}
				}
			}
			if len(res.Hits.Hits) < size {
				break
			}
			from += size
		}
	}
	return out, nil
}

// gapsOf returns the drop events naming the given messages, by message id.
func (qr *Querier) gapsOf(ctx context.Context, ids []string) (map[string][]Gap, error) {
	out := map[string][]Gap{}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for chunk := range slices.Chunk(ids, 1000) {
		vals := make([]any, len(chunk))
		for i, id := range chunk {
			vals[i] = id
		}
		q := elastic.NewBoolQuery().Filter(elastic.NewTermQuery("type", TypeDrop), elastic.NewTermsQuery("dropped_ids", vals...))
		evs, err := qr.drops(ctx, q)
		if err != nil {
			return nil, err
		}
		for i := range evs {
			g := gapOf(&evs[i])
			for _, id := range evs[i].DroppedIDs {
				if want[id] {
					out[id] = append(out[id], g)
				}
			}
		}
	}
	return out, nil
}

// GapsNear returns the drop events of topic whose window lies within margin
// of t: what to suspect when a record exists but has no trace events.
func (qr *Querier) GapsNear(ctx context.Context, topic string, t time.Time, margin time.Duration) ([]Gap, error) {
	q := elastic.NewBoolQuery().Filter(elastic.NewTermQuery("type", TypeDrop), elastic.NewTermQuery("topic", topic),
		elastic.NewRangeQuery("ts").Gte(t.Add(-margin).UnixMilli()),
		elastic.NewRangeQuery("first_ts").Lte(t.Add(margin).UnixMilli()))
	evs, err := qr.drops(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]Gap, 0, len(evs))
	for i := range evs {
		out = append(out, gapOf(&evs[i]))
	}
	return out, nil
}

func (qr *Querier) drops(ctx context.Context, q elastic.Query) ([]Event, error) {
	res, err := qr.es.Search(qr.dailyPattern()).Query(q).Sort("ts", true).Size(1000).
		IgnoreUnavailable(true).AllowNoIndices(true).Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace query: drop events: %w", err)
	}
	var out []Event
	for _, h := range res.Hits.Hits {
		var e Event
		if json.Unmarshal(h.Source, &e) == nil && e.Type == TypeDrop {
			out = append(out, e)
		}
	}
	return out, nil
}

// knownGroups returns the groups seen consuming topic, sorted.
func (qr *Querier) knownGroups(ctx context.Context, topic string) ([]string, error) {
	res, err := qr.es.Search(GroupsIndex(qr.prefix)).Query(elastic.NewTermQuery("topic", topic)).
		Size(10000).IgnoreUnavailable(true).AllowNoIndices(true).Do(ctx)
	if err != nil {
		if elastic.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("trace query: groups of %s: %w", topic, err)
	}
	var gs []string
	for _, h := range res.Hits.Hits {
		var d struct {
			Group string `json:"group"`
		}
		if json.Unmarshal(h.Source, &d) == nil && d.Group != "" {
			gs = append(gs, d.Group)
		}
	}
	slices.Sort(gs)
	return slices.Compact(gs), nil
}
