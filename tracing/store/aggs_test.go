package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/olivere/elastic/v7"
	"github.com/stretchr/testify/require"
)

// The fixed data set: 120 trace events, one every 30 s from
// 2024-03-01T00:00:00Z, event i on partition i%3 at offset i/3 with
// latency_us (i+1)*10, topic "payments" when i%4 == 0 and "orders" otherwise.
// Every expected value below is computed by hand from that description.
const aggBase = int64(1709251200000)

const aggMapping = `{"mappings":{"dynamic":false,"properties":{
  "type":{"type":"keyword"},"topic":{"type":"keyword"},"msg_id":{"type":"keyword"},
  "partition":{"type":"long"},"offset":{"type":"long"},"latency_us":{"type":"long"},
  "ts":{"type":"date","format":"epoch_millis"},"text":{"type":"text"},
  "span_id":{"type":"keyword","index":false,"doc_values":false}}}}`

func loadAggData(t *testing.T) (*testServer, *elastic.Client) {
	t.Helper()
	ts := startStore(t, Config{Dir: t.TempDir()})
	status, _ := ts.do(t, "PUT", "/kobs-trace-2024.03.01", aggMapping)
	require.Equal(t, 200, status)
	var bulk strings.Builder
	for i := range 120 {
		topic := "orders"
		if i%4 == 0 {
			topic = "payments"
		}
		fmt.Fprintf(&bulk, `{"index":{"_index":"kobs-trace-2024.03.01","_id":"e%d"}}`+"\n", i)
		fmt.Fprintf(&bulk, `{"type":"produce","topic":%q,"msg_id":"m%d","partition":%d,"offset":%d,"latency_us":%d,"ts":%d,"text":"hello world"}`+"\n",
			topic, i, i%3, i/3, (i+1)*10, aggBase+int64(i)*30000)
	}
	status, out := ts.do(t, "POST", "/_bulk", bulk.String())
	require.Equal(t, 200, status)
	require.Equal(t, false, out["errors"])
	return ts, newOlivere(t, ts.URL)
}

func TestTypedRangeAndSort(t *testing.T) {
	_, es := loadAggData(t)
	ctx := context.Background()
	// Offsets 5..10 of partition 1: six records. As keywords ("5".."10")
	// the range would be empty.
	q := elastic.NewBoolQuery().Filter(elastic.NewTermQuery("partition", 1), elastic.NewRangeQuery("offset").Gte(5).Lte(10))
	n, err := es.Count("kobs-trace-*").Query(q).Do(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(6), n)
	// Offsets 20..39 of partition 1: twenty.
	q = elastic.NewBoolQuery().Filter(elastic.NewTermQuery("partition", "1"), elastic.NewRangeQuery("offset").Gte(20).Lt(40))
	n, err = es.Count("kobs-trace-*").Query(q).Do(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(20), n)
	// Numeric sort: the highest offsets of partition 0 are 39, 38, 37
	// (as strings "9" would sort first).
	res, err := es.Search("kobs-trace-*").Query(elastic.NewTermQuery("partition", 0)).Sort("offset", false).Size(3).Do(ctx)
	require.NoError(t, err)
	var got []any
	for _, h := range res.Hits.Hits {
		got = append(got, h.Sort[0])
	}
	require.Equal(t, []any{39.0, 38.0, 37.0}, got)
	// Latency is indexed: 1000..1200 µs is 21 events.
	n, err = es.Count("kobs-trace-*").Query(elastic.NewRangeQuery("latency_us").Gte(1000)).Do(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(21), n)
}

func TestAggregationsThroughOlivere(t *testing.T) {
	_, es := loadAggData(t)
	ctx := context.Background()
	res, err := es.Search("kobs-trace-*").Size(0).
		Aggregation("per_minute", elastic.NewDateHistogramAggregation().Field("ts").FixedInterval("1m").MinDocCount(0).
			ExtendedBounds(aggBase, aggBase+3600000).Format("epoch_millis")).
		Aggregation("lat", elastic.NewPercentilesAggregation().Field("latency_us").Percentiles(50, 99)).
		Aggregation("avg", elastic.NewAvgAggregation().Field("latency_us")).
		Aggregation("min", elastic.NewMinAggregation().Field("latency_us")).
		Aggregation("max", elastic.NewMaxAggregation().Field("latency_us")).
		Aggregation("sum", elastic.NewSumAggregation().Field("latency_us")).
		Aggregation("count", elastic.NewValueCountAggregation().Field("offset")).
		Aggregation("parts", elastic.NewCardinalityAggregation().Field("partition")).
		Aggregation("topics", elastic.NewTermsAggregation().Field("topic").
			SubAggregation("p50", elastic.NewPercentilesAggregation().Field("latency_us").Percentiles(50))).
		Aggregation("hist", elastic.NewHistogramAggregation().Field("latency_us").Interval(300)).
		Aggregation("speed", elastic.NewFiltersAggregation().
			FilterWithName("slow", elastic.NewRangeQuery("latency_us").Gte(1000)).
			FilterWithName("fast", elastic.NewRangeQuery("latency_us").Lt(100))).
		Do(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(120), res.TotalHits())
	require.Empty(t, res.Hits.Hits)

	dh, ok := res.Aggregations.DateHistogram("per_minute")
	require.True(t, ok)
	require.Len(t, dh.Buckets, 61, "60 minutes of data plus the empty bucket at the extended bound")
	for i, b := range dh.Buckets {
		require.Equal(t, float64(aggBase+int64(i)*60000), b.Key)
		require.NotNil(t, b.KeyAsString)
		require.Equal(t, fmt.Sprint(aggBase+int64(i)*60000), *b.KeyAsString)
		want := int64(2)
		if i == 60 {
			want = 0
		}
		require.Equal(t, want, b.DocCount, "minute %d", i)
	}

	p, ok := res.Aggregations.Percentiles("lat")
	require.True(t, ok)
	require.Equal(t, map[string]float64{"50.0": 605, "99.0": 1193}, p.Values)
	for name, want := range map[string]float64{"avg": 605, "min": 10, "max": 1200, "sum": 72600, "count": 120, "parts": 3} {
		var v *elastic.AggregationValueMetric
		switch name {
		case "avg":
			v, ok = res.Aggregations.Avg(name)
		case "min":
			v, ok = res.Aggregations.Min(name)
		case "max":
			v, ok = res.Aggregations.Max(name)
		case "sum":
			v, ok = res.Aggregations.Sum(name)
		case "count":
			v, ok = res.Aggregations.ValueCount(name)
		case "parts":
			v, ok = res.Aggregations.Cardinality(name)
		}
		require.True(t, ok, name)
		require.NotNil(t, v.Value, name)
		require.Equal(t, want, *v.Value, name)
	}

	terms, ok := res.Aggregations.Terms("topics")
	require.True(t, ok)
	require.Len(t, terms.Buckets, 2)
	require.Equal(t, "orders", terms.Buckets[0].Key)
	require.Equal(t, int64(90), terms.Buckets[0].DocCount)
	require.Equal(t, "payments", terms.Buckets[1].Key)
	require.Equal(t, int64(30), terms.Buckets[1].DocCount)
	// payments: latencies 10, 50, ..., 1170; ranks 14 and 15 are 570 and
	// 610, so the median interpolates to 590.
	pp, ok := terms.Buckets[1].Percentiles("p50")
	require.True(t, ok)
	require.Equal(t, 590.0, pp.Values["50.0"])

	hist, ok := res.Aggregations.Histogram("hist")
	require.True(t, ok)
	var keys []float64
	var counts []int64
	for _, b := range hist.Buckets {
		keys = append(keys, b.Key)
		counts = append(counts, b.DocCount)
	}
	require.Equal(t, []float64{0, 300, 600, 900, 1200}, keys)
	require.Equal(t, []int64{29, 30, 30, 30, 1}, counts)

	f, ok := res.Aggregations.Filters("speed")
	require.True(t, ok)
	require.Equal(t, int64(21), f.NamedBuckets["slow"].DocCount)
	require.Equal(t, int64(9), f.NamedBuckets["fast"].DocCount)
}

// TestGrafanaTimeSeriesQuery sends what Grafana's Elasticsearch datasource
// sends for "p50 and p99 latency per topic per minute" (_msearch, size 0,
// bool filter with a range in epoch_millis and a query_string, terms >
// date_histogram > percentiles) and checks its reading of the answer.
func TestGrafanaTimeSeriesQuery(t *testing.T) {
	ts, _ := loadAggData(t)
	header := `{"ignore_unavailable":true,"index":"kobs-trace-2024.03.01,kobs-trace-2024.03.02","search_type":"query_then_fetch"}`
	body := fmt.Sprintf(`{"aggs":{"3":{"aggs":{"2":{"aggs":{"1":{"percentiles":{"field":"latency_us","percents":["50","99"]}}},`+
		`"date_histogram":{"extended_bounds":{"max":%d,"min":%d},"field":"ts","fixed_interval":"10m","format":"epoch_millis","min_doc_count":0}}},`+
		`"terms":{"field":"topic","min_doc_count":1,"order":{"_key":"desc"},"size":"10"}}},`+
		`"query":{"bool":{"filter":[{"range":{"ts":{"format":"epoch_millis","gte":%d,"lte":%d}}},{"query_string":{"analyze_wildcard":true,"query":"type:produce AND NOT topic:\"nope\""}}]}},"size":0}`,
		aggBase+3599999, aggBase, aggBase, aggBase+3599999)
	// A second query, raw documents, newest first, as Grafana's raw data
	// panel asks; a third one broken, which must fail alone.
	raw := fmt.Sprintf(`{"docvalue_fields":["ts"],"query":{"bool":{"filter":{"range":{"ts":{"format":"epoch_millis","gte":%d,"lte":%d}}}}},`+
		`"script_fields":{},"size":5,"sort":{"ts":{"order":"desc","unmapped_type":"boolean"},"_doc":{"order":"desc"}}}`, aggBase, aggBase+3599999)
	broken := `{"size":0,"aggs":{"x":{"terms":{"field":"text"}}}}`
	status, out := ts.do(t, "POST", "/_msearch?max_concurrent_shard_requests=5",
		header+"\n"+body+"\n"+header+"\n"+raw+"\n"+header+"\n"+broken+"\n")
	require.Equal(t, 200, status, "%v", out)
	responses := out["responses"].([]any)
	require.Len(t, responses, 3)

	r0 := responses[0].(map[string]any)
	require.Equal(t, map[string]any{"value": 120.0, "relation": "eq"}, r0["hits"].(map[string]any)["total"])
	topics := r0["aggregations"].(map[string]any)["3"].(map[string]any)["buckets"].([]any)
	require.Len(t, topics, 2)
	pay := topics[0].(map[string]any) // _key desc
	require.Equal(t, "payments", pay["key"])
	minutes := pay["2"].(map[string]any)["buckets"].([]any)
	require.Len(t, minutes, 6)
	first := minutes[0].(map[string]any)
	require.Equal(t, float64(aggBase), first["key"])
	// payments in the first 10 minutes: i = 0, 4, 8, 12, 16 (i < 20),
	// latencies 10, 50, 90, 130, 170: p50 at rank 2 is 90, p99 at rank
	// 4.45 clamps to 170.
	require.Equal(t, 5.0, first["doc_count"])
	require.Equal(t, map[string]any{"50.0": 90.0, "99.0": 170.0}, first["1"].(map[string]any)["values"])

	r1 := responses[1].(map[string]any)
	hits := r1["hits"].(map[string]any)["hits"].([]any)
	require.Len(t, hits, 5)
	require.Equal(t, "e119", hits[0].(map[string]any)["_id"])

	r2 := responses[2].(map[string]any)
	require.Contains(t, r2, "error")
	require.Equal(t, 400.0, r2["status"])
	reason := r2["error"].(map[string]any)["root_cause"].([]any)[0].(map[string]any)["reason"]
	require.Contains(t, reason, "Text fields are not optimised")
}

func TestAggregationErrors(t *testing.T) {
	ts, _ := loadAggData(t)
	for name, tc := range map[string]struct {
		body string
		want string
	}{
		"no doc values": {`{"size":0,"aggs":{"a":{"terms":{"field":"span_id"}}}}`, "Use doc values instead"},
		"terms size":    {`{"size":0,"aggs":{"a":{"terms":{"field":"topic","size":1000000}}}}`, "at most 65536"},
		"too many buckets": {fmt.Sprintf(`{"size":0,"aggs":{"a":{"date_histogram":{"field":"ts","fixed_interval":"1ms","min_doc_count":0,"extended_bounds":{"min":%d,"max":%d}}}}}`,
			aggBase, aggBase+3600000), "too_many_buckets_exception"},
		"unknown type":   {`{"size":0,"aggs":{"a":{"geohash_grid":{"field":"topic"}}}}`, "not supported"},
		"avg of keyword": {`{"size":0,"aggs":{"a":{"avg":{"field":"topic"}}}}`, "of type [keyword] is not supported for aggregation [avg]"},
	} {
		status, raw := ts.raw(t, "POST", "/kobs-trace-*/_search", tc.body)
		require.Equal(t, 400, status, name)
		require.Contains(t, string(raw), tc.want, name)
	}
}

// TestFieldCaps answers what Grafana's datasource test and field lists ask.
func TestFieldCaps(t *testing.T) {
	ts, _ := loadAggData(t)
	status, out := ts.do(t, "GET", "/kobs-trace-*/_field_caps?fields=ts", nil)
	require.Equal(t, 200, status, "%v", out)
	require.Equal(t, []any{"kobs-trace-2024.03.01"}, out["indices"])
	require.Equal(t, map[string]any{"ts": map[string]any{"date": map[string]any{
		"type": "date", "metadata_field": false, "searchable": true, "aggregatable": true}}}, out["fields"])
	status, out = ts.do(t, "GET", "/kobs-trace-2024.03.01/_field_caps?fields=*", nil)
	require.Equal(t, 200, status)
	fields := out["fields"].(map[string]any)
	require.Equal(t, true, fields["latency_us"].(map[string]any)["long"].(map[string]any)["aggregatable"])
	require.Equal(t, false, fields["text"].(map[string]any)["text"].(map[string]any)["aggregatable"])
	require.Equal(t, false, fields["span_id"].(map[string]any)["keyword"].(map[string]any)["searchable"])
	status, _ = ts.do(t, "GET", "/kobs-trace-*/_field_caps", nil)
	require.Equal(t, 400, status)
}

// Calendar intervals in a time zone, ordering terms by a sub-aggregation,
// and the time field of raw documents as Grafana reads it.
func TestCalendarZoneOrderAndHitFields(t *testing.T) {
	ts, _ := loadAggData(t)
	// The data spans 00:00-00:59:30 UTC on 2024-03-01, which is
	// 19:00-19:59:30 on 2024-02-29 in New York (UTC-5): one day bucket
	// keyed at New York's midnight, 2024-02-29T05:00:00Z.
	status, out := ts.do(t, "POST", "/kobs-trace-*/_search", `{"size":0,"aggs":{"d":{"date_histogram":{"field":"ts","calendar_interval":"1d","time_zone":"America/New_York"}}}}`)
	require.Equal(t, 200, status, "%v", out)
	buckets := out["aggregations"].(map[string]any)["d"].(map[string]any)["buckets"].([]any)
	require.Len(t, buckets, 1)
	b := buckets[0].(map[string]any)
	require.Equal(t, 1709182800000.0, b["key"])
	require.Equal(t, 120.0, b["doc_count"])
	// Hourly buckets with a 30-minute offset: 23:30-00:30 holds i < 60,
	// 00:30-01:30 the rest.
	status, out = ts.do(t, "POST", "/kobs-trace-*/_search", `{"size":0,"aggs":{"h":{"date_histogram":{"field":"ts","fixed_interval":"1h","offset":"+30m"}}}}`)
	require.Equal(t, 200, status, "%v", out)
	buckets = out["aggregations"].(map[string]any)["h"].(map[string]any)["buckets"].([]any)
	require.Len(t, buckets, 2)
	require.Equal(t, float64(aggBase-1800000), buckets[0].(map[string]any)["key"])
	require.Equal(t, 60.0, buckets[0].(map[string]any)["doc_count"])
	require.Equal(t, 60.0, buckets[1].(map[string]any)["doc_count"])

	// Partitions ordered by their average latency, highest first:
	// partition p holds i = p, p+3, ..., p+117 (mean i = p+58.5), so its
	// mean latency is 10*(p+58.5+1) = 595 + 10p; order 2, 1, 0.
	status, out = ts.do(t, "POST", "/kobs-trace-*/_search", `{"size":0,"aggs":{"p":{"terms":{"field":"partition","order":{"avg_lat":"desc"}},"aggs":{"avg_lat":{"avg":{"field":"latency_us"}}}}}}`)
	require.Equal(t, 200, status, "%v", out)
	var keys, avgs []float64
	for _, b := range out["aggregations"].(map[string]any)["p"].(map[string]any)["buckets"].([]any) {
		keys = append(keys, b.(map[string]any)["key"].(float64))
		avgs = append(avgs, b.(map[string]any)["avg_lat"].(map[string]any)["value"].(float64))
	}
	require.Equal(t, []float64{2, 1, 0}, keys)
	require.Equal(t, []float64{615, 605, 595}, avgs)

	// Raw documents: the newest hit's time, as an ISO string (fields with
	// Grafana's format) and as the mapping's epoch_millis (docvalue_fields).
	for body, want := range map[string]string{
		`"docvalue_fields":["ts"]`: "1709254770000",
		`"fields":[{"field":"ts","format":"strict_date_optional_time_nanos"}]`: "2024-03-01T00:59:30.000Z",
	} {
		status, out = ts.do(t, "POST", "/kobs-trace-*/_search", `{"size":1,"sort":[{"ts":"desc"}],`+body+`}`)
		require.Equal(t, 200, status, "%v", out)
		hit := out["hits"].(map[string]any)["hits"].([]any)[0].(map[string]any)
		require.Equal(t, "e119", hit["_id"])
		require.Equal(t, []any{want}, hit["fields"].(map[string]any)["ts"], body)
	}
}

// Daily indexes from before and after a mapping change (offset a keyword,
// then a long) cannot be aggregated together: a clear error, not garbage.
func TestAggregationAcrossConflictingMappings(t *testing.T) {
	ts, _ := loadAggData(t)
	status, _ := ts.do(t, "PUT", "/kobs-trace-2024.02.29", `{"mappings":{"properties":{"offset":{"type":"keyword"}}}}`)
	require.Equal(t, 200, status)
	status, _ = ts.do(t, "POST", "/kobs-trace-2024.02.29/_doc?refresh=true", `{"offset":"7"}`)
	require.Equal(t, 201, status)
	status, raw := ts.raw(t, "POST", "/kobs-trace-*/_search", `{"size":0,"aggs":{"o":{"terms":{"field":"offset"}}}}`)
	require.Equal(t, 400, status, "%s", raw)
	require.Contains(t, string(raw), "existed as two different types in two different indices")
	// Each index alone still aggregates.
	status, _ = ts.raw(t, "POST", "/kobs-trace-2024.03.01/_search", `{"size":0,"aggs":{"o":{"terms":{"field":"offset"}}}}`)
	require.Equal(t, 200, status)
}
