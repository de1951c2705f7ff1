package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// doc is what the custom engines index of a trace event: the fields the
// journey queries select on. The whole source is kept as sent.
type doc struct {
	id, index string
	src       []byte

	Type      string `json:"type"`
	MsgID     string `json:"msg_id"`
	TraceID   string `json:"trace_id"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	TS        int64  `json:"ts"`
}

// parseBulk decodes an _bulk body of index actions, as the shipper sends
// them. Other actions are refused: the custom engines are measured on the
// shipper's path only.
func parseBulk(body []byte) ([]doc, error) {
	var docs []doc
	for len(body) > 0 {
		var action, src []byte
		action, body, _ = bytes.Cut(body, []byte{'\n'})
		if len(bytes.TrimSpace(action)) == 0 {
			continue
		}
		src, body, _ = bytes.Cut(body, []byte{'\n'})
		var a struct {
			Index *struct {
				Index string `json:"_index"`
				ID    string `json:"_id"`
			} `json:"index"`
		}
		if err := json.Unmarshal(action, &a); err != nil || a.Index == nil || a.Index.ID == "" {
			return nil, fmt.Errorf("bulk: only index actions with an _id are supported: %.100s", action)
		}
		d := doc{id: a.Index.ID, index: a.Index.Index, src: src}
		if err := json.Unmarshal(src, &d); err != nil {
			return nil, fmt.Errorf("bulk: document %s: %w", d.id, err)
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// writeBulkResponse answers in Elasticsearch's _bulk shape, one item per
// document, so the client side of the path is the same for every engine.
func writeBulkResponse(w http.ResponseWriter, docs []doc, start time.Time, seq int64) {
	var buf bytes.Buffer
	buf.Grow(len(docs) * 200)
	buf.WriteString(`{"took":`)
	buf.WriteString(strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	buf.WriteString(`,"errors":false,"items":[`)
	for i, d := range docs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"index":{"_index":"`)
		buf.WriteString(d.index)
		buf.WriteString(`","_type":"_doc","_id":"`)
		buf.WriteString(d.id)
		buf.WriteString(`","_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":`)
		buf.WriteString(strconv.FormatInt(seq+int64(i), 10))
		buf.WriteString(`,"_primary_term":1,"status":201}}`)
	}
	buf.WriteString(`]}`)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

func bulkHandler(write func(docs []doc) (int64, error), query func(q benchQuery) ([][]byte, error)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_bulk", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		docs, err := parseBulk(buf.Bytes())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		seq, err := write(docs)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeBulkResponse(w, docs, start, seq)
	})
	mux.HandleFunc("GET /q", func(w http.ResponseWriter, r *http.Request) {
		docs, err := query(queryValues(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeHits(w, docs)
	})
	return mux
}
