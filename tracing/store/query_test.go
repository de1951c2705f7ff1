package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// queryFixture is a small two-index data set with hand-checked answers.
func queryFixture(t *testing.T) *testServer {
	t.Helper()
	ts := startStore(t, Config{Dir: t.TempDir()})
	ts.now = func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }
	status, body := ts.do(t, "PUT", "/q-2026.11.24", `{"mappings":{"properties":{"ts":{"type":"date"},"k":{"type":"keyword"},"n":{"type":"long"},"f":{"type":"double"},"b":{"type":"boolean"},"msg":{"type":"text","fields":{"raw":{"type":"keyword"}}}}}}`)
	require.Equal(t, 200, status, "%v", body)
	status, body = ts.do(t, "PUT", "/q-2026.11.25", `{"mappings":{"properties":{"ts":{"type":"date"},"k":{"type":"keyword"},"n":{"type":"long"},"f":{"type":"double"},"b":{"type":"boolean"},"msg":{"type":"text","fields":{"raw":{"type":"keyword"}}}}}}`)
	require.Equal(t, 200, status, "%v", body)
	status, body = ts.do(t, "POST", "/_bulk", ndjson(
		`{"index":{"_index":"q-2026.11.24","_id":"d1"}}`, `{"ts":"2026-11-24T08:00:00Z","k":"alpha","n":1,"f":0.5,"b":true,"msg":"The quick brown fox","tags":["x","y"],"meta":{"region":"eu","zone":"a"}}`,
		`{"index":{"_index":"q-2026.11.24","_id":"d2"}}`, `{"ts":"2026-11-24T20:00:00Z","k":"beta","n":2,"f":1.5,"b":false,"msg":"quick red fox jumps","tags":["y"]}`,
		`{"index":{"_index":"q-2026.11.25","_id":"d3"}}`, `{"ts":"2026-11-25T01:00:00Z","k":"gamma","n":3,"b":true,"msg":"lazy brown dog","meta":{"region":"us"}}`,
		`{"index":{"_index":"q-2026.11.25","_id":"d4"}}`, `{"ts":1795572000000,"k":"alphabet","n":"4","f":-2,"msg":"The brown fox <b>&</b>","meta.region":"eu"}`,
		`{"index":{"_index":"q-2026.11.25","_id":"d5"}}`, `{"ts":"2026-11-25T11:30:00.000Z","k":"delta","n":5,"f":3,"b":false}`,
	))
	require.Equal(t, 200, status)
	require.Equal(t, false, body["errors"], "%v", body)
	return ts
}

func TestQueryDSL(t *testing.T) {
	ts := queryFixture(t)
	cases := []struct {
		name string
		body string
		want []string // ids in order when sorted, as a set otherwise
	}{
		{"match_all", `{"query":{"match_all":{}}}`, []string{"d1", "d2", "d3", "d4", "d5"}},
		{"no query", `{}`, []string{"d1", "d2", "d3", "d4", "d5"}},
		{"term keyword", `{"query":{"term":{"k":"alpha"}}}`, []string{"d1"}},
		{"term keyword long form", `{"query":{"term":{"k":{"value":"beta","boost":2}}}}`, []string{"d2"}},
		{"term number coerced from string source", `{"query":{"term":{"n":4}}}`, []string{"d4"}},
		{"term number given as string", `{"query":{"term":{"n":"3"}}}`, []string{"d3"}},
		{"term boolean", `{"query":{"term":{"b":true}}}`, []string{"d1", "d3"}},
		{"term on text matches a token", `{"query":{"term":{"msg":"quick"}}}`, []string{"d1", "d2"}},
		{"term on text is not analysed", `{"query":{"term":{"msg":"Quick"}}}`, nil},
		{"term on unmapped field", `{"query":{"term":{"nope":"x"}}}`, nil},
		{"terms", `{"query":{"terms":{"k":["alpha","gamma","zzz"]}}}`, []string{"d1", "d3"}},
		{"terms _id", `{"query":{"terms":{"_id":["d2","d5"]}}}`, []string{"d2", "d5"}},
		{"ids", `{"query":{"ids":{"values":["d4","d9"]}}}`, []string{"d4"}},
		{"range long gt/lte", `{"query":{"range":{"n":{"gt":2,"lte":4}}}}`, []string{"d3", "d4"}},
		{"range double", `{"query":{"range":{"f":{"lt":1}}}}`, []string{"d1", "d4"}},
		{"range keyword", `{"query":{"range":{"k":{"gte":"alpha","lt":"b"}}}}`, []string{"d1", "d4"}},
		{"range date strings", `{"query":{"range":{"ts":{"gte":"2026-11-24T12:00:00Z","lt":"2026-11-25T02:00:00Z"}}}}`, []string{"d2", "d3"}},
		{"range date day rounds up for lte", `{"query":{"range":{"ts":{"lte":"2026-11-24||/d"}}}}`, []string{"d1", "d2"}},
		{"range date math now-1h", `{"query":{"range":{"ts":{"gte":"now-1h"}}}}`, []string{"d5"}},
		{"range date math now/d", `{"query":{"range":{"ts":{"gte":"now/d","lt":"now"}}}}`, []string{"d3", "d4", "d5"}},
		{"range epoch millis", `{"query":{"range":{"ts":{"gte":1795572000000,"format":"epoch_millis"}}}}`, []string{"d4", "d5"}},
		{"range unbounded is exists", `{"query":{"range":{"f":{}}}}`, []string{"d1", "d2", "d4", "d5"}},
		{"match or", `{"query":{"match":{"msg":"brown dog"}}}`, []string{"d1", "d3", "d4"}},
		{"match and", `{"query":{"match":{"msg":{"query":"Brown FOX","operator":"and"}}}}`, []string{"d1", "d4"}},
		{"match minimum_should_match", `{"query":{"match":{"msg":{"query":"quick brown fox","minimum_should_match":3}}}}`, []string{"d1"}},
		{"match on keyword is exact", `{"query":{"match":{"k":"alpha"}}}`, []string{"d1"}},
		{"match on multi-field keyword", `{"query":{"match":{"msg.raw":"lazy brown dog"}}}`, []string{"d3"}},
		{"match_phrase", `{"query":{"match_phrase":{"msg":"brown fox"}}}`, []string{"d1", "d4"}},
		{"match_phrase order matters", `{"query":{"match_phrase":{"msg":"fox brown"}}}`, nil},
		{"dynamic text field", `{"query":{"match":{"tags":"Y"}}}`, []string{"d1", "d2"}},
		{"dynamic keyword subfield", `{"query":{"term":{"tags.keyword":"x"}}}`, []string{"d1"}},
		{"dynamic object field", `{"query":{"term":{"meta.region.keyword":"eu"}}}`, []string{"d1", "d4"}},
		{"exists", `{"query":{"exists":{"field":"b"}}}`, []string{"d1", "d2", "d3", "d5"}},
		{"exists object", `{"query":{"exists":{"field":"meta"}}}`, []string{"d1", "d3", "d4"}},
		{"exists unmapped", `{"query":{"exists":{"field":"nope"}}}`, nil},
		{"prefix", `{"query":{"prefix":{"k":"alph"}}}`, []string{"d1", "d4"}},
		{"wildcard", `{"query":{"wildcard":{"k":{"value":"*ta"}}}}`, []string{"d2", "d5"}},
		{"bool must + must_not", `{"query":{"bool":{"must":[{"match":{"msg":"fox"}}],"must_not":{"term":{"k":"beta"}}}}}`, []string{"d1", "d4"}},
		{"bool only must_not", `{"query":{"bool":{"must_not":[{"exists":{"field":"msg"}}]}}}`, []string{"d5"}},
		{"bool must unmapped + must_not", `{"query":{"bool":{"must":{"term":{"nope":1}},"must_not":{"term":{"k":"beta"}}}}}`, nil},
		{"bool filter range no match + must_not", `{"query":{"bool":{"filter":{"range":{"n":{"gt":100}}},"must_not":{"term":{"k":"beta"}}}}}`, nil},
		{"bool should only", `{"query":{"bool":{"should":[{"term":{"k":"alpha"}},{"term":{"k":"delta"}}]}}}`, []string{"d1", "d5"}},
		{"bool should optional with filter", `{"query":{"bool":{"filter":{"term":{"b":false}},"should":{"term":{"k":"zzz"}}}}}`, []string{"d2", "d5"}},
		{"bool should msm percent", `{"query":{"bool":{"should":[{"term":{"b":true}},{"range":{"n":{"gte":3}}},{"exists":{"field":"f"}}],"minimum_should_match":"67%"}}}`, []string{"d1", "d3", "d4", "d5"}},
		{"bool nested", `{"query":{"bool":{"should":[{"bool":{"filter":[{"term":{"b":true}},{"term":{"n":3}}]}},{"ids":{"values":["d2"]}}]}}}`, []string{"d2", "d3"}},
		{"empty bool", `{"query":{"bool":{}}}`, []string{"d1", "d2", "d3", "d4", "d5"}},
		{"constant_score", `{"query":{"constant_score":{"filter":{"term":{"k":"gamma"}}}}}`, []string{"d3"}},
		{"match_none", `{"query":{"match_none":{}}}`, nil},
		{"post_filter", `{"query":{"match":{"msg":"fox"}},"post_filter":{"term":{"b":true}}}`, []string{"d1"}},
		{"sort asc from size", `{"sort":[{"n":"asc"}],"from":1,"size":2}`, []string{"d2", "d3"}},
		{"sort desc multi-index", `{"sort":[{"ts":{"order":"desc"}}]}`, []string{"d5", "d4", "d3", "d2", "d1"}},
		{"sort missing last", `{"sort":[{"f":"asc"}]}`, []string{"d4", "d1", "d2", "d5", "d3"}},
		{"sort missing first", `{"sort":[{"f":{"order":"desc","missing":"_first"}}]}`, []string{"d3", "d5", "d2", "d1", "d4"}},
		{"sort keyword then _id", `{"sort":["b", {"_id":"desc"}]}`, []string{"d5", "d2", "d3", "d1", "d4"}},
		{"sort unmapped_type", `{"sort":[{"nope":{"unmapped_type":"long"}},{"k":"asc"}],"size":2}`, []string{"d1", "d4"}},
		{"search_after", `{"sort":[{"n":"asc"}],"search_after":[2],"size":2}`, []string{"d3", "d4"}},
		{"search_after keyword", `{"sort":[{"k":"desc"}],"search_after":["beta"]}`, []string{"d4", "d1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := ts.do(t, "POST", "/q-*/_search", tc.body)
			require.Equal(t, 200, status, "%v", body)
			hits := body["hits"].(map[string]any)
			var got []string
			for _, h := range hits["hits"].([]any) {
				got = append(got, h.(map[string]any)["_id"].(string))
			}
			want := tc.want
			if !strings.Contains(tc.body, `"sort"`) {
				slices.Sort(got)
			}
			require.Equal(t, want, got)
			if !strings.Contains(tc.body, `"from"`) && !strings.Contains(tc.body, `"size"`) && !strings.Contains(tc.body, "search_after") {
				require.EqualValues(t, len(want), hits["total"].(map[string]any)["value"])
			}
			// _count agrees with _search for the same query.
			var q map[string]json.RawMessage
			require.NoError(t, json.Unmarshal([]byte(tc.body), &q))
			if qq, ok := q["query"]; ok && q["post_filter"] == nil && q["search_after"] == nil && q["from"] == nil && q["size"] == nil {
				_, cnt := ts.do(t, "POST", "/q-*/_count", `{"query":`+string(qq)+`}`)
				require.EqualValues(t, len(want), cnt["count"])
			}
		})
	}
}

func TestSearchResponseDetails(t *testing.T) {
	ts := queryFixture(t)
	hitsOf := func(body map[string]any) []map[string]any {
		var out []map[string]any
		for _, h := range body["hits"].(map[string]any)["hits"].([]any) {
			out = append(out, h.(map[string]any))
		}
		return out
	}

	// Sort values as Elasticsearch renders them and _source verbatim
	// (no HTML escaping of <, >, &).
	status, raw := ts.raw(t, "POST", "/q-2026.11.25/_search", `{"query":{"ids":{"values":["d4"]}},"sort":[{"ts":"asc"},{"n":"asc"},{"f":"asc"},{"k":"asc"},{"b":"asc"}]}`)
	require.Equal(t, 200, status)
	require.Contains(t, string(raw), `"_source":{"ts":1795572000000,"k":"alphabet","n":"4","f":-2,"msg":"The brown fox <b>&</b>","meta.region":"eu"}`)
	var body map[string]any
	require.NoError(t, json.Unmarshal(raw, &body))
	h := hitsOf(body)[0]
	require.Equal(t, []any{float64(1795572000000), float64(4), float64(-2), "alphabet", nil}, h["sort"])
	require.Nil(t, h["_score"])
	require.Equal(t, "q-2026.11.25", h["_index"])
	require.Equal(t, "_doc", h["_type"])
	require.Nil(t, body["hits"].(map[string]any)["max_score"])
	require.Equal(t, mustJSON(t, `{"total":1,"successful":1,"skipped":0,"failed":0}`), body["_shards"])

	// Scored search: _score and max_score are numbers, no sort values.
	_, body = ts.do(t, "POST", "/q-*/_search", `{"query":{"match":{"msg":"fox"}}}`)
	require.IsType(t, float64(0), body["hits"].(map[string]any)["max_score"])
	for _, h := range hitsOf(body) {
		require.IsType(t, float64(0), h["_score"])
		require.NotContains(t, h, "sort")
	}

	// track_total_hits variants and rest_total_hits_as_int.
	_, body = ts.do(t, "POST", "/q-*/_search", `{"track_total_hits":2,"size":0}`)
	require.Equal(t, mustJSON(t, `{"total":{"value":2,"relation":"gte"},"max_score":null,"hits":[]}`), body["hits"])
	_, body = ts.do(t, "POST", "/q-*/_search", `{"track_total_hits":false,"size":0}`)
	require.NotContains(t, body["hits"], "total")
	_, body = ts.do(t, "GET", "/q-*/_search?rest_total_hits_as_int=true&size=0", nil)
	require.EqualValues(t, 5, body["hits"].(map[string]any)["total"])

	// _source filtering, seq_no_primary_term and version.
	_, body = ts.do(t, "POST", "/q-2026.11.24/_search", `{"query":{"ids":{"values":["d1"]}},"_source":{"includes":["meta.*","k"],"excludes":["meta.zone"]},"seq_no_primary_term":true,"version":true}`)
	h = hitsOf(body)[0]
	require.Equal(t, mustJSON(t, `{"k":"alpha","meta":{"region":"eu"}}`), h["_source"])
	require.EqualValues(t, 0, h["_seq_no"])
	require.EqualValues(t, 1, h["_primary_term"])
	require.EqualValues(t, 1, h["_version"])
	_, body = ts.do(t, "POST", "/q-2026.11.24/_search", `{"_source":false}`)
	for _, h := range hitsOf(body) {
		require.NotContains(t, h, "_source")
	}

	// URL parameters: q=field:value, sort, size.
	_, body = ts.do(t, "GET", "/q-*/_search?q=k:gamma", nil)
	require.Len(t, hitsOf(body), 1)
	_, body = ts.do(t, "GET", "/q-2026.11.24,q-2026.11.25/_search?sort=n:desc&size=1", nil)
	require.Equal(t, "d5", hitsOf(body)[0]["_id"])

	// Sorting errors as in Elasticsearch.
	status, body = ts.do(t, "POST", "/q-*/_search", `{"sort":["msg"]}`)
	require.Equal(t, 400, status)
	require.Contains(t, body["error"].(map[string]any)["reason"], "Text fields are not optimised")
	status, body = ts.do(t, "POST", "/q-*/_search", `{"sort":["nope"]}`)
	require.Equal(t, 400, status)
	require.Equal(t, "No mapping found for [nope] in order to sort on", body["error"].(map[string]any)["reason"])
	status, _ = ts.do(t, "POST", "/q-*/_search", `{"size":10001}`)
	require.Equal(t, 400, status)

	// Other APIs.
	status, body = ts.do(t, "GET", "/", nil)
	require.Equal(t, 200, status)
	require.Equal(t, "7.17.0", body["version"].(map[string]any)["number"])
	require.Equal(t, "You Know, for Search", body["tagline"])
	status, _ = ts.do(t, "HEAD", "/", nil)
	require.Equal(t, 200, status)
	status, rows := ts.raw(t, "GET", "/_cat/indices?format=json", nil)
	require.Equal(t, 200, status)
	var cat []map[string]any
	require.NoError(t, json.Unmarshal(rows, &cat))
	require.Len(t, cat, 2)
	require.Equal(t, "q-2026.11.24", cat[0]["index"])
	require.Equal(t, "2", cat[0]["docs.count"])
	_, body = ts.do(t, "GET", "/q-2026.11.24", nil)
	settings := body["q-2026.11.24"].(map[string]any)["settings"].(map[string]any)["index"].(map[string]any)
	require.Equal(t, "1", settings["number_of_shards"])
	_, body = ts.do(t, "POST", "/_refresh", nil)
	require.Equal(t, mustJSON(t, `{"total":4,"successful":2,"failed":0}`), body["_shards"])

	// PUT mapping: new fields are accepted, type changes are not.
	status, _ = ts.do(t, "PUT", "/q-2026.11.24/_mapping", `{"properties":{"extra":{"type":"keyword"}}}`)
	require.Equal(t, 200, status)
	status, body = ts.do(t, "PUT", "/q-2026.11.24/_mapping", `{"properties":{"n":{"type":"keyword"}}}`)
	require.Equal(t, 400, status)
	require.Equal(t, "mapper [n] cannot be changed from type [long] to [keyword]", body["error"].(map[string]any)["reason"])

	// Single-document APIs: auto id, get, _source, delete, 404 shapes.
	status, body = ts.do(t, "POST", "/q-2026.11.25/_doc", `{"k":"auto"}`)
	require.Equal(t, 201, status)
	id := body["_id"].(string)
	require.Len(t, id, 20)
	require.Equal(t, "created", body["result"])
	status, src := ts.raw(t, "GET", "/q-2026.11.25/_source/"+id, nil)
	require.Equal(t, 200, status)
	require.JSONEq(t, `{"k":"auto"}`, string(src))
	status, body = ts.do(t, "GET", "/q-2026.11.25/_doc/none", nil)
	require.Equal(t, 404, status)
	require.Equal(t, mustJSON(t, `{"_index":"q-2026.11.25","_type":"_doc","_id":"none","found":false}`), body)
	status, body = ts.do(t, "DELETE", "/q-2026.11.25/_doc/"+id, nil)
	require.Equal(t, 200, status)
	require.Equal(t, "deleted", body["result"])
	status, body = ts.do(t, "DELETE", "/q-2026.11.25/_doc/"+id, nil)
	require.Equal(t, 404, status)
	require.Equal(t, "not_found", body["result"])

	// Deleting by pattern.
	status, _ = ts.do(t, "DELETE", "/q-*", nil)
	require.Equal(t, 200, status)
	require.Empty(t, ts.names())
}

func TestResolveExpression(t *testing.T) {
	existing := []string{"a-1", "a-2", "b-1"}
	for _, tc := range []struct {
		expr string
		o    resolveOpts
		want []string
		err  string
	}{
		{"_all", resolveOpts{}, existing, ""},
		{"a-*", resolveOpts{}, []string{"a-1", "a-2"}, ""},
		{"a-*,-a-2", resolveOpts{}, []string{"a-1"}, ""},
		{"b-1,a-1", resolveOpts{}, []string{"b-1", "a-1"}, ""},
		{"zz", resolveOpts{}, nil, "index_not_found_exception"},
		{"zz,a-1", resolveOpts{ignoreUnavailable: true}, []string{"a-1"}, ""},
		{"z*", resolveOpts{allowNoIndices: true}, nil, ""},
		{"z*", resolveOpts{}, nil, "index_not_found_exception"},
	} {
		got, err := resolveExpression(tc.expr, existing, tc.o)
		if tc.err != "" {
			require.Error(t, err, tc.expr)
			require.Equal(t, tc.err, err.Type)
			continue
		}
		require.Nil(t, err, tc.expr)
		require.Equal(t, tc.want, got, tc.expr)
	}
	require.True(t, simpleMatch("kobs-*-2026.*", "kobs-trace-2026.11.25"))
	require.False(t, simpleMatch("kobs-*-2025.*", "kobs-trace-2026.11.25"))
	d, ok := indexDate("kobs-trace-2026.11.25")
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), d)
	_, ok = indexDate("kobs-trace")
	require.False(t, ok)
	_ = fmt.Sprint
}
