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
)

// queryCompiler translates the Elasticsearch query DSL subset into qnode
// trees (eval.go). Field semantics come from the target indexes' mappings: the same
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

func (c *queryCompiler) compile(raw json.RawMessage) (qnode, *esError) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return qAll{}, nil
	}
	typ, body, err := singleKey(raw, "query")
	if err != nil {
		return nil, err
	}
	switch typ {
	case "match_all":
		return qAll{}, nil
	case "match_none":
		return qNone{}, nil
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
		return inner, nil
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
			return qNone{}, nil
		}
		return qIDs{ids.Values}, nil
	case "exists":
		var ex struct {
			Field string `json:"field"`
		}
		if e := decodeJSON(body, &ex); e != nil || ex.Field == "" {
			return nil, errParsing("[exists] must be provided with a [field]")
		}
		if ex.Field == "_id" || ex.Field == "_source" || ex.Field == "_index" {
			return qAll{}, nil
		}
		if c.leaf(ex.Field) == nil {
			return qNone{}, nil
		}
		return qTerm{fieldFieldNames, ex.Field}, nil
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
func (c *queryCompiler) anyField(body json.RawMessage) (qnode, *esError) {
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
	var qs []qnode
	for _, f := range fields {
		q, err := c.fieldClause(af.Type, f, af.Value)
		if err != nil || q == nil || isNone(q) {
			continue
		}
		qs = append(qs, q)
	}
	if len(qs) == 0 {
		return qNone{}, nil
	}
	return qOr{clauses: qs}, nil
}

func (c *queryCompiler) boolQuery(body json.RawMessage) (qnode, *esError) {
	var bq map[string]json.RawMessage
	if err := decodeJSON(body, &bq); err != nil {
		return nil, errParsing("[bool] failed to parse: %v", err)
	}
	var must, filter, should, mustNot []qnode
	var msm json.RawMessage
	for k, v := range bq {
		var dst *[]qnode
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
		case "boost", "adjust_pure_negative", "_name":
			// Scores are constant; a boost changes nothing.
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
	// Fold constant clauses first: a must that matches nothing makes the
	// whole bool match nothing, whatever must_not says.
	var keptMust, keptFilter, keptShould, keptNot []qnode
	for _, q := range must {
		if isNone(q) {
			return qNone{}, nil
		}
		keptMust = append(keptMust, q)
	}
	for _, q := range filter {
		if isNone(q) {
			return qNone{}, nil
		}
		if !isAll(q) {
			keptFilter = append(keptFilter, q)
		}
	}
	for _, q := range mustNot {
		if isAll(q) {
			return qNone{}, nil
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
		return qNone{}, nil
	}
	if len(keptMust)+len(keptFilter)+len(keptShould)+len(keptNot) == 0 {
		// e.g. {"bool":{}} or a bool of match_all filters: everything.
		return qAll{}, nil
	}
	// Scores are constant, so filter and must clauses match alike.
	all := append(keptMust, keptFilter...)
	if len(keptNot) == 0 && len(keptShould) == 0 && len(all) == 1 {
		return all[0], nil
	}
	return qBool{must: all, should: keptShould, not: keptNot, minShould: minShould}, nil
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

// fieldQuery handles the clause types shaped {"type": {"field": params}}.
func (c *queryCompiler) fieldQuery(typ string, body json.RawMessage) (qnode, *esError) {
	var m map[string]json.RawMessage
	if err := decodeJSON(body, &m); err != nil {
		return nil, errParsing("[%s] query malformed, no start_object after query name", typ)
	}
	if typ == "terms" {
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
	return c.fieldClause(typ, field, params)
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

func (c *queryCompiler) fieldClause(typ, field string, params json.RawMessage) (qnode, *esError) {
	l := c.leaf(field)
	if l != nil && !l.indexed && l.kind != kindObject {
		// Elasticsearch 7 refuses rather than answering "no hits": the
		// field's values exist (in _source, and in doc values unless
		// disabled), they are just not searchable.
		msg := fmt.Sprintf("Cannot search on field [%s] since it is not indexed.", field)
		return nil, errQueryShard(&esError{Type: "illegal_argument_exception", Reason: msg}, "failed to create query: %s", msg)
	}
	switch typ {
	case "term":
		_, v, err := objectParams(params, "value")
		if err != nil || v == nil {
			return nil, errParsing("[term] query malformed, no value for field [%s]", field)
		}
		return c.termQuery(field, l, v)
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
			return qIDs{ids}, nil
		}
		var qs []qnode
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
			return qNone{}, nil
		}
		return qOr{clauses: qs}, nil
	case "range":
		return c.rangeQuery(field, l, params)
	case "match", "match_phrase":
		p, v, err := objectParams(params, "query")
		if err != nil || v == nil {
			return nil, errParsing("[%s] unknown token [%s] after [%s]", typ, "START_OBJECT", field)
		}
		if l == nil || l.kind == kindObject {
			if field == "_id" {
				return qIDs{[]string{scalarString(v)}}, nil
			}
			return qNone{}, nil
		}
		if l.kind != kindText {
			return c.termQuery(field, l, v)
		}
		terms := analyzeText(scalarString(v))
		if len(terms) == 0 {
			return qNone{}, nil // zero_terms_query: none
		}
		if typ == "match_phrase" {
			if len(terms) == 1 {
				return qTerm{field, terms[0]}, nil
			}
			return qPhrase{field, terms}, nil
		}
		qs := make([]qnode, 0, len(terms))
		for _, t := range terms {
			qs = append(qs, qTerm{field, t})
		}
		op, _ := p["operator"].(string)
		if strings.EqualFold(op, "and") {
			return qAnd{qs}, nil
		}
		d := qOr{clauses: qs}
		if msm, ok := p["minimum_should_match"]; ok {
			raw, _ := json.Marshal(msm)
			n, e := minimumShouldMatch(raw, len(qs))
			if e != nil {
				return nil, e
			}
			if n > 0 {
				d.min = n
			}
		}
		return d, nil
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
				return qNone{}, nil
			}
			return nil, errQueryShard(nil, "failed to create query: Can only use %s queries on keyword and text fields - not on [%s] which is of type [%s]", typ, field, kindName(l.kind))
		}
		s := scalarString(v)
		if ci, _ := p["case_insensitive"].(bool); ci || l.kind == kindText {
			s = strings.ToLower(s) // text terms are lowercased at index time
		}
		if typ == "prefix" {
			return qPrefix{field, s}, nil
		}
		return qWildcard{field, s}, nil
	}
	return nil, errParsing("unknown query [%s]", typ)
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

func (c *queryCompiler) termQuery(field string, l *leaf, v any) (qnode, *esError) {
	if field == "_id" {
		return qIDs{[]string{scalarString(v)}}, nil
	}
	if l == nil || l.kind == kindObject || !l.indexed {
		// Elasticsearch: a term query on an unmapped field matches nothing.
		return qNone{}, nil
	}
	switch l.kind {
	case kindKeyword, kindText:
		return qTerm{field, scalarString(v)}, nil
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
		return numEq(field, f), nil
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
		f := 0.0
		if b {
			f = 1
		}
		return numEq(field, f), nil
	}
	return qNone{}, nil
}

func (c *queryCompiler) rangeQuery(field string, l *leaf, params json.RawMessage) (qnode, *esError) {
	var p map[string]any
	if err := decodeJSON(params, &p); err != nil {
		return nil, errParsing("[range] query malformed, no start_object after query name")
	}
	if l == nil || l.kind == kindObject || !l.indexed {
		return qNone{}, nil
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
		return numBetween(field, min, max, loIncl, hiIncl), nil
	case kindKeyword, kindText:
		if lo == nil && hi == nil {
			return c.existsQuery(field), nil
		}
		return qTermRange{field, scalarOrEmpty(lo), scalarOrEmpty(hi), loIncl, hiIncl}, nil
	}
	return nil, errQueryShard(nil, "failed to create query: range queries are not supported on field [%s] of type [%s]", field, kindName(l.kind))
}

func scalarOrEmpty(v any) string {
	if v == nil {
		return ""
	}
	return scalarString(v)
}

func (c *queryCompiler) existsQuery(field string) qnode {
	return qTerm{fieldFieldNames, field}
}
