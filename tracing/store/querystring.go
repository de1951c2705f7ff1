package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// The query_string query is what Grafana's Elasticsearch datasource (and
// Kibana-style tools) put in every request: a Lucene query typed by the
// user. We parse the common subset into the query DSL the compiler already
// knows, so field types are honoured the same way:
//
//	field:value  field:"a phrase"  field:wild*card  field:*  _exists_:field
//	field:>5  field:>=5  field:<5  field:<=5  field:[a TO b]  field:{a TO b}
//	a AND b  a OR b  a && b  a || b  NOT a  !a  -a  +a  (a b)  field:(a OR b)
//	value (any field)  *
//
// Terms without an operator combine with default_operator (OR, as in
// Elasticsearch); AND binds tighter than OR. Fuzzy (~), boosts (^) and
// regular expressions (/re/) are refused with a clear error.

type qsParser struct {
	s          string
	pos        int
	defaultAnd bool
	fields     []string // default fields for bare terms; nil means every field
}

type qsError struct{ msg string }

func (e *qsError) Error() string { return e.msg }

func parseQueryString(body json.RawMessage) (json.RawMessage, *esError) {
	var qs struct {
		Query           *string  `json:"query"`
		DefaultField    string   `json:"default_field"`
		Fields          []string `json:"fields"`
		DefaultOperator string   `json:"default_operator"`
		AnalyzeWildcard bool     `json:"analyze_wildcard"`
		Boost           *float64 `json:"boost"`
		Name            string   `json:"_name"`
		TimeZone        string   `json:"time_zone"`
		Lenient         bool     `json:"lenient"`
	}
	if err := decodeJSON(body, &qs); err != nil || qs.Query == nil {
		return nil, errParsing("[query_string] requires 'query' to be a string: %v", err)
	}
	p := &qsParser{s: *qs.Query, defaultAnd: strings.EqualFold(qs.DefaultOperator, "and"), fields: qs.Fields}
	if qs.DefaultField != "" && qs.DefaultField != "*" {
		p.fields = []string{qs.DefaultField}
	}
	var out any
	var perr error
	func() {
		defer func() {
			if v := recover(); v != nil {
				e, ok := v.(*qsError)
				if !ok {
					panic(v)
				}
				perr = e
			}
		}()
		p.skipSpace()
		if p.pos >= len(p.s) {
			out = map[string]any{"match_all": map[string]any{}}
			return
		}
		out = p.orExpr("")
		p.skipSpace()
		if p.pos < len(p.s) {
			p.fail("unexpected '%c' at position %d", p.s[p.pos], p.pos)
		}
	}()
	if perr != nil {
		return nil, errQueryShard(&esError{Type: "parse_exception", Reason: "Cannot parse '" + *qs.Query + "': " + perr.Error()},
			"Failed to parse query [%s]", *qs.Query)
	}
	b, _ := json.Marshal(out)
	return b, nil
}

func (p *qsParser) fail(format string, args ...any) {
	panic(&qsError{fmt.Sprintf(format, args...)})
}

func (p *qsParser) skipSpace() {
	for p.pos < len(p.s) && unicode.IsSpace(rune(p.s[p.pos])) {
		p.pos++
	}
}

// keyword reports whether an operator word is next, and consumes it.
func (p *qsParser) keyword(words ...string) bool {
	p.skipSpace()
	for _, w := range words {
		if strings.HasPrefix(p.s[p.pos:], w) {
			end := p.pos + len(w)
			if w == "&&" || w == "||" || end == len(p.s) || unicode.IsSpace(rune(p.s[end])) || p.s[end] == '(' {
				p.pos = end
				return true
			}
		}
	}
	return false
}

func (p *qsParser) atEnd() bool {
	p.skipSpace()
	return p.pos >= len(p.s) || p.s[p.pos] == ')'
}

func boolOf(kind string, clauses []any) any {
	if len(clauses) == 1 && kind != "must_not" {
		return clauses[0]
	}
	return map[string]any{"bool": map[string]any{kind: clauses}}
}

func (p *qsParser) orExpr(field string) any {
	var ors []any
	for {
		ors = append(ors, p.andExpr(field))
		if !p.keyword("OR", "||") {
			break
		}
	}
	return boolOf("should", ors)
}

// andExpr collects clauses joined by AND or by nothing (the default
// operator) up to the next OR.
func (p *qsParser) andExpr(field string) any {
	type clause struct {
		q        any
		neg, req bool
	}
	var cs []clause
	anyAnd := false
	for !p.atEnd() {
		if len(cs) > 0 {
			save := p.pos
			if p.keyword("OR", "||") {
				p.pos = save
				break
			}
			if p.keyword("AND", "&&") {
				anyAnd = true
			}
		}
		neg, req := false, false
		p.skipSpace()
		switch {
		case p.keyword("NOT"):
			neg = true
		case p.pos < len(p.s) && (p.s[p.pos] == '-' || p.s[p.pos] == '!'):
			neg = true
			p.pos++
		case p.pos < len(p.s) && p.s[p.pos] == '+':
			req = true
			p.pos++
		}
		cs = append(cs, clause{p.primary(field), neg, req})
	}
	if len(cs) == 0 {
		p.fail("empty expression at position %d", p.pos)
	}
	var must, mustNot, should []any
	for _, c := range cs {
		switch {
		case c.neg:
			mustNot = append(mustNot, c.q)
		case c.req || anyAnd || p.defaultAnd:
			must = append(must, c.q)
		default:
			should = append(should, c.q)
		}
	}
	switch {
	case len(mustNot) == 0 && len(should) == 0 && len(must) == 1:
		return must[0]
	case len(mustNot) == 0 && len(must) == 0:
		return boolOf("should", should)
	}
	b := map[string]any{}
	if len(must) > 0 {
		b["must"] = must
	}
	if len(mustNot) > 0 {
		b["must_not"] = mustNot
	}
	if len(should) > 0 {
		b["should"] = should // optional beside must clauses, as in Lucene
		if len(must) == 0 {
			b["minimum_should_match"] = 1
		}
	}
	if len(must) == 0 && len(should) == 0 {
		b["must"] = []any{map[string]any{"match_all": map[string]any{}}}
	}
	return map[string]any{"bool": b}
}

func (p *qsParser) primary(field string) any {
	p.skipSpace()
	if p.pos >= len(p.s) {
		p.fail("unexpected end of query")
	}
	if p.s[p.pos] == '(' {
		p.pos++
		e := p.orExpr(field)
		p.skipSpace()
		if p.pos >= len(p.s) || p.s[p.pos] != ')' {
			p.fail("missing ')'")
		}
		p.pos++
		return e
	}
	if field == "" {
		// field:value?
		start := p.pos
		name := p.word(true)
		p.skipSpace()
		if name != "" && p.pos < len(p.s) && p.s[p.pos] == ':' {
			p.pos++
			p.skipSpace()
			if p.pos < len(p.s) && p.s[p.pos] == '(' {
				p.pos++
				e := p.orExpr(name)
				p.skipSpace()
				if p.pos >= len(p.s) || p.s[p.pos] != ')' {
					p.fail("missing ')'")
				}
				p.pos++
				return e
			}
			return p.value(name)
		}
		p.pos = start
	}
	return p.value(field)
}

// word reads an unquoted term; stopAtColon stops at an unescaped ':'.
func (p *qsParser) word(stopAtColon bool) string {
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '\\' && p.pos+1 < len(p.s) {
			b.WriteByte(p.s[p.pos+1])
			p.pos += 2
			continue
		}
		if unicode.IsSpace(rune(c)) || strings.IndexByte(`()"[]{}`, c) >= 0 || (stopAtColon && c == ':') {
			break
		}
		switch c {
		case '~', '^':
			p.fail("fuzzy and boost operators ('%c') are not supported by kobs tracestore", c)
		case '/':
			if b.Len() == 0 {
				p.fail("regular expressions are not supported by kobs tracestore")
			}
		}
		b.WriteByte(c)
		p.pos++
	}
	return b.String()
}

func (p *qsParser) quoted() string {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '\\' && p.pos+1 < len(p.s) {
			b.WriteByte(p.s[p.pos+1])
			p.pos += 2
			continue
		}
		if c == '"' {
			p.pos++
			return b.String()
		}
		b.WriteByte(c)
		p.pos++
	}
	p.fail("unterminated quoted string")
	return ""
}

// value parses what follows "field:" (field "" means the default fields).
func (p *qsParser) value(field string) any {
	p.skipSpace()
	if p.pos >= len(p.s) {
		p.fail("missing value after '%s:'", field)
	}
	switch c := p.s[p.pos]; {
	case c == '"':
		return p.onFields(field, "match_phrase", p.quoted())
	case c == '[' || c == '{':
		return p.rangeValue(field)
	case c == '>' || c == '<':
		op := string(c)
		p.pos++
		if p.pos < len(p.s) && p.s[p.pos] == '=' {
			op += "="
			p.pos++
		}
		var v string
		if p.pos < len(p.s) && p.s[p.pos] == '"' {
			v = p.quoted()
		} else {
			v = p.word(false)
		}
		key := map[string]string{">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[op]
		return p.onFields(field, "range", map[string]any{key: v})
	}
	w := p.word(false)
	if w == "" {
		p.fail("missing value at position %d", p.pos)
	}
	if field == "_exists_" {
		return map[string]any{"exists": map[string]any{"field": w}}
	}
	if w == "*" {
		if field == "" || field == "*" {
			return map[string]any{"match_all": map[string]any{}}
		}
		return map[string]any{"exists": map[string]any{"field": field}}
	}
	if strings.ContainsAny(w, "*?") {
		return p.onFields(field, "wildcard", map[string]any{"value": w})
	}
	return p.onFields(field, "match", w)
}

func (p *qsParser) rangeValue(field string) any {
	open := p.s[p.pos]
	p.pos++
	p.skipSpace()
	lo := p.rangeBound()
	p.skipSpace()
	if !p.keyword("TO") {
		p.fail("range needs 'TO'")
	}
	p.skipSpace()
	hi := p.rangeBound()
	p.skipSpace()
	if p.pos >= len(p.s) || (p.s[p.pos] != ']' && p.s[p.pos] != '}') {
		p.fail("unterminated range")
	}
	closeIncl := p.s[p.pos] == ']'
	p.pos++
	r := map[string]any{}
	if lo != "*" {
		if open == '[' {
			r["gte"] = lo
		} else {
			r["gt"] = lo
		}
	}
	if hi != "*" {
		if closeIncl {
			r["lte"] = hi
		} else {
			r["lt"] = hi
		}
	}
	if len(r) == 0 {
		return map[string]any{"exists": map[string]any{"field": field}}
	}
	return p.onFields(field, "range", r)
}

func (p *qsParser) rangeBound() string {
	if p.pos < len(p.s) && p.s[p.pos] == '"' {
		return p.quoted()
	}
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if unicode.IsSpace(rune(c)) || c == ']' || c == '}' {
			break
		}
		b.WriteByte(c)
		p.pos++
	}
	return b.String()
}

// onFields builds {typ: {field: v}} for a field, or a should over the
// default fields ("*" meaning every mapped field, resolved by the compiler).
func (p *qsParser) onFields(field, typ string, v any) any {
	if field != "" {
		return map[string]any{typ: map[string]any{field: v}}
	}
	if len(p.fields) == 1 {
		return map[string]any{typ: map[string]any{p.fields[0]: v}}
	}
	return map[string]any{"kobs_any_field": map[string]any{"type": typ, "value": v, "fields": p.fields}}
}
