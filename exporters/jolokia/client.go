package jolokia

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// Client reads MBeans from a Jolokia endpoint: kobs's own, or the Jolokia JVM
// agent on an Apache Kafka broker. It always sends one bulk POST per read,
// as Telegraf's jolokia2 input does.
type Client struct {
	url  string
	http *http.Client
}

// NewClient returns a client for the agent at url (".../jolokia"). A nil hc
// uses a client with a 30 s timeout.
func NewClient(url string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{url: strings.TrimRight(url, "/"), http: hc}
}

// ReadRequest names an MBean or ObjectName pattern and, optionally, the
// attributes to read (all when empty).
type ReadRequest struct {
	MBean      string
	Attributes []string
}

// ReadResult is the normalised answer to one ReadRequest: whatever the shape
// Jolokia used (bare value, attribute map, or pattern map), Values maps each
// concrete MBean name to its attribute values. Numbers are json.Number, so
// longs print as longs.
type ReadResult struct {
	Request   ReadRequest
	Status    int
	Timestamp int64
	ErrorType string
	Error     string
	Values    map[string]map[string]any
}

// wireResponse is one element of a Jolokia bulk answer.
type wireResponse struct {
	Request   map[string]any `json:"request"`
	Value     any            `json:"value"`
	Status    int            `json:"status"`
	Timestamp int64          `json:"timestamp"`
	ErrorType string         `json:"error_type"`
	Error     string         `json:"error"`
}

// Read sends all requests in one bulk POST and returns one result per
// request, in order. The error is for transport-level failures; a request
// Jolokia answered with an error status is reported in its ReadResult.
func (c *Client) Read(ctx context.Context, reqs ...ReadRequest) ([]ReadResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	body := make([]map[string]any, len(reqs))
	for i, r := range reqs {
		// Canonical names whatever the agent's default (Jolokia 2.5+
		// defaults to the registration order).
		m := map[string]any{"type": TypeRead, "mbean": r.MBean, "config": map[string]any{"canonicalNaming": "true"}}
		if len(r.Attributes) > 0 {
			// Always a list, so a plain MBean answers with an attribute map
			// and the shapes stay predictable.
			m["attribute"] = r.Attributes
		}
		body[i] = m
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode jolokia request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("build jolokia request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("jolokia read %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("jolokia read %s: %w", c.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jolokia read %s: HTTP %s", c.url, resp.Status)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var wire []wireResponse
	if err := dec.Decode(&wire); err != nil {
		// A single error object instead of an array: the agent rejected the
		// whole bulk (e.g. it could not parse it).
		var one wireResponse
		if json.Unmarshal(data, &one) == nil && one.Error != "" {
			return nil, fmt.Errorf("jolokia read %s: %s", c.url, one.Error)
		}
		return nil, fmt.Errorf("jolokia read %s: decode answer: %w", c.url, err)
	}
	if len(wire) != len(reqs) {
		return nil, fmt.Errorf("jolokia read %s: %d answers for %d requests", c.url, len(wire), len(reqs))
	}
	out := make([]ReadResult, len(reqs))
	for i, w := range wire {
		out[i] = normalise(reqs[i], w)
	}
	return out, nil
}

func normalise(req ReadRequest, w wireResponse) ReadResult {
	res := ReadResult{Request: req, Status: w.Status, Timestamp: w.Timestamp, ErrorType: w.ErrorType, Error: w.Error}
	if w.ErrorType != "" && !strings.HasPrefix(w.Error, w.ErrorType) {
		// Jolokia 2 sends the message alone; print it as 1.x did.
		res.Error = w.ErrorType + " : " + w.Error
	}
	if w.Status != http.StatusOK {
		return res
	}
	res.Values = map[string]map[string]any{}
	v, _ := w.Value.(map[string]any)
	pattern := strings.ContainsAny(req.MBean, "*?")
	if n, err := telemetry.ParseObjectName(req.MBean); err == nil {
		pattern = n.IsPattern()
	}
	if pattern {
		for name, attrs := range v {
			if m, ok := attrs.(map[string]any); ok {
				res.Values[name] = m
			}
		}
		return res
	}
	name := req.MBean
	if echo, ok := w.Request["mbean"].(string); ok {
		name = echo
	}
	if v == nil {
		// A single-attribute answer from an agent that treated our list as
		// one attribute.
		if len(req.Attributes) == 1 {
			res.Values[name] = map[string]any{req.Attributes[0]: w.Value}
		}
		return res
	}
	res.Values[name] = v
	return res
}

// WatchOptions configures Watch.
type WatchOptions struct {
	Requests   []ReadRequest
	Interval   time.Duration    // between reads; default 5 s (the EWMA tick)
	Iterations int              // reads to do; 0 means until ctx is done
	DateFormat string           // Go time layout for the time column; "" prints epoch milliseconds like JmxTool
	Now        func() time.Time // nil means time.Now
	Errors     io.Writer        // where per-request errors are reported; nil discards
}

// Watch reads the requests periodically and prints a table like Kafka's
// JmxTool: a quoted header "time","<mbean>:<attribute>",... with columns
// sorted and fixed by the first read, then one comma-separated row per read
// (empty cells for values that disappear).
func (c *Client) Watch(ctx context.Context, w io.Writer, o WatchOptions) error {
	if len(o.Requests) == 0 {
		return errors.New("no object names to read")
	}
	if o.Interval <= 0 {
		o.Interval = telemetry.TickInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Errors == nil {
		o.Errors = io.Discard
	}
	var columns []string
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for i := 0; o.Iterations == 0 || i < o.Iterations; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
		results, err := c.Read(ctx, o.Requests...)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		cells := map[string]string{}
		for _, r := range results {
			if r.Status != http.StatusOK {
				fmt.Fprintf(o.Errors, "%s: %s\n", r.Request.MBean, r.Error)
				continue
			}
			for name, attrs := range r.Values {
				for a, v := range attrs {
					if _, nested := v.(map[string]any); nested {
						continue // composite values do not fit a column
					}
					cells[name+":"+a] = fmt.Sprint(v)
				}
			}
		}
		if columns == nil {
			if len(cells) == 0 {
				return errors.New("no attribute matched the object names")
			}
			for k := range cells {
				columns = append(columns, k)
			}
			slices.Sort(columns)
			header := make([]string, 0, len(columns)+1)
			header = append(header, strconv.Quote("time"))
			for _, col := range columns {
				header = append(header, strconv.Quote(col))
			}
			if _, err := fmt.Fprintln(w, strings.Join(header, ",")); err != nil {
				return err
			}
		}
		now := o.Now()
		row := make([]string, 0, len(columns)+1)
		if o.DateFormat == "" {
			row = append(row, strconv.FormatInt(now.UnixMilli(), 10))
		} else {
			row = append(row, now.Format(o.DateFormat))
		}
		for _, col := range columns {
			row = append(row, cells[col])
		}
		if _, err := fmt.Fprintln(w, strings.Join(row, ",")); err != nil {
			return err
		}
	}
	return nil
}
