package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of http.DefaultClient and of olivere's
		// client outlive individual tests by design.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// bleve starts a process-wide analysis worker pool in an init func.
		goleak.IgnoreTopFunction("github.com/blevesearch/bleve_index_api.AnalysisWorker"),
	)
}

func ndjson(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// TestRestartKeepsDocumentsAndMappings closes the store and reopens it from
// the same directory.
func TestRestartKeepsDocumentsAndMappings(t *testing.T) {
	dir := t.TempDir()
	ts := startStore(t, Config{Dir: dir})
	status, body := ts.do(t, "PUT", "/kobs-trace-2026.11.25", `{"mappings":{"properties":{"topic":{"type":"keyword"},"ts":{"type":"date"}}}}`)
	require.Equal(t, 200, status, "%v", body)
	var lines []string
	for i := 0; i < 50; i++ {
		lines = append(lines, fmt.Sprintf(`{"index":{"_index":"kobs-trace-2026.11.25","_id":"e%d"}}`, i),
			fmt.Sprintf(`{"topic":"t%d","ts":"2026-11-25T10:00:%02dZ","note":"dynamic text %d","n":%d}`, i%2, i, i, i))
	}
	status, body = ts.do(t, "POST", "/_bulk", ndjson(lines...))
	require.Equal(t, 200, status)
	require.Equal(t, false, body["errors"])
	_, before := ts.do(t, "GET", "/kobs-trace-2026.11.25/_mapping", nil)
	_, doc := ts.do(t, "GET", "/kobs-trace-2026.11.25/_doc/e7", nil)
	ts.stop()

	ts2 := startStore(t, Config{Dir: dir})
	_, after := ts2.do(t, "GET", "/kobs-trace-2026.11.25/_mapping", nil)
	require.Equal(t, before, after)
	props := after["kobs-trace-2026.11.25"].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
	require.Equal(t, mustJSON(t, `{"type":"text","fields":{"keyword":{"type":"keyword","ignore_above":256}}}`), props["note"],
		"dynamic mapping survives the restart")
	require.Equal(t, mustJSON(t, `{"type":"long"}`), props["n"])

	_, cnt := ts2.do(t, "GET", "/kobs-trace-2026.11.25/_count", nil)
	require.EqualValues(t, 50, cnt["count"])
	_, doc2 := ts2.do(t, "GET", "/kobs-trace-2026.11.25/_doc/e7", nil)
	require.Equal(t, doc, doc2)
	_, res := ts2.do(t, "POST", "/kobs-trace-*/_search", `{"query":{"bool":{"filter":[{"term":{"topic":"t1"}},
		{"range":{"n":{"gte":10,"lt":20}}},{"match":{"note":"TEXT"}}]}},"sort":[{"ts":"desc"}],"size":3}`)
	var ids []string
	for _, h := range res["hits"].(map[string]any)["hits"].([]any) {
		ids = append(ids, h.(map[string]any)["_id"].(string))
	}
	require.Equal(t, []string{"e19", "e17", "e15"}, ids)

	// Sequence numbers continue after the restart.
	status, w := ts2.do(t, "PUT", "/kobs-trace-2026.11.25/_doc/new", `{"topic":"t9"}`)
	require.Equal(t, 201, status)
	require.EqualValues(t, 50, w["_seq_no"])
}

// TestBulkSameIDTwice: re-shipping a batch after a crash must not duplicate.
func TestBulkSameIDTwice(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	body := ndjson(`{"index":{"_index":"idem","_id":"a"}}`, `{"v":1}`, `{"index":{"_index":"idem","_id":"b"}}`, `{"v":2}`)
	for round := 1; round <= 2; round++ {
		status, resp := ts.do(t, "POST", "/_bulk", body)
		require.Equal(t, 200, status)
		require.Equal(t, false, resp["errors"])
		it := resp["items"].([]any)[0].(map[string]any)["index"].(map[string]any)
		require.EqualValues(t, round, it["_version"])
		require.Equal(t, map[int]string{1: "created", 2: "updated"}[round], it["result"])
		_, cnt := ts.do(t, "GET", "/idem/_count", nil)
		require.EqualValues(t, 2, cnt["count"], "round %d", round)
	}
	// Top-level key order is Elasticsearch's (some shippers sniff the prefix).
	_, raw := ts.raw(t, "POST", "/_bulk", body)
	require.Regexp(t, `^\{"took":\d+,"errors":false,"items":\[\{"index":\{"_index":"idem","_type":"_doc","_id":"a","_version":3,"result":"updated",`, string(raw))

	// Within one bulk too: the last write of an id wins.
	status, resp := ts.do(t, "POST", "/idem/_bulk", ndjson(`{"index":{"_id":"c"}}`, `{"v":1}`, `{"index":{"_id":"c"}}`, `{"v":9}`))
	require.Equal(t, 200, status)
	require.Equal(t, false, resp["errors"])
	_, cnt := ts.do(t, "GET", "/idem/_count", nil)
	require.EqualValues(t, 3, cnt["count"])
	_ = raw
	_, doc := ts.do(t, "GET", "/idem/_doc/c", nil)
	require.Equal(t, map[string]any{"v": float64(9)}, doc["_source"])
	require.EqualValues(t, 2, doc["_version"])
}

func TestUpdateAndDeleteInBulk(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	status, resp := ts.do(t, "POST", "/_bulk", ndjson(
		`{"index":{"_index":"u","_id":"1"}}`, `{"a":{"b":1,"c":2},"d":"x"}`,
		`{"update":{"_index":"u","_id":"1"}}`, `{"doc":{"a":{"b":5}}}`,
		`{"update":{"_index":"u","_id":"1"}}`, `{"doc":{"a":{"b":5}}}`,
		`{"update":{"_index":"u","_id":"2"}}`, `{"doc":{"z":1}}`,
		`{"update":{"_index":"u","_id":"3"}}`, `{"doc":{"z":1},"doc_as_upsert":true}`,
		`{"delete":{"_index":"u","_id":"3"}}`,
		`{"delete":{"_index":"u","_id":"4"}}`,
	))
	require.Equal(t, 200, status)
	var got []string
	for _, it := range resp["items"].([]any) {
		for action, r := range it.(map[string]any) {
			r := r.(map[string]any)
			got = append(got, fmt.Sprintf("%s:%v:%v", action, r["status"], r["result"]))
		}
	}
	require.Equal(t, []string{"index:201:created", "update:200:updated", "update:200:noop", "update:404:<nil>",
		"update:201:created", "delete:200:deleted", "delete:404:not_found"}, got)
	_, doc := ts.do(t, "GET", "/u/_doc/1", nil)
	require.Equal(t, mustJSON(t, `{"a":{"b":5,"c":2},"d":"x"}`), doc["_source"])
	require.EqualValues(t, 2, doc["_version"])
	_, cnt := ts.do(t, "GET", "/u/_count", nil)
	require.EqualValues(t, 1, cnt["count"])
}

func TestRetention(t *testing.T) {
	dir := t.TempDir()
	ts := startStore(t, Config{Dir: dir, RetentionDays: 7})
	names := []string{"kobs-trace-2026.11.10", "kobs-trace-2026.11.17", "kobs-trace-2026.11.18", "kobs-trace-2026.11.25", "other"}
	for _, n := range names {
		status, _ := ts.do(t, "PUT", "/"+n, nil)
		require.Equal(t, 200, status)
	}
	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	require.Equal(t, []string{"kobs-trace-2026.11.10", "kobs-trace-2026.11.17"}, ts.applyRetention(now))
	require.Equal(t, []string{"kobs-trace-2026.11.18", "kobs-trace-2026.11.25", "other"}, ts.names())
	for _, n := range []string{"kobs-trace-2026.11.10", "kobs-trace-2026.11.17"} {
		_, err := os.Stat(filepath.Join(dir, "indices", n))
		require.True(t, os.IsNotExist(err), "%s must be removed from disk", n)
		status, _ := ts.do(t, "HEAD", "/"+n, nil)
		require.Equal(t, 404, status)
	}
	require.Empty(t, ts.applyRetention(now), "nothing left to delete")

	// The background loop runs at start with the store's clock.
	ts.stop()
	ts2 := startStore(t, Config{Dir: dir, RetentionDays: 7})
	_ = ts2 // real clock: 2026.11.18 may or may not be old; "other" is never touched
	eventually(t, 5*time.Second, func() error {
		if ts2.get("other") == nil {
			return fmt.Errorf("index without a date was deleted")
		}
		return nil
	})
}

func TestConfig(t *testing.T) {
	_, err := Open(Config{})
	require.ErrorContains(t, err, "Dir is required")
	_, err = Open(Config{Dir: t.TempDir(), RetentionDays: -1})
	require.Error(t, err)

	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	require.NoError(t, err)
	_, err = Open(Config{Dir: dir})
	require.ErrorContains(t, err, "in use", "a second store on the same directory must be refused")
	require.NoError(t, s.Close())
	s, err = Open(Config{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// TestConcurrentWriters: bulks racing to auto-create the same index and to
// write overlapping ids must neither fail nor duplicate documents, and
// _seq_no must stay unique.
func TestConcurrentWriters(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	const writers, perWriter = 4, 200
	type result struct {
		seqNos []float64
		err    error
	}
	results := make(chan result, writers)
	for w := 0; w < writers; w++ {
		go func(w int) {
			var lines []string
			for i := 0; i < perWriter; i++ {
				// Half of the ids are shared by all writers.
				id := fmt.Sprintf("w%d-%d", w, i)
				if i%2 == 0 {
					id = fmt.Sprintf("shared-%d", i)
				}
				lines = append(lines, fmt.Sprintf(`{"index":{"_index":"race","_id":%q}}`, id), fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))
			}
			var r result
			for chunk := 0; chunk < len(lines); chunk += 40 {
				status, raw, err := ts.rawErr("POST", "/_bulk", ndjson(lines[chunk:chunk+40]...))
				var body map[string]any
				if err == nil {
					err = json.Unmarshal(raw, &body)
				}
				if err != nil || status != 200 || body["errors"] != false {
					r.err = fmt.Errorf("status %d: %v: %.300s", status, err, raw)
					break
				}
				for _, it := range body["items"].([]any) {
					r.seqNos = append(r.seqNos, it.(map[string]any)["index"].(map[string]any)["_seq_no"].(float64))
				}
			}
			results <- r
		}(w)
	}
	seen := map[float64]bool{}
	for w := 0; w < writers; w++ {
		r := <-results
		require.NoError(t, r.err)
		for _, s := range r.seqNos {
			require.False(t, seen[s], "duplicate _seq_no %v", s)
			seen[s] = true
		}
	}
	require.Len(t, seen, writers*perWriter)
	_, cnt := ts.do(t, "GET", "/race/_count", nil)
	require.EqualValues(t, writers*perWriter/2+perWriter/2, cnt["count"])
	_, doc := ts.do(t, "GET", "/race/_doc/shared-0", nil)
	require.EqualValues(t, writers, doc["_version"], "each writer's write of a shared id is one version")
}

// TestServeWithMountsExtraHandlers: extra handlers answer under their
// prefix and the Elasticsearch API keeps answering everything else.
func TestServeWithMountsExtraHandlers(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir()})
	require.NoError(t, err)
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.ServeWith(ctx, ln, map[string]http.Handler{"/v1/trace/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "journey "+r.URL.Path)
		})})
	}()
	defer func() { cancel(); require.NoError(t, <-done) }()
	url := "http://" + ln.Addr().String()
	resp, err := http.Get(url + "/v1/trace/msg/abc")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "journey /v1/trace/msg/abc", string(b))
	resp, err = http.Get(url + "/")
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(b), `"tagline":"You Know, for Search"`)
}
