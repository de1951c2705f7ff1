package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes is Elasticsearch's http.max_content_length default (100mb).
const maxBodyBytes = 100 << 20

// request bundles what every handler needs.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	params url.Values
	pretty bool
}

func (rq *request) json(status int, v any) {
	h := rq.w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	if rq.r.Method == http.MethodHead {
		rq.w.WriteHeader(status)
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Sources are returned as stored; Go's default HTML escaping would
	// rewrite <, > and & inside them.
	enc.SetEscapeHTML(false)
	if rq.pretty {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		http.Error(rq.w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	rq.w.WriteHeader(status)
	_, _ = rq.w.Write(buf.Bytes())
}

func (rq *request) fail(err error) {
	e := asESError(err)
	if e.status == 0 {
		e.status = statusOf(err)
	}
	rq.json(e.status, envelope(e))
}

// body reads the request body, transparently gunzipping it (olivere's
// SetGzip) and enforcing maxBodyBytes.
func (rq *request) body() ([]byte, *esError) {
	var rd io.Reader = http.MaxBytesReader(rq.w, rq.r.Body, maxBodyBytes)
	if strings.EqualFold(rq.r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, errParsing("invalid gzip request body: %v", err)
		}
		defer zr.Close()
		rd = io.LimitReader(zr, maxBodyBytes+1)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || len(b) > maxBodyBytes {
			return nil, &esError{Type: "content_too_long_exception",
				Reason: fmt.Sprintf("request body is too large; the limit is [%d] bytes", maxBodyBytes), status: http.StatusRequestEntityTooLarge}
		}
		return nil, errParsing("failed to read request body: %v", err)
	}
	if len(b) > maxBodyBytes {
		return nil, &esError{Type: "content_too_long_exception",
			Reason: fmt.Sprintf("request body is too large; the limit is [%d] bytes", maxBodyBytes), status: http.StatusRequestEntityTooLarge}
	}
	return b, nil
}

func (rq *request) methodNotAllowed(allowed ...string) {
	rq.w.Header().Set("Allow", strings.Join(allowed, ","))
	rq.json(http.StatusMethodNotAllowed, map[string]any{
		"error":  fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]", rq.r.URL.RequestURI(), rq.r.Method, strings.Join(allowed, ", ")),
		"status": http.StatusMethodNotAllowed,
	})
}

// Handler returns the Elasticsearch-compatible REST handler. Routes are
// ServeMux patterns; methods are checked by the handlers so a wrong method
// gets Elasticsearch's JSON 405 rather than ServeMux's plain-text one.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, fn func(rq *request)) { mux.Handle(pattern, s.wrap(fn)) }
	methods := func(rq *request, allowed ...string) bool {
		if slices.Contains(allowed, rq.r.Method) {
			return true
		}
		rq.methodNotAllowed(allowed...)
		return false
	}
	idx := func(rq *request) string { return rq.r.PathValue("index") }

	route("/{$}", func(rq *request) {
		if methods(rq, http.MethodHead, http.MethodGet) {
			s.handleInfo(rq)
		}
	})
	route("/_bulk", func(rq *request) {
		if methods(rq, http.MethodPost, http.MethodPut) {
			s.handleBulk(rq, "")
		}
	})
	route("/_msearch", func(rq *request) { s.handleMsearch(rq, "") })
	route("/_search", func(rq *request) { s.handleSearch(rq, "_all", false) })
	route("/_count", func(rq *request) { s.handleSearch(rq, "_all", true) })
	route("/_refresh", func(rq *request) { s.handleRefresh(rq, "_all") })
	route("/_flush", func(rq *request) { s.handleRefresh(rq, "_all") })
	route("/_mapping", func(rq *request) { s.handleGetIndex(rq, "_all", true) })
	route("/_cat/indices", func(rq *request) { s.handleCatIndices(rq, "_all") })
	route("/_cat/indices/{index}", func(rq *request) { s.handleCatIndices(rq, idx(rq)) })
	route("/_field_caps", func(rq *request) { s.handleFieldCaps(rq, "_all") })
	route("/{index}/_field_caps", func(rq *request) { s.handleFieldCaps(rq, idx(rq)) })
	route("/_cluster/health", func(rq *request) { s.handleHealth(rq) })
	route("/_nodes/stats", func(rq *request) { s.handleNodeStats(rq) })
	route("/_cluster/health/{index}", func(rq *request) { s.handleHealth(rq) })

	indexOps := func(rq *request) {
		switch rq.r.Method {
		case http.MethodPut, http.MethodPost:
			s.handleCreateIndex(rq, idx(rq))
		case http.MethodHead:
			s.handleIndexExists(rq, idx(rq))
		case http.MethodGet:
			s.handleGetIndex(rq, idx(rq), false)
		case http.MethodDelete:
			s.handleDeleteIndex(rq, idx(rq))
		default:
			rq.methodNotAllowed("HEAD", "GET", "PUT", "POST", "DELETE")
		}
	}
	route("/{index}", indexOps)
	route("/{index}/{$}", indexOps)
	route("/{index}/_bulk", func(rq *request) {
		if methods(rq, http.MethodPost, http.MethodPut) {
			s.handleBulk(rq, idx(rq))
		}
	})
	route("/{index}/_search", func(rq *request) { s.handleSearch(rq, idx(rq), false) })
	route("/{index}/_count", func(rq *request) { s.handleSearch(rq, idx(rq), true) })
	route("/{index}/_msearch", func(rq *request) { s.handleMsearch(rq, idx(rq)) })
	route("/{index}/_refresh", func(rq *request) { s.handleRefresh(rq, idx(rq)) })
	route("/{index}/_flush", func(rq *request) { s.handleRefresh(rq, idx(rq)) })
	mapping := func(rq *request) {
		if rq.r.Method == http.MethodGet || rq.r.Method == http.MethodHead {
			s.handleGetIndex(rq, idx(rq), true)
		} else {
			s.handlePutMapping(rq, idx(rq))
		}
	}
	route("/{index}/_mapping", mapping)
	route("/{index}/_mappings", mapping)
	// olivere's GetMapping asks for /{index}/_mapping/_all (a type wildcard
	// from the 6.x API); with one type per index it is the same.
	typedMapping := func(rq *request) {
		if t := rq.r.PathValue("type"); t != "_all" && t != "_doc" {
			s.noHandler(rq)
			return
		}
		mapping(rq)
	}
	route("/{index}/_mapping/{type}", typedMapping)
	route("/{index}/_mappings/{type}", typedMapping)
	for _, api := range []string{"_doc", "_create", "_update", "_source"} {
		route("/{index}/"+api, func(rq *request) { s.handleDoc(rq, idx(rq), api, nil) })
		route("/{index}/"+api+"/{id}", func(rq *request) { s.handleDoc(rq, idx(rq), api, []string{rq.r.PathValue("id")}) })
	}
	// Everything else, including Elasticsearch 6's typed forms
	// (/{index}/{type}/...), which we do not emulate.
	route("/", s.noHandler)
	return mux
}

func (s *Store) noHandler(rq *request) {
	rq.fail(errIllegalArgument("no handler found for uri [%s] and method [%s]", rq.r.URL.RequestURI(), rq.r.Method))
}

// wrap adds what every Elasticsearch answer has: the product header, the
// pretty flag, and Elasticsearch's error shape for a handler that panics.
func (s *Store) wrap(fn func(rq *request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Official Elasticsearch clients (7.14+) refuse servers without it.
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		rq := &request{w: w, r: r, params: r.URL.Query()}
		_, rq.pretty = rq.params["pretty"]
		defer func() {
			// A bug in one request must not take the store down; report it as
			// Elasticsearch reports unexpected exceptions.
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "method", r.Method, "uri", r.URL.RequestURI(), "panic", v)
				rq.fail(&esError{Type: "exception", Reason: fmt.Sprint(v), status: http.StatusInternalServerError})
			}
		}()
		fn(rq)
	})
}

// infoResponse is GET / in Elasticsearch 7.17's field order. olivere's
// health check only needs a 2xx; official clients (7.14+) also check
// version.number, build_flavor and the tagline.
type infoResponse struct {
	Name        string      `json:"name"`
	ClusterName string      `json:"cluster_name"`
	ClusterUUID string      `json:"cluster_uuid"`
	Version     infoVersion `json:"version"`
	Tagline     string      `json:"tagline"`
}

type infoVersion struct {
	Number                           string `json:"number"`
	BuildFlavor                      string `json:"build_flavor"`
	BuildType                        string `json:"build_type"`
	BuildHash                        string `json:"build_hash"`
	BuildDate                        string `json:"build_date"`
	BuildSnapshot                    bool   `json:"build_snapshot"`
	LuceneVersion                    string `json:"lucene_version"`
	MinimumWireCompatibilityVersion  string `json:"minimum_wire_compatibility_version"`
	MinimumIndexCompatibilityVersion string `json:"minimum_index_compatibility_version"`
}

func (s *Store) handleInfo(rq *request) {
	host, _ := os.Hostname()
	rq.json(http.StatusOK, infoResponse{
		Name: host, ClusterName: "kobs-tracestore", ClusterUUID: s.uuid,
		Version: infoVersion{
			Number: "7.17.0", BuildFlavor: "default", BuildType: "kobs", BuildHash: "kobs-tracestore",
			BuildDate: "2022-01-28T08:36:04.875279988Z", LuceneVersion: "8.11.1",
			MinimumWireCompatibilityVersion: "6.8.0", MinimumIndexCompatibilityVersion: "6.0.0-beta1",
		},
		Tagline: "You Know, for Search",
	})
}

func resolveParams(p url.Values, wildcardDefault bool) resolveOpts {
	o := resolveOpts{ignoreUnavailable: p.Get("ignore_unavailable") == "true", allowNoIndices: wildcardDefault}
	if v := p.Get("allow_no_indices"); v != "" {
		o.allowNoIndices = v == "true"
	}
	return o
}

// pin resolves an index expression and pins every index for the operation.
func (s *Store) pin(expr string, o resolveOpts) (*target, *esError) {
	names, err := resolveExpression(expr, s.names(), o)
	if err != nil {
		return nil, err
	}
	t := &target{}
	for _, n := range names {
		idx, err := s.acquireIndex(n)
		if err != nil {
			if o.ignoreUnavailable || strings.Contains(expr, "*") || expr == "_all" {
				continue // deleted between resolve and pin
			}
			t.release()
			return nil, err
		}
		t.indexes = append(t.indexes, idx)
	}
	return t, nil
}

func (s *Store) handleSearch(rq *request, expr string, countOnly bool) {
	m := rq.r.Method
	if m != http.MethodGet && m != http.MethodPost {
		rq.methodNotAllowed("GET", "POST")
		return
	}
	body, err := rq.body()
	if err != nil {
		rq.fail(err)
		return
	}
	resp, err := s.runSearch(rq.r.Context(), expr, rq.params, body, countOnly)
	if err != nil {
		rq.fail(err)
		return
	}
	rq.json(http.StatusOK, resp)
}

// runSearch is one _search or _count over an index expression.
func (s *Store) runSearch(ctx context.Context, expr string, params url.Values, body []byte, countOnly bool) (any, *esError) {
	start := time.Now()
	req, err := parseSearchRequest(body, params, countOnly)
	if err != nil {
		return nil, err
	}
	t, err := s.pin(expr, resolveParams(params, true))
	if err != nil {
		return nil, err
	}
	defer t.release()
	if countOnly {
		return t.count(ctx, req, s.now())
	}
	resp, err := t.search(ctx, req, s.now())
	if err != nil {
		return nil, err
	}
	resp.Took = time.Since(start).Milliseconds()
	return resp, nil
}

// maxMsearchItems bounds the searches of one _msearch (Elasticsearch bounds
// them by max_concurrent_searches and the body size).
const maxMsearchItems = 1000

// handleMsearch answers _msearch: newline-delimited header and body pairs,
// answered in order; a failing search fails only its own item.
func (s *Store) handleMsearch(rq *request, defaultIndex string) {
	m := rq.r.Method
	if m != http.MethodGet && m != http.MethodPost {
		rq.methodNotAllowed("GET", "POST")
		return
	}
	start := time.Now()
	body, err := rq.body()
	if err != nil {
		rq.fail(err)
		return
	}
	lines := bytes.Split(body, []byte{'\n'})
	for len(lines) > 0 && len(bytes.TrimSpace(lines[len(lines)-1])) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		rq.fail(&esError{Type: "action_request_validation_exception", Reason: "Validation Failed: 1: no requests added;", status: http.StatusBadRequest})
		return
	}
	if len(lines)%2 != 0 {
		rq.fail(errIllegalArgument("The msearch request must be terminated by a newline [\\n]"))
		return
	}
	if len(lines)/2 > maxMsearchItems {
		rq.fail(errIllegalArgument("_msearch holds %d searches; kobs tracestore answers at most %d per request", len(lines)/2, maxMsearchItems))
		return
	}
	responses := make([]any, 0, len(lines)/2)
	for i := 0; i < len(lines); i += 2 {
		if err := rq.r.Context().Err(); err != nil {
			// The client left; nobody reads the rest.
			s.log.Info("msearch cancelled: client gone", "done", i/2, "searches", len(lines)/2, "took", time.Since(start))
			return
		}
		expr, params, herr := msearchHeader(lines[i], defaultIndex, rq.params)
		var resp any
		if herr == nil {
			resp, herr = s.runSearch(rq.r.Context(), expr, params, lines[i+1], false)
		}
		if herr != nil {
			if herr.status == 0 {
				herr.status = http.StatusInternalServerError
			}
			env := envelope(herr)
			responses = append(responses, map[string]any{"error": env.Error, "status": env.Status})
			continue
		}
		b, merr := json.Marshal(resp)
		if merr != nil {
			responses = append(responses, map[string]any{"error": envelope(writeFailure("", merr)).Error, "status": 500})
			continue
		}
		var item map[string]any
		_ = json.Unmarshal(b, &item)
		item["status"] = http.StatusOK
		responses = append(responses, item)
	}
	rq.json(http.StatusOK, map[string]any{"took": time.Since(start).Milliseconds(), "responses": responses})
}

// msearchHeader reads one _msearch header line: its index (a string, a
// comma-separated string or an array) and its index options.
func msearchHeader(line []byte, defaultIndex string, base url.Values) (string, url.Values, *esError) {
	params := url.Values{}
	for k, v := range base {
		params[k] = v
	}
	expr := defaultIndex
	if len(bytes.TrimSpace(line)) == 0 {
		return cmpOr(expr, "_all"), params, nil
	}
	var h map[string]any
	if err := json.Unmarshal(line, &h); err != nil {
		return "", nil, errParsing("failed to parse msearch header: %v", err)
	}
	for k, v := range h {
		switch k {
		case "index", "indices":
			switch x := v.(type) {
			case string:
				expr = x
			case []any:
				var names []string
				for _, n := range x {
					names = append(names, scalarString(n))
				}
				expr = strings.Join(names, ",")
			}
		case "ignore_unavailable", "allow_no_indices":
			params.Set(k, scalarString(v))
		case "search_type", "preference", "routing", "request_cache", "expand_wildcards", "ccs_minimize_roundtrips",
			"max_concurrent_shard_requests", "ignore_throttled", "allow_partial_search_results":
		default:
			return "", nil, errIllegalArgument("key [%s] is not supported in the metadata section", k)
		}
	}
	return cmpOr(expr, "_all"), params, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Store) handleRefresh(rq *request, expr string) {
	if rq.r.Method != http.MethodGet && rq.r.Method != http.MethodPost {
		rq.methodNotAllowed("GET", "POST")
		return
	}
	// Writes are visible (and durable) when the bulk returns, so refresh has
	// nothing to do but validate the indexes and answer in ES's shape.
	t, err := s.pin(expr, resolveParams(rq.params, true))
	if err != nil {
		rq.fail(err)
		return
	}
	defer t.release()
	total, ok := 0, 0
	for _, i := range t.indexes {
		total += 1 + i.meta.Settings.Replicas
		ok++
	}
	rq.json(http.StatusOK, map[string]any{"_shards": shardsInfo{Total: total, Successful: ok}})
}

func (s *Store) handleCreateIndex(rq *request, name string) {
	body, err := rq.body()
	if err != nil {
		rq.fail(err)
		return
	}
	if e := validateIndexName(name); e != nil {
		rq.fail(e)
		return
	}
	root, settings, err := parseCreateBody(body)
	if err != nil {
		rq.fail(err)
		return
	}
	if _, err := s.createIndex(name, root, settings); err != nil {
		rq.fail(err)
		return
	}
	rq.json(http.StatusOK, struct {
		Acknowledged       bool   `json:"acknowledged"`
		ShardsAcknowledged bool   `json:"shards_acknowledged"`
		Index              string `json:"index"`
	}{true, true, name})
}

func (s *Store) handleIndexExists(rq *request, expr string) {
	names, err := resolveExpression(expr, s.names(), resolveParams(rq.params, false))
	if err != nil || len(names) == 0 {
		rq.w.WriteHeader(http.StatusNotFound)
		return
	}
	rq.w.WriteHeader(http.StatusOK)
}

func (s *Store) handleDeleteIndex(rq *request, expr string) {
	names, err := resolveExpression(expr, s.names(), resolveParams(rq.params, true))
	if err != nil {
		rq.fail(err)
		return
	}
	if derr := s.deleteIndexes(names); derr != nil {
		rq.fail(writeFailure(expr, derr))
		return
	}
	rq.json(http.StatusOK, map[string]any{"acknowledged": true})
}

func (s *Store) handleGetIndex(rq *request, expr string, mappingOnly bool) {
	if rq.r.Method != http.MethodGet && rq.r.Method != http.MethodHead {
		rq.methodNotAllowed("GET", "HEAD")
		return
	}
	t, err := s.pin(expr, resolveParams(rq.params, true))
	if err != nil {
		rq.fail(err)
		return
	}
	defer t.release()
	out := map[string]any{}
	for _, i := range t.indexes {
		mappings := i.mapping.Load().root
		if mappingOnly {
			out[i.name] = map[string]any{"mappings": mappings}
			continue
		}
		out[i.name] = map[string]any{
			"aliases":  map[string]any{},
			"mappings": mappings,
			"settings": map[string]any{"index": map[string]any{
				"creation_date":      strconv.FormatInt(i.meta.CreationDate, 10),
				"number_of_shards":   strconv.Itoa(i.meta.Settings.Shards),
				"number_of_replicas": strconv.Itoa(i.meta.Settings.Replicas),
				"uuid":               i.meta.UUID,
				"version":            map[string]any{"created": "7170099"},
				"provided_name":      i.name,
			}},
		}
	}
	rq.json(http.StatusOK, out)
}

func (s *Store) handlePutMapping(rq *request, expr string) {
	body, err := rq.body()
	if err != nil {
		rq.fail(err)
		return
	}
	var raw json.RawMessage
	if e := strictUnmarshal(body, &raw); e != nil {
		rq.fail(e)
		return
	}
	root, err := parseMappings(raw)
	if err != nil {
		rq.fail(err)
		return
	}
	t, err := s.pin(expr, resolveParams(rq.params, false))
	if err != nil {
		rq.fail(err)
		return
	}
	defer t.release()
	for _, i := range t.indexes {
		if err := i.putMapping(root); err != nil {
			rq.fail(err)
			return
		}
	}
	rq.json(http.StatusOK, map[string]any{"acknowledged": true})
}

func (s *Store) handleBulk(rq *request, defaultIndex string) {
	start := time.Now()
	body, err := rq.body()
	if err != nil {
		rq.fail(err)
		return
	}
	ops, err := parseBulk(body, defaultIndex)
	if err != nil {
		rq.fail(err)
		return
	}
	out := s.runOps(ops)
	failed := false
	for k := range out {
		if out[k].Error != nil {
			failed = true
		}
	}
	resp := struct {
		Took   int64     `json:"took"`
		Errors bool      `json:"errors"`
		Items  bulkItems `json:"items"`
	}{time.Since(start).Milliseconds(), failed, bulkItems{ops, out}}
	if rq.pretty || rq.r.Method == http.MethodHead {
		rq.json(http.StatusOK, resp)
		return
	}
	// The common case, written directly: encoding/json would re-scan the
	// items' bytes to compact them.
	items, _ := resp.Items.MarshalJSON() // cannot fail: items with errors are plain structs
	buf := make([]byte, 0, len(items)+64)
	buf = append(buf, `{"took":`...)
	buf = strconv.AppendInt(buf, resp.Took, 10)
	buf = append(buf, `,"errors":`...)
	buf = strconv.AppendBool(buf, failed)
	buf = append(buf, `,"items":`...)
	buf = append(buf, items...)
	buf = append(buf, "}\n"...)
	h := rq.w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	rq.w.WriteHeader(http.StatusOK)
	_, _ = rq.w.Write(buf)
}

// runOps executes ops grouped per index, preserving per-index order, and
// returns one result per op.
func (s *Store) runOps(ops []*bulkOp) []bulkItem {
	out := make([]bulkItem, len(ops))
	var order []string
	groups := map[string][]int{}
	for k, op := range ops {
		if _, ok := groups[op.index]; !ok {
			order = append(order, op.index)
		}
		groups[op.index] = append(groups[op.index], k)
	}
	for _, name := range order {
		pos := groups[name]
		idx, err := s.indexForWrite(name)
		if err != nil {
			for _, k := range pos {
				out[k] = failedItem(ops[k], err)
			}
			continue
		}
		gops := make([]*bulkOp, len(pos))
		for j, k := range pos {
			gops[j] = ops[k]
		}
		gout := make([]bulkItem, len(pos))
		idx.prepare(gops)
		idx.apply(gops, gout)
		idx.release()
		for j, k := range pos {
			out[k] = gout[j]
		}
	}
	return out
}

// writeResponse is the body of the single-document write APIs: a bulk item
// without "status".
type writeResponse struct {
	Index       string      `json:"_index"`
	Type        string      `json:"_type"`
	ID          string      `json:"_id"`
	Version     int64       `json:"_version"`
	Result      string      `json:"result"`
	Shards      *shardsInfo `json:"_shards"`
	SeqNo       *int64      `json:"_seq_no"`
	PrimaryTerm int64       `json:"_primary_term"`
}

func (s *Store) handleDoc(rq *request, index, api string, rest []string) {
	m := rq.r.Method
	if len(rest) > 1 {
		rq.fail(errIllegalArgument("no handler found for uri [%s] and method [%s]", rq.r.URL.RequestURI(), m))
		return
	}
	id := ""
	if len(rest) == 1 {
		id = rest[0]
	}
	switch {
	case api == "_doc" && id != "" && (m == http.MethodGet || m == http.MethodHead), api == "_source" && id != "":
		s.handleGetDoc(rq, index, id, api == "_source")
		return
	case api == "_doc" && id != "" && m == http.MethodDelete:
		if err := validateIndexName(index); err != nil {
			rq.fail(err)
			return
		}
		idx, err := s.acquireIndex(index)
		if err != nil {
			rq.fail(err)
			return
		}
		out := make([]bulkItem, 1)
		idx.apply([]*bulkOp{{action: "delete", index: index, id: id}}, out)
		idx.release()
		s.writeDocResponse(rq, out[0])
		return
	case (api == "_doc" || api == "_create") && (m == http.MethodPut || m == http.MethodPost),
		api == "_update" && m == http.MethodPost && id != "":
		if id == "" && (m == http.MethodPut || api == "_create") {
			rq.methodNotAllowed("POST")
			return
		}
		body, err := rq.body()
		if err != nil {
			rq.fail(err)
			return
		}
		op := &bulkOp{action: "index", index: index, id: id, source: bytes.TrimSpace(body)}
		switch {
		case api == "_create" || rq.params.Get("op_type") == "create":
			op.action = "create"
		case api == "_update":
			op.action = "update"
		}
		if id == "" {
			op.id, op.autoID = randomID(15), true
		}
		out := s.runOps([]*bulkOp{op})
		s.writeDocResponse(rq, out[0])
		return
	}
	rq.methodNotAllowed("GET", "HEAD", "PUT", "POST", "DELETE")
}

func (s *Store) writeDocResponse(rq *request, it bulkItem) {
	if it.Error != nil {
		rq.fail(it.Error)
		return
	}
	rq.json(it.Status, writeResponse{Index: it.Index, Type: "_doc", ID: it.ID, Version: it.Version, Result: it.Result,
		Shards: it.Shards, SeqNo: it.SeqNo, PrimaryTerm: it.PrimaryTerm})
}

func (s *Store) handleGetDoc(rq *request, index, id string, sourceOnly bool) {
	if err := validateIndexName(index); err != nil {
		rq.fail(err)
		return
	}
	idx, err := s.acquireIndex(index)
	if err != nil {
		rq.fail(err)
		return
	}
	defer idx.release()
	d, lerr := idx.load(id)
	if lerr != nil {
		rq.fail(&esError{Type: "exception", Reason: lerr.Error(), status: http.StatusInternalServerError})
		return
	}
	if sourceOnly {
		if !d.exists {
			rq.fail(&esError{Type: "resource_not_found_exception",
				Reason: fmt.Sprintf("Document not found [%s]/[_doc]/[%s]", index, id), status: http.StatusNotFound})
			return
		}
		rq.json(http.StatusOK, json.RawMessage(d.source))
		return
	}
	if !d.exists {
		rq.json(http.StatusNotFound, map[string]any{"_index": index, "_type": "_doc", "_id": id, "found": false})
		return
	}
	var src json.RawMessage = d.source
	sf := sourceFilter{}
	if v := rq.params.Get("_source"); v == "false" {
		sf.disabled = true
	} else if v != "" && v != "true" {
		sf.includes = strings.Split(v, ",")
	}
	if v := rq.params.Get("_source_includes"); v != "" {
		sf.includes = strings.Split(v, ",")
	}
	if v := rq.params.Get("_source_excludes"); v != "" {
		sf.excludes = strings.Split(v, ",")
	}
	resp := struct {
		Index       string          `json:"_index"`
		Type        string          `json:"_type"`
		ID          string          `json:"_id"`
		Version     int64           `json:"_version"`
		SeqNo       int64           `json:"_seq_no"`
		PrimaryTerm int64           `json:"_primary_term"`
		Found       bool            `json:"found"`
		Source      json.RawMessage `json:"_source,omitempty"`
	}{Index: index, Type: "_doc", ID: id, Version: d.version, SeqNo: d.seqNo, PrimaryTerm: 1, Found: true}
	if !sf.disabled {
		resp.Source = sf.apply(src)
	}
	rq.json(http.StatusOK, resp)
}

func (s *Store) handleCatIndices(rq *request, expr string) {
	t, err := s.pin(expr, resolveParams(rq.params, true))
	if err != nil {
		rq.fail(err)
		return
	}
	defer t.release()
	type row struct {
		Health       string `json:"health"`
		Status       string `json:"status"`
		Index        string `json:"index"`
		UUID         string `json:"uuid"`
		Pri          string `json:"pri"`
		Rep          string `json:"rep"`
		DocsCount    string `json:"docs.count"`
		DocsDeleted  string `json:"docs.deleted"`
		StoreSize    string `json:"store.size"`
		PriStoreSize string `json:"pri.store.size"`
	}
	rows := make([]row, 0, len(t.indexes))
	for _, i := range t.indexes {
		health := "green"
		if i.meta.Settings.Replicas > 0 {
			health = "yellow" // replicas cannot be assigned on one node
		}
		size := humanBytes(dirSize(i.path))
		rows = append(rows, row{Health: health, Status: "open", Index: i.name, UUID: i.meta.UUID,
			Pri: strconv.Itoa(i.meta.Settings.Shards), Rep: strconv.Itoa(i.meta.Settings.Replicas),
			DocsCount: strconv.FormatUint(i.docCount(), 10), DocsDeleted: "0", StoreSize: size, PriStoreSize: size})
	}
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.Index, b.Index) })
	if rq.params.Get("format") == "json" {
		rq.json(http.StatusOK, rows)
		return
	}
	var buf bytes.Buffer
	if _, ok := rq.params["v"]; ok {
		buf.WriteString("health status index uuid pri rep docs.count docs.deleted store.size pri.store.size\n")
	}
	for _, r := range rows {
		fmt.Fprintf(&buf, "%s %s %s %s %s %s %s %s %s %s\n", r.Health, r.Status, r.Index, r.UUID, r.Pri, r.Rep,
			r.DocsCount, r.DocsDeleted, r.StoreSize, r.PriStoreSize)
	}
	rq.w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	_, _ = rq.w.Write(buf.Bytes())
}

// handleFieldCaps answers _field_caps, which Grafana's Elasticsearch
// datasource uses to test the time field and to list fields: per field and
// mapped type, whether it is searchable and aggregatable.
func (s *Store) handleFieldCaps(rq *request, expr string) {
	if !slices.Contains([]string{http.MethodGet, http.MethodPost}, rq.r.Method) {
		rq.methodNotAllowed("GET", "POST")
		return
	}
	patterns := strings.Split(rq.params.Get("fields"), ",")
	if rq.params.Get("fields") == "" {
		rq.fail(errIllegalArgument("specified fields can't be null or empty"))
		return
	}
	t, err := s.pin(expr, resolveParams(rq.params, true))
	if err != nil {
		rq.fail(err)
		return
	}
	defer t.release()
	type capsEntry struct {
		Type          string   `json:"type"`
		MetadataField bool     `json:"metadata_field"`
		Searchable    bool     `json:"searchable"`
		Aggregatable  bool     `json:"aggregatable"`
		Indices       []string `json:"indices,omitempty"`
	}
	fields := map[string]map[string]*capsEntry{}
	names := make([]string, 0, len(t.indexes))
	for _, i := range t.indexes {
		names = append(names, i.name)
		var walk func(prefix string, props map[string]*fieldMapping)
		add := func(path, typ string, fm *fieldMapping) {
			if !matchesAny(patterns, path) {
				return
			}
			if typ == "" {
				typ = "object"
			}
			byType := fields[path]
			if byType == nil {
				byType = map[string]*capsEntry{}
				fields[path] = byType
			}
			if byType[typ] != nil {
				return
			}
			k := esTypes[typ]
			byType[typ] = &capsEntry{Type: typ,
				Searchable:   k != kindObject && (fm.Index == nil || *fm.Index),
				Aggregatable: k != kindObject && k != kindText && (fm.DocValues == nil || *fm.DocValues)}
		}
		walk = func(prefix string, props map[string]*fieldMapping) {
			for name, fm := range props {
				path := prefix + name
				add(path, fm.Type, fm)
				for sub, sm := range fm.Fields {
					add(path+"."+sub, sm.Type, sm)
				}
				walk(path+".", fm.Properties)
			}
		}
		walk("", i.mapping.Load().root.Properties)
	}
	rq.json(http.StatusOK, map[string]any{"indices": names, "fields": fields})
}

// handleNodeStats answers GET /_nodes/stats with the figures of
// Elasticsearch's shape that apply here (documents and bytes stored), plus
// a "kobs" section: the damaged log tails cut off at the last start
// (writes a crash cut short; none was acknowledged), which an operator
// should see rather than read about in a log.
func (s *Store) handleNodeStats(rq *request) {
	if rq.r.Method != http.MethodGet {
		rq.methodNotAllowed("GET")
		return
	}
	var docs uint64
	var bytes int64
	for _, n := range s.names() {
		i, err := s.acquireIndex(n)
		if err != nil {
			continue
		}
		docs += i.docCount()
		bytes += i.log.bytes()
		i.release()
	}
	host, _ := os.Hostname()
	rq.json(http.StatusOK, map[string]any{
		"_nodes": map[string]int{"total": 1, "successful": 1, "failed": 0}, "cluster_name": "kobs-tracestore",
		"nodes": map[string]any{s.uuid: map[string]any{
			"name": host, "roles": []string{"data", "master"},
			"indices": map[string]any{"docs": map[string]uint64{"count": docs}, "store": map[string]int64{"size_in_bytes": bytes}},
			"kobs": map[string]int64{"log_torn_tails": s.tornTails.Load(), "log_torn_bytes": s.tornBytes.Load(),
				"unreadable_indexes": s.unreadable.Load()},
		}},
	})
}

func (s *Store) handleHealth(rq *request) {
	names := s.names()
	unassigned := 0
	for _, n := range names {
		if i := s.get(n); i != nil {
			unassigned += i.meta.Settings.Replicas
		}
	}
	status := "green"
	if unassigned > 0 {
		status = "yellow"
	}
	pct := 100.0
	if len(names)+unassigned > 0 {
		pct = 100 * float64(len(names)) / float64(len(names)+unassigned)
	}
	rq.json(http.StatusOK, map[string]any{
		"cluster_name": "kobs-tracestore", "status": status, "timed_out": false,
		"number_of_nodes": 1, "number_of_data_nodes": 1,
		"active_primary_shards": len(names), "active_shards": len(names),
		"relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": unassigned,
		"delayed_unassigned_shards": 0, "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
		"task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": pct,
	})
}

func dirSize(path string) int64 {
	var n int64
	_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fgb", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fmb", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fkb", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%db", n)
}
