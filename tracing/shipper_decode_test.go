package tracing

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/stretchr/testify/require"
)

// bulkDecoder decodes _bulk answers into what encoding/json makes of them:
// the store's own answer (with a refused item), and hand-written ones with
// the rarer parts of Elasticsearch's item shape.
func TestBulkDecoderMatchesEncodingJSON(t *testing.T) {
	ts := startTraceStore(t)
	base := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	putIndex(t, ts.URL, IndexName(IndexPrefix, base.UnixMilli()), Mapping)
	body := string(bulkOf(0, 5, base)) + `{"index":{"_index":"` + IndexName(IndexPrefix, base.UnixMilli()) + `","_id":"bad"}}` + "\n" +
		`{"type":"produce","ts":"not a date"}` + "\n" + `{"create":{"_index":"g","_id":"x"}}` + "\n" + `{"a":1}` + "\n"
	resp, err := http.Post(ts.URL+"/_bulk", "application/x-ndjson", strings.NewReader(body))
	require.NoError(t, err)
	storeAnswer, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, string(storeAnswer), `"errors":true`)
	var fast elastic.BulkResponse
	require.NoError(t, decodeBulkResponse(storeAnswer, &fast), "the store's answer takes the fast path")

	for _, raw := range []string{
		string(storeAnswer),
		`{"took":3,"errors":false,"items":[]}`,
		`{"took":3,"errors":true,"items":[{"update":{"_index":"i","_type":"_doc","_id":"1","status":404,` +
			`"error":{"type":"document_missing_exception","reason":"missing","caused_by":{"type":"x","reason":"y"},"index":"i"}}},` +
			`{"update":{"_index":"i","_id":"2","_version":3,"result":"updated","forced_refresh":true,"get":{"_index":"i","_id":"2","found":true,"_source":{"a":1}},` +
			`"_shards":{"total":2,"successful":1,"failed":0},"_seq_no":7,"_primary_term":1,"status":200}}]}`,
		`{"took":1,"errors":false,"items":[{"index":{"_index":"i","_id":"1","_shards":{"total":1,"successful":1,"failed":0,"failures":[]},"status":201}}]}`,
		`{"took":1,"errors":false,"items":[{"index":{"_index":null,"_id":"1","status":201}}]}`,
		`{"took":1,"errors":false,"items":[{"index":{"_id":"\u00e9\n","status":201,"extra":[1,2]}}],"ingest_took":0}`,
	} {
		var want, got elastic.BulkResponse
		require.NoError(t, json.Unmarshal([]byte(raw), &want), raw)
		require.NoError(t, bulkDecoder{}.Decode([]byte(raw), &got), raw)
		require.Equal(t, want, got, raw)
	}
	// Anything else goes to encoding/json.
	var m map[string]any
	require.NoError(t, bulkDecoder{}.Decode([]byte(`{"acknowledged":true}`), &m))
	require.Equal(t, map[string]any{"acknowledged": true}, m)
	var res elastic.BulkResponse
	require.Error(t, bulkDecoder{}.Decode([]byte(`{"took":`), &res))
}

// The shipper's own action lines say what olivere's BulkIndexRequest says,
// for ids that need escaping too.
func TestIndexActionMatchesOlivere(t *testing.T) {
	for _, id := range []string{"m1.p.abc", `m"1.c.g\x.1`, "m\n\x01.c.grüppe.2", "m<&>.p.3", "m\xff.p.4"} {
		want, err := elastic.NewBulkIndexRequest().Index("kobs-trace-2026.11.30").Id(id).Source()
		require.NoError(t, err)
		require.JSONEq(t, want[0], string(appendIndexAction(nil, "kobs-trace-2026.11.30", []byte(id))), "%q", id)
	}
}
