package store

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

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

// A "newest N" search keeps only the best from+size matches while it
// reads them (topN's bounded heap); the hits, their order (ties by index
// order) and the total are what sorting every match gives.
func TestNewestN(t *testing.T) {
	ts := loadTopNData(t)
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

	// Ascending, the oldest first; the tie at the newest end is in index
	// order both ways.
	ids, _ = search("", strings.Replace(page("a", 0, 3), `"order":"desc","unmapped_type"`, `"order":"asc","unmapped_type"`, 1))
	require.Equal(t, []string{"d100", "d101", "d102"}, ids)
	ids, _ = search("", page("a", 1895, 10))
	require.Equal(t, []string{"d104", "d103", "d102", "d101", "d100"}, ids)
}

// Block pruning must not change the answer: random values over several
// blocks (some missing, many tied), both directions, compared with sorting
// every document.
func TestNewestNMatchesFullSort(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	status, _ := ts.do(t, "PUT", "/pr", `{"mappings":{"properties":{"v":{"type":"long"}}}}`)
	require.Equal(t, 200, status)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 5000
	vals := make([]int64, n) // -1: missing
	var bulk strings.Builder
	for i := range n {
		vals[i] = rng.Int64N(300)
		if i > 3000 && i < 3500 {
			vals[i] += 1000 // one block range holds the largest values
		}
		if i == 100 || i == 4500 {
			vals[i] = 5000 // the largest value, tied across blocks: the earlier document ranks first
		}
		if rng.IntN(20) == 0 && vals[i] != 5000 {
			vals[i] = -1
			fmt.Fprintf(&bulk, `{"index":{"_id":"d%d"}}`+"\n"+`{"x":1}`+"\n", i)
			continue
		}
		fmt.Fprintf(&bulk, `{"index":{"_id":"d%d"}}`+"\n"+`{"v":%d}`+"\n", i, vals[i])
	}
	status, out := ts.do(t, "POST", "/pr/_bulk", bulk.String())
	require.Equal(t, 200, status)
	require.Equal(t, false, out["errors"])
	for _, desc := range []bool{true, false} {
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			va, vb := vals[a], vals[b]
			if (va < 0) != (vb < 0) {
				if va < 0 {
					return 1 // missing last
				}
				return -1
			}
			c := cmp.Compare(va, vb)
			if desc {
				c = -c
			}
			return c // ties: index order
		})
		dir := "asc"
		if desc {
			dir = "desc"
		}
		for _, size := range []int{1, 7, 50, 600} {
			status, out := ts.do(t, "POST", "/pr/_search", fmt.Sprintf(`{"size":%d,"sort":[{"v":%q},{"_doc":"asc"}]}`, size, dir))
			require.Equal(t, 200, status, "%v", out)
			var got, want []string
			for _, h := range out["hits"].(map[string]any)["hits"].([]any) {
				got = append(got, h.(map[string]any)["_id"].(string))
			}
			for _, i := range order[:size] {
				want = append(want, fmt.Sprintf("d%d", i))
			}
			require.Equal(t, want, got, "%s size %d", dir, size)
		}
	}
}
