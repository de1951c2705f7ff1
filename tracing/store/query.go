package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2/search/query"
)

// queryCompiler translates the Elasticsearch query DSL subset into bleve
// queries. Field semantics come from the target indexes' mappings: the same
// "term" is an exact keyword term, a numeric equality or a date equality
// depending on the mapped type, as in Elasticsearch.
type queryCompiler struct {
	leaf func(path string) *leaf // nil when unmapped in every target index
	now  time.Time
	// fields lists the searchable mapped fields, for query_string terms
	// without a field.
	fields func() []string
}

// unsupportedQueries are Elasticsearch query types we know but do not
// implement; they fail loudly instead of matching wrongly.
var unsupportedQueries = map[string]bool{
	"simple_query_string": true, "nested": true, "has_child": true, "has_parent": true,
	"function_score": true, "script": true, "script_score": true, "fuzzy": true, "regexp": true,
	"geo_distance": true, "geo_bounding_box": true, "geo_shape": true, "more_like_this": true,
	"multi_match": true, "dis_max": true, "boosting": true, "match_bool_prefix": true,
	"match_phrase_prefix": true, "combined_fields": true, "intervals": true, "span_term": true,
	"terms_set": true, "distance_feature": true, "pinned": true, "percolate": true, "wrapper": true, "rank_feature": true,
}

// maxTermsCount is Elasticsearch's index.max_terms_count default: a terms
// query with more values is refused before any work is done for it.
const maxTermsCount = 65536

func errQueryShard(cause *esError, format string, args ...any) *esError {
	return &esError{Type: "query_shard_exception", Reason: fmt.Sprintf(format, args...), CausedBy: cause, status: http.StatusBadRequest}
}

func isNone(q query.Query) bool { _, ok := q.(*query.MatchNoneQuery); return ok }
func isAll(q query.Query) bool  { _, ok := q.(*query.MatchAllQuery); return ok }

func decodeJSON(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// singleKey decodes {"name": body}, the shape of every query clause and of
// the per-field objects inside term/range/match.
func singleKey(raw json.RawMessage, what string) (string, json.RawMessage, *esError) {
	var m map[string]json.RawMessage
	if err := decodeJSON(raw, &m); err != nil {
		return "", nil, errParsing("[%s] query malformed, no start_object after query name", what)
	}
	if len(m) == 0 {
		return "", nil, errParsing("query malformed, empty clause found")
	}
	if len(m) > 1 {
		return "", nil, errParsing("[%s] query malformed, expected [END_OBJECT] but found [FIELD_NAME]", what)
	}
	for k, v := range m {
		return k, v, nil
	}
	panic("unreachable")
}

func (c *queryCompiler) compile(raw json.RawMessage) (query.Query, *esError) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return query.NewMatchAllQuery(), nil
	}
	typ, body, err := singleKey(raw, "query")
	if err != nil {
		return nil, err
	}
	switch typ {
	case "match_all":
		q := query.NewMatchAllQuery()
		if b, ok := boostOf(body); ok {
			q.SetBoost(b)
		}
		return q, nil
	case "match_none":
		return query.NewMatchNoneQuery(), nil
	case "bool":
		return c.boolQuery(body)
	case "constant_score":
		var cs struct {
			Filter json.RawMessage `json:"filter"`
		}
		if e := decodeJSON(body, &cs); e != nil || len(cs.Filter) == 0 {
			return nil, errParsing("[constant_score] requires a 'filter' element")
		}
		inner, err := c.compile(cs.Filter)
		if err != nil || isNone(inner) {
			return inner, err
		}
		b := query.NewBooleanQuery(nil, nil, nil)
		b.AddFilter(inner)
		return b, nil
	case "term", "terms", "range", "match", "match_phrase", "prefix", "wildcard":
		return c.fieldQuery(typ, body)
	case "query_string":
		dsl, err := parseQueryString(body)
		if err != nil {
			return nil, err
		}
		return c.compile(dsl)
	case "kobs_any_field":
		return c.anyField(body)
	case "ids":
		var ids struct {
			Values []string `json:"values"`
		}
		if e := decodeJSON(body, &ids); e != nil {
			return nil, errParsing("[ids] query malformed: %v", e)
		}
		if len(ids.Values) == 0 {
			return query.NewMatchNoneQuery(), nil
		}
		return query.NewDocIDQuery(ids.Values), nil
	case "exists":
		var ex struct {
			Field string `json:"field"`
		}
		if e := decodeJSON(body, &ex); e != nil || ex.Field == "" {
			return nil, errParsing("[exists] must be provided with a [field]")
		}
		if ex.Field == "_id" || ex.Field == "_source" || ex.Field == "_index" {
			return query.NewMatchAllQuery(), nil
		}
		if c.leaf(ex.Field) == nil {
			return query.NewMatchNoneQuery(), nil
		}
		q := query.NewTermQuery(ex.Field)
		q.SetField(fieldFieldNames)
		return q, nil
	}
	if unsupportedQueries[typ] {
		return nil, errParsing("[%s] query is not supported by kobs tracestore", typ)
	}
	return nil, errParsing("unknown query [%s]", typ)
}

// clauses accepts a single clause object or an array of them.
func clauses(raw json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	if raw[0] == '[' {
		var list []json.RawMessage
		err := json.Unmarshal(raw, &list)
		return list, err
	}
	return []json.RawMessage{raw}, nil
}

// anyField is a query_string term without a field: it matches the value in
// any of the given fields, or in every mapped field, skipping fields whose
// type cannot hold the value (lenient, as Elasticsearch is for "*").
func (c *queryCompiler) anyField(body json.RawMessage) (query.Query, *esError) {
	var af struct {
		Type   string          `json:"type"`
		Value  json.RawMessage `json:"value"`
		Fields []string        `json:"fields"`
	}
	if err := decodeJSON(body, &af); err != nil {
		return nil, errParsing("[query_string] internal: %v", err)
	}
	fields := af.Fields
	if len(fields) == 0 && c.fields != nil {
		fields = c.fields()
	}
	var qs []query.Query
	for _, f := range fields {
		q, err := c.fieldClause(af.Type, f, af.Value)
		if err != nil || q == nil || isNone(q) {
			continue
		}
		qs = append(qs, q)
	}
	if len(qs) == 0 {
		return query.NewMatchNoneQuery(), nil
	}
	return query.NewDisjunctionQuery(qs), nil
}

func (c *queryCompiler) boolQuery(body json.RawMessage) (query.Query, *esError) {
	var bq map[string]json.RawMessage
	if err := decodeJSON(body, &bq); err != nil {
		return nil, errParsing("[bool] failed to parse: %v", err)
	}
	var must, filter, should, mustNot []query.Query
	var msm json.RawMessage
	var boost *float64
	for k, v := range bq {
		var dst *[]query.Query
		switch k {
		case "must":
			dst = &must
		case "filter":
			dst = &filter
		case "should":
			dst = &should
		case "must_not", "mustNot":
			dst = &mustNot
		case "minimum_should_match":
			msm = v
			continue
		case "boost":
			var f float64
			if err := json.Unmarshal(v, &f); err == nil {
				boost = &f
			}
			continue
		case "adjust_pure_negative", "_name":
			continue
		default:
			return nil, errParsing("[bool] query does not support [%s]", k)
		}
		list, err := clauses(v)
		if err != nil {
			return nil, errParsing("[bool] failed to parse field [%s]", k)
		}
		for _, cl := range list {
			q, e := c.compile(cl)
			if e != nil {
				return nil, e
			}
			*dst = append(*dst, q)
		}
	}
	// Fold constant clauses ourselves. Besides being cheaper, this avoids a
	// bleve behaviour that would be wrong for us: BooleanQuery drops a
	// must-searcher that is MatchNone, which turns {must: nothing, must_not: x}
	// into "everything except x".
	var keptMust, keptFilter, keptShould, keptNot []query.Query
	for _, q := range must {
		if isNone(q) {
			return query.NewMatchNoneQuery(), nil
		}
		keptMust = append(keptMust, q)
	}
	for _, q := range filter {
		if isNone(q) {
			return query.NewMatchNoneQuery(), nil
		}
		if !isAll(q) {
			keptFilter = append(keptFilter, q)
		}
	}
	for _, q := range mustNot {
		if isAll(q) {
			return query.NewMatchNoneQuery(), nil
		}
		if !isNone(q) {
			keptNot = append(keptNot, q)
		}
	}
	minShould := 0
	if len(must)+len(filter) == 0 && len(should) > 0 {
		minShould = 1 // Elasticsearch: a bool without must/filter needs one should
	}
	if len(msm) > 0 {
		n, err := minimumShouldMatch(msm, len(should))
		if err != nil {
			return nil, err
		}
		minShould = n
	}
	for _, q := range should {
		if !isNone(q) {
			keptShould = append(keptShould, q)
		}
	}
	if minShould > len(keptShould) {
		return query.NewMatchNoneQuery(), nil
	}
	if len(keptMust)+len(keptFilter)+len(keptShould)+len(keptNot) == 0 {
		// e.g. {"bool":{}} or a bool of match_all filters: everything.
		q := query.NewMatchAllQuery()
		if boost != nil {
			q.SetBoost(*boost)
		}
		return q, nil
	}
	if len(keptMust) == 0 && minShould == 0 && len(keptFilter) > 0 {
		// Without scoring clauses the filters drive matching: as must
		// clauses bleve intersects their postings directly, whereas as a
		// filter it would walk every document of the index. (The scores
		// differ from Elasticsearch's constant 0, which nothing ranks on.)
		keptMust, keptFilter = keptFilter, nil
	}
	out := query.NewBooleanQuery(keptMust, keptShould, keptNot)
	if len(keptShould) > 0 {
		out.SetMinShould(float64(minShould))
	}
	if len(keptFilter) > 0 {
		// Filters do not score, as in Elasticsearch.
		out.AddFilter(query.NewConjunctionQuery(keptFilter))
	}
	if len(keptMust) == 0 && (minShould == 0 || len(keptShould) == 0) {
		// bleve requires a should clause when there is no must clause;
		// Elasticsearch does not when minimum_should_match is 0 (a bool with
		// only must_not). Anchor the positive side explicitly.
		out.AddMust(query.NewMatchAllQuery())
	}
	if boost != nil {
		out.SetBoost(*boost)
	}
	return out, nil
}

// minimumShouldMatch implements the integer, negative and percentage forms.
func minimumShouldMatch(raw json.RawMessage, n int) (int, *esError) {
	var v any
	if err := decodeJSON(raw, &v); err != nil {
		return 0, errParsing("[minimum_should_match] malformed")
	}
	s := ""
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, errParsing("[minimum_should_match] malformed")
	}
	var r int
	if strings.HasSuffix(s, "%") {
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil {
			return 0, errParsing("[minimum_should_match] malformed: %s", s)
		}
		r = int(math.Floor(float64(n) * math.Abs(p) / 100))
		if p < 0 {
			r = n - r
		}
	} else {
		i, err := strconv.Atoi(s)
		if err != nil {
			return 0, errParsing("[minimum_should_match] malformed: %s", s)
		}
		r = i
		if i < 0 {
			r = n + i
		}
	}
	if r < 0 {
		r = 0
	}
	if r > n {
		// Elasticsearch caps at the number of optional clauses.
		r = n
	}
	return r, nil
}

func boostOf(body json.RawMessage) (float64, bool) {
	var b struct {
		Boost *float64 `json:"boost"`
	}
	if json.Unmarshal(body, &b) == nil && b.Boost != nil {
		return *b.Boost, true
	}
	return 0, false
}

// fieldQuery handles the clause types shaped {"type": {"field": params}}.
func (c *queryCompiler) fieldQuery(typ string, body json.RawMessage) (query.Query, *esError) {
	var m map[string]json.RawMessage
	if err := decodeJSON(body, &m); err != nil {
		return nil, errParsing("[%s] query malformed, no start_object after query name", typ)
	}
	var boost *float64
	if b, ok := m["boost"]; ok && typ == "terms" {
		var f float64
		if json.Unmarshal(b, &f) == nil {
			boost = &f
		}
		delete(m, "boost")
	}
	delete(m, "_name")
	if len(m) != 1 {
		return nil, errParsing("[%s] query doesn't support multiple fields, found [%d]", typ, len(m))
	}
	var field string
	var params json.RawMessage
	for k, v := range m {
		field, params = k, v
	}
	q, err := c.fieldClause(typ, field, params)
	if err != nil || isNone(q) {
		return q, err
	}
	if boost != nil {
		if bq, ok := q.(query.BoostableQuery); ok {
			bq.SetBoost(*boost)
		}
	}
	return q, nil
}

// objectParams returns the params object and the value under key when the
// field's value is written in the long form ({"field": {"value": v}}).
func objectParams(raw json.RawMessage, key string) (map[string]any, any, error) {
	var v any
	if err := decodeJSON(raw, &v); err != nil {
		return nil, nil, err
	}
	if m, ok := v.(map[string]any); ok {
		return m, m[key], nil
	}
	return nil, v, nil
}

func (c *queryCompiler) fieldClause(typ, field string, params json.RawMessage) (query.Query, *esError) {
	l := c.leaf(field)
	if l != nil && !l.indexed && l.kind != kindObject {
		// Elasticsearch 7 refuses rather than answering "no hits": the
		// field's values exist (in _source, and in doc values unless
		// disabled), they are just not searchable. A field kept for doc
		// values has terms in bleve (see docBuilder.addNumber) that are not
		// the ones a range query walks, so answering would be wrong too.
		msg := fmt.Sprintf("Cannot search on field [%s] since it is not indexed.", field)
		return nil, errQueryShard(&esError{Type: "illegal_argument_exception", Reason: msg}, "failed to create query: %s", msg)
	}
	switch typ {
	case "term":
		p, v, err := objectParams(params, "value")
		if err != nil || v == nil {
			return nil, errParsing("[term] query malformed, no value for field [%s]", field)
		}
		q, e := c.termQuery(field, l, v)
		return withBoost(q, p), e
	case "terms":
		var vals []any
		if err := decodeJSON(params, &vals); err != nil {
			return nil, errParsing("[terms] query does not support [%s]", field)
		}
		if len(vals) > maxTermsCount {
			return nil, errIllegalArgument("The number of terms [%d] used in the Terms Query request has exceeded the allowed maximum of [%d]. "+
				"This maximum can be set by changing the [index.max_terms_count] index level setting.", len(vals), maxTermsCount)
		}
		if field == "_id" {
			ids := make([]string, 0, len(vals))
			for _, v := range vals {
				ids = append(ids, scalarString(v))
			}
			return query.NewDocIDQuery(ids), nil
		}
		var qs []query.Query
		for _, v := range vals {
			q, e := c.termQuery(field, l, v)
			if e != nil {
				return nil, e
			}
			if !isNone(q) {
				qs = append(qs, q)
			}
		}
		if len(qs) == 0 {
			return query.NewMatchNoneQuery(), nil
		}
		return query.NewDisjunctionQuery(qs), nil
	case "range":
		return c.rangeQuery(field, l, params)
	case "match", "match_phrase":
		p, v, err := objectParams(params, "query")
		if err != nil || v == nil {
			return nil, errParsing("[%s] unknown token [%s] after [%s]", typ, "START_OBJECT", field)
		}
		if l == nil || l.kind == kindObject {
			if field == "_id" {
				return query.NewDocIDQuery([]string{scalarString(v)}), nil
			}
			return query.NewMatchNoneQuery(), nil
		}
		if l.kind != kindText {
			q, e := c.termQuery(field, l, v)
			return withBoost(q, p), e
		}
		terms := analyzeText(scalarString(v))
		if len(terms) == 0 {
			return query.NewMatchNoneQuery(), nil // zero_terms_query: none
		}
		if typ == "match_phrase" {
			if len(terms) == 1 {
				t := query.NewTermQuery(terms[0])
				t.SetField(field)
				return withBoost(t, p), nil
			}
			return withBoost(query.NewPhraseQuery(terms, field), p), nil
		}
		qs := make([]query.Query, 0, len(terms))
		for _, t := range terms {
			tq := query.NewTermQuery(t)
			tq.SetField(field)
			qs = append(qs, tq)
		}
		op, _ := p["operator"].(string)
		if strings.EqualFold(op, "and") {
			return withBoost(query.NewConjunctionQuery(qs), p), nil
		}
		d := query.NewDisjunctionQuery(qs)
		if msm, ok := p["minimum_should_match"]; ok {
			raw, _ := json.Marshal(msm)
			n, e := minimumShouldMatch(raw, len(qs))
			if e != nil {
				return nil, e
			}
			if n > 0 {
				d.SetMin(float64(n))
			}
		}
		return withBoost(d, p), nil
	case "prefix", "wildcard":
		p, v, err := objectParams(params, "value")
		if err != nil {
			return nil, errParsing("[%s] query malformed", typ)
		}
		if v == nil && p != nil {
			v = p[typ]
		}
		if v == nil {
			return nil, errParsing("[%s] query malformed, no value for field [%s]", typ, field)
		}
		if l == nil || (l.kind != kindKeyword && l.kind != kindText) {
			if l == nil {
				return query.NewMatchNoneQuery(), nil
			}
			return nil, errQueryShard(nil, "failed to create query: Can only use %s queries on keyword and text fields - not on [%s] which is of type [%s]", typ, field, kindName(l.kind))
		}
		s := scalarString(v)
		if ci, _ := p["case_insensitive"].(bool); ci || l.kind == kindText {
			s = strings.ToLower(s) // text terms are lowercased at index time
		}
		if typ == "prefix" {
			q := query.NewPrefixQuery(s)
			q.SetField(field)
			return withBoost(q, p), nil
		}
		q := query.NewWildcardQuery(s)
		q.SetField(field)
		return withBoost(q, p), nil
	}
	return nil, errParsing("unknown query [%s]", typ)
}

func withBoost(q query.Query, p map[string]any) query.Query {
	if q == nil || p == nil {
		return q
	}
	b, ok := p["boost"].(json.Number)
	if !ok {
		return q
	}
	f, err := b.Float64()
	if err != nil {
		return q
	}
	if bq, ok := q.(query.BoostableQuery); ok {
		bq.SetBoost(f)
	}
	return q
}

func kindName(k kind) string {
	switch k {
	case kindKeyword:
		return "keyword"
	case kindText:
		return "text"
	case kindLong:
		return "long"
	case kindDouble:
		return "double"
	case kindDate:
		return "date"
	case kindBool:
		return "boolean"
	}
	return "object"
}

func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (c *queryCompiler) termQuery(field string, l *leaf, v any) (query.Query, *esError) {
	if field == "_id" {
		return query.NewDocIDQuery([]string{scalarString(v)}), nil
	}
	if l == nil || l.kind == kindObject || !l.indexed {
		// Elasticsearch: a term query on an unmapped field matches nothing.
		return query.NewMatchNoneQuery(), nil
	}
	switch l.kind {
	case kindKeyword, kindText:
		q := query.NewTermQuery(scalarString(v))
		q.SetField(field)
		return q, nil
	case kindLong, kindDouble, kindDate:
		var f float64
		if l.kind == kindDate {
			ms, err := dateMath(v, l.format, c.now, false)
			if err != nil {
				return nil, errQueryShard(&esError{Type: "illegal_argument_exception", Reason: err.Error()}, "failed to create query: %v", err)
			}
			f = float64(ms)
		} else {
			var err error
			f, err = strconv.ParseFloat(scalarString(v), 64)
			if err != nil {
				return nil, errQueryShard(&esError{Type: "number_format_exception", Reason: fmt.Sprintf("For input string: %q", scalarString(v))},
					"failed to create query: For input string: %q", scalarString(v))
			}
		}
		t := true
		q := query.NewNumericRangeInclusiveQuery(&f, &f, &t, &t)
		q.SetField(field)
		return q, nil
	case kindBool:
		var b bool
		switch x := v.(type) {
		case bool:
			b = x
		case string:
			switch x {
			case "true":
				b = true
			case "false", "":
			default:
				return nil, errQueryShard(nil, "failed to create query: Can't parse boolean value [%s], expected [true] or [false]", x)
			}
		default:
			return nil, errQueryShard(nil, "failed to create query: Can't parse boolean value [%v], expected [true] or [false]", v)
		}
		q := query.NewBoolFieldQuery(b)
		q.SetField(field)
		return q, nil
	}
	return query.NewMatchNoneQuery(), nil
}

func (c *queryCompiler) rangeQuery(field string, l *leaf, params json.RawMessage) (query.Query, *esError) {
	var p map[string]any
	if err := decodeJSON(params, &p); err != nil {
		return nil, errParsing("[range] query malformed, no start_object after query name")
	}
	if l == nil || l.kind == kindObject || !l.indexed {
		return query.NewMatchNoneQuery(), nil
	}
	// Old-style from/to/include_lower/include_upper is what some clients
	// (olivere's RangeQuery among them) still send.
	var lo, hi any
	loIncl, hiIncl := true, true
	if v, ok := p["from"]; ok {
		lo = v
	}
	if v, ok := p["to"]; ok {
		hi = v
	}
	if b, ok := p["include_lower"].(bool); ok {
		loIncl = b
	}
	if b, ok := p["include_upper"].(bool); ok {
		hiIncl = b
	}
	if v, ok := p["gt"]; ok {
		lo, loIncl = v, false
	}
	if v, ok := p["gte"]; ok {
		lo, loIncl = v, true
	}
	if v, ok := p["lt"]; ok {
		hi, hiIncl = v, false
	}
	if v, ok := p["lte"]; ok {
		hi, hiIncl = v, true
	}
	format, _ := p["format"].(string)
	if format == "" {
		format = l.format
	}
	switch l.kind {
	case kindLong, kindDouble, kindDate:
		bound := func(v any, roundUp bool) (*float64, *esError) {
			if v == nil {
				return nil, nil
			}
			if l.kind == kindDate {
				ms, err := dateMath(v, format, c.now, roundUp)
				if err != nil {
					return nil, errQueryShard(&esError{Type: "illegal_argument_exception", Reason: err.Error()}, "failed to create query: %v", err)
				}
				f := float64(ms)
				return &f, nil
			}
			f, err := strconv.ParseFloat(scalarString(v), 64)
			if err != nil {
				return nil, errQueryShard(&esError{Type: "number_format_exception", Reason: fmt.Sprintf("For input string: %q", scalarString(v))},
					"failed to create query: For input string: %q", scalarString(v))
			}
			return &f, nil
		}
		// Elasticsearch rounds date-math bounds up for gt and lte.
		min, err := bound(lo, !loIncl)
		if err != nil {
			return nil, err
		}
		max, err := bound(hi, hiIncl)
		if err != nil {
			return nil, err
		}
		if min == nil && max == nil {
			return c.existsQuery(field), nil
		}
		q := query.NewNumericRangeInclusiveQuery(min, max, &loIncl, &hiIncl)
		q.SetField(field)
		return q, nil
	case kindKeyword, kindText:
		if lo == nil && hi == nil {
			return c.existsQuery(field), nil
		}
		q := query.NewTermRangeInclusiveQuery(scalarOrEmpty(lo), scalarOrEmpty(hi), &loIncl, &hiIncl)
		q.SetField(field)
		return q, nil
	}
	return nil, errQueryShard(nil, "failed to create query: range queries are not supported on field [%s] of type [%s]", field, kindName(l.kind))
}

func scalarOrEmpty(v any) string {
	if v == nil {
		return ""
	}
	return scalarString(v)
}

func (c *queryCompiler) existsQuery(field string) query.Query {
	q := query.NewTermQuery(field)
	q.SetField(fieldFieldNames)
	return q
}
