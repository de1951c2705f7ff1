package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// simpleMatch agrees with the regular expression its pattern stands for,
// on random patterns and names over a small alphabet (where backtracking
// cases are frequent).
func TestSimpleMatchAgreesWithRegexp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	word := func(n int, alphabet string) string {
		b := make([]byte, r.IntN(n))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 20000 {
		pat, s := word(8, "ab*"), word(10, "ab")
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(pat), `\*`, ".*") + "$")
		require.Equal(t, re.MatchString(s), simpleMatch(pat, s), "pattern %q name %q", pat, s)
	}
}

// An index pattern that took a minute with backtracking answers at once:
// *a*a*a*a*a*b against a 255-character index name.
func TestWildcardIndexPatternIsLinear(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	name := strings.Repeat("a", 255)
	status, _ := ts.do(t, "PUT", "/"+name, nil)
	require.Equal(t, 200, status)
	start := time.Now()
	status, body := ts.do(t, "GET", "/*a*a*a*a*a*b/_search", nil)
	took := time.Since(start)
	require.Equal(t, 200, status)
	require.Equal(t, 0.0, body["_shards"].(map[string]any)["total"], "the pattern matches no index")
	// Backtracking took a minute; the bound leaves room for a scheduling
	// stall of the request on a loaded machine (100 ms left none).
	require.Less(t, took, 5*time.Second)
	// ... and still matches what it should.
	status, body = ts.do(t, "GET", "/*a*a*a*a*a*a/_search", nil)
	require.Equal(t, 200, status)
	require.Equal(t, 1.0, body["_shards"].(map[string]any)["total"])
}

func TestSearchLimits(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir(), MaxIndexes: 2})
	status, _ := ts.do(t, "PUT", "/one", `{"mappings":{"properties":{"k":{"type":"keyword"}}}}`)
	require.Equal(t, 200, status)

	// search_after pages are bounded by the result window too.
	status, raw := ts.raw(t, "POST", "/one/_search", `{"size":10001,"sort":["k"],"search_after":["x"]}`)
	require.Equal(t, 400, status)
	require.Contains(t, string(raw), "Result window is too large")
	status, raw = ts.raw(t, "POST", "/one/_search", `{"from":5,"size":10,"sort":["k"],"search_after":["x"]}`)
	require.Equal(t, 400, status)
	require.Contains(t, string(raw), "must be set to 0 when `search_after` is used")
	status, _ = ts.raw(t, "POST", "/one/_search", `{"size":10000,"sort":["k"],"search_after":["x"]}`)
	require.Equal(t, 200, status)

	// A terms query is capped at index.max_terms_count values.
	vals := make([]string, 70000)
	for i := range vals {
		vals[i] = fmt.Sprintf("%q", fmt.Sprint(i))
	}
	status, raw = ts.raw(t, "POST", "/one/_search", `{"query":{"terms":{"k":[`+strings.Join(vals, ",")+`]}}}`)
	require.Equal(t, 400, status)
	require.Contains(t, string(raw), "exceeded the allowed maximum of [65536]")

	// The index count is capped; the refused index leaves nothing behind.
	status, _ = ts.do(t, "PUT", "/two", nil)
	require.Equal(t, 200, status)
	status, raw = ts.raw(t, "PUT", "/three", nil)
	require.Equal(t, 400, status)
	require.Contains(t, string(raw), "maximum shards open")
	status, raw = ts.raw(t, "POST", "/three/_doc", `{"k":"v"}`)
	require.Equal(t, 400, status, "auto-creation is capped as well: %s", raw)
	status, _ = ts.do(t, "HEAD", "/three", nil)
	require.Equal(t, 404, status)
}

// A search or aggregation whose request context is cancelled (the client
// left) stops instead of visiting every document.
func TestCancelledSearchStops(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	var bulk strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&bulk, `{"index":{"_index":"c"}}`+"\n"+`{"n":%d,"k":"v%d"}`+"\n", i, i%7)
	}
	status, _ := ts.do(t, "POST", "/_bulk", bulk.String())
	require.Equal(t, 200, status)
	tg, err := ts.pin("c", resolveOpts{})
	require.Nil(t, err)
	defer tg.release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := &aggParser{t: tg, c: tg.compiler(time.Now())}
	specs, perr := p.parse([]byte(`{"k":{"terms":{"field":"k.keyword"}}}`))
	require.Nil(t, perr)
	_, aerr := tg.runAggs(ctx, qAll{}, specs, p)
	require.NotNil(t, aerr)
	require.Equal(t, "task_cancelled_exception", aerr.Type)
	// And the same aggregation answers when nobody cancels it.
	out, aerr := tg.runAggs(context.Background(), qAll{}, specs, p)
	require.Nil(t, aerr)
	require.Len(t, out["k"].(map[string]any)["buckets"], 7)
}

// syncBuffer is a log sink the test can read while the store writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A client that gives up on a long _msearch over HTTP stops the work: the
// store notices the closed request and answers no further searches.
func TestClientLeavingStopsMsearch(t *testing.T) {
	logs := &syncBuffer{}
	ts := startStore(t, Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	var bulk strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&bulk, `{"index":{"_index":"c"}}`+"\n"+`{"n":%d,"k":"v%d"}`+"\n", i, i%50)
	}
	status, _ := ts.do(t, "POST", "/_bulk", bulk.String())
	require.Equal(t, 200, status)
	const searches = 1000
	var body strings.Builder
	for range searches {
		body.WriteString(`{"index":"c"}` + "\n" + `{"size":0,"aggs":{"k":{"terms":{"field":"k.keyword","size":50},"aggs":{"p":{"percentiles":{"field":"n"}}}}}}` + "\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", ts.URL+"/_msearch", strings.NewReader(body.String()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-ndjson")
	_, err = http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded, "1000 aggregations take longer than 200ms")
	var line string
	eventually(t, 30*time.Second, func() error {
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, "msearch cancelled") {
				line = l
				return nil
			}
		}
		return errors.New("the store did not notice the client leaving")
	})
	var done int
	_, err = fmt.Sscanf(line[strings.Index(line, "done="):], "done=%d", &done)
	require.NoError(t, err, line)
	require.Less(t, done, searches, line)
}
