package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/olivere/elastic/v7"
	"github.com/stretchr/testify/require"
)

// A field mapped "index": false keeps its doc values in Elasticsearch
// (doc_values defaults to true), so aggregations and sorting over it work
// while searching it is refused. The data set: 12 documents written in the
// order x0, x1, ..., x11 (so _id order, x0 x1 x10 x11 x2 ..., is not write
// order), all at the same ts; document i has dropped = i+1, size = 100*i,
// tag "even" or "odd", type "drop" for even i and "produce" for odd i.
const dvMapping = `{"mappings":{"dynamic":false,"properties":{
  "type":{"type":"keyword"},"ts":{"type":"date","format":"epoch_millis"},
  "dropped":{"type":"long","index":false},
  "size":{"type":"long","index":false},
  "tag":{"type":"keyword","index":false},
  "note":{"type":"keyword","index":false,"doc_values":false}}}}`

func loadDocValuesData(t *testing.T) (*testServer, *elastic.Client) {
	t.Helper()
	ts := startStore(t, Config{Dir: t.TempDir()})
	status, _ := ts.do(t, "PUT", "/dv", dvMapping)
	require.Equal(t, 200, status)
	// Three bulks, so the documents span several segments.
	for b := range 3 {
		var bulk strings.Builder
		for i := b * 4; i < b*4+4; i++ {
			typ, tag := "produce", "odd"
			if i%2 == 0 {
				typ, tag = "drop", "even"
			}
			fmt.Fprintf(&bulk, `{"index":{"_index":"dv","_id":"x%d"}}`+"\n", i)
			fmt.Fprintf(&bulk, `{"type":%q,"ts":%d,"dropped":%d,"size":%d,"tag":%q,"note":"n%d"}`+"\n", typ, aggBase, i+1, 100*i, tag, i)
		}
		status, out := ts.do(t, "POST", "/_bulk?refresh=true", bulk.String())
		require.Equal(t, 200, status)
		require.Equal(t, false, out["errors"], "%v", out)
	}
	return ts, newOlivere(t, ts.URL)
}

func TestUnindexedFieldKeepsDocValues(t *testing.T) {
	ts, es := loadDocValuesData(t)
	ctx := context.Background()

	// What the message trace dashboard asks: drops per minute, the sum of
	// "dropped" over type:drop events. Even i: dropped 1+3+5+7+9+11 = 36.
	res, err := es.Search("dv").Size(0).Query(elastic.NewQueryStringQuery("type:drop")).
		Aggregation("per_minute", elastic.NewDateHistogramAggregation().Field("ts").FixedInterval("1m").
			SubAggregation("dropped", elastic.NewSumAggregation().Field("dropped"))).
		Aggregation("all_sizes", elastic.NewSumAggregation().Field("size")).
		Aggregation("max_size", elastic.NewMaxAggregation().Field("size")).
		Aggregation("tags", elastic.NewTermsAggregation().Field("tag")).
		Do(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(6), res.TotalHits())
	dh, ok := res.Aggregations.DateHistogram("per_minute")
	require.True(t, ok)
	require.Len(t, dh.Buckets, 1)
	sum, ok := dh.Buckets[0].Sum("dropped")
	require.True(t, ok)
	require.NotNil(t, sum.Value)
	require.Equal(t, 36.0, *sum.Value)
	// Sizes of even i: 100*(0+2+4+6+8+10) = 3000, the largest 1000.
	sizes, ok := res.Aggregations.Sum("all_sizes")
	require.True(t, ok)
	require.Equal(t, 3000.0, *sizes.Value)
	maxSize, ok := res.Aggregations.Max("max_size")
	require.True(t, ok)
	require.Equal(t, 1000.0, *maxSize.Value)
	tags, ok := res.Aggregations.Terms("tags")
	require.True(t, ok)
	require.Len(t, tags.Buckets, 1)
	require.Equal(t, "even", tags.Buckets[0].Key)
	require.Equal(t, int64(6), tags.Buckets[0].DocCount)

	// Sorting by an unindexed field reads its doc values: the three
	// largest sizes are x11, x10, x9.
	res, err = es.Search("dv").Sort("size", false).Size(3).Do(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"x11", "x10", "x9"}, hitIDs(res))
	require.Equal(t, []any{1100.0}, res.Hits.Hits[0].Sort)

	// Searching it is refused, as Elasticsearch 7 refuses it, for every
	// query type and through query_string; not "no hits".
	for _, q := range []string{
		`{"term":{"dropped":3}}`,
		`{"range":{"dropped":{"gte":1}}}`,
		`{"match":{"tag":"even"}}`,
		`{"prefix":{"tag":"ev"}}`,
		`{"terms":{"size":[100,200]}}`,
		`{"query_string":{"query":"dropped:>0"}}`,
	} {
		status, out := ts.do(t, "POST", "/dv/_search", `{"query":`+q+`}`)
		require.Equal(t, 400, status, "%s: %v", q, out)
		root := out["error"].(map[string]any)["root_cause"].([]any)[0].(map[string]any)
		require.Equal(t, "query_shard_exception", root["type"], q)
		require.Regexp(t, `^failed to create query: Cannot search on field \[(dropped|tag|size)\] since it is not indexed\.$`, root["reason"], q)
	}
	// With neither index nor doc values, the field cannot be aggregated
	// or sorted on.
	for _, body := range []string{
		`{"size":0,"aggs":{"a":{"terms":{"field":"note"}}}}`,
		`{"sort":[{"note":"asc"}]}`,
	} {
		status, raw := ts.raw(t, "POST", "/dv/_search", body)
		require.Equal(t, 400, status, "%s: %s", body, raw)
		require.Contains(t, string(raw), "Can't load fielddata on [note]")
	}
}

// Sorting by _doc is index order: the order documents were written in,
// an overwritten document counting as written last, as on one
// Elasticsearch shard. Grafana's raw-document panels use _doc desc to
// break ties between equal timestamps (newest written first).
func TestSortByDocIsIndexOrder(t *testing.T) {
	ts, es := loadDocValuesData(t)
	ctx := context.Background()
	written := []string{"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11"}

	res, err := es.Search("dv").Sort("_doc", true).Size(20).Do(ctx)
	require.NoError(t, err)
	require.Equal(t, written, hitIDs(res))
	for i, h := range res.Hits.Hits {
		require.Equal(t, []any{float64(i)}, h.Sort, h.Id)
	}

	// Grafana's sort: ts desc (all equal here), then _doc desc.
	status, out := ts.do(t, "POST", "/dv/_search",
		`{"size":4,"sort":{"ts":{"order":"desc","unmapped_type":"boolean"},"_doc":{"order":"desc"}}}`)
	require.Equal(t, 200, status, "%v", out)
	var ids []string
	for _, h := range out["hits"].(map[string]any)["hits"].([]any) {
		ids = append(ids, h.(map[string]any)["_id"].(string))
	}
	require.Equal(t, []string{"x11", "x10", "x9", "x8"}, ids)

	// Overwriting x3 makes it the last written; search_after pages on.
	status, _ = ts.do(t, "PUT", "/dv/_doc/x3?refresh=true", `{"type":"drop","ts":1,"dropped":0}`)
	require.Equal(t, 200, status)
	res, err = es.Search("dv").Sort("_doc", true).Size(6).Do(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"x0", "x1", "x2", "x4", "x5", "x6"}, hitIDs(res))
	last := res.Hits.Hits[5].Sort
	res, err = es.Search("dv").Sort("_doc", true).SearchAfter(last...).Size(10).Do(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"x7", "x8", "x9", "x10", "x11", "x3"}, hitIDs(res))
}
