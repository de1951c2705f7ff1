package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Compare runs with benchstat:
//
//	go test ./tracing/store -run '^$' -bench . -count 6 > new.txt && benchstat old.txt new.txt

// bulkBody builds one _bulk request of n trace-event-like documents
// (~300 bytes each) with ids starting at first.
func bulkBody(tb testing.TB, index string, first, n int) []byte {
	var buf bytes.Buffer
	for i := first; i < first+n; i++ {
		e := makeEvent(i)
		e.MsgID = fmt.Sprintf("m-%09d", i)
		fmt.Fprintf(&buf, `{"index":{"_index":%q,"_id":%q}}`+"\n", index, e.MsgID)
		b, err := json.Marshal(e)
		require.NoError(tb, err)
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func postBulk(tb testing.TB, url string, body []byte) {
	resp, err := http.Post(url+"/_bulk", "application/x-ndjson", bytes.NewReader(body))
	require.NoError(tb, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(tb, err)
	require.Equal(tb, 200, resp.StatusCode)
	// "errors" comes right after "took", as in Elasticsearch; checking the
	// prefix avoids decoding 1000 items inside the timed loop.
	require.True(tb, bytes.Contains(raw[:min(64, len(raw))], []byte(`,"errors":false,"items":[`)), "%.300s", raw)
}

// BenchmarkBulkIndex measures events/s through HTTP _bulk with 1000-event
// bulks, the shipper's default batch. Each bulk is durably persisted before
// it is acknowledged (one write and fsync of the segment log per bulk).
func BenchmarkBulkIndex(b *testing.B) {
	ts := startStore(b, Config{Dir: b.TempDir()})
	const perBulk = 1000
	status, _ := ts.do(b, "PUT", "/kobs-trace-2026.11.25", traceMapping)
	require.Equal(b, 200, status)
	// Bodies are prepared outside the timer, with fresh ids per bulk so every
	// event is an insert.
	var bodies [][]byte
	for i := 0; i < 64; i++ {
		bodies = append(bodies, bulkBody(b, "kobs-trace-2026.11.25", i*perBulk, perBulk))
	}
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		if n == len(bodies) {
			b.StopTimer()
			bodies = append(bodies, bulkBody(b, "kobs-trace-2026.11.25", n*perBulk, perBulk))
			b.StartTimer()
		}
		postBulk(b, ts.URL, bodies[n])
		n++
	}
	b.ReportMetric(float64(n*perBulk)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkTermQuery measures keyword term queries on a pre-filled index:
// a point lookup (one hit) and a selective filter returning a page of 10
// sorted by time, the two shapes of journey queries.
func BenchmarkTermQuery(b *testing.B) {
	ts := startStore(b, Config{Dir: b.TempDir()})
	status, _ := ts.do(b, "PUT", "/kobs-trace-2026.11.25", traceMapping)
	require.Equal(b, 200, status)
	const docs = 20000
	for i := 0; i < docs; i += 1000 {
		postBulk(b, ts.URL, bulkBody(b, "kobs-trace-2026.11.25", i, 1000))
	}
	for _, bc := range []struct {
		name, body string
		hits       int
	}{
		{"shape=point", `{"query":{"term":{"msg_id":"m-000012345"}}}`, 1},
		{"shape=page", `{"query":{"bool":{"filter":[{"term":{"topic":"payments"}},{"term":{"partition":1}}]}},"sort":[{"ts":"desc"}],"size":10}`, 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			n := 0
			for b.Loop() {
				resp, err := http.Post(ts.URL+"/kobs-trace-2026.11.25/_search", "application/json", bytes.NewBufferString(bc.body))
				require.NoError(b, err)
				var r struct {
					Hits struct {
						Hits []json.RawMessage `json:"hits"`
					} `json:"hits"`
				}
				require.NoError(b, json.NewDecoder(resp.Body).Decode(&r))
				resp.Body.Close()
				require.Len(b, r.Hits.Hits, bc.hits)
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "queries/s")
		})
	}
}
