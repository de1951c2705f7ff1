package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// PromClient queries a Prometheus server's HTTP API (v1).
type PromClient struct {
	URL  string // base URL, e.g. http://127.0.0.1:9090
	HTTP *http.Client
}

// Series is one result series: its labels and samples (Unix seconds,
// value). An instant query gives one sample.
type Series struct {
	Labels map[string]string
	Times  []float64
	Values []float64
}

// QueryRange runs /api/v1/query_range.
func (c PromClient) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	v := url.Values{}
	v.Set("query", expr)
	v.Set("start", strconv.FormatFloat(float64(start.UnixMilli())/1000, 'f', 3, 64))
	v.Set("end", strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64))
	v.Set("step", strconv.FormatFloat(step.Seconds(), 'f', -1, 64))
	return c.get(ctx, "/api/v1/query_range", v)
}

// Query runs an instant /api/v1/query at t.
func (c PromClient) Query(ctx context.Context, expr string, t time.Time) ([]Series, error) {
	v := url.Values{}
	v.Set("query", expr)
	v.Set("time", strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64))
	return c.get(ctx, "/api/v1/query", v)
}

// LabelValues runs /api/v1/series-backed label values for a selector, as
// Grafana does for label_values(selector, label).
func (c PromClient) LabelValues(ctx context.Context, selector, label string, start, end time.Time) ([]string, error) {
	v := url.Values{}
	v.Set("match[]", selector)
	v.Set("start", strconv.FormatInt(start.Unix(), 10))
	v.Set("end", strconv.FormatInt(end.Unix(), 10))
	body, err := c.do(ctx, "/api/v1/label/"+url.PathEscape(label)+"/values", v)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
		Error  string   `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("prometheus label values: %w", err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus label values: %s", r.Error)
	}
	sort.Strings(r.Data)
	return r.Data, nil
}

func (c PromClient) do(ctx context.Context, path string, v url.Values) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+path+"?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 500 {
		return nil, fmt.Errorf("prometheus %s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	return body, nil
}

func (c PromClient) get(ctx context.Context, path string, v url.Values) ([]Series, error) {
	body, err := c.do(ctx, path, v)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
				Values [][]any           `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", path, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus %s: %s (query %q)", path, r.Error, v.Get("query"))
	}
	var out []Series
	for _, res := range r.Data.Result {
		s := Series{Labels: res.Metric}
		points := res.Values
		if res.Value != nil {
			points = [][]any{res.Value}
		}
		for _, p := range points {
			if len(p) != 2 {
				continue
			}
			ts, _ := p[0].(float64)
			str, _ := p[1].(string)
			f, err := strconv.ParseFloat(str, 64)
			if err != nil {
				continue
			}
			s.Times = append(s.Times, ts)
			s.Values = append(s.Values, f)
		}
		out = append(out, s)
	}
	return out, nil
}

// Legend expands a Grafana legend format ("{{instance}} in") with a
// series' labels; an empty format gives the label set.
func Legend(format string, labels map[string]string) string {
	if format == "" {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+strconv.Quote(labels[k]))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	var b strings.Builder
	for {
		i := strings.Index(format, "{{")
		if i < 0 {
			b.WriteString(format)
			return b.String()
		}
		j := strings.Index(format[i:], "}}")
		if j < 0 {
			b.WriteString(format)
			return b.String()
		}
		b.WriteString(format[:i])
		b.WriteString(labels[strings.TrimSpace(format[i+2:i+j])])
		format = format[i+j+2:]
	}
}
