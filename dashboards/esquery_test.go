package dashboards_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/dashboards"
)

// TestESRequestAsGrafanaBuildsIt compares the _msearch lines with the
// shapes Grafana's Elasticsearch datasource sends (its backend builds maps,
// so keys arrive sorted): a terms > date_histogram count query, a
// percentiles query, and raw data.
func TestESRequestAsGrafanaBuildsIt(t *testing.T) {
	from := time.UnixMilli(1709251200000).UTC() // 2024-03-01T00:00Z
	to := time.UnixMilli(1709337600000 + 3600000).UTC()
	h, body := dashboards.ESRequest(dashboards.ESQuery{Query: "type:produce",
		Buckets: []dashboards.ESBucket{{Type: "terms", Field: "topic", Size: 10}, {Type: "date_histogram", Field: "ts", Interval: "1m"}},
		Metrics: []dashboards.ESMetric{{Type: "count"}}}, from, to)
	require.JSONEq(t, `{"ignore_unavailable":true,"index":"kobs-trace-2024.03.01,kobs-trace-2024.03.02","search_type":"query_then_fetch"}`, string(h))
	R := `{"range":{"ts":{"gte":1709251200000,"lte":1709341200000,"format":"epoch_millis"}}}`
	require.JSONEq(t, `{"size":0,"query":{"bool":{"filter":[`+R+`,{"query_string":{"query":"type:produce","analyze_wildcard":true}}]}},
		"aggs":{"2":{"terms":{"field":"topic","size":10,"order":{"_count":"desc"},"min_doc_count":1},
		"aggs":{"3":{"date_histogram":{"field":"ts","fixed_interval":"1m","min_doc_count":0,"extended_bounds":{"min":1709251200000,"max":1709341200000},"format":"epoch_millis"}}}}}}`, string(body))

	_, body = dashboards.ESRequest(dashboards.ESQuery{Query: "type:consume",
		Buckets: []dashboards.ESBucket{{Type: "date_histogram", Field: "ts", Interval: "auto"}},
		Metrics: []dashboards.ESMetric{{Type: "percentiles", Field: "e2e_us", Percents: []string{"50", "99"}}}}, from, to)
	var b map[string]any
	require.NoError(t, json.Unmarshal(body, &b))
	dh := b["aggs"].(map[string]any)["2"].(map[string]any)
	require.Equal(t, "900000ms", dh["date_histogram"].(map[string]any)["fixed_interval"], "auto: about 100 buckets")
	require.Equal(t, map[string]any{"1": map[string]any{"percentiles": map[string]any{"field": "e2e_us", "percents": []any{"50", "99"}}}}, dh["aggs"])

	// A sum with Grafana's "missing" setting, which its backend copies
	// into the aggregation as the string it stores.
	_, body = dashboards.ESRequest(dashboards.ESQuery{Query: "type:produce",
		Buckets: []dashboards.ESBucket{{Type: "date_histogram", Field: "ts", Interval: "1m"}},
		Metrics: []dashboards.ESMetric{{Type: "sum", Field: "records", Missing: "1"}}}, from, to)
	require.NoError(t, json.Unmarshal(body, &b))
	dh = b["aggs"].(map[string]any)["2"].(map[string]any)
	require.Equal(t, map[string]any{"1": map[string]any{"sum": map[string]any{"field": "records", "missing": "1"}}}, dh["aggs"])

	_, body = dashboards.ESRequest(dashboards.ESQuery{Metrics: []dashboards.ESMetric{{Type: "raw_data", Size: 50}}}, from, to)
	require.JSONEq(t, `{"size":50,"query":{"bool":{"filter":`+R+`}},"docvalue_fields":["ts"],"script_fields":{},
		"sort":{"ts":{"order":"desc","unmapped_type":"boolean"},"_doc":{"order":"desc"}},
		"fields":[{"field":"ts","format":"strict_date_optional_time_nanos"}]}`, string(body))
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{0.25, "percentunit", "25%"}, {1500, "ms", "1.5 s"}, {12, "ms", "12 ms"}, {2048, "bytes", "2 KiB"},
		{1.5e6, "Bps", "1.5 MB/s"}, {1234, "short", "1.234K"}, {3, "reqps", "3 req/s"}, {0, "short", "0"},
		{1709251200000, "dateTimeAsIso", "2024-03-01 00:00:00"},
	} {
		require.Equal(t, c.want, dashboards.FormatValue(c.v, c.unit), "%g %s", c.v, c.unit)
	}
	require.Equal(t, "b1 in", dashboards.Legend("{{instance}} in", map[string]string{"instance": "b1"}))
}
