package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/stretchr/testify/require"
)

// traceEvent is a trace-event-like document (~300 bytes of JSON).
type traceEvent struct {
	MsgID     string            `json:"msg_id"`
	TraceID   string            `json:"trace_id"`
	Topic     string            `json:"topic"`
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Stage     string            `json:"stage"`
	Group     string            `json:"group,omitempty"`
	TS        string            `json:"ts"`
	LatencyMs float64           `json:"latency_ms"`
	OK        bool              `json:"ok"`
	Note      string            `json:"note"`
	Headers   map[string]string `json:"headers"`
}

var (
	testTopics = []string{"orders", "payments", "audit"}
	testStages = []string{"produced", "stored", "consumed"}
	testBase   = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
)

func makeEvent(i int) traceEvent {
	e := traceEvent{
		MsgID:     fmt.Sprintf("m-%05d", i),
		TraceID:   fmt.Sprintf("%032x", i*7919),
		Topic:     testTopics[i%3],
		Partition: i % 6,
		Offset:    int64(i / 6),
		Stage:     testStages[(i/3)%3],
		TS:        testBase.Add(time.Duration(i) * time.Second).Format("2006-01-02T15:04:05.000Z07:00"),
		LatencyMs: float64(i%100) / 10,
		OK:        i%2 == 0,
		Note:      "lorem ipsum dolor",
		Headers:   map[string]string{"traceparent": fmt.Sprintf("00-%032x-%016x-01", i*7919, i)},
	}
	if e.Stage == "consumed" {
		e.Group = fmt.Sprintf("group-%d", i%4)
	}
	if i%10 == 0 {
		e.Note = "Hello World from the broker"
	}
	return e
}

const traceMapping = `{
  "settings": {"number_of_shards": 1, "number_of_replicas": 0},
  "mappings": {"properties": {
    "msg_id": {"type": "keyword"}, "trace_id": {"type": "keyword"}, "topic": {"type": "keyword"},
    "partition": {"type": "integer"}, "offset": {"type": "long"}, "stage": {"type": "keyword"},
    "group": {"type": "keyword"}, "ts": {"type": "date"}, "latency_ms": {"type": "double"},
    "ok": {"type": "boolean"}, "note": {"type": "text"}
  }}
}`

func newOlivere(t testing.TB, url string) *elastic.Client {
	t.Helper()
	// The periodic healthcheck (every second, to exercise it) marks the
	// store dead when a HEAD / takes longer than its timeout, 1 s by
	// default, and the next request then fails with "no available
	// connection": a scheduling stall on a loaded machine would fail a
	// search. 10 s keeps the check without that race.
	c, err := elastic.NewClient(elastic.SetURL(url), elastic.SetSniff(false), elastic.SetHealthcheck(true),
		elastic.SetHealthcheckInterval(time.Second), elastic.SetHealthcheckTimeout(10*time.Second))
	require.NoError(t, err)
	t.Cleanup(c.Stop)
	return c
}

// hitIDs returns the ids of a search result in order.
func hitIDs(res *elastic.SearchResult) []string {
	var ids []string
	for _, h := range res.Hits.Hits {
		ids = append(ids, h.Id)
	}
	return ids
}

// expect filters and orders the generated events: the oracle for searches.
func expect(n int, keep func(traceEvent) bool, less func(a, b traceEvent) bool) []string {
	var evs []traceEvent
	for i := 0; i < n; i++ {
		if e := makeEvent(i); keep(e) {
			evs = append(evs, e)
		}
	}
	if less != nil {
		sort.SliceStable(evs, func(i, j int) bool { return less(evs[i], evs[j]) })
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.MsgID
	}
	return ids
}

func page(ids []string, from, size int) []string {
	if from > len(ids) {
		return nil
	}
	end := min(from+size, len(ids))
	return ids[from:end]
}

// TestOlivereClient drives the store exclusively through olivere/elastic/v7,
// the client the shipper uses: the store's responses must satisfy its
// decoders and its error handling.
func TestOlivereClient(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	ctx := context.Background()
	c := newOlivere(t, ts.URL)
	const index = "kobs-trace-2026.11.25"
	const n = 10000

	exists, err := c.IndexExists(index).Do(ctx)
	require.NoError(t, err)
	require.False(t, exists)

	created, err := c.CreateIndex(index).BodyString(traceMapping).Do(ctx)
	require.NoError(t, err)
	require.True(t, created.Acknowledged)
	require.True(t, created.ShardsAcknowledged)
	require.Equal(t, index, created.Index)

	exists, err = c.IndexExists(index).Do(ctx)
	require.NoError(t, err)
	require.True(t, exists)

	_, err = c.CreateIndex(index).BodyString(traceMapping).Do(ctx)
	var ee *elastic.Error
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 400, ee.Status)
	require.Equal(t, "resource_already_exists_exception", ee.Details.Type)
	require.Equal(t, index, ee.Details.Index)

	mapping, err := c.GetMapping().Index(index).Do(ctx)
	require.NoError(t, err)
	props := mapping[index].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
	require.Equal(t, map[string]any{"type": "keyword"}, props["msg_id"])
	require.Equal(t, map[string]any{"type": "date"}, props["ts"])

	// BulkProcessor with 10k documents; every item must come back 201.
	var mu sync.Mutex
	statuses := map[int]int{}
	seen := map[string]bool{}
	var afterErr error
	p, err := c.BulkProcessor().Name("test").Workers(2).BulkActions(1000).Stats(true).
		After(func(_ int64, _ []elastic.BulkableRequest, resp *elastic.BulkResponse, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				afterErr = err
				return
			}
			for _, it := range resp.Items {
				for action, r := range it {
					if action != "index" || r.Index != index || r.Type != "_doc" || r.Result != "created" ||
						r.Version != 1 || r.Shards == nil || r.Shards.Successful != 1 || r.PrimaryTerm != 1 {
						afterErr = fmt.Errorf("unexpected item %s %+v", action, r)
					}
					statuses[r.Status]++
					seen[r.Id] = true
				}
			}
		}).Do(ctx)
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		e := makeEvent(i)
		p.Add(elastic.NewBulkIndexRequest().Index(index).Id(e.MsgID).Doc(e))
	}
	require.NoError(t, p.Flush())
	st := p.Stats()
	require.NoError(t, p.Close())
	mu.Lock()
	require.NoError(t, afterErr)
	require.Equal(t, map[int]int{201: n}, statuses)
	require.Len(t, seen, n)
	mu.Unlock()
	require.EqualValues(t, n, st.Succeeded)
	require.EqualValues(t, n, st.Indexed) // "index" actions; Created counts "create" actions
	require.EqualValues(t, 0, st.Failed)

	refreshed, err := c.Refresh(index).Do(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, refreshed.Shards.Successful)

	count, err := c.Count(index).Do(ctx)
	require.NoError(t, err)
	require.EqualValues(t, n, count)

	byOffset := func(a, b traceEvent) bool {
		if a.Offset != b.Offset {
			return a.Offset < b.Offset
		}
		return a.MsgID < b.MsgID
	}
	tsDesc := func(a, b traceEvent) bool { return a.TS > b.TS }
	tsFrom := testBase.Add(1000 * time.Second)
	tsTo := testBase.Add(2000 * time.Second)
	cases := []struct {
		name   string
		query  elastic.Query
		sorts  []elastic.Sorter
		from   int
		size   int
		keep   func(traceEvent) bool
		less   func(a, b traceEvent) bool
		scored bool
	}{
		{
			name: "bool must term + range filter, sort offset asc, from/size",
			query: elastic.NewBoolQuery().Must(elastic.NewTermQuery("stage", "produced")).
				Filter(elastic.NewRangeQuery("partition").Gte(2).Lt(4)),
			sorts: []elastic.Sorter{elastic.NewFieldSort("offset").Asc(), elastic.NewFieldSort("msg_id").Asc()},
			from:  2, size: 5,
			keep: func(e traceEvent) bool { return e.Stage == "produced" && e.Partition >= 2 && e.Partition < 4 },
			less: byOffset,
		},
		{
			name:  "terms on topic with must_not, sort ts desc",
			query: elastic.NewBoolQuery().Filter(elastic.NewTermsQuery("topic", "orders", "audit")).MustNot(elastic.NewTermQuery("ok", true)),
			sorts: []elastic.Sorter{elastic.NewFieldSort("ts").Desc()},
			size:  7,
			keep:  func(e traceEvent) bool { return (e.Topic == "orders" || e.Topic == "audit") && !e.OK },
			less:  tsDesc,
		},
		{
			name:  "date range with RFC3339 bounds",
			query: elastic.NewRangeQuery("ts").Gte(tsFrom.Format(time.RFC3339)).Lt(tsTo.Format(time.RFC3339)),
			sorts: []elastic.Sorter{elastic.NewFieldSort("ts").Asc()},
			size:  2000,
			keep: func(e traceEvent) bool {
				ts, _ := time.Parse(time.RFC3339, e.TS)
				return !ts.Before(tsFrom) && ts.Before(tsTo)
			},
			less: func(a, b traceEvent) bool { return a.TS < b.TS },
		},
		{
			name:  "date range with epoch millis and double range",
			query: elastic.NewBoolQuery().Filter(elastic.NewRangeQuery("ts").Gt(tsFrom.UnixMilli()), elastic.NewRangeQuery("latency_ms").Lte(0.5)),
			sorts: []elastic.Sorter{elastic.NewFieldSort("msg_id").Asc()},
			size:  100,
			keep: func(e traceEvent) bool {
				ts, _ := time.Parse(time.RFC3339, e.TS)
				return ts.After(tsFrom) && e.LatencyMs <= 0.5
			},
			less: func(a, b traceEvent) bool { return a.MsgID < b.MsgID },
		},
		{
			name:  "match on text, operator and",
			query: elastic.NewMatchQuery("note", "WORLD hello").Operator("and"),
			sorts: []elastic.Sorter{elastic.NewFieldSort("offset").Desc(), elastic.NewFieldSort("msg_id").Asc()},
			size:  10,
			keep:  func(e traceEvent) bool { return strings.HasPrefix(e.Note, "Hello") },
			less: func(a, b traceEvent) bool {
				if a.Offset != b.Offset {
					return a.Offset > b.Offset
				}
				return a.MsgID < b.MsgID
			},
		},
		{
			name:   "ids, scored",
			query:  elastic.NewIdsQuery().Ids("m-00003", "m-00500", "m-99999"),
			size:   10,
			keep:   func(e traceEvent) bool { return e.MsgID == "m-00003" || e.MsgID == "m-00500" },
			scored: true,
		},
		{
			name: "should with minimum_should_match",
			query: elastic.NewBoolQuery().Should(elastic.NewTermQuery("topic", "payments"), elastic.NewTermQuery("partition", 1),
				elastic.NewTermQuery("stage", "stored")).MinimumShouldMatch("2"),
			sorts: []elastic.Sorter{elastic.NewFieldSort("msg_id").Desc()},
			size:  50,
			keep: func(e traceEvent) bool {
				n := 0
				for _, ok := range []bool{e.Topic == "payments", e.Partition == 1, e.Stage == "stored"} {
					if ok {
						n++
					}
				}
				return n >= 2
			},
			less: func(a, b traceEvent) bool { return a.MsgID > b.MsgID },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := expect(n, tc.keep, tc.less)
			require.NotEmpty(t, want, "a case that expects nothing proves nothing")
			svc := c.Search(index).Query(tc.query).From(tc.from).Size(tc.size).TrackTotalHits(true)
			if len(tc.sorts) > 0 {
				svc = svc.SortBy(tc.sorts...)
			}
			res, err := svc.Do(ctx)
			require.NoError(t, err)
			require.EqualValues(t, len(want), res.TotalHits())
			require.Equal(t, "eq", res.Hits.TotalHits.Relation)
			got := hitIDs(res)
			if tc.less == nil {
				slices.Sort(got) // scored results: order is bleve's, compare as a set
				want = page(want, tc.from, tc.size)
				slices.Sort(want)
			} else {
				want = page(want, tc.from, tc.size)
			}
			require.Equal(t, want, got)
			for _, h := range res.Hits.Hits {
				require.Equal(t, index, h.Index)
				require.Equal(t, "_doc", h.Type)
				var ev traceEvent
				require.NoError(t, json.Unmarshal(h.Source, &ev))
				require.Equal(t, h.Id, ev.MsgID)
				if tc.scored {
					require.NotNil(t, h.Score)
					require.Empty(t, h.Sort)
				} else {
					require.Nil(t, h.Score, "sorted by field: _score is null as in Elasticsearch")
					require.Len(t, h.Sort, len(tc.sorts))
				}
			}
			if tc.scored {
				require.NotNil(t, res.Hits.MaxScore)
			}
			cnt, err := c.Count(index).Query(tc.query).Do(ctx)
			require.NoError(t, err)
			require.EqualValues(t, len(expect(n, tc.keep, nil)), cnt)
		})
	}

	// Sort values are rendered as Elasticsearch renders them: dates as epoch
	// millis, longs as integers, keywords as strings.
	res, err := c.Search(index).Query(elastic.NewTermQuery("msg_id", "m-00042")).
		SortBy(elastic.NewFieldSort("ts"), elastic.NewFieldSort("offset"), elastic.NewFieldSort("topic")).Do(ctx)
	require.NoError(t, err)
	require.Len(t, res.Hits.Hits, 1)
	ev42 := makeEvent(42)
	ts42, _ := time.Parse(time.RFC3339, ev42.TS)
	require.Equal(t, []any{float64(ts42.UnixMilli()), float64(ev42.Offset), ev42.Topic}, res.Hits.Hits[0].Sort)

	// Default track_total_hits caps at 10000 with "gte" like Elasticsearch.
	res, err = c.Search(index).Query(elastic.NewMatchAllQuery()).Size(1).Do(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 10000, res.Hits.TotalHits.Value)
	require.Equal(t, "eq", res.Hits.TotalHits.Relation) // exactly 10000 documents

	// Get: found and missing.
	got, err := c.Get().Index(index).Id("m-00042").Do(ctx)
	require.NoError(t, err)
	require.True(t, got.Found)
	require.EqualValues(t, 1, *got.Version)
	var ev traceEvent
	require.NoError(t, json.Unmarshal(got.Source, &ev))
	require.Equal(t, ev42, ev)
	_, err = c.Get().Index(index).Id("nope").Do(ctx)
	require.True(t, elastic.IsNotFound(err), "got %v", err)

	// Idempotent re-ship: the same _id again updates, the count stays.
	bulk, err := c.Bulk().Add(elastic.NewBulkIndexRequest().Index(index).Id("m-00042").Doc(ev42)).Do(ctx)
	require.NoError(t, err)
	require.False(t, bulk.Errors)
	item := bulk.Indexed()[0]
	require.Equal(t, "updated", item.Result)
	require.Equal(t, 200, item.Status)
	require.EqualValues(t, 2, item.Version)
	count, err = c.Count(index).Do(ctx)
	require.NoError(t, err)
	require.EqualValues(t, n, count)

	// Delete a document; deleting it again is a 404.
	del, err := c.Delete().Index(index).Id("m-00042").Do(ctx)
	require.NoError(t, err)
	require.Equal(t, "deleted", del.Result)
	_, err = c.Delete().Index(index).Id("m-00042").Do(ctx)
	require.True(t, elastic.IsNotFound(err), "got %v", err)
	count, err = c.Count(index).Do(ctx)
	require.NoError(t, err)
	require.EqualValues(t, n-1, count)

	// Unknown index: olivere surfaces index_not_found_exception.
	_, err = c.Search("missing-index").Do(ctx)
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 404, ee.Status)
	require.Equal(t, "index_not_found_exception", ee.Details.Type)
	// A wildcard that matches nothing is an empty result, not an error.
	res, err = c.Search("nothing-*").Do(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 0, res.TotalHits())

	deleted, err := c.DeleteIndex(index).Do(ctx)
	require.NoError(t, err)
	require.True(t, deleted.Acknowledged)
	exists, err = c.IndexExists(index).Do(ctx)
	require.NoError(t, err)
	require.False(t, exists)
}
