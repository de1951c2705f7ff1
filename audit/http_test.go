package audit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The JSON API's bad input answers 400 with a reason; good input answers
// the report and the summary in their documented shapes.
func TestHTTPAPI(t *testing.T) {
	r, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Bucket: time.Second, Grace: time.Second})
	require.NoError(t, err)
	now := time.Now().UnixMilli()
	r.mu.Lock()
	require.NoError(t, r.c.applyRecord(flushOf("p", TierProducer, "p", 1, now, Count{Topic: "t", Bucket: bucketOf(now, 1000), Records: 7}), now))
	r.c.evaluate(now)
	r.mu.Unlock()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()

	get := func(path string, want int, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	}
	var e map[string]string
	get("/v1/audit/report", http.StatusBadRequest, &e)
	require.Contains(t, e["error"], "topic")
	get("/v1/audit/report?topic=t&since=yesterday", http.StatusBadRequest, &e)
	require.Contains(t, e["error"], "since")

	var rep ReportResponse
	get("/v1/audit/report?topic=t&since=1m", http.StatusOK, &rep)
	require.Len(t, rep.Buckets, 1)
	require.EqualValues(t, 7, val(rep.Buckets[0].Producer))
	require.Equal(t, StatusPending, rep.Buckets[0].Status)
	get("/v1/audit/report?topic=nothing", http.StatusOK, &rep)
	require.NotNil(t, rep.Buckets)
	require.Empty(t, rep.Buckets)

	var sum []TopicSummary
	get("/v1/audit/summary", http.StatusOK, &sum)
	require.Len(t, sum, 1)
	require.Equal(t, "t", sum[0].Topic)
	var st Status
	get("/v1/audit/status", http.StatusOK, &st)
	require.Equal(t, 1, st.Instances["producer/alive"])
}
