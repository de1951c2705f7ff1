package jolokia

import (
	"bytes"
	"encoding/json"
	"errors"
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

// badRequest is a request Jolokia 2.3+ refuses at the HTTP level (400,
// text/plain) instead of answering with a JSON error: unparsable JSON, an
// unknown type, a bad GET path.
type badRequest struct{ err error }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params := queryParams(r)
	ct, ok := h.contentType(params)
	if !ok {
		h.refuse(w, illegalArgument("Invalid mimeType %q: use application/json or text/plain", params["mimeType"]))
		return
	}
	var out []byte
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
			if h.agent.proto == Protocol2 {
				h.refuse(w, err)
				return
			}
			// No request object exists yet: like Jolokia's handleThrowable,
			// answer without echo and with the stack trace.
			out = h.encode(h.agent.errorResponse(Request{}, nil, err))
			break
		}
		out = h.encode(h.agent.Handle(req))
	case http.MethodPost:
		// Jolokia ignores the path info of a POST: POST /jolokia/read works.
		var bad *badRequest
		out, bad = h.post(r, params)
		if bad != nil {
			h.refuse(w, bad.err)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", ct+"; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	// Jolokia answers HTTP 200 whenever it produced JSON; the outcome is in
	// each response's "status".
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// contentType is MimeTypeUtil: the mimeType parameter chooses between
// application/json and text/plain (any case); the default is the agent
// line's. Jolokia 2.3+ refuses any other value, 1.x falls back to text/plain.
func (h *Handler) contentType(params map[string]string) (string, bool) {
	def := "application/json"
	if h.agent.proto == Protocol1 {
		def = "text/plain"
	}
	mt, ok := params["mimeType"]
	if !ok || mt == "" {
		return def, true
	}
	switch strings.ToLower(mt) {
	case "application/json":
		return "application/json", true
	case "text/plain":
		return "text/plain", true
	}
	if h.agent.proto == Protocol1 {
		return "text/plain", true
	}
	return "", false
}

// refuse answers HTTP 400 the way Jolokia 2.3+ does for requests it cannot
// parse: text/plain, "400 (Bad Request)", a blank line, the message.
func (h *Handler) refuse(w http.ResponseWriter, err error) {
	msg := err.Error()
	var je *Error
	if errors.As(err, &je) {
		msg = je.Message
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, "400 (Bad Request)\n\n"+msg+"\n")
}

// encode marshals one response, replacing it by an error if it is larger
// than the response limit.
func (h *Handler) encode(resp Response) []byte {
	out, err := marshal(resp)
	if err == nil && len(out) <= h.agent.limits.MaxResponseBytes {
		return out
	}
	if err == nil {
		err = h.agent.tooLarge(len(out))
	}
	out, _ = marshal(h.agent.errorResponse(Request{}, resp.Request, err))
	return out
}

// tooLarge is the error for an answer beyond MaxResponseBytes.
func (a *Agent) tooLarge(size int) error {
	return illegalArgument("Response too large: more than %d bytes (kobs limits one HTTP answer to %d bytes); "+
		"read fewer MBeans per request (a narrower pattern or an attribute list) or split the bulk request", size, a.limits.MaxResponseBytes)
}

// post decodes a single request object or a bulk array and answers it.
// Malformed JSON yields one error object with inner status 400 (Jolokia
// 1.x) or a refusal at the HTTP level (2.x).
//
// A bulk is answered one request at a time, each encoded as soon as it is
// executed, so memory holds the answer so far plus one value, never all the
// values at once. Once the answer would pass MaxResponseBytes, the request
// that passed it and every request after it get an error instead (they are
// not executed): a bulk of 1,000 "*:*" reads costs at most the limit.
func (h *Handler) post(r *http.Request, params map[string]string) ([]byte, *badRequest) {
	a := h.agent
	fail := func(err error) ([]byte, *badRequest) {
		if a.proto == Protocol2 {
			return nil, &badRequest{err}
		}
		return h.encode(a.errorResponse(Request{}, nil, err)), nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(data) > maxBody {
		err = illegalArgument("request body larger than %d bytes", maxBody)
	}
	if err != nil {
		return fail(illegalArgument("Invalid JSON request: %v", err))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fail(illegalArgument("Invalid JSON request %v", err))
	}
	if dec.More() {
		return fail(illegalArgument("Invalid JSON request: trailing data after the JSON value"))
	}
	switch d := doc.(type) {
	case map[string]any:
		req, err := parsePOST(d, params)
		if err != nil {
			return fail(err)
		}
		return h.encode(a.Handle(req)), nil
	case []any:
		reqs := make([]Request, len(d))
		errs := make([]error, len(d))
		for i, x := range d {
			m, ok := x.(map[string]any)
			if !ok {
				errs[i] = illegalArgument("Not a request within the list of requests. Expected map, but found: %v", x)
			} else {
				reqs[i], errs[i] = parsePOST(m, params)
			}
			if errs[i] != nil && a.proto == Protocol2 {
				return nil, &badRequest{errs[i]} // 2.3+: one bad request fails the bulk
			}
		}
		var b bytes.Buffer
		b.WriteByte('[')
		full := false
		for i := range reqs {
			if i > 0 {
				b.WriteByte(',')
			}
			var out []byte
			switch {
			case errs[i] != nil:
				out = h.encode(a.errorResponse(Request{}, nil, errs[i]))
			case full:
				out, _ = marshal(a.errorResponse(reqs[i], echoOf(reqs[i]), a.tooLarge(b.Len())))
			default:
				out = h.encode(a.Handle(reqs[i]))
				if b.Len()+len(out)+1 > a.limits.MaxResponseBytes {
					full = true
					out, _ = marshal(a.errorResponse(reqs[i], echoOf(reqs[i]), a.tooLarge(b.Len()+len(out)+1)))
				}
			}
			b.Write(out)
		}
		b.WriteByte(']')
		return b.Bytes(), nil
	}
	return fail(illegalArgument("Invalid JSON Request %v", doc))
}

// echoOf is the request echo for a request that was not executed.
func echoOf(req Request) map[string]any {
	e := map[string]any{"type": req.Type}
	if req.MBean != "" {
		e["mbean"] = req.MBean
	}
	return e
}
