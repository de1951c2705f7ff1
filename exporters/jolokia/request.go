package jolokia

import (
	"fmt"
	"strings"
)

// Request types kobs answers.
const (
	TypeRead    = "read"
	TypeList    = "list"
	TypeSearch  = "search"
	TypeVersion = "version"
)

// Request is one Jolokia request, from a GET path or a POST object.
type Request struct {
	Type  string
	MBean string
	// Attributes is nil when no attribute was given (read all). AttrList
	// records whether they came as a JSON array (or a comma list in a GET),
	// which decides between a bare value and a map in the answer.
	Attributes []string
	AttrList   bool
	// Path is the inner path; "*" elements are wildcards. Nil means none.
	Path []string
	// Params are processing parameters (query string merged under the POST
	// "config" object): canonicalNaming, ignoreErrors, includeStackTrace,
	// maxDepth, mimeType.
	Params map[string]string
	// Raw keeps a POST request's "target" for the echo (kobs is no proxy).
	Target any
}

// param returns a processing parameter with Jolokia 1.x defaults.
func (r Request) param(key string) string {
	if v, ok := r.Params[key]; ok {
		return v
	}
	switch key {
	case "canonicalNaming", "includeStackTrace":
		return "true"
	}
	return ""
}

func (r Request) boolParam(key string) bool {
	switch strings.ToLower(r.param(key)) {
	case "true", "yes", "on", "1":
		return true
	}
	return false
}

// splitPath splits a GET path on "/" honouring Jolokia's escapes: "!/" is a
// literal slash, "!!" a literal "!", "!x" is x. Empty elements (leading or
// doubled slashes) are dropped, as the servlet container does.
func splitPath(p string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '!' && i+1 < len(p):
			i++
			cur.WriteByte(p[i])
		case c == '/':
			if cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// escapePath joins path elements with Jolokia's escaping (EscapeUtil.combineToPath).
func escapePath(parts []string) string {
	if len(parts) == 0 {
		return ""
	}
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = strings.ReplaceAll(strings.ReplaceAll(p, "!", "!!"), "/", "!/")
	}
	return strings.Join(esc, "/")
}

// splitAttributes splits a GET attribute element on commas (a backslash
// escapes a comma), like EscapeUtil.split with CSV_ESCAPE.
func splitAttributes(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}

// parseGET builds a request from a GET path info ("/read/<mbean>/<attr>/<path>").
func parseGET(pathInfo string, params map[string]string) (Request, error) {
	el := splitPath(pathInfo)
	req := Request{Type: TypeVersion, Params: params}
	if len(el) == 0 {
		return req, nil
	}
	req.Type, el = el[0], el[1:]
	switch req.Type {
	case TypeVersion:
	case TypeRead:
		if len(el) == 0 {
			return req, illegalArgument("Invalid arguments in pathinfo %s for command %s", pathInfo, req.Type)
		}
		req.MBean = el[0]
		if len(el) > 1 {
			req.Attributes = splitAttributes(el[1])
			req.AttrList = len(req.Attributes) > 1
			if len(req.Attributes) == 1 && req.Attributes[0] == "*" {
				req.Attributes, req.AttrList = nil, false
			}
		}
		if len(el) > 2 {
			req.Path = el[2:]
		}
	case TypeSearch:
		if len(el) == 0 {
			return req, illegalArgument("Invalid arguments in pathinfo %s for command %s", pathInfo, req.Type)
		}
		req.MBean = el[0]
	case TypeList:
		if len(el) > 0 {
			req.Path = el
		}
	default:
		return req, unsupportedType(req.Type)
	}
	return req, nil
}

// parsePOST builds a request from one decoded POST object, merging its
// "config" over the query parameters.
func parsePOST(m map[string]any, query map[string]string) (Request, error) {
	req := Request{Params: map[string]string{}}
	for k, v := range query {
		req.Params[k] = v
	}
	if cfg, ok := m["config"].(map[string]any); ok {
		for k, v := range cfg {
			req.Params[k] = fmt.Sprint(v)
		}
	}
	t, _ := m["type"].(string)
	if t == "" {
		return req, illegalArgument("No type given in request %v", m)
	}
	req.Type = t
	req.Target = m["target"]
	if p, ok := m["path"].(string); ok && p != "" && p != "/" {
		req.Path = splitPath(p)
	}
	switch t {
	case TypeRead, TypeSearch:
		mb, ok := m["mbean"].(string)
		if !ok {
			return req, illegalArgument("Objectname can not be null")
		}
		req.MBean = mb
		if t == TypeSearch {
			req.Path = nil
			break
		}
		switch a := m["attribute"].(type) {
		case nil:
		case string:
			req.Attributes = splitAttributes(a)
			req.AttrList = len(req.Attributes) > 1
		case []any:
			if len(a) == 1 && a[0] == nil {
				break
			}
			req.AttrList = true
			for _, x := range a {
				s, ok := x.(string)
				if !ok {
					return req, illegalArgument("Attribute names must be strings, not %v", x)
				}
				req.Attributes = append(req.Attributes, s)
			}
		default:
			return req, illegalArgument("Attribute names must be either a String, Collection or null (and not %T)", a)
		}
	case TypeList, TypeVersion:
		if t == TypeVersion {
			req.Path = nil
		}
	default:
		return req, unsupportedType(t)
	}
	return req, nil
}

func unsupportedType(t string) error {
	switch t {
	case "write", "exec", "notification":
		// Valid Jolokia types that kobs' read-only Yammer beans do not offer.
		return &Error{Status: 500, Type: "java.lang.UnsupportedOperationException",
			Message: fmt.Sprintf("Type %s is not supported by kobs (metrics are read-only)", t)}
	}
	return illegalArgument("Invalid request type '%s'", t)
}
