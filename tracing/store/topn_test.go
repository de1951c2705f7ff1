package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2/numeric"
	"github.com/stretchr/testify/require"
)

// The data set: 2,000 documents written in order i = 0..1999 with ts =
// base+i ms, except that documents 1995..1999 share ts = base+1995; topic
// "b" for i < 100 (the oldest), "a" for the rest.
func loadTopNData(t *testing.T) *testServer {
	t.Helper()
	ts := startStore(t, Config{Dir: t.TempDir()})
	status, _ := ts.do(t, "PUT", "/nt", `{"mappings":{"properties":{"topic":{"type":"keyword"},"ts":{"type":"date","format":"epoch_millis"}}}}`)
	require.Equal(t, 200, status)
	for b := range 4 {
		var bulk strings.Builder
		for i := b * 500; i < b*500+500; i++ {
			topic, at := "a", aggBase+int64(i)
			if i < 100 {
				topic = "b"
			}
			if i >= 1995 {
				at = aggBase + 1995
			}
			fmt.Fprintf(&bulk, `{"index":{"_index":"nt","_id":"d%d"}}`+"\n"+`{"topic":%q,"ts":%d}`+"\n", i, topic, at)
		}
		status, out := ts.do(t, "POST", "/_bulk?refresh=true", bulk.String())
		require.Equal(t, 200, status)
		require.Equal(t, false, out["errors"])
	}
	return ts
}

// A "newest N" search is answered from the newest slice of the sort
// field's values when that slice holds enough matches; the hits, their
// order (ties by index order) and the total are what the whole search
// gives.
func TestNewestNFromTheNewestSlice(t *testing.T) {
	old := narrowAbove
	narrowAbove = 1000 // topic a's 1,900 matches are narrowed, topic b's 100 are not
	t.Cleanup(func() { narrowAbove = old })
	ts := loadTopNData(t)
	ctx := context.Background()
	search := func(params, body string) (ids []string, total any) {
		t.Helper()
		status, out := ts.do(t, "POST", "/nt/_search"+params, body)
		require.Equal(t, 200, status, "%v", out)
		hits := out["hits"].(map[string]any)
		for _, h := range hits["hits"].([]any) {
			ids = append(ids, h.(map[string]any)["_id"].(string))
		}
		return ids, hits["total"]
	}
	page := func(topic string, from, size int) string {
		return fmt.Sprintf(`{"from":%d,"size":%d,"query":{"bool":{"filter":[{"term":{"topic":%q}},{"range":{"ts":{"gte":%d,"lte":%d,"format":"epoch_millis"}}}]}},`+
			`"sort":[{"ts":{"order":"desc","unmapped_type":"boolean"}},{"_doc":{"order":"desc"}}]}`, from, size, topic, aggBase, aggBase+5000)
	}
	eq := func(n float64) any { return map[string]any{"value": n, "relation": "eq"} }

	ids, total := search("", page("a", 0, 5))
	require.Equal(t, []string{"d1999", "d1998", "d1997", "d1996", "d1995"}, ids)
	require.Equal(t, eq(1900), total)
	ids, total = search("", page("a", 3, 4))
	require.Equal(t, []string{"d1996", "d1995", "d1994", "d1993"}, ids)
	require.Equal(t, eq(1900), total)
	// Topic b has few matches: the whole search runs.
	ids, total = search("", page("b", 0, 5))
	require.Equal(t, []string{"d99", "d98", "d97", "d96", "d95"}, ids)
	require.Equal(t, eq(100), total)
	// The total honours track_total_hits and rest_total_hits_as_int.
	_, total = search("?track_total_hits=50", page("a", 0, 5))
	require.Equal(t, map[string]any{"value": 50.0, "relation": "gte"}, total)
	_, total = search("?rest_total_hits_as_int=true", page("a", 0, 5))
	require.Equal(t, 1900.0, total)
	_, total = search("?track_total_hits=false", page("a", 0, 5))
	require.Nil(t, total)

	// Topic a's searches were narrowed; topic b's was not.
	tgt, err := ts.pin("nt", resolveOpts{})
	require.Nil(t, err)
	defer tgt.release()
	lo, hi, docs, berr := tgt.fieldBounds("ts")
	require.NoError(t, berr)
	require.Equal(t, float64(aggBase), numeric.Int64ToFloat64(lo))
	require.Equal(t, float64(aggBase+1995), numeric.Int64ToFloat64(hi))
	require.Equal(t, uint64(2000), docs)
	for topic, want := range map[string]bool{"a": true, "b": false} {
		r, perr := parseSearchRequest([]byte(page(topic, 0, 5)), url.Values{}, false)
		require.Nil(t, perr)
		plan, perr := tgt.planSort(r.sort)
		require.Nil(t, perr)
		q, perr := tgt.compileQuery(r, ts.now())
		require.Nil(t, perr)
		req := newSearchRequest(q, r, plan)
		_, total, err := tgt.topN(ctx, req, q, plan, r)
		require.NoError(t, err)
		require.Equal(t, want, total != nil, topic)
	}
}
