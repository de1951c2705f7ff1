package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The Elasticsearch panels are queried the way Grafana's Elasticsearch
// datasource queries them (grafana-elasticsearch-datasource,
// pkg/elasticsearch/client and data_query.go): one POST /_msearch with a
// header line naming the daily indexes of the time range and a body line
// per query; time series as size:0 with bucket aggregations nested in
// editor order (first = outermost), named by editor id, metrics inside the
// innermost bucket, count as the bucket's doc_count; raw data as sorted
// hits with docvalue_fields.

// TraceIndexPattern is the trace store's daily index pattern, as the
// provisioned datasource names it.
const TraceIndexPattern = "kobs-trace-"

// ESIndexes lists the daily indexes from..to, as Grafana's Daily interval
// pattern [kobs-trace-]YYYY.MM.DD expands them.
func ESIndexes(from, to time.Time) string {
	var names []string
	d := time.Date(from.UTC().Year(), from.UTC().Month(), from.UTC().Day(), 0, 0, 0, 0, time.UTC)
	for ; !d.After(to.UTC()); d = d.AddDate(0, 0, 1) {
		names = append(names, TraceIndexPattern+d.Format("2006.01.02"))
	}
	return strings.Join(names, ",")
}

// ESAutoInterval is Grafana's "auto" date_histogram interval for a range:
// about 100 buckets, at least 1 s.
func ESAutoInterval(from, to time.Time) string {
	ms := to.Sub(from).Milliseconds() / 100
	if ms < 1000 {
		ms = 1000
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// ESRequest returns the _msearch header and body lines of one query.
func ESRequest(q ESQuery, from, to time.Time) (header, body []byte) {
	header, _ = json.Marshal(map[string]any{
		"ignore_unavailable": true, "index": ESIndexes(from, to), "search_type": "query_then_fetch",
	})
	fromMS, toMS := from.UnixMilli(), to.UnixMilli()
	rng := map[string]any{"range": map[string]any{TraceTimeField: map[string]any{"gte": fromMS, "lte": toMS, "format": "epoch_millis"}}}
	var filter any = rng
	if strings.TrimSpace(q.Query) != "" {
		filter = []any{rng, map[string]any{"query_string": map[string]any{"query": q.Query, "analyze_wildcard": true}}}
	}
	root := map[string]any{"query": map[string]any{"bool": map[string]any{"filter": filter}}}
	if len(q.Metrics) == 1 && q.Metrics[0].Type == "raw_data" {
		root["size"] = q.Metrics[0].Size
		root["sort"] = map[string]any{TraceTimeField: map[string]any{"order": "desc", "unmapped_type": "boolean"}, "_doc": map[string]any{"order": "desc"}}
		root["docvalue_fields"] = []string{TraceTimeField}
		root["script_fields"] = map[string]any{}
		root["fields"] = []any{map[string]any{"field": TraceTimeField, "format": "strict_date_optional_time_nanos"}}
		body, _ = json.Marshal(root)
		return header, body
	}
	root["size"] = 0
	// Metric aggregations (count has none) sit in the innermost bucket.
	metrics := map[string]any{}
	for i, m := range q.Metrics {
		id := metricID(i)
		switch m.Type {
		case "percentiles":
			metrics[id] = map[string]any{"percentiles": map[string]any{"field": m.Field, "percents": m.Percents}}
		case "max", "avg", "sum":
			agg := map[string]any{"field": m.Field}
			if m.Missing != "" {
				agg["missing"] = m.Missing // as Grafana sends its setting: a string
			}
			metrics[id] = map[string]any{m.Type: agg}
		}
	}
	var inner map[string]any
	aggs := map[string]any{}
	cur := aggs
	for i, b := range q.Buckets {
		id := strconv.Itoa(i + 2)
		var agg map[string]any
		switch b.Type {
		case "date_histogram":
			interval := b.Interval
			if interval == "auto" || interval == "" {
				interval = ESAutoInterval(from, to)
			}
			agg = map[string]any{"date_histogram": map[string]any{
				"field": b.Field, "fixed_interval": interval, "min_doc_count": 0,
				"extended_bounds": map[string]any{"min": fromMS, "max": toMS}, "format": "epoch_millis",
			}}
		case "terms":
			agg = map[string]any{"terms": map[string]any{"field": b.Field, "size": b.Size, "order": map[string]any{"_count": "desc"}, "min_doc_count": 1}}
		}
		cur[id] = agg
		inner = agg
		next := map[string]any{}
		agg["aggs"] = next
		cur = next
	}
	if inner != nil {
		if len(metrics) > 0 {
			inner["aggs"] = metrics
		} else {
			delete(inner, "aggs")
		}
	}
	root["aggs"] = aggs
	body, _ = json.Marshal(root)
	return header, body
}

func metricID(i int) string {
	if i == 0 {
		return "1"
	}
	return strconv.Itoa(i + 10)
}

// ESClient sends _msearch requests to an Elasticsearch API (the trace store).
type ESClient struct {
	URL  string
	HTTP *http.Client
}

// ESResult is one query's answer: series for time series queries (by
// label, one point per date bucket), rows for raw data.
type ESResult struct {
	Series  []Series
	Columns []string
	Rows    [][]string
}

// Empty reports whether the answer holds no data at all.
func (r ESResult) Empty() bool {
	n := 0
	for _, s := range r.Series {
		n += len(s.Values)
	}
	return n == 0 && len(r.Rows) == 0
}

// Search runs the queries as one _msearch, as a Grafana panel does, and
// returns one result (or error) per query.
func (c ESClient) Search(ctx context.Context, qs []ESQuery, from, to time.Time) ([]ESResult, []error, error) {
	var buf bytes.Buffer
	for _, q := range qs {
		h, b := ESRequest(q, from, to)
		buf.Write(h)
		buf.WriteByte('\n')
		buf.Write(b)
		buf.WriteByte('\n')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+"/_msearch?max_concurrent_shard_requests=5", &buf)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 400 {
		return nil, nil, fmt.Errorf("_msearch: HTTP %d: %s", resp.StatusCode, truncate(string(raw), 300))
	}
	var r struct {
		Responses []json.RawMessage `json:"responses"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, fmt.Errorf("_msearch: %w", err)
	}
	if len(r.Responses) != len(qs) {
		return nil, nil, fmt.Errorf("_msearch: %d responses for %d queries", len(r.Responses), len(qs))
	}
	results := make([]ESResult, len(qs))
	errs := make([]error, len(qs))
	for i, item := range r.Responses {
		results[i], errs[i] = parseESResponse(qs[i], item)
	}
	return results, errs, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func parseESResponse(q ESQuery, raw json.RawMessage) (ESResult, error) {
	var item struct {
		Error *struct {
			Reason    string `json:"reason"`
			RootCause []struct {
				Reason string `json:"reason"`
			} `json:"root_cause"`
		} `json:"error"`
		Hits struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
			Hits []struct {
				ID     string         `json:"_id"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
		Aggregations map[string]json.RawMessage `json:"aggregations"`
	}
	if err := json.Unmarshal(raw, &item); err != nil {
		return ESResult{}, err
	}
	if item.Error != nil {
		msg := item.Error.Reason
		if len(item.Error.RootCause) > 0 && item.Error.RootCause[0].Reason != "" {
			msg = item.Error.RootCause[0].Reason
		}
		return ESResult{}, fmt.Errorf("elasticsearch: %s", msg)
	}
	if len(q.Metrics) == 1 && q.Metrics[0].Type == "raw_data" {
		cols := []string{"time", "type", "topic", "partition", "offset", "records", "msg_id", "group"}
		res := ESResult{Columns: cols}
		for _, h := range item.Hits.Hits {
			row := make([]string, len(cols))
			for j, c := range cols {
				v := h.Source[c]
				if c == "time" {
					v = h.Source[TraceTimeField]
					if f, ok := v.(float64); ok {
						v = time.UnixMilli(int64(f)).UTC().Format("15:04:05.000")
					}
				}
				if v != nil {
					row[j] = fmt.Sprint(v)
				}
			}
			res.Rows = append(res.Rows, row)
		}
		return res, nil
	}
	series := map[string]*Series{}
	if err := walkBuckets(q, 0, item.Aggregations, map[string]string{}, series); err != nil {
		return ESResult{}, err
	}
	keys := make([]string, 0, len(series))
	for k := range series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var res ESResult
	for _, k := range keys {
		res.Series = append(res.Series, *series[k])
	}
	return res, nil
}

type esBucket struct {
	Key         any   `json:"key"`
	KeyAsString any   `json:"key_as_string"`
	DocCount    int64 `json:"doc_count"`
	rest        map[string]json.RawMessage
}

// walkBuckets descends the nested bucket aggregations; the date_histogram
// level emits one point per bucket into the series named by the labels
// collected above it (and, for percentiles, by "p<percent>").
func walkBuckets(q ESQuery, level int, aggs map[string]json.RawMessage, labels map[string]string, out map[string]*Series) error {
	if level >= len(q.Buckets) {
		return nil
	}
	b := q.Buckets[level]
	raw, ok := aggs[strconv.Itoa(level+2)]
	if !ok {
		return fmt.Errorf("response has no aggregation %d", level+2)
	}
	var agg struct {
		Buckets []json.RawMessage `json:"buckets"`
	}
	if err := json.Unmarshal(raw, &agg); err != nil {
		return err
	}
	for _, rb := range agg.Buckets {
		var bk esBucket
		if err := json.Unmarshal(rb, &bk); err != nil {
			return err
		}
		if err := json.Unmarshal(rb, &bk.rest); err != nil {
			return err
		}
		switch b.Type {
		case "terms":
			l := map[string]string{}
			for k, v := range labels {
				l[k] = v
			}
			key := fmt.Sprint(bk.Key)
			if s, ok := bk.KeyAsString.(string); ok && s != "" {
				key = s
			}
			l[b.Field] = key
			if err := walkBuckets(q, level+1, bk.rest, l, out); err != nil {
				return err
			}
		case "date_histogram":
			ms, ok := bk.Key.(float64)
			if !ok {
				return fmt.Errorf("date_histogram key %v is not epoch ms", bk.Key)
			}
			for i, m := range q.Metrics {
				emit := func(name string, v float64) {
					l := map[string]string{}
					for k, v := range labels {
						l[k] = v
					}
					l["metric"] = name
					key := Legend("", l)
					s := out[key]
					if s == nil {
						s = &Series{Labels: l}
						out[key] = s
					}
					s.Times = append(s.Times, ms/1000)
					s.Values = append(s.Values, v)
				}
				switch m.Type {
				case "count":
					emit("count", float64(bk.DocCount))
				case "percentiles":
					var p struct {
						Values map[string]*float64 `json:"values"`
					}
					if err := json.Unmarshal(bk.rest[metricID(i)], &p); err != nil {
						return fmt.Errorf("percentiles: %w", err)
					}
					for k, v := range p.Values {
						if v != nil {
							emit("p"+strings.TrimSuffix(k, ".0"), *v)
						}
					}
				default:
					var v struct {
						Value *float64 `json:"value"`
					}
					if err := json.Unmarshal(bk.rest[metricID(i)], &v); err != nil {
						return err
					}
					if v.Value != nil {
						emit(m.Type+" "+m.Field, *v.Value)
					}
				}
			}
		}
	}
	return nil
}
