package store

import (
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestErrorShapes compares error responses with Elasticsearch 7.17's.
// Where the values are deterministic the whole body must be equal; where
// they are not (uuids), the structure must be.
func TestErrorShapes(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	status, body := ts.do(t, "PUT", "/errs", `{"mappings":{"properties":{"n":{"type":"long"}}}}`)
	require.Equal(t, 200, status, "%v", body)

	t.Run("unknown index", func(t *testing.T) {
		status, body := ts.do(t, "POST", "/missing/_search", `{"query":{"match_all":{}}}`)
		require.Equal(t, http.StatusNotFound, status)
		// As returned by Elasticsearch 7.17 for GET /missing/_search.
		require.Equal(t, mustJSON(t, `{"error":{"root_cause":[{"type":"index_not_found_exception","reason":"no such index [missing]",
			"resource.type":"index_or_alias","resource.id":"missing","index_uuid":"_na_","index":"missing"}],
			"type":"index_not_found_exception","reason":"no such index [missing]","resource.type":"index_or_alias",
			"resource.id":"missing","index_uuid":"_na_","index":"missing"},"status":404}`), body)
		for _, path := range []string{"/missing/_count", "/missing/_doc/1", "/missing/_refresh", "/errs,missing/_search"} {
			status, body := ts.do(t, "GET", path, nil)
			require.Equal(t, http.StatusNotFound, status, path)
			require.Equal(t, "index_not_found_exception", body["error"].(map[string]any)["type"], path)
		}
		// ignore_unavailable and wildcards that match nothing are empty results.
		for _, path := range []string{"/missing/_search?ignore_unavailable=true", "/nothing-*/_search"} {
			status, body := ts.do(t, "GET", path, nil)
			require.Equal(t, http.StatusOK, status, path)
			require.Equal(t, mustJSON(t, `{"total":0,"successful":0,"skipped":0,"failed":0}`), body["_shards"], path)
			require.Equal(t, mustJSON(t, `{"total":{"value":0,"relation":"eq"},"max_score":null,"hits":[]}`), body["hits"], path)
		}
		status, _ = ts.do(t, "HEAD", "/missing", nil)
		require.Equal(t, http.StatusNotFound, status)
	})

	t.Run("invalid index name", func(t *testing.T) {
		for name, reason := range map[string]string{
			"Upper":  "must be lowercase",
			"_under": "must not start with '_', '-', or '+'",
			"a%23b":  "must not contain '#'",
			"a*b":    `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`,
		} {
			status, body := ts.do(t, "PUT", "/"+name, nil)
			require.Equal(t, http.StatusBadRequest, status, name)
			decoded := map[string]string{"a%23b": "a#b"}[name]
			if decoded == "" {
				decoded = name
			}
			e := fmt.Sprintf(`{"type":"invalid_index_name_exception","reason":"Invalid index name [%s], %s","index_uuid":"_na_","index":"%s"}`,
				decoded, jsonEscape(reason), decoded)
			require.Equal(t, mustJSON(t, `{"error":{"root_cause":[`+e+`],`+e[1:len(e)-1]+`},"status":400}`), body, name)
		}
		// Auto-creation through _bulk reports it per item.
		status, body := ts.do(t, "POST", "/_bulk", "{\"index\":{\"_index\":\"Bad\",\"_id\":\"1\"}}\n{\"a\":1}\n")
		require.Equal(t, 200, status)
		require.Equal(t, true, body["errors"])
		item := body["items"].([]any)[0].(map[string]any)["index"].(map[string]any)
		require.EqualValues(t, 400, item["status"])
		require.Equal(t, "invalid_index_name_exception", item["error"].(map[string]any)["type"])
	})

	t.Run("malformed JSON and unknown query", func(t *testing.T) {
		want := map[string]any{
			"error": map[string]any{
				"root_cause": []any{map[string]any{"type": "string", "reason": "string", "line": "number", "col": "number"}},
				"type":       "string", "reason": "string", "line": "number", "col": "number",
			},
			"status": "number",
		}
		status, body := ts.do(t, "POST", "/errs/_search", `{"query": {"match_all": {}`)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "parsing_exception", body["error"].(map[string]any)["type"])
		delete(body["error"].(map[string]any), "caused_by") // the JSON parser's message
		require.Equal(t, want, shape(body))

		status, body = ts.do(t, "POST", "/errs/_search", `{"query": {"foo": {"n": 1}}}`)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, want, shape(body))
		require.Equal(t, "parsing_exception", body["error"].(map[string]any)["type"])
		require.Equal(t, "unknown query [foo]", body["error"].(map[string]any)["reason"])

		status, body = ts.do(t, "POST", "/errs/_search", `{"query": {"match_all": {}}, "bogus": 1}`)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "parsing_exception", body["error"].(map[string]any)["type"])

		status, body = ts.do(t, "POST", "/errs/_search", `{"suggest": {"x": {"text": "n", "term": {"field": "n"}}}}`)
		require.Equal(t, http.StatusBadRequest, status, "unsupported features must fail, not be ignored")
		require.Equal(t, "illegal_argument_exception", body["error"].(map[string]any)["type"])

		status, body = ts.do(t, "POST", "/_bulk", "{\"index\":{\"_index\":\"errs\"}\n")
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "illegal_argument_exception", body["error"].(map[string]any)["type"])
	})

	t.Run("create conflict and mapping errors per item", func(t *testing.T) {
		status, body := ts.do(t, "POST", "/_bulk?refresh=true",
			"{\"create\":{\"_index\":\"errs\",\"_id\":\"1\"}}\n{\"n\":1}\n"+
				"{\"create\":{\"_index\":\"errs\",\"_id\":\"1\"}}\n{\"n\":2}\n"+
				"{\"index\":{\"_index\":\"errs\",\"_id\":\"2\"}}\n{\"n\":\"abc\"}\n"+
				"{\"index\":{\"_index\":\"errs\",\"_id\":\"3\"}}\n{\"n\":\n")
		require.Equal(t, 200, status)
		require.Equal(t, true, body["errors"])
		items := body["items"].([]any)
		require.Len(t, items, 4)
		first := items[0].(map[string]any)["create"].(map[string]any)
		require.Equal(t, mustJSON(t, `{"_index":"errs","_type":"_doc","_id":"1","_version":1,"result":"created",
			"_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}`), first)

		uuid := ts.get("errs").meta.UUID
		conflict := items[1].(map[string]any)["create"].(map[string]any)
		require.Equal(t, mustJSON(t, `{"_index":"errs","_type":"_doc","_id":"1","status":409,"error":{
			"type":"version_conflict_engine_exception","reason":"[1]: version conflict, document already exists (current version [1])",
			"index_uuid":"`+uuid+`","shard":"0","index":"errs"}}`), conflict)

		mapper := items[2].(map[string]any)["index"].(map[string]any)
		require.EqualValues(t, 400, mapper["status"])
		require.Equal(t, map[string]any{
			"type":      "mapper_parsing_exception",
			"reason":    "failed to parse field [n] of type [long] in document with id '2'. Preview of field's value: 'abc'",
			"caused_by": map[string]any{"type": "number_format_exception", "reason": `For input string: "abc"`},
		}, mapper["error"])
		bad := items[3].(map[string]any)["index"].(map[string]any)
		require.EqualValues(t, 400, bad["status"])
		require.Equal(t, "mapper_parsing_exception", bad["error"].(map[string]any)["type"])

		status, body = ts.do(t, "GET", "/errs/_count", nil)
		require.Equal(t, 200, status)
		require.EqualValues(t, 1, body["count"], "failed items must not be indexed")

		// The single-document create API answers 409 with the error envelope.
		status, body = ts.do(t, "PUT", "/errs/_create/1", `{"n":3}`)
		require.Equal(t, http.StatusConflict, status)
		require.Equal(t, "version_conflict_engine_exception", body["error"].(map[string]any)["type"])
		require.EqualValues(t, 409, body["status"])
	})

	t.Run("index exists", func(t *testing.T) {
		status, body := ts.do(t, "PUT", "/errs", nil)
		require.Equal(t, http.StatusBadRequest, status)
		uuid := ts.get("errs").meta.UUID
		e := `{"type":"resource_already_exists_exception","reason":"index [errs/` + uuid + `] already exists","index_uuid":"` + uuid + `","index":"errs"}`
		require.Equal(t, mustJSON(t, `{"error":{"root_cause":[`+e+`],`+e[1:len(e)-1]+`},"status":400}`), body)
	})

	t.Run("unknown mapping type", func(t *testing.T) {
		status, body := ts.do(t, "PUT", "/geo", `{"mappings":{"properties":{"loc":{"type":"geo_point"}}}}`)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "mapper_parsing_exception", body["error"].(map[string]any)["type"])
		status, _ = ts.do(t, "HEAD", "/geo", nil)
		require.Equal(t, http.StatusNotFound, status)
	})
}

func jsonEscape(s string) string {
	b := []byte{}
	for _, r := range s {
		switch r {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		default:
			b = append(b, string(r)...)
		}
	}
	return string(b)
}

// TestWriteFailureIsPerItem breaks the index's log under a live store: the
// bulk must answer with per-item failures (so the shipper does not commit),
// and the store must keep serving.
func TestWriteFailureIsPerItem(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	status, _ := ts.do(t, "POST", "/_bulk", "{\"index\":{\"_index\":\"wf\",\"_id\":\"a\"}}\n{\"x\":1}\n")
	require.Equal(t, 200, status)
	idx := ts.get("wf")
	require.NoError(t, idx.log.active().f.Close()) // every later append fails

	status, body := ts.do(t, "POST", "/_bulk",
		"{\"index\":{\"_index\":\"wf\",\"_id\":\"b\"}}\n{\"x\":2}\n{\"delete\":{\"_index\":\"wf\",\"_id\":\"a\"}}\n")
	require.Equal(t, 200, status)
	require.Equal(t, true, body["errors"])
	for _, it := range body["items"].([]any) {
		for _, r := range it.(map[string]any) {
			r := r.(map[string]any)
			require.EqualValues(t, 500, r["status"], "%v", r)
			require.Equal(t, "exception", r["error"].(map[string]any)["type"])
		}
	}
	status, _ = ts.do(t, "GET", "/", nil)
	require.Equal(t, 200, status)

	// A full disk maps to Elasticsearch's flood-stage block, which the
	// shipper's BulkProcessor retries (429 is in its retry set).
	e := writeFailure("wf", fmt.Errorf("write segment: %w", syscall.ENOSPC))
	require.Equal(t, http.StatusTooManyRequests, e.status)
	require.Equal(t, "cluster_block_exception", e.Type)
	require.Equal(t, http.StatusInternalServerError, writeFailure("wf", errors.New("boom")).status)
}
