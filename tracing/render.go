package tracing

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"
)

// WriteText renders journeys as one table per message:
//
//	message 9f2c... trace 9f2c... topic orders key k-17 (1024 bytes)
//	HOP       WHO                      WHEN                      WHERE                 LATENCY
//	produced  perf@host-a              2026-11-25T10:00:00.001Z  -                     1.2ms
//	stored    broker                   2026-11-25T10:00:00.001Z  partition 3 offset 41  -
//	consumed  group billing (member m) 2026-11-25T10:00:00.010Z  -                     e2e 9.0ms
//	waiting   group audit              -                         -                     not consumed yet
func WriteText(w io.Writer, journeys []Journey) error {
	if len(journeys) == 0 {
		_, err := fmt.Fprintln(w, "no traced messages found")
		return err
	}
	for i, j := range journeys {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "message %s trace %s topic %s", j.MsgID, orDash(j.TraceID), j.Topic)
		if j.Key != "" {
			fmt.Fprintf(w, " key %q", j.Key)
		}
		fmt.Fprintf(w, " (%d bytes)\n", j.Size)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "HOP\tWHO\tWHEN\tWHERE\tLATENCY")
		switch p := j.Produced; {
		case p == nil:
			fmt.Fprintln(tw, "produced\t(no produce event: untraced producer or not shipped yet)\t-\t-\t-")
		case p.Error != "":
			fmt.Fprintf(tw, "failed\t%s\t%s\t-\t%s: %s\n", who(p.ClientID, p.Host), stamp(p.SentAt), us(p.LatencyUS), p.Error)
		default:
			fmt.Fprintf(tw, "produced\t%s\t%s\t-\t%s\n", who(p.ClientID, p.Host), stamp(p.SentAt), us(p.LatencyUS))
		}
		if s := j.Stored; s != nil {
			fmt.Fprintf(tw, "stored\tbroker\t%s\tpartition %d offset %d\t-\n", stamp(s.BrokerTime), s.Partition, s.Offset)
		}
		for _, c := range j.Consumed {
			member := ""
			if c.Member != "" {
				member = " (member " + c.Member + ")"
			}
			fmt.Fprintf(tw, "consumed\tgroup %s%s\t%s\t%s\te2e %s\n", c.Group, member, stamp(c.At), who(c.ClientID, c.Host), us(c.E2EUS))
		}
		for _, g := range j.NotConsumedBy {
			fmt.Fprintf(tw, "waiting\tgroup %s\t-\t-\tnot consumed yet by group %s\n", g, g)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, g := range j.Gaps {
			fmt.Fprintln(w, GapText(g))
		}
	}
	return nil
}

// WriteJSON renders journeys as {"journeys": [...]}.
func WriteJSON(w io.Writer, journeys []Journey) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Journeys []Journey `json:"journeys"`
	}{journeys})
}

// GapText is the line that marks a journey (or a record) as incomplete.
func GapText(g Gap) string {
	by := who(g.ClientID, g.Host)
	if g.Group != "" {
		by += " (group " + g.Group + ")"
	}
	around := g.From
	if !g.To.IsZero() {
		around = g.From.Add(g.To.Sub(g.From) / 2)
	}
	s := fmt.Sprintf("trace incomplete: events dropped by %s around %s (%s; %d events dropped between %s and %s",
		by, stamp(around), g.Reason, g.Dropped, stamp(g.From), stamp(g.To))
	if !g.IDsRecorded {
		s += "; not every message id was recorded"
	}
	return s + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func who(client, host string) string {
	switch {
	case client != "" && host != "":
		return client + "@" + host
	case client != "":
		return client
	}
	return orDash(host)
}

func stamp(t time.Time) string {
	if t.IsZero() || t.UnixMilli() == 0 {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func us(v int64) string { return (time.Duration(v) * time.Microsecond).String() }

// Handler serves journey queries under /v1/trace/ (mount it at that prefix):
//
//	GET /v1/trace/                      an index of these endpoints
//	GET /v1/trace/msg/{msg_id}          one journey; 404 when nothing is known of the id
//	GET /v1/trace/journeys?msg_id=|trace_id=|key=[&topic=]|topic=&partition=&offset=|topic=[&from=&to=]&limit=
//
// Answers are JSON ({"journeys": [...]}) unless format=text. Times (from,
// to) are RFC 3339 or Unix milliseconds.
func (qr *Querier) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/trace/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"endpoints": []map[string]string{
			{"path": "/v1/trace/msg/{msg_id}", "description": "the journey of one message (produced, stored, consumed by each group); 404 if the id is unknown"},
			{"path": "/v1/trace/journeys?msg_id=", "description": "journeys by message id"},
			{"path": "/v1/trace/journeys?trace_id=", "description": "journeys by W3C trace id"},
			{"path": "/v1/trace/journeys?key=&topic=", "description": "journeys by record key (topic optional)"},
			{"path": "/v1/trace/journeys?topic=&partition=&offset=", "description": "the journey of the record at a position"},
			{"path": "/v1/trace/journeys?topic=&from=&to=&limit=", "description": "the newest journeys of a topic in a time range (RFC 3339, Unix ms or -15m)"},
		}, "formats": []string{"json (default)", "text (format=text)"}})
	})
	mux.HandleFunc("GET /v1/trace/msg/{id}", func(w http.ResponseWriter, r *http.Request) {
		q := NewQuery()
		q.MsgID = r.PathValue("id")
		qr.serve(w, r, q, true)
	})
	mux.HandleFunc("GET /v1/trace/journeys", func(w http.ResponseWriter, r *http.Request) {
		q, err := ParseQuery(r.URL.Query().Get)
		if err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		qr.serve(w, r, q, false)
	})
	mux.HandleFunc("/v1/trace/", func(w http.ResponseWriter, r *http.Request) {
		httpError(w, http.StatusNotFound, fmt.Errorf("no such endpoint %s %s; GET /v1/trace/ lists them", r.Method, r.URL.Path))
	})
	return mux
}

func (qr *Querier) serve(w http.ResponseWriter, r *http.Request, q Query, one bool) {
	js, err := qr.Journeys(r.Context(), q)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, ErrBadQuery) {
			status = http.StatusBadRequest
		}
		httpError(w, status, err)
		return
	}
	if one && len(js) == 0 {
		httpError(w, http.StatusNotFound, fmt.Errorf("no trace events and no drop record for message id %s (no such message, or its events are not shipped yet)", q.MsgID))
		return
	}
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_ = WriteText(w, js)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = WriteJSON(w, js)
}

func httpError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error(), "status": status})
}

// ParseQuery builds a Query from named parameters (URL query or flags).
func ParseQuery(get func(string) string) (Query, error) {
	q := NewQuery()
	q.MsgID, q.TraceID, q.Key, q.Topic = get("msg_id"), get("trace_id"), get("key"), get("topic")
	var err error
	if v := get("partition"); v != "" {
		p, perr := strconv.ParseInt(v, 10, 32)
		if perr != nil || p < 0 {
			return q, fmt.Errorf("partition %q: want a number >= 0", v)
		}
		q.Partition = int32(p)
	}
	if v := get("offset"); v != "" {
		if q.Offset, err = strconv.ParseInt(v, 10, 64); err != nil || q.Offset < 0 {
			return q, fmt.Errorf("offset %q: want a number >= 0", v)
		}
	}
	if q.From, err = ParseTime(get("from"), time.Now()); err != nil {
		return q, err
	}
	if q.To, err = ParseTime(get("to"), time.Now()); err != nil {
		return q, err
	}
	if v := get("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil {
			return q, fmt.Errorf("limit %q: want a number", v)
		}
	}
	return q, q.validate()
}

// ParseTime accepts RFC 3339, Unix milliseconds, or a negative duration
// relative to now ("-15m").
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d <= 0 {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339, Unix milliseconds or a negative duration like -15m", s)
}
