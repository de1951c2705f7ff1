package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// ids returns the _ids of a search's hits in order.
func segHitIDs(t *testing.T, body map[string]any) []string {
	t.Helper()
	var out []string
	for _, h := range body["hits"].(map[string]any)["hits"].([]any) {
		out = append(out, h.(map[string]any)["_id"].(string))
	}
	return out
}

func nodeKobsStats(t *testing.T, ts *testServer) map[string]any {
	t.Helper()
	status, body := ts.do(t, "GET", "/_nodes/stats", nil)
	require.Equal(t, 200, status)
	for _, n := range body["nodes"].(map[string]any) {
		return n.(map[string]any)["kobs"].(map[string]any)
	}
	t.Fatal("no node in _nodes/stats")
	return nil
}

// Small segments roll during writes; every document stays readable by id,
// by query and in _doc order, across the roll and across a restart that
// rebuilds the in-memory index from all segments.
func TestSegmentRollAndRebuild(t *testing.T) {
	old, oldBatch := segmentBytes, replayBatch
	segmentBytes, replayBatch = 4096, 7 // many segments, and many rebuild batches in flight
	t.Cleanup(func() { segmentBytes, replayBatch = old, oldBatch })
	dir := t.TempDir()
	ts := startStore(t, Config{Dir: dir})
	const n = 300
	for b := 0; b < n; b += 50 {
		var bulk strings.Builder
		for i := b; i < b+50; i++ {
			fmt.Fprintf(&bulk, `{"index":{"_index":"roll","_id":"d%03d"}}`+"\n"+`{"n":%d,"k":"k%d","note":"padding to fill segments quickly %d"}`+"\n", i, i, i%7, i)
		}
		status, out := ts.do(t, "POST", "/_bulk", bulk.String())
		require.Equal(t, 200, status)
		require.Equal(t, false, out["errors"], "%v", out)
	}
	// Overwrite one and delete another: the rebuild must replay both.
	status, _ := ts.do(t, "PUT", "/roll/_doc/d005", `{"n":1005,"k":"k5"}`)
	require.Equal(t, 200, status)
	status, _ = ts.do(t, "DELETE", "/roll/_doc/d006", nil)
	require.Equal(t, 200, status)
	segs, err := filepath.Glob(filepath.Join(dir, "indices", "roll", "seg-*.log"))
	require.NoError(t, err)
	require.Greater(t, len(segs), 5, "4 KiB segments must have rolled")

	check := func(ts *testServer) {
		t.Helper()
		_, cnt := ts.do(t, "GET", "/roll/_count", nil)
		require.EqualValues(t, n-1, cnt["count"])
		status, doc := ts.do(t, "GET", "/roll/_doc/d001", nil)
		require.Equal(t, 200, status)
		require.EqualValues(t, 1, doc["_source"].(map[string]any)["n"])
		status, doc = ts.do(t, "GET", "/roll/_doc/d005", nil)
		require.Equal(t, 200, status)
		require.EqualValues(t, 1005, doc["_source"].(map[string]any)["n"])
		require.EqualValues(t, 2, doc["_version"])
		status, _ = ts.do(t, "GET", "/roll/_doc/d006", nil)
		require.Equal(t, 404, status)
		_, body := ts.do(t, "POST", "/roll/_search", `{"size":3,"sort":[{"_doc":"desc"}]}`)
		require.Equal(t, []string{"d005", "d299", "d298"}, segHitIDs(t, body), "an overwritten document counts as written last")
		_, body = ts.do(t, "POST", "/roll/_search", `{"query":{"bool":{"filter":[{"term":{"k":"k3"}},{"range":{"n":{"gte":200}}}]}},"size":2,"sort":[{"n":"asc"}]}`)
		require.Equal(t, []string{"d206", "d213"}, segHitIDs(t, body))
		_, body = ts.do(t, "POST", "/roll/_search", `{"size":0,"aggs":{"s":{"sum":{"field":"n"}}}}`)
		require.EqualValues(t, (n-1)*n/2-5-6+1005, body["aggregations"].(map[string]any)["s"].(map[string]any)["value"])
	}
	check(ts)
	_, before := ts.do(t, "PUT", "/roll/_doc/x", `{"n":0}`)
	ts.stop()

	ts = startStore(t, Config{Dir: dir})
	_, _ = ts.do(t, "DELETE", "/roll/_doc/x", nil)
	check(ts)
	// Sequence numbers continue after the rebuild.
	_, after := ts.do(t, "PUT", "/roll/_doc/y", `{"n":0}`)
	require.Greater(t, after["_seq_no"].(float64), before["_seq_no"].(float64)+1)
}

// A crash in the middle of a write leaves a torn record at the end of the
// newest segment. The store cuts it off at start, says so in its log and in
// _nodes/stats, and keeps every acknowledged document; it then accepts
// writes that survive the next restart.
func TestTornTailIsTruncatedAndCounted(t *testing.T) {
	dir := t.TempDir()
	ts := startStore(t, Config{Dir: dir})
	var bulk strings.Builder
	for i := range 20 {
		fmt.Fprintf(&bulk, `{"index":{"_index":"torn","_id":"d%d"}}`+"\n"+`{"n":%d}`+"\n", i, i)
	}
	status, out := ts.do(t, "POST", "/_bulk", bulk.String())
	require.Equal(t, 200, status)
	require.Equal(t, false, out["errors"])
	ts.stop()

	// The torn write: the first 30 bytes of a real record.
	segs, err := filepath.Glob(filepath.Join(dir, "indices", "torn", "seg-*.log"))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	st, err := os.Stat(segs[0])
	require.NoError(t, err)
	rec, _ := appendRecord(nil, opIndex, 99, 1, "lost", []byte(`{"n":12345,"padding":"xxxxxxxxxxxxxxxxxxxx"}`))
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(rec[:30])
	require.NoError(t, err)
	require.NoError(t, f.Close())

	var logs syncBuffer
	ts = startStore(t, Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.Contains(t, logs.String(), "torn tail")
	require.Contains(t, logs.String(), "bytes=30")
	stats := nodeKobsStats(t, ts)
	require.EqualValues(t, 1, stats["log_torn_tails"])
	require.EqualValues(t, 30, stats["log_torn_bytes"])
	st2, err := os.Stat(segs[0])
	require.NoError(t, err)
	require.Equal(t, st.Size(), st2.Size(), "the tail is cut back to the last whole record")
	_, cnt := ts.do(t, "GET", "/torn/_count", nil)
	require.EqualValues(t, 20, cnt["count"], "every acknowledged document is kept")

	status, _ = ts.do(t, "PUT", "/torn/_doc/after", `{"n":-1}`)
	require.Equal(t, 201, status)
	ts.stop()
	ts = startStore(t, Config{Dir: dir})
	_, cnt = ts.do(t, "GET", "/torn/_count", nil)
	require.EqualValues(t, 21, cnt["count"])
	require.EqualValues(t, 0, nodeKobsStats(t, ts)["log_torn_tails"], "a clean restart finds nothing to cut")
	// A checksum mismatch (a torn write whose length made it) is cut too.
	ts.stop()
	f, err = os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	bad := append([]byte(nil), rec...)
	bad[len(bad)-2] ^= 0xff
	_, err = f.Write(bad)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	ts = startStore(t, Config{Dir: dir})
	require.EqualValues(t, len(bad), nodeKobsStats(t, ts)["log_torn_bytes"])
	_, cnt = ts.do(t, "GET", "/torn/_count", nil)
	require.EqualValues(t, 21, cnt["count"])
}

// An index directory the engine cannot open (here: one written by an older
// kobs on bleve) is neither deleted nor overwritten when a write recreates
// an index of that name: it is moved to Dir/unreadable, logged and counted.
func TestUnreadableIndexIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "indices", "kobs-trace-2026.11.24")
	require.NoError(t, os.MkdirAll(filepath.Join(old, "store"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(old, "index_meta.json"), []byte(`{"storage":"boltdb","index_type":"scorch"}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(old, "store", "root.bolt"), []byte("old data"), 0o644))
	var logs syncBuffer
	ts := startStore(t, Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.Contains(t, logs.String(), "moved it aside")
	require.Contains(t, logs.String(), "bleve index")
	require.EqualValues(t, 1, nodeKobsStats(t, ts)["unreadable_indexes"])
	moved, err := filepath.Glob(filepath.Join(dir, "unreadable", "kobs-trace-2026.11.24-*", "store", "root.bolt"))
	require.NoError(t, err)
	require.Len(t, moved, 1)
	raw, err := os.ReadFile(moved[0])
	require.NoError(t, err)
	require.Equal(t, "old data", string(raw))
	// The name is free for new writes.
	status, _ := ts.do(t, "PUT", "/kobs-trace-2026.11.24/_doc/a", `{"n":1}`)
	require.Equal(t, 201, status)
	raw, err = os.ReadFile(moved[0])
	require.NoError(t, err)
	require.Equal(t, "old data", string(raw))
}
