package jolokia

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// The Jolokia agent versions kobs answers as. Protocol2 (the default) is
// the agent 2.6.0 line (protocol 8.2): application/json, errors as
// {".error":true,"error_type","error":<message>,"error_type_jmx"}, no stack
// traces and canonicalNaming=false unless asked. Protocol1 is the 1.7.2
// agent (protocol 7.2): text/plain, "<class> : <message>" errors with a
// stack trace, canonical names. Both share the request forms, the
// "request"/"value"/"status"/"timestamp" success shape and HTTP 200 for
// every JSON answer, which is all Telegraf's jolokia2 input relies on.
const (
	AgentVersion    = "1.7.2"
	ProtocolVersion = "7.2"

	Agent2Version    = "2.6.0"
	Protocol2Version = "8.2"
)

// Protocol selects the Jolokia agent line kobs emulates.
type Protocol int

// Protocol1 answers as Jolokia agent 1.7.2, Protocol2 as 2.6.0.
const (
	Protocol2 Protocol = iota
	Protocol1
)

// WithProtocol selects the agent line (default Protocol2).
func WithProtocol(p Protocol) Option { return func(a *Agent) { a.proto = p } }

// Limits are the agent-wide serialization limits. MaxDepth,
// MaxCollectionSize and MaxObjects are Jolokia's own (ConfigKey MAX_DEPTH,
// MAX_COLLECTION_SIZE, MAX_OBJECTS; 0 = none), with its semantics: a
// request may ask for lower values as processing parameters, never higher;
// a value nested deeper than MaxDepth is replaced by its string form,
// collections are cut to MaxCollectionSize entries, and once MaxObjects maps
// have been written every further value reads "[Object limit exceeded]".
// MaxResponseBytes is kobs's: the size of one HTTP answer, bulk included.
// A request whose answer would pass it gets an error in its place, and the
// requests after it in a bulk are not executed.
type Limits struct {
	MaxDepth          int
	MaxCollectionSize int
	MaxObjects        int
	MaxResponseBytes  int
}

// DefaultLimits are the JVM agent's defaults (maxDepth 15, the others
// unlimited) plus a 16 MiB answer: a broker with 10,000 partitions answers a
// "*:*" read in a few MiB, while 1,000 of them in one bulk would need
// gigabytes.
var DefaultLimits = Limits{MaxDepth: 15, MaxResponseBytes: 16 << 20}

// WithLimits replaces DefaultLimits; a zero MaxResponseBytes keeps the default.
func WithLimits(l Limits) Option {
	return func(a *Agent) {
		if l.MaxResponseBytes <= 0 {
			l.MaxResponseBytes = DefaultLimits.MaxResponseBytes
		}
		a.limits = l
	}
}

// Error is a Java exception as Jolokia reports it.
type Error struct {
	Status  int
	Type    string // Java class name, e.g. javax.management.InstanceNotFoundException
	Message string
}

func (e *Error) Error() string { return e.Type + " : " + e.Message }

// jmxType is ErrorUtil's error_type_jmx: the exception's class when it is a
// JMException (Jolokia 2.5+).
func (e *Error) jmxType() string {
	if strings.HasPrefix(e.Type, "javax.management.") {
		return e.Type
	}
	return ""
}

func illegalArgument(format string, args ...any) error {
	return &Error{Status: 400, Type: "java.lang.IllegalArgumentException", Message: fmt.Sprintf(format, args...)}
}

func instanceNotFound(format string, args ...any) error {
	return &Error{Status: 404, Type: "javax.management.InstanceNotFoundException", Message: fmt.Sprintf(format, args...)}
}

func attributeNotFound(format string, args ...any) error {
	return &Error{Status: 404, Type: "javax.management.AttributeNotFoundException", Message: fmt.Sprintf(format, args...)}
}

// Response is one Jolokia answer. Exactly one of Value (Status 200) or the
// error fields is meaningful. Request is the echo Jolokia 1.x sends back and
// is nil when the request could not even be parsed.
type Response struct {
	Request    map[string]any
	Value      any
	Status     int
	Timestamp  int64 // epoch seconds (success only)
	ErrorType  string
	Error      string // 1.x "<class> : <message>"; 2.x the message
	Stacktrace string // present when includeStackTrace is true
	HasStack   bool

	// Jolokia 2 error fields: the ".error" marker and error_type_jmx.
	Marker       bool
	ErrorTypeJMX string
}

// Option configures an Agent.
type Option func(*Agent)

// WithClock replaces time.Now for response timestamps.
func WithClock(now func() time.Time) Option { return func(a *Agent) { a.now = now } }

// WithVersion sets the product version reported under version's "info".
func WithVersion(v string) Option { return func(a *Agent) { a.version = v } }

// WithAgentID sets the agentId reported in version's "config".
func WithAgentID(id string) Option { return func(a *Agent) { a.agentID = id } }

// Agent answers Jolokia requests from a telemetry.Reader. Its methods return
// structs; the HTTP handler only decodes and encodes.
type Agent struct {
	r       telemetry.Reader
	now     func() time.Time
	version string
	agentID string
	proto   Protocol
	limits  Limits
}

// NewAgent returns an agent over r.
func NewAgent(r telemetry.Reader, opts ...Option) *Agent {
	a := &Agent{r: r, now: time.Now, version: "dev", agentID: "kobs", limits: DefaultLimits}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Handle dispatches on req.Type, after filling in the processing
// parameters' defaults of the agent line.
func (a *Agent) Handle(req Request) Response {
	req = a.withDefaults(req)
	resp := a.dispatch(req)
	if resp.Request != nil && a.proto == Protocol2 && req.param("includeRequest") == "false" {
		resp.Request = nil // includeRequest (2.1+)
	}
	return resp
}

// withDefaults sets the parameters whose default differs between the agent
// lines (Request.param otherwise answers with 1.x's).
func (a *Agent) withDefaults(req Request) Request {
	if a.proto != Protocol2 {
		return req
	}
	params := make(map[string]string, len(req.Params)+2)
	maps.Copy(params, req.Params)
	for k, v := range map[string]string{"canonicalNaming": "false", "includeStackTrace": "false"} {
		if _, ok := params[k]; !ok {
			params[k] = v
		}
	}
	req.Params = params
	return req
}

func (a *Agent) dispatch(req Request) Response {
	switch req.Type {
	case TypeRead:
		return a.Read(req)
	case TypeSearch:
		return a.Search(req)
	case TypeList:
		return a.List(req)
	case TypeVersion:
		return a.Version(req)
	}
	return a.errorResponse(req, nil, unsupportedType(req.Type))
}

func (a *Agent) ok(echo map[string]any, v any) Response {
	return Response{Request: echo, Value: v, Status: 200, Timestamp: a.now().Unix()}
}

// errorResponse renders err the way the agent's getErrorJSON does.
func (a *Agent) errorResponse(req Request, echo map[string]any, err error) Response {
	var je *Error
	if !errors.As(err, &je) {
		je = &Error{Status: 500, Type: "java.lang.IllegalStateException", Message: err.Error()}
	}
	if a.proto == Protocol2 {
		// BaseRequestHandler (2.5+): 404 for the not-found exceptions,
		// 403 security, 500 for everything else; the message alone.
		status := je.Status
		if status != 404 && status != 403 {
			status = 500
		}
		resp := Response{Request: echo, Status: status, ErrorType: je.Type, Error: je.Message,
			Marker: true, ErrorTypeJMX: je.jmxType()}
		if req.boolParam("includeStackTrace") {
			resp.Stacktrace, resp.HasStack = je.Type+": "+je.Message+"\n", true
		}
		return resp
	}
	resp := Response{Request: echo, Status: je.Status, ErrorType: je.Type, Error: je.Error()}
	if req.Params == nil || req.boolParam("includeStackTrace") {
		// There is no Java stack; the first line of printStackTrace is all
		// kobs can honestly give.
		resp.Stacktrace, resp.HasStack = je.Type+": "+je.Message+"\n", true
	}
	return resp
}

// parseName parses an MBean name as JMX would, mapping syntax errors to the
// exception Jolokia's request factory raises.
func parseName(s string) (telemetry.ObjectName, error) {
	n, err := telemetry.ParseObjectName(s)
	if err != nil {
		return n, illegalArgument("Invalid object name. %s", strings.TrimPrefix(err.Error(), telemetry.ErrMalformedObjectName.Error()+": "))
	}
	return n, nil
}

// orderedName is JmxObjectNameRequest.getOrderedObjectName: patterns and,
// by default, all names in canonical form; with canonicalNaming=false the
// key order the name was given or registered with.
func orderedName(req Request, n telemetry.ObjectName) string {
	if n.IsPattern() || req.boolParam("canonicalNaming") {
		return n.Canonical()
	}
	return n.String()
}

// readEcho is JmxReadRequest.toJSON.
func readEcho(req Request, n *telemetry.ObjectName) map[string]any {
	e := map[string]any{"type": TypeRead}
	if n != nil {
		e["mbean"] = orderedName(req, *n)
	} else {
		e["mbean"] = req.MBean
	}
	switch {
	case len(req.Attributes) > 1:
		e["attribute"] = slices.Clone(req.Attributes)
	case len(req.Attributes) == 1:
		e["attribute"] = req.Attributes[0]
	}
	if req.Path != nil {
		e["path"] = escapePath(req.Path)
	}
	if req.Target != nil {
		e["target"] = req.Target
	}
	return e
}

// Read answers a read request: one MBean (one attribute -> bare value;
// several or none -> map) or a pattern (map of canonical name -> attribute
// map, always).
func (a *Agent) Read(req Request) Response {
	n, err := parseName(req.MBean)
	if err != nil {
		// Jolokia fails while building the request object: no echo, full error.
		return a.errorResponse(Request{}, nil, err)
	}
	echo := readEcho(req, &n)
	var v any
	if n.IsPattern() {
		v, err = a.readPattern(req, n)
	} else {
		v, err = a.readOne(req, n)
	}
	if err == nil && req.Path != nil {
		v, err = navigate(v, req.Path)
	}
	if err == nil {
		v, err = a.limit(req, v)
	}
	if err != nil {
		return a.errorResponse(req, echo, err)
	}
	return a.ok(echo, v)
}

func (a *Agent) readOne(req Request, n telemetry.ObjectName) (any, error) {
	s, ok := a.r.Get(n)
	if !ok {
		return nil, instanceNotFound("%s", n.String())
	}
	if len(req.Attributes) == 1 && !req.AttrList {
		v, ok := s.Attr(req.Attributes[0])
		if !ok {
			return nil, attributeNotFound("No such attribute: %s", req.Attributes[0])
		}
		return jsonValue(v), nil
	}
	return a.attrMap(req, s, req.Attributes)
}

// attrMap renders the requested attributes (all when names is nil). An
// unknown attribute fails the request unless ignoreErrors is set, in which
// case its value is Jolokia's "ERROR: ..." string.
func (a *Agent) attrMap(req Request, s telemetry.Snapshot, names []string) (map[string]any, error) {
	out := make(map[string]any, s.Len())
	if names == nil {
		for i := range s.Len() {
			at := s.At(i)
			out[at.Name] = jsonValue(at.Value)
		}
		return out, nil
	}
	for _, name := range names {
		v, ok := s.Attr(name)
		if !ok {
			err := attributeNotFound("No such attribute: %s", name)
			if !req.boolParam("ignoreErrors") {
				return nil, err
			}
			if a.proto == Protocol2 {
				out[name] = map[string]any{".error": true, "error_type": "javax.management.AttributeNotFoundException",
					"error": "No such attribute: " + name}
			} else {
				out[name] = "ERROR: No such attribute: " + name + " (class javax.management.AttributeNotFoundException)"
			}
			continue
		}
		out[name] = jsonValue(v)
	}
	return out, nil
}

func (a *Agent) matching(pattern telemetry.ObjectName) []telemetry.ObjectName {
	var names []telemetry.ObjectName
	if nl, ok := a.r.(telemetry.NameLister); ok {
		nl.EachName(func(n telemetry.ObjectName, _ telemetry.Kind) {
			if pattern.Matches(n) {
				names = append(names, n)
			}
		})
		return names
	}
	a.r.Each(func(n telemetry.ObjectName, _ telemetry.Snapshot) {
		if pattern.Matches(n) {
			names = append(names, n)
		}
	})
	return names
}

func (a *Agent) readPattern(req Request, pattern telemetry.ObjectName) (any, error) {
	names := a.matching(pattern)
	if len(names) == 0 {
		return nil, instanceNotFound("No MBean with pattern %s found for reading attributes", pattern.String())
	}
	out := map[string]any{}
	for _, n := range names {
		s, ok := a.r.Get(n)
		if !ok {
			continue // removed since the search, or a failing gauge
		}
		var want []string
		if req.Attributes != nil {
			for _, at := range req.Attributes {
				if _, ok := s.Attr(at); ok {
					want = append(want, at)
				}
			}
			if len(want) == 0 {
				continue
			}
		}
		m, err := a.attrMap(req, s, want)
		if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out[orderedName(req, n)] = m
		}
	}
	if len(out) == 0 {
		strs := make([]string, len(names))
		for i, n := range names {
			strs[i] = n.String()
		}
		return nil, illegalArgument("No matching attributes [%s] found on MBeans [%s]",
			strings.Join(req.Attributes, ", "), strings.Join(strs, ", "))
	}
	return out, nil
}

// navigate applies an inner path to a value; "*" maps the rest of the path
// over every entry of a map.
func navigate(v any, path []string) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, illegalArgument("Cannot navigate with path %s into a simple value %v", escapePath(path), v)
	}
	if path[0] == "*" {
		out := make(map[string]any, len(m))
		for k, x := range m {
			r, err := navigate(x, path[1:])
			if err != nil {
				continue // wildcard paths skip entries that do not fit
			}
			out[k] = r
		}
		return out, nil
	}
	x, ok := m[path[0]]
	if !ok {
		return nil, attributeNotFound("Map key %s is unknown for map %v", path[0], slices.Sorted(maps.Keys(m)))
	}
	return navigate(x, path[1:])
}

// Search answers a search request: the names matching a pattern (or equal to
// a plain name), canonical unless canonicalNaming=false; [] if none.
func (a *Agent) Search(req Request) Response {
	n, err := parseName(req.MBean)
	if err != nil {
		return a.errorResponse(Request{}, nil, err)
	}
	echo := map[string]any{"type": TypeSearch, "mbean": orderedName(req, n)}
	out := []string{}
	for _, m := range a.matching(n) {
		out = append(out, orderedName(req, m))
	}
	v, err := a.limit(req, out)
	if err != nil {
		return a.errorResponse(req, echo, err)
	}
	return a.ok(echo, v)
}

// Version answers a version request: VersionRequestHandler's payload of the
// agent line.
func (a *Agent) Version(req Request) Response {
	echo := map[string]any{"type": TypeVersion}
	if a.proto == Protocol2 {
		return a.ok(echo, map[string]any{
			"agent":    Agent2Version,
			"protocol": Protocol2Version,
			"id":       a.agentID,
			"details": map[string]any{
				"agent_version":     Agent2Version,
				"agent_id":          a.agentID,
				"agent_description": "kobs broker telemetry (Jolokia protocol, read-only)",
				"server_product":    "kobs",
				"server_vendor":     "kobs",
				"server_version":    a.version,
			},
			"info": map[string]any{"jmx": map[string]any{}},
			"config": map[string]any{
				"agentId":           a.agentID,
				"agentType":         "kobs",
				"agentContext":      "/jolokia",
				"canonicalNaming":   "false",
				"includeStackTrace": "false",
				"mimeType":          "application/json",
				"maxDepth":          strconv.Itoa(a.limits.MaxDepth),
				"maxCollectionSize": strconv.Itoa(a.limits.MaxCollectionSize),
				"maxObjects":        strconv.Itoa(a.limits.MaxObjects),
				"dateFormat":        "yyyy-MM-dd'T'HH:mm:ssXXX",
			},
			"decorators": map[string]any{},
		})
	}
	return a.ok(echo, map[string]any{
		"agent":    AgentVersion,
		"protocol": ProtocolVersion,
		"config": map[string]any{
			"agentId":           a.agentID,
			"agentType":         "kobs",
			"agentContext":      "/jolokia",
			"canonicalNaming":   "true",
			"includeStackTrace": "true",
			"maxDepth":          strconv.Itoa(a.limits.MaxDepth),
			"maxCollectionSize": strconv.Itoa(a.limits.MaxCollectionSize),
			"maxObjects":        strconv.Itoa(a.limits.MaxObjects),
		},
		"info": map[string]any{"product": "kobs", "vendor": "kobs", "version": a.version},
	})
}

// List answers a list request: domain -> canonical key list -> MBean info,
// narrowed by path (domain, key list, "attr", attribute) and truncated by
// maxDepth.
func (a *Agent) List(req Request) Response {
	echo := map[string]any{"type": TypeList}
	if req.Path != nil {
		echo["path"] = escapePath(req.Path)
	}
	v, err := a.list(req)
	if err != nil {
		return a.errorResponse(req, echo, err)
	}
	if d := req.param("maxDepth"); d != "" {
		depth, err := strconv.Atoi(d)
		if err != nil {
			return a.errorResponse(req, echo, illegalArgument("maxDepth %q is not a number", d))
		}
		if depth > 0 {
			v = truncate(v, depth)
		}
	}
	return a.ok(echo, v)
}

type nameKind struct {
	name telemetry.ObjectName
	kind telemetry.Kind
}

func (a *Agent) names() []nameKind {
	var out []nameKind
	if nl, ok := a.r.(telemetry.NameLister); ok {
		nl.EachName(func(n telemetry.ObjectName, k telemetry.Kind) { out = append(out, nameKind{n, k}) })
		return out
	}
	a.r.Each(func(n telemetry.ObjectName, s telemetry.Snapshot) { out = append(out, nameKind{n, s.Kind()}) })
	return out
}

// mbeanInfo describes bean n of kind k. A Kafka Metrics bean's attributes
// depend on the bean, so it is read to describe them.
func (a *Agent) mbeanInfo(n telemetry.ObjectName, k telemetry.Kind) map[string]any {
	infos := telemetry.Describe(k)
	if k == telemetry.KindKafkaMetrics {
		if s, ok := a.r.Get(n); ok {
			infos = telemetry.DescribeSnapshot(s)
		}
	}
	attrs := map[string]any{}
	for _, ai := range infos {
		attrs[ai.Name] = attrInfo(ai)
	}
	// Yammer's beans also have operations (objectName, values) and Jolokia
	// lists them under "op"; kobs cannot execute them, so it does not claim them.
	return map[string]any{"desc": telemetry.MBeanDescription, "class": k.ClassName(), "attr": attrs}
}

func attrInfo(ai telemetry.AttributeInfo) map[string]any {
	return map[string]any{"type": ai.Type, "desc": ai.Desc, "rw": ai.RW}
}

func (a *Agent) list(req Request) (any, error) {
	p := req.Path
	if len(p) == 0 {
		tree := map[string]any{}
		for _, nk := range a.names() {
			dom, _ := tree[nk.name.Domain()].(map[string]any)
			if dom == nil {
				dom = map[string]any{}
				tree[nk.name.Domain()] = dom
			}
			dom[nk.name.CanonicalKeyPropertyList()] = a.mbeanInfo(nk.name, nk.kind)
		}
		return tree, nil
	}
	domain := p[0]
	if len(p) == 1 {
		dom := map[string]any{}
		for _, nk := range a.names() {
			if nk.name.Domain() == domain {
				dom[nk.name.CanonicalKeyPropertyList()] = a.mbeanInfo(nk.name, nk.kind)
			}
		}
		if len(dom) == 0 {
			return nil, instanceNotFound("No MBean with domain %s found", domain)
		}
		return dom, nil
	}
	n, err := parseName(domain + ":" + p[1])
	if err != nil {
		return nil, err
	}
	if n.IsPattern() {
		return nil, illegalArgument("list path %s: MBean patterns are not supported in a list path", escapePath(p))
	}
	var kind telemetry.Kind
	for _, nk := range a.names() {
		if nk.name.Canonical() == n.Canonical() {
			kind = nk.kind
		}
	}
	if kind == 0 {
		return nil, instanceNotFound("%s", n.String())
	}
	info := a.mbeanInfo(n, kind)
	if len(p) == 2 {
		return info, nil
	}
	var v any = info
	for i, el := range p[2:] {
		m, ok := v.(map[string]any)
		if !ok || i >= 3 {
			return nil, illegalArgument("Path contains extra elements not usable for a list request: %s", escapePath(p[2+i:]))
		}
		x, ok := m[el]
		if !ok {
			return nil, illegalArgument("Illegal path element %s", el)
		}
		v = x
	}
	return v, nil
}

// truncate is MBeanInfoData.truncateJSONObject: maps deeper than depth
// become 1.
func truncate(v any, depth int) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if depth == 0 {
		return 1
	}
	out := make(map[string]any, len(m))
	for k, x := range m {
		out[k] = truncate(x, depth-1)
	}
	return out
}
