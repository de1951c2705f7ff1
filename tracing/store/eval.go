package store

import (
	"context"
	"math"
	"slices"
	"strings"
)

// qnode is a compiled query: the Elasticsearch DSL (query.go) compiles to a
// tree of these, evaluated per index to the sorted set of matching live
// documents. Scores are constant (every match scores its boost, 1 by
// default): the store ranks by sort fields, and nothing that reads it ranks
// by relevance.
type qnode interface {
	eval(e *evalCtx, ix *memIndex) (docSet, error)
}

// evalCtx carries what evaluation needs beyond the index: cancellation and
// the source of a document (phrase checks).
type evalCtx struct {
	ctx    context.Context
	source func(doc uint32) ([]byte, error)
	steps  int
}

func (e *evalCtx) check() error {
	e.steps++
	if e.steps%64 == 0 || e.steps == 1 {
		return e.ctx.Err()
	}
	return nil
}

type (
	qAll  struct{}
	qNone struct{}
	// qTerm matches a term's postings (keyword, text, _field_names).
	qTerm struct{ field, term string }
	// qNum matches numeric, date and boolean values in [lo, hi].
	qNum struct {
		field          string
		lo, hi         float64
		loIncl, hiIncl bool
	}
	// qTermRange matches keyword/text terms in a string range; "" is
	// unbounded.
	qTermRange struct {
		field          string
		lo, hi         string
		loIncl, hiIncl bool
	}
	qPrefix   struct{ field, prefix string }
	qWildcard struct{ field, pattern string }
	qPhrase   struct {
		field string
		terms []string
	}
	qIDs  struct{ ids []string }
	qBool struct {
		must, should, not []qnode
		minShould         int
	}
	qOr struct {
		clauses []qnode
		min     int
	}
	qAnd struct{ clauses []qnode }
)

func isNone(q qnode) bool { _, ok := q.(qNone); return ok }
func isAll(q qnode) bool  { _, ok := q.(qAll); return ok }

func (qAll) eval(_ *evalCtx, ix *memIndex) (docSet, error) { return ix.all(), nil }
func (qNone) eval(*evalCtx, *memIndex) (docSet, error)     { return nil, nil }

func (q qTerm) eval(e *evalCtx, ix *memIndex) (docSet, error) {
	if q.field == fieldFieldNames {
		return ix.withField(q.term), e.check()
	}
	f := ix.fields[q.field]
	if f == nil || !f.hasTerms() {
		return nil, nil
	}
	o, ok := f.ord.get(q.term)
	if !ok {
		return nil, nil
	}
	return f.postings(o), nil
}

func (q qNum) eval(e *evalCtx, ix *memIndex) (docSet, error) {
	f := ix.fields[q.field]
	if f == nil || f.hasTerms() {
		return nil, e.check()
	}
	return f.numRange(q), e.check()
}

func (q qTermRange) eval(e *evalCtx, ix *memIndex) (docSet, error) {
	f := ix.fields[q.field]
	if f == nil || !f.hasTerms() {
		return nil, nil
	}
	return f.termsMatching(func(t string) bool {
		if q.lo != "" {
			if c := strings.Compare(t, q.lo); c < 0 || (c == 0 && !q.loIncl) {
				return false
			}
		}
		if q.hi != "" {
			if c := strings.Compare(t, q.hi); c > 0 || (c == 0 && !q.hiIncl) {
				return false
			}
		}
		return true
	}), e.check()
}

func (q qPrefix) eval(e *evalCtx, ix *memIndex) (docSet, error) {
	f := ix.fields[q.field]
	if f == nil || !f.hasTerms() {
		return nil, nil
	}
	return f.termsMatching(func(t string) bool { return strings.HasPrefix(t, q.prefix) }), e.check()
}

func (q qWildcard) eval(e *evalCtx, ix *memIndex) (docSet, error) {
	f := ix.fields[q.field]
	if f == nil || !f.hasTerms() {
		return nil, nil
	}
	pat := []rune(q.pattern)
	return f.termsMatching(func(t string) bool { return wildcardMatch(pat, []rune(t)) }), e.check()
}

// wildcardMatch is Elasticsearch's wildcard: * matches any run of
// characters (including none), ? exactly one, everything else itself.
func wildcardMatch(p, s []rune) bool {
	// Greedy with backtracking to the last star: linear for the usual
	// patterns.
	star, mark := -1, 0
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(p) && (p[i] == '?' || p[i] == s[j]) && p[i] != '*':
			i++
			j++
		case i < len(p) && p[i] == '*':
			star, mark = i, j
			i++
		case star >= 0:
			i = star + 1
			mark++
			j = mark
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

func (q qIDs) eval(_ *evalCtx, ix *memIndex) (docSet, error) {
	var out docSet
	for _, id := range q.ids {
		if d, ok := ix.ids.get(id); ok {
			out = append(out, d)
		}
	}
	return atLeast([]docSet{out, nil}, 1), nil // sorts and dedupes
}

// eval of a phrase: documents holding every term, then checked against the
// analysed source for the terms in order within one value.
func (q qPhrase) eval(e *evalCtx, ix *memIndex) (docSet, error) {
	var cand docSet
	for k, t := range q.terms {
		s, _ := qTerm{q.field, t}.eval(e, ix)
		if k == 0 {
			cand = s
		} else {
			cand = intersect(cand, s)
		}
		if len(cand) == 0 {
			return nil, nil
		}
	}
	f := ix.fields[q.field]
	var out docSet
	for _, d := range cand {
		if err := e.check(); err != nil {
			return nil, err
		}
		src, err := e.source(d)
		if err != nil {
			return nil, err
		}
		obj, err := decodeSource(src)
		if err != nil {
			continue
		}
		v := lookupPath(obj, f.srcPath)
		vals, ok := v.([]any)
		if !ok {
			vals = []any{v}
		}
		for _, v := range vals {
			if hasPhrase(analyzeText(scalarString(v)), q.terms) {
				out = append(out, d)
				break
			}
		}
	}
	return out, nil
}

func hasPhrase(toks, terms []string) bool {
	for i := 0; i+len(terms) <= len(toks); i++ {
		ok := true
		for k, t := range terms {
			if toks[i+k] != t {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// docFilter is a clause that can test documents cheaply (a column
// lookup): once the other clauses have narrowed the candidates, testing
// them beats scanning the whole column.
type docFilter interface {
	// filter returns the candidates (sorted) that match.
	filter(ix *memIndex, cands docSet) docSet
}

func (q qNum) filter(ix *memIndex, cands docSet) docSet {
	f := ix.fields[q.field]
	if f == nil || f.hasTerms() {
		return nil
	}
	in := q.in
	out := make(docSet, 0, len(cands))
	for k := 0; k < len(cands); {
		// A block whose values all fall outside the range is skipped
		// whole; one whose values all fall inside needs no value check.
		blk := int(cands[k] >> blockBits)
		end := k + 1
		for end < len(cands) && int(cands[end]>>blockBits) == blk {
			end++
		}
		switch f.blockClass(blk, q) {
		case blockNone:
		case blockAll:
			for _, d := range cands[k:end] {
				if f.nhas.has(d) {
					out = append(out, d)
				}
			}
		default:
			for _, d := range cands[k:end] {
				if !f.nhas.has(d) {
					continue
				}
				if f.nmHas.has(d) {
					if slices.ContainsFunc(f.nmulti[d], in) {
						out = append(out, d)
					}
				} else if in(f.ncol[d]) {
					out = append(out, d)
				}
			}
		}
		k = end
	}
	return out
}

// in tells whether v is in the range.
func (q qNum) in(v float64) bool {
	if v < q.lo || v > q.hi {
		return false
	}
	return (q.loIncl || v != q.lo) && (q.hiIncl || v != q.hi)
}

// estimate bounds the matches of a clause cheaply: a term's postings, or
// the documents of the blocks a numeric range may match; anything else
// counts as every document.
func estimate(ix *memIndex, c qnode) int {
	switch q := c.(type) {
	case qTerm:
		if f := ix.fields[q.field]; f != nil && f.hasTerms() && q.field != fieldFieldNames {
			if o, ok := f.ord.get(q.term); ok {
				return len(f.postings(o))
			}
			return 0
		}
	case qNum:
		if f := ix.fields[q.field]; f != nil && !f.hasTerms() {
			n := 0
			for blk := range f.blkMax {
				if f.blockClass(blk, q) != blockNone {
					n += 1 << blockBits
				}
			}
			return n
		}
		return 0
	}
	return int(ix.nDocs) + 1
}

func (q qBool) eval(e *evalCtx, ix *memIndex) (docSet, error) {
	var out docSet
	have := false
	// The clause expected to match least runs first; column clauses after
	// it test only the candidates left (never more work than scanning the
	// column).
	must := q.must
	if len(must) > 1 {
		must = slices.Clone(must)
		est := make([]int, len(must))
		for k, c := range must {
			est[k] = estimate(ix, c)
		}
		idx := make([]int, len(must))
		for k := range idx {
			idx[k] = k
		}
		slices.SortStableFunc(idx, func(a, b int) int { return est[a] - est[b] })
		for k, j := range idx {
			must[k] = q.must[j]
		}
	}
	for _, c := range must {
		if f, ok := c.(docFilter); ok && have {
			out = f.filter(ix, out)
			if len(out) == 0 {
				return nil, nil
			}
			continue
		}
		s, err := c.eval(e, ix)
		if err != nil {
			return nil, err
		}
		if !have {
			out, have = s, true
		} else {
			out = intersect(out, s)
		}
		if len(out) == 0 {
			return nil, nil
		}
	}
	if len(q.should) > 0 && q.minShould > 0 {
		sets := make([]docSet, 0, len(q.should))
		for _, c := range q.should {
			s, err := c.eval(e, ix)
			if err != nil {
				return nil, err
			}
			sets = append(sets, s)
		}
		s := atLeast(sets, q.minShould)
		if !have {
			out, have = s, true
		} else {
			out = intersect(out, s)
		}
	}
	if !have {
		out = ix.all()
	}
	for _, c := range q.not {
		if len(out) == 0 {
			break
		}
		s, err := c.eval(e, ix)
		if err != nil {
			return nil, err
		}
		out = difference(out, s)
	}
	return out, nil
}

func (q qOr) eval(e *evalCtx, ix *memIndex) (docSet, error) {
	sets := make([]docSet, 0, len(q.clauses))
	for _, c := range q.clauses {
		s, err := c.eval(e, ix)
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	if len(sets) == 0 {
		return nil, nil
	}
	return atLeast(sets, max(q.min, 1)), nil
}

func (q qAnd) eval(e *evalCtx, ix *memIndex) (docSet, error) {
	return qBool{must: q.clauses}.eval(e, ix)
}

// matches evaluates q on ix to its live matches. The caller holds ix.mu
// for reading.
func matches(e *evalCtx, ix *memIndex, q qnode) (docSet, error) {
	if err := e.ctx.Err(); err != nil {
		return nil, err
	}
	s, err := q.eval(e, ix)
	if err != nil {
		return nil, err
	}
	if _, ok := q.(qAll); ok {
		return s, nil
	}
	return ix.live(s), nil
}

// numEq is a numeric equality query.
func numEq(field string, f float64) qnode {
	return qNum{field: field, lo: f, hi: f, loIncl: true, hiIncl: true}
}

// numBetween is a numeric range with optional bounds.
func numBetween(field string, lo, hi *float64, loIncl, hiIncl bool) qnode {
	q := qNum{field: field, lo: math.Inf(-1), hi: math.Inf(1), loIncl: true, hiIncl: true}
	if lo != nil {
		q.lo, q.loIncl = *lo, loIncl
	}
	if hi != nil {
		q.hi, q.hiIncl = *hi, hiIncl
	}
	return q
}
