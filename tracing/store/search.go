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

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/numeric"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
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

func (t *target) searcher() bleve.Index {
	if len(t.indexes) == 1 {
		return t.indexes[0].bi
	}
	bis := make([]bleve.Index, len(t.indexes))
	for k, i := range t.indexes {
		bis[k] = i.bi
	}
	return bleve.NewIndexAlias(bis...)
}

func (t *target) shards() shardsInfo {
	n := len(t.indexes)
	return shardsInfo{Total: n, Successful: n, Skipped: ptr(0)}
}

// compileQuery builds the bleve query for a request (query plus post_filter).
func (t *target) compileQuery(r *searchRequest, now time.Time) (query.Query, *esError) {
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
		if isNone(pf) {
			return pf, nil
		}
		b := query.NewBooleanQuery([]query.Query{q}, nil, nil)
		b.AddFilter(pf)
		q = b
	}
	return q, nil
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
	req := bleve.NewSearchRequestOptions(q, 0, 0, false)
	req.Score = "none"
	res, serr := t.searcher().SearchInContext(ctx, req)
	if serr != nil {
		return nil, searchErr(serr)
	}
	resp.Count = res.Total
	return resp, nil
}

// sortPlan is the bleve sort order plus how to render each value back.
type sortPlan struct {
	order   search.SortOrder
	kinds   []kind // 0 for _score/_id
	fields  []string
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
			p.order = append(p.order, &search.SortScore{Desc: s.desc})
			p.byScore = true
		case "_id":
			p.order = append(p.order, &search.SortDocID{Desc: s.desc})
		case "_doc", "_seq_no":
			// Index order. Elasticsearch's _doc is the Lucene doc id, which
			// on one shard follows the order documents were written in, as
			// _seq_no does; each document carries its _seq_no as a doc value
			// (docBuilder.build). bleve's internal ids do not follow write
			// order once segments merge, so they cannot stand in.
			k = kindLong
			p.order = append(p.order, &search.SortField{Field: fieldSeqNo, Desc: s.desc, Type: search.SortFieldAsNumber})
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
			sf := &search.SortField{Field: s.field, Desc: s.desc, Type: search.SortFieldAsString}
			if k == kindLong || k == kindDouble || k == kindDate {
				sf.Type = search.SortFieldAsNumber
			}
			if s.missingFirst {
				sf.Missing = search.SortFieldMissingFirst
			}
			p.order = append(p.order, sf)
		}
		p.kinds = append(p.kinds, k)
		p.fields = append(p.fields, s.field)
	}
	return p, nil
}

// value renders a bleve sort value the way Elasticsearch renders it:
// numbers and dates as numbers (dates in epoch millis), keywords as strings,
// booleans as 0/1, missing values as Long.MAX/MIN or null.
func (p *sortPlan) value(k int, hit *search.DocumentMatch) any {
	if p.fields[k] == "_score" {
		return hit.Score
	}
	if p.fields[k] == "_id" {
		return hit.ID
	}
	raw := ""
	if k < len(hit.Sort) {
		raw = hit.Sort[k]
	}
	missing := raw == search.HighTerm || raw == search.LowTerm
	switch p.kinds[k] {
	case kindLong, kindDate:
		if missing {
			if p.order[k].Descending() {
				return int64(math.MinInt64)
			}
			return int64(math.MaxInt64)
		}
		if i, err := numeric.PrefixCoded(raw).Int64(); err == nil {
			return numberValue(numeric.Int64ToFloat64(i), kindLong)
		}
	case kindDouble:
		if missing {
			return nil
		}
		if i, err := numeric.PrefixCoded(raw).Int64(); err == nil {
			return numeric.Int64ToFloat64(i)
		}
	case kindBool:
		if missing {
			return nil
		}
		if raw == "T" {
			return 1
		}
		return 0
	default:
		if missing {
			return nil
		}
		return raw
	}
	return nil
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

// afterValues converts Elasticsearch search_after values into the strings
// bleve expects (it prefix-codes numeric ones itself).
func (p *sortPlan) afterValues(vals []any) ([]string, *esError) {
	if len(vals) != len(p.order) {
		return nil, errIllegalArgument("search_after has %d value(s) but sort has %d.", len(vals), len(p.order))
	}
	out := make([]string, len(vals))
	for k, v := range vals {
		switch p.kinds[k] {
		case kindBool:
			if scalarString(v) == "1" || scalarString(v) == "true" {
				out[k] = "T"
			} else {
				out[k] = "F"
			}
		default:
			out[k] = scalarString(v)
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
	if len(r.searchAfter) > 0 {
		if _, err := plan.afterValues(r.searchAfter); err != nil {
			return nil, err
		}
	}
	req := newSearchRequest(q, r, plan)
	scored := plan.byScore || r.trackScores
	res, total, serr := t.topN(ctx, req, q, plan, r)
	if serr != nil {
		return nil, searchErr(serr)
	}
	if total == nil {
		setTotal(res.Total)
	} else {
		setTotal(*total) // the narrowed search's Total covers its slice only
	}
	if scored && len(res.Hits) > 0 {
		resp.Hits.MaxScore = ptr(res.MaxScore)
	}
	single := ""
	if len(t.indexes) == 1 {
		single = t.indexes[0].name
	}
	for _, h := range res.Hits {
		hit := searchHit{Index: h.Index, Type: "_doc", ID: h.ID}
		if hit.Index == "" {
			hit.Index = single
		}
		if scored {
			hit.Score = ptr(h.Score)
		}
		if s, ok := h.Fields[fieldSource].(string); ok {
			if !r.source.disabled {
				hit.Source = r.source.apply([]byte(s))
			}
			if len(r.fields)+len(r.docvalueFields) > 0 {
				hit.Fields = t.hitFields([]byte(s), r)
			}
		}
		if v, ok := h.Fields[fieldVersion].(float64); ok {
			hit.Version = ptr(int64(v))
		}
		if v, ok := h.Fields[fieldSeqNo].(float64); ok {
			hit.SeqNo = ptr(int64(v))
			hit.PrimaryTerm = ptr(int64(1))
		}
		if plan.specs != nil {
			hit.Sort = make([]any, len(plan.order))
			for k := range plan.order {
				hit.Sort[k] = plan.value(k, h)
			}
		}
		resp.Hits.Hits = append(resp.Hits.Hits, hit)
	}
	return resp, nil
}

// newSearchRequest is the bleve request for r's hits (plan.afterValues is
// checked by the caller).
func newSearchRequest(q query.Query, r *searchRequest, plan *sortPlan) *bleve.SearchRequest {
	req := bleve.NewSearchRequestOptions(q, r.size, r.from, false)
	req.SortByCustom(plan.order)
	fields := []string{fieldSource}
	if r.version {
		fields = append(fields, fieldVersion)
	}
	if r.seqNoPrimTerm {
		fields = append(fields, fieldSeqNo)
	}
	req.Fields = fields
	if len(r.searchAfter) > 0 {
		req.SearchAfter, _ = plan.afterValues(r.searchAfter)
		req.From = 0
	}
	if !plan.byScore && !r.trackScores {
		req.Score = "none"
	}
	return req
}
