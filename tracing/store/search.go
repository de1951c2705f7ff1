package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxResultWindow is Elasticsearch's index.max_result_window default.
const maxResultWindow = 10000

// searchRequest is the parsed form of a _search or _count request.
type searchRequest struct {
	query         json.RawMessage
	postFilter    json.RawMessage
	from, size    int
	sort          []sortSpec
	trackTotal    int64 // -1: exact, 0: no total, N: exact up to N
	totalAsInt    bool
	trackScores   bool
	source        sourceFilter
	seqNoPrimTerm bool
	version       bool
	searchAfter   []any
	aggs          json.RawMessage
	// docvalueFields and fields fill each hit's "fields" (Grafana reads
	// the time field there).
	docvalueFields []fieldReq
	fields         []fieldReq
}

type fieldReq struct {
	Field  string `json:"field"`
	Format string `json:"format"`
}

func parseFieldReqs(raw json.RawMessage) ([]fieldReq, *esError) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errParsing("[fields] must be an array")
	}
	out := make([]fieldReq, 0, len(list))
	for _, item := range list {
		var fr fieldReq
		if json.Unmarshal(item, &fr.Field) != nil {
			if err := json.Unmarshal(item, &fr); err != nil || fr.Field == "" {
				return nil, errParsing("[fields] entries are field names or {\"field\": ..., \"format\": ...}")
			}
		}
		out = append(out, fr)
	}
	return out, nil
}

type sortSpec struct {
	field        string
	desc         bool
	missingFirst bool
	unmappedType string
}

type sourceFilter struct {
	disabled           bool
	includes, excludes []string
}

// orderedObject decodes a JSON object keeping its keys' order.
func orderedObject(raw json.RawMessage) ([]string, map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, fmt.Errorf("not an object")
	}
	var keys []string
	m := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		if _, dup := m[k]; !dup {
			keys = append(keys, k)
		}
		m[k] = v
	}
	return keys, m, nil
}

// searchBodyKeys are accepted top-level keys of a search body; keys that
// would change results but are not implemented fail with a clear error.
var ignoredSearchKeys = map[string]bool{
	"timeout": true, "terminate_after": true, "explain": true, "profile": true, "stats": true,
	"indices_boost": true, "min_score": true, "stored_fields": true, "_name": true, "allow_partial_search_results": true,
	// Highlighting only decorates hits (Grafana's logs panel works without
	// it); the hits themselves are the same.
	"highlight": true,
}

var unsupportedSearchKeys = map[string]bool{
	"suggest": true, "collapse": true, "rescore": true,
	"pit": true, "knn": true, "runtime_mappings": true,
	"slice": true,
}

func parseSearchRequest(body []byte, params url.Values, countOnly bool) (*searchRequest, *esError) {
	r := &searchRequest{size: 10, trackTotal: maxResultWindow}
	body = bytes.TrimSpace(body)
	if len(body) > 0 {
		var m map[string]json.RawMessage
		if err := strictUnmarshal(body, &m); err != nil {
			return nil, err
		}
		for k, v := range m {
			switch {
			case k == "query":
				r.query = v
			case countOnly:
				// _count takes only a query (ES: "request does not support [k]").
				return nil, errParsing("request does not support [%s]", k)
			case k == "post_filter":
				r.postFilter = v
			case k == "size" || k == "from":
				n, err := strconv.Atoi(string(bytes.Trim(v, `"`)))
				if err != nil || n < 0 {
					return nil, errIllegalArgument("[%s] parameter cannot be negative, found [%s]", k, string(v))
				}
				if k == "size" {
					r.size = n
				} else {
					r.from = n
				}
			case k == "sort":
				specs, err := parseSortBody(v)
				if err != nil {
					return nil, err
				}
				r.sort = specs
			case k == "track_total_hits":
				t, err := parseTrackTotal(string(bytes.Trim(v, `"`)))
				if err != nil {
					return nil, err
				}
				r.trackTotal = t
			case k == "track_scores":
				r.trackScores = string(v) == "true"
			case k == "_source":
				sf, err := parseSourceFilter(v)
				if err != nil {
					return nil, err
				}
				r.source = sf
			case k == "seq_no_primary_term":
				r.seqNoPrimTerm = string(v) == "true"
			case k == "version":
				r.version = string(v) == "true"
			case k == "aggs" || k == "aggregations":
				r.aggs = v
			case k == "docvalue_fields" || k == "fields":
				frs, err := parseFieldReqs(v)
				if err != nil {
					return nil, err
				}
				if k == "fields" {
					r.fields = frs
				} else {
					r.docvalueFields = frs
				}
			case k == "script_fields":
				var m map[string]json.RawMessage
				if err := json.Unmarshal(v, &m); err != nil || len(m) > 0 {
					return nil, errIllegalArgument("[script_fields] is not supported by kobs tracestore (scripts)")
				}
			case k == "search_after":
				if err := decodeJSON(v, &r.searchAfter); err != nil {
					return nil, errParsing("[search_after] must be an array")
				}
			case unsupportedSearchKeys[k]:
				return nil, errIllegalArgument("[%s] is not supported by kobs tracestore", k)
			case ignoredSearchKeys[k]:
			default:
				return nil, errParsing("Unknown key for a START_OBJECT in [%s].", k)
			}
		}
	}
	// URL parameters override the body, as in Elasticsearch.
	if v := params.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errIllegalArgument("Failed to parse int parameter [size] with value [%s]", v)
		}
		r.size = n
	}
	if v := params.Get("from"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errIllegalArgument("Failed to parse int parameter [from] with value [%s]", v)
		}
		r.from = n
	}
	if v := params.Get("sort"); v != "" {
		r.sort = nil
		for _, part := range strings.Split(v, ",") {
			f, order, _ := strings.Cut(part, ":")
			spec := sortSpec{field: f, desc: f == "_score"}
			if order != "" {
				spec.desc = order == "desc"
			}
			r.sort = append(r.sort, spec)
		}
	}
	if v := params.Get("track_total_hits"); v != "" {
		t, err := parseTrackTotal(v)
		if err != nil {
			return nil, err
		}
		r.trackTotal = t
	}
	if params.Get("rest_total_hits_as_int") == "true" {
		r.totalAsInt = true
		r.trackTotal = -1 // Elasticsearch tracks totals exactly in this mode
	}
	if v := params.Get("_source"); v != "" {
		switch v {
		case "false":
			r.source.disabled = true
		case "true":
		default:
			r.source.includes = strings.Split(v, ",")
		}
	}
	if v := params.Get("_source_includes"); v != "" {
		r.source.includes = strings.Split(v, ",")
	}
	if v := params.Get("_source_excludes"); v != "" {
		r.source.excludes = strings.Split(v, ",")
	}
	if params.Get("seq_no_primary_term") == "true" {
		r.seqNoPrimTerm = true
	}
	if params.Get("version") == "true" {
		r.version = true
	}
	if q := params.Get("q"); q != "" {
		// The Lucene query syntax is not implemented; accept the common
		// "field:value" form as a match query and reject the rest.
		field, value, ok := strings.Cut(q, ":")
		if !ok || strings.ContainsAny(field, " ()") || field == "" {
			return nil, errIllegalArgument("only q=field:value is supported by kobs tracestore, got [%s]", q)
		}
		b, _ := json.Marshal(map[string]any{"match": map[string]any{field: strings.Trim(value, `"`)}})
		r.query = b
	}
	if len(r.searchAfter) > 0 && r.from > 0 {
		return nil, errIllegalArgument("`from` parameter must be set to 0 when `search_after` is used.")
	}
	// search_after pages through any number of hits, but each page is
	// bounded by the result window like any search.
	if !countOnly && r.from+r.size > maxResultWindow {
		return nil, errIllegalArgument("Result window is too large, from + size must be less than or equal to: [%d] but was [%d]. "+
			"See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.",
			maxResultWindow, r.from+r.size)
	}
	return r, nil
}

func parseTrackTotal(v string) (int64, *esError) {
	switch v {
	case "true":
		return -1, nil
	case "false":
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errIllegalArgument("[track_total_hits] parameter must be positive or equals to -1, got %s", v)
	}
	if n == 0 {
		return 0, nil
	}
	return n, nil
}

// parseSortBody accepts every form Elasticsearch does: "f", {"f":"desc"},
// {"f":{"order":"desc","missing":"_first","unmapped_type":"long"}} and arrays
// of those.
func parseSortBody(raw json.RawMessage) ([]sortSpec, *esError) {
	list, err := clauses(raw)
	if err != nil {
		return nil, errParsing("[sort] malformed")
	}
	var out []sortSpec
	for _, item := range list {
		var s string
		if json.Unmarshal(item, &s) == nil {
			for _, f := range strings.Split(s, ",") {
				out = append(out, sortSpec{field: f, desc: f == "_score"})
			}
			continue
		}
		// Grafana sends {"ts": {...}, "_doc": {...}} as one object; the
		// keys' order is the sort order, so read them in order.
		keys, m, err := orderedObject(item)
		if err != nil || len(keys) == 0 {
			return nil, errParsing("[sort] malformed, expected a field name or an object")
		}
		for _, f := range keys {
			v := m[f]
			spec := sortSpec{field: f, desc: f == "_score"}
			var order string
			if json.Unmarshal(v, &order) == nil {
				spec.desc = order == "desc"
			} else {
				var o struct {
					Order        string `json:"order"`
					Missing      any    `json:"missing"`
					UnmappedType string `json:"unmapped_type"`
				}
				if err := json.Unmarshal(v, &o); err != nil {
					return nil, errParsing("[sort] malformed options for [%s]", f)
				}
				if o.Order != "" {
					if o.Order != "asc" && o.Order != "desc" {
						return nil, errIllegalArgument("Unknown SortOrder [%s]", o.Order)
					}
					spec.desc = o.Order == "desc"
				}
				spec.missingFirst = o.Missing == "_first"
				spec.unmappedType = o.UnmappedType
			}
			out = append(out, spec)
		}
	}
	return out, nil
}

func parseSourceFilter(raw json.RawMessage) (sourceFilter, *esError) {
	var sf sourceFilter
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		sf.disabled = !b
		return sf, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		sf.includes = []string{s}
		return sf, nil
	}
	if json.Unmarshal(raw, &sf.includes) == nil {
		return sf, nil
	}
	var o struct {
		Includes []string `json:"includes"`
		Excludes []string `json:"excludes"`
		Include  []string `json:"include"`
		Exclude  []string `json:"exclude"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return sf, errParsing("[_source] malformed")
	}
	sf.includes = append(o.Includes, o.Include...)
	sf.excludes = append(o.Excludes, o.Exclude...)
	return sf, nil
}

// apply filters a source document by include/exclude path patterns.
func (sf sourceFilter) apply(src []byte) json.RawMessage {
	if len(sf.includes) == 0 && len(sf.excludes) == 0 {
		return src
	}
	obj, err := decodeSource(src)
	if err != nil {
		return src
	}
	// An object on an included path is kept whole (minus excludes); other
	// objects are descended into so deeper include patterns can match.
	var filter func(prefix string, m map[string]any, included bool) map[string]any
	filter = func(prefix string, m map[string]any, included bool) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			p := prefix + k
			if matchesAny(sf.excludes, p) {
				continue
			}
			inc := included || len(sf.includes) == 0 || matchesAny(sf.includes, p)
			if sub, ok := v.(map[string]any); ok {
				if f := filter(p+".", sub, inc); inc || len(f) > 0 {
					out[k] = f
				}
				continue
			}
			if inc {
				out[k] = v
			}
		}
		return out
	}
	b, err := json.Marshal(filter("", obj, false))
	if err != nil {
		return src
	}
	return b
}

func matchesAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if simpleMatch(p, path) {
			return true
		}
	}
	return false
}

// searchResponse and friends mirror Elasticsearch 7.17 (and
// olivere/elastic's SearchResult).
type searchResponse struct {
	Took     int64      `json:"took"`
	TimedOut bool       `json:"timed_out"`
	Shards   shardsInfo `json:"_shards"`
	Hits     searchHits `json:"hits"`
	// Aggregations is present when the request asked for some.
	Aggregations map[string]any `json:"aggregations,omitempty"`
}

type totalHits struct {
	Value    int64  `json:"value"`
	Relation string `json:"relation"`
}

type searchHits struct {
	Total    any         `json:"total,omitempty"` // *totalHits, or int64 with rest_total_hits_as_int
	MaxScore *float64    `json:"max_score"`
	Hits     []searchHit `json:"hits"`
}

type searchHit struct {
	Index       string          `json:"_index"`
	Type        string          `json:"_type"`
	ID          string          `json:"_id"`
	Version     *int64          `json:"_version,omitempty"`
	SeqNo       *int64          `json:"_seq_no,omitempty"`
	PrimaryTerm *int64          `json:"_primary_term,omitempty"`
	Score       *float64        `json:"_score"`
	Source      json.RawMessage `json:"_source,omitempty"`
	Fields      map[string]any  `json:"fields,omitempty"`
	Sort        []any           `json:"sort,omitempty"`
}

type countResponse struct {
	Count  uint64     `json:"count"`
	Shards shardsInfo `json:"_shards"`
}

// target is the set of indexes one search runs over, pinned for its duration.
type target struct {
	indexes []*esIndex
}

func (t *target) release() {
	for _, i := range t.indexes {
		i.release()
	}
}

// leaf resolves a field path against the targets' mappings: the first index
// that maps it wins (mappings of one caller's daily indexes agree).
func (t *target) leaf(path string) *leaf {
	for _, i := range t.indexes {
		if l := i.mapping.Load().lookupLeaf(path); l != nil {
			return l
		}
	}
	return nil
}

func (t *target) compiler(now time.Time) *queryCompiler {
	return &queryCompiler{leaf: t.leaf, now: now, fields: func() []string {
		seen := map[string]bool{}
		var out []string
		for _, i := range t.indexes {
			for path, l := range i.mapping.Load().leaves {
				if l.indexed && l.kind != kindObject && !seen[path] {
					seen[path] = true
					out = append(out, path)
				}
			}
		}
		slices.Sort(out)
		return out
	}}
}

func (t *target) shards() shardsInfo {
	n := len(t.indexes)
	return shardsInfo{Total: n, Successful: n, Skipped: ptr(0)}
}

// compileQuery builds the query for a request (query plus post_filter).
func (t *target) compileQuery(r *searchRequest, now time.Time) (qnode, *esError) {
	c := t.compiler(now)
	q, err := c.compile(r.query)
	if err != nil {
		return nil, err
	}
	if len(r.postFilter) > 0 {
		pf, err := c.compile(r.postFilter)
		if err != nil {
			return nil, err
		}
		if isNone(pf) || isAll(q) {
			return pf, nil
		}
		if isAll(pf) {
			return q, nil
		}
		q = qBool{must: []qnode{q, pf}}
	}
	return q, nil
}

// each evaluates q on every target index and calls fn with the index's
// matches, holding the index's read lock.
func (t *target) each(ctx context.Context, q qnode, fn func(k int, idx *esIndex, set docSet) error) error {
	for k, idx := range t.indexes {
		ix := idx.mem
		ix.mu.RLock()
		set, err := matches(&evalCtx{ctx: ctx, source: idx.source}, ix, q)
		if err == nil {
			err = fn(k, idx, set)
		}
		ix.mu.RUnlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *target) count(ctx context.Context, r *searchRequest, now time.Time) (*countResponse, *esError) {
	resp := &countResponse{Shards: t.shards()}
	if len(t.indexes) == 0 {
		return resp, nil
	}
	q, err := t.compileQuery(r, now)
	if err != nil {
		return nil, err
	}
	if isNone(q) {
		return resp, nil
	}
	if err := t.each(ctx, q, func(_ int, _ *esIndex, set docSet) error {
		resp.Count += uint64(len(set))
		return nil
	}); err != nil {
		return nil, searchErr(err)
	}
	return resp, nil
}

// sortPlan is the sort order and how to read and render each key.
type sortPlan struct {
	kinds   []kind // 0 for _score/_id
	fields  []string
	desc    []bool
	first   []bool // missing values sort first
	specs   []sortSpec
	byScore bool
}

func (t *target) planSort(specs []sortSpec) (*sortPlan, *esError) {
	p := &sortPlan{specs: specs}
	if len(specs) == 0 {
		specs = []sortSpec{{field: "_score", desc: true}}
		p.specs = nil
	}
	for _, s := range specs {
		var k kind
		switch s.field {
		case "_score":
			p.byScore = true
		case "_id":
		case "_doc", "_seq_no":
			// Index order: the order documents were written in (an
			// overwritten document counts as written last), which is
			// _seq_no order, as on one Elasticsearch shard.
			k = kindLong
		default:
			l := t.leaf(s.field)
			if l == nil {
				if s.unmappedType == "" {
					return nil, errQueryShard(nil, "No mapping found for [%s] in order to sort on", s.field)
				}
				k = esTypes[s.unmappedType]
			} else {
				k = l.kind
				if k == kindText {
					return nil, errIllegalArgument("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [%s] in order to load field data by uninverting the inverted index. Note that this can use significant memory.", s.field)
				}
				if k == kindObject {
					return nil, errIllegalArgument("Fielddata is not supported on field [%s] of type [object]", s.field)
				}
				if !l.docValues {
					return nil, errIllegalArgument("Can't load fielddata on [%s] because fielddata is unsupported on fields of type [%s]. Use doc values instead.", s.field, kindName(k))
				}
			}
		}
		p.kinds = append(p.kinds, k)
		p.fields = append(p.fields, s.field)
		p.desc = append(p.desc, s.desc)
		p.first = append(p.first, s.missingFirst)
	}
	return p, nil
}

// sortKey is one sort value of a document.
type sortKey struct {
	num     float64
	str     string
	missing bool
}

// hitCand is a match with its sort keys.
type hitCand struct {
	k    int // target index
	doc  uint32
	meta docMeta
	keys []sortKey
}

// keysOf reads doc's sort keys (multi-valued fields sort by their smallest
// value ascending and their largest descending, as in Elasticsearch).
func (p *sortPlan) keysOf(ix *memIndex, cols []*fieldIndex, doc uint32, keys []sortKey, scratch []float64, strs []string) {
	m := ix.doc(doc)
	for k, f := range p.fields {
		key := &keys[k]
		*key = sortKey{}
		switch f {
		case "_score":
			key.num = 1
			continue
		case "_id":
			key.str = m.id
			continue
		case "_doc", "_seq_no":
			key.num = float64(m.seqNo)
			continue
		}
		c := cols[k]
		if c == nil {
			key.missing = true
			continue
		}
		if c.hasTerms() {
			vals := c.keywords(doc, strs)
			if len(vals) == 0 {
				key.missing = true
				continue
			}
			key.str = vals[0]
			for _, v := range vals[1:] {
				if (v > key.str) == p.desc[k] && v != key.str {
					key.str = v
				}
			}
			continue
		}
		vals := c.nums(doc, scratch)
		if len(vals) == 0 {
			key.missing = true
			continue
		}
		key.num = vals[0]
		for _, v := range vals[1:] {
			if p.desc[k] {
				key.num = max(key.num, v)
			} else {
				key.num = min(key.num, v)
			}
		}
	}
}

// compare orders two documents' keys: negative when a sorts first.
func (p *sortPlan) compare(a, b []sortKey) int {
	for k := range p.fields {
		x, y := &a[k], &b[k]
		if x.missing || y.missing {
			if x.missing == y.missing {
				continue
			}
			if x.missing == p.first[k] {
				return -1
			}
			return 1
		}
		c := 0
		if p.kinds[k] == kindKeyword || p.fields[k] == "_id" {
			c = strings.Compare(x.str, y.str)
		} else if x.num < y.num {
			c = -1
		} else if x.num > y.num {
			c = 1
		}
		if c != 0 {
			if p.desc[k] {
				return -c
			}
			return c
		}
	}
	return 0
}

// value renders a sort key the way Elasticsearch renders it: numbers and
// dates as numbers (dates in epoch millis), keywords as strings, booleans
// as 0/1, missing values as Long.MAX/MIN or null.
func (p *sortPlan) value(k int, key sortKey) any {
	if p.fields[k] == "_score" {
		return key.num
	}
	if p.fields[k] == "_id" {
		return key.str
	}
	switch p.kinds[k] {
	case kindLong, kindDate:
		if key.missing {
			if p.desc[k] {
				return int64(math.MinInt64)
			}
			return int64(math.MaxInt64)
		}
		return numberValue(key.num, kindLong)
	case kindDouble:
		if key.missing {
			return nil
		}
		return key.num
	case kindBool:
		if key.missing {
			return nil
		}
		if key.num != 0 {
			return 1
		}
		return 0
	default:
		if key.missing {
			return nil
		}
		return key.str
	}
}

// hitFields renders the requested fields of one hit from its source, typed
// and formatted by the mapping (dates as ISO strings unless a format says
// otherwise), each as an array as Elasticsearch does.
func (t *target) hitFields(src []byte, r *searchRequest) map[string]any {
	obj, err := decodeSource(src)
	if err != nil {
		return nil
	}
	out := map[string]any{}
	for _, fr := range append(append([]fieldReq(nil), r.docvalueFields...), r.fields...) {
		l := t.leaf(fr.Field)
		if l == nil || l.kind == kindObject {
			continue
		}
		v := lookupPath(obj, fr.Field)
		if v == nil {
			continue
		}
		vals, ok := v.([]any)
		if !ok {
			vals = []any{v}
		}
		var rendered []any
		for _, x := range vals {
			switch l.kind {
			case kindDate:
				ms, err := dateValue(x, l.format)
				if err != nil {
					continue
				}
				format := fr.Format
				if format == "" {
					format = l.format
				}
				if strings.Contains(format, "epoch_millis") && !strings.Contains(format, "strict_date") {
					rendered = append(rendered, strconv.FormatInt(ms, 10))
				} else {
					rendered = append(rendered, time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z"))
				}
			case kindLong, kindDouble:
				f, err := strconv.ParseFloat(scalarString(x), 64)
				if err != nil {
					continue
				}
				rendered = append(rendered, numberValue(f, l.kind))
			default:
				rendered = append(rendered, x)
			}
		}
		if len(rendered) > 0 {
			out[fr.Field] = rendered
		}
	}
	return out
}

func lookupPath(obj map[string]any, path string) any {
	if v, ok := obj[path]; ok {
		return v
	}
	head, rest, ok := strings.Cut(path, ".")
	if !ok {
		return nil
	}
	sub, _ := obj[head].(map[string]any)
	if sub == nil {
		return nil
	}
	return lookupPath(sub, rest)
}

// afterKeys converts Elasticsearch search_after values into sort keys.
func (p *sortPlan) afterKeys(vals []any) ([]sortKey, *esError) {
	if len(vals) != len(p.fields) {
		return nil, errIllegalArgument("search_after has %d value(s) but sort has %d.", len(vals), len(p.fields))
	}
	out := make([]sortKey, len(vals))
	for k, v := range vals {
		s := scalarString(v)
		switch {
		case p.fields[k] == "_id" || p.kinds[k] == kindKeyword || p.kinds[k] == kindText:
			out[k].str = s
		case p.kinds[k] == kindBool:
			if s == "1" || s == "true" {
				out[k].num = 1
			}
		default:
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, errIllegalArgument("Failed to parse search_after value [%s] for field [%s]", s, p.fields[k])
			}
			out[k].num = f
		}
	}
	return out, nil
}

func (t *target) search(ctx context.Context, r *searchRequest, now time.Time) (*searchResponse, *esError) {
	resp := &searchResponse{Shards: t.shards(), Hits: searchHits{Hits: []searchHit{}}}
	setTotal := func(n uint64) {
		switch {
		case r.totalAsInt:
			resp.Hits.Total = int64(n)
		case r.trackTotal == 0:
			// track_total_hits=false: Elasticsearch omits hits.total.
		case r.trackTotal > 0 && int64(n) > r.trackTotal:
			resp.Hits.Total = &totalHits{Value: r.trackTotal, Relation: "gte"}
		default:
			resp.Hits.Total = &totalHits{Value: int64(n), Relation: "eq"}
		}
	}
	var (
		aggSpecs []*aggSpec
		aggP     *aggParser
	)
	if len(r.aggs) > 0 {
		aggP = &aggParser{t: t, c: t.compiler(now)}
		var err *esError
		if aggSpecs, err = aggP.parse(r.aggs); err != nil {
			return nil, err
		}
		// Aggregations see the query's matches, not post_filter's.
		aq, err := aggP.c.compile(r.query)
		if err != nil {
			return nil, err
		}
		if resp.Aggregations, err = t.runAggs(ctx, aq, aggSpecs, aggP); err != nil {
			return nil, err
		}
	}
	if len(t.indexes) == 0 {
		setTotal(0)
		return resp, nil
	}
	plan, err := t.planSort(r.sort)
	if err != nil {
		return nil, err
	}
	q, err := t.compileQuery(r, now)
	if err != nil {
		return nil, err
	}
	if isNone(q) {
		setTotal(0)
		return resp, nil
	}
	var after []sortKey
	if len(r.searchAfter) > 0 {
		if after, err = plan.afterKeys(r.searchAfter); err != nil {
			return nil, err
		}
	}
	from := r.from
	if after != nil {
		from = 0
	}
	hits, total, serr := t.topN(ctx, q, plan, after, from+r.size)
	if serr != nil {
		return nil, searchErr(serr)
	}
	setTotal(total)
	scored := plan.byScore || r.trackScores
	if scored && len(hits) > 0 {
		resp.Hits.MaxScore = ptr(1.0)
	}
	if from >= len(hits) {
		return resp, nil
	}
	for _, h := range hits[from:] {
		idx := t.indexes[h.k]
		hit := searchHit{Index: idx.name, Type: "_doc", ID: h.meta.id}
		if scored {
			hit.Score = ptr(1.0)
		}
		src, err := idx.log.read(h.meta.loc, h.meta.srcLen)
		if err != nil {
			return nil, searchErr(err)
		}
		if !r.source.disabled {
			hit.Source = r.source.apply(src)
		}
		if len(r.fields)+len(r.docvalueFields) > 0 {
			hit.Fields = t.hitFields(src, r)
		}
		if r.version {
			hit.Version = ptr(h.meta.version)
		}
		if r.seqNoPrimTerm {
			hit.SeqNo = ptr(h.meta.seqNo)
			hit.PrimaryTerm = ptr(int64(1))
		}
		if plan.specs != nil {
			hit.Sort = make([]any, len(plan.fields))
			for k := range plan.fields {
				hit.Sort[k] = plan.value(k, h.keys[k])
			}
		}
		resp.Hits.Hits = append(resp.Hits.Hits, hit)
	}
	return resp, nil
}
