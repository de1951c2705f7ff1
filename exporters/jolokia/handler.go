package jolokia

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// maxBody bounds a POST body; a bulk read of thousands of MBeans is far smaller.
const maxBody = 4 << 20

// Handler serves the Jolokia protocol under /jolokia. It is a thin layer over
// Agent: it turns GET paths and POST bodies into Requests and writes the
// Responses.
type Handler struct {
	agent  *Agent
	prefix string
}

// NewHandler returns the Jolokia endpoint for r, answering paths under
// /jolokia (mount it for both "/jolokia" and "/jolokia/"). Note that
// http.ServeMux cleans paths and would redirect "read/a:b=c!//Attr" (an
// escaped trailing slash); mount the handler directly where that matters.
func NewHandler(r telemetry.Reader, opts ...Option) *Handler {
	return &Handler{agent: NewAgent(r, opts...), prefix: "/jolokia"}
}

// Agent returns the agent behind the handler.
func (h *Handler) Agent() *Agent { return h.agent }

func queryParams(r *http.Request) map[string]string {
	out := map[string]string{}
	for k, v := range r.URL.Query() {
		if len(v) > 0 && k != "p" {
			out[k] = v[0]
		}
	}
	return out
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params := queryParams(r)
	var body any
	switch r.Method {
	case http.MethodGet:
		pathInfo, ok := strings.CutPrefix(r.URL.Path, h.prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if strings.Trim(pathInfo, "/") == "" {
			if p := r.URL.Query().Get("p"); p != "" {
				pathInfo = p
			}
		}
		req, err := parseGET(pathInfo, params)
		if err != nil {
			// No request object exists yet: like Jolokia's handleThrowable,
			// answer without echo and with the stack trace.
			body = h.agent.errorResponse(Request{}, nil, err)
			break
		}
		body = h.agent.Handle(req)
	case http.MethodPost:
		// Jolokia 1.x ignores the path info of a POST: POST /jolokia/read works.
		body = h.post(r, params)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	out, err := marshal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ct := "text/plain"
	if params["mimeType"] == "application/json" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct+"; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	// Jolokia answers HTTP 200 whenever it produced JSON; the outcome is in
	// each response's "status".
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// post decodes a single request object or a bulk array. Malformed JSON
// yields one error object with inner status 400 (Jolokia 1.x behaviour).
func (h *Handler) post(r *http.Request, params map[string]string) any {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(data) > maxBody {
		err = illegalArgument("request body larger than %d bytes", maxBody)
	}
	if err != nil {
		return h.agent.errorResponse(Request{}, nil, illegalArgument("Invalid JSON request: %v", err))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return h.agent.errorResponse(Request{}, nil, illegalArgument("Invalid JSON request %v", err))
	}
	if dec.More() {
		return h.agent.errorResponse(Request{}, nil, illegalArgument("Invalid JSON request: trailing data after the JSON value"))
	}
	switch d := doc.(type) {
	case map[string]any:
		return h.one(d, params)
	case []any:
		out := make([]Response, 0, len(d))
		for _, x := range d {
			m, ok := x.(map[string]any)
			if !ok {
				out = append(out, h.agent.errorResponse(Request{}, nil,
					illegalArgument("Not a request within the list of requests. Expected map, but found: %v", x)))
				continue
			}
			out = append(out, h.one(m, params))
		}
		return out
	}
	return h.agent.errorResponse(Request{}, nil, illegalArgument("Invalid JSON Request %v", doc))
}

func (h *Handler) one(m map[string]any, params map[string]string) Response {
	req, err := parsePOST(m, params)
	if err != nil {
		return h.agent.errorResponse(Request{}, nil, err)
	}
	return h.agent.Handle(req)
}
