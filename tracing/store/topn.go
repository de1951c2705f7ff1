package store

import (
	"context"
	"errors"
	"math"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/numeric"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	index "github.com/blevesearch/bleve_index_api"
)

// "The newest N" (a topic page: sort by time descending, size 50) is the
// commonest search Grafana and the journey queries send, and bleve answers
// it by reading the sort fields' doc values of every match before keeping
// N, so its cost grows with the matches of the whole time range. When the
// first sort key is a searchable number or date in descending order, the
// search first runs on the newest slice of that field's values (the query
// AND field >= L); if that slice holds at least from+size matches, they
// are the top ones: every match left out has all its values below L, so it
// ranks below every match kept (and documents without the field rank last).
// Otherwise the slice widens, and at worst the whole query runs. It is
// done only for queries with more than narrowAbove matches, counted first
// without sorting (the count is the total such searches answer).

// narrowAttempts bounds the widening: the slice grows 16x per attempt, so a
// miss costs at most a fraction of the final search.
const narrowAttempts = 4

// narrowAbove is the number of matches from which narrowing pays: up to it
// the whole search reads few doc values, and a selective query (a key, an
// offset) would only waste the slices, finding too few matches in each. A
// variable so tests can narrow small data sets.
var narrowAbove int64 = maxResultWindow

// topN runs req (whose query is q). When it narrowed the search, total is
// the query's match count (up to the limit track_total_hits sets, plus
// one), which the narrowed result's Total is not; otherwise total is nil.
func (t *target) topN(ctx context.Context, req *bleve.SearchRequest, q query.Query, plan *sortPlan, r *searchRequest) (*bleve.SearchResult, *uint64, error) {
	need := r.from + r.size
	if f, ok := t.narrowable(plan, r); ok && need > 0 && need <= maxResultWindow {
		// Count first, without sorting: few matches are sorted whole, and
		// many need the count for hits.total anyway.
		limit := max(r.trackTotal, narrowAbove)
		if r.totalAsInt || r.trackTotal < 0 {
			limit = -1
		}
		n, err := t.countCapped(ctx, q, limit)
		if err != nil {
			return nil, nil, err
		}
		if n > uint64(narrowAbove) {
			res, err := t.narrowed(ctx, req, q, f, need)
			if err != nil || res != nil {
				return res, &n, err
			}
		}
	}
	req.Query = q
	res, err := t.searcher().SearchInContext(ctx, req)
	return res, nil, err
}

// narrowed searches the newest slices of field f until one holds need
// matches; nil when none did (the caller runs the whole search).
func (t *target) narrowed(ctx context.Context, req *bleve.SearchRequest, q query.Query, f string, need int) (*bleve.SearchResult, error) {
	lo, hi, docs, err := t.fieldBounds(f)
	if err != nil {
		return nil, err
	}
	minF, maxF := numeric.Int64ToFloat64(lo), numeric.Int64ToFloat64(hi)
	if docs == 0 || maxF <= minF {
		return nil, nil
	}
	// Start where the field's values would hold need matches if they were
	// spread evenly and 1 document in 8 matched.
	w := (maxF - minF) * float64(need) / float64(docs) * 8
	for range narrowAttempts {
		from := maxF - w
		if from <= minF || math.IsInf(w, 0) {
			return nil, nil
		}
		incl := true
		rq := query.NewNumericRangeInclusiveQuery(&from, nil, &incl, nil)
		rq.SetField(f)
		req.Query = query.NewConjunctionQuery([]query.Query{q, rq})
		res, err := t.searcher().SearchInContext(ctx, req)
		if err != nil {
			return nil, err
		}
		if res.Total >= uint64(need) {
			return res, nil
		}
		w *= 16
	}
	return nil, nil
}

// narrowable returns the field of the first sort key when the search can
// be narrowed: a searchable number or date, descending, missing values
// last, and no score, search_after or collapse of pages to honour.
func (t *target) narrowable(plan *sortPlan, r *searchRequest) (string, bool) {
	if len(plan.specs) == 0 || plan.byScore || r.trackScores || len(r.searchAfter) > 0 {
		return "", false
	}
	s := plan.specs[0]
	if !s.desc || s.missingFirst {
		return "", false
	}
	mapped := false
	for _, idx := range t.indexes {
		l := idx.mapping.Load().lookupLeaf(s.field)
		if l == nil {
			continue // no values there: those documents rank last
		}
		if !l.indexed || (l.kind != kindLong && l.kind != kindDouble && l.kind != kindDate) {
			return "", false
		}
		mapped = true
	}
	return s.field, mapped // _doc, _id and unmapped fields are not narrowed
}

// fieldBounds returns the smallest and largest value of a numeric field in
// the target's indexes (bleve's sortable int64 form) and the number of
// documents. It walks the prefix-coded terms from the coarsest precision
// (shift 60: at most 16 terms) to the exact one, one 4-bit digit per step,
// so it reads a few hundred terms however many documents there are.
// Deleted documents' terms may still count, which only makes the first
// slice a little wider than it needs to be.
func (t *target) fieldBounds(field string) (lo, hi int64, docs uint64, err error) {
	lo, hi = math.MaxInt64, math.MinInt64
	for _, idx := range t.indexes {
		docs += idx.docCount()
		ii, err := idx.bi.Advanced()
		if err != nil {
			return 0, 0, 0, err
		}
		reader, err := ii.Reader()
		if err != nil {
			return 0, 0, 0, err
		}
		mn, okMin, err := extremeTerm(reader, field, false)
		if err == nil && okMin {
			mx, _, err2 := extremeTerm(reader, field, true)
			err = err2
			lo, hi = min(lo, mn), max(hi, mx)
		}
		_ = reader.Close()
		if err != nil {
			return 0, 0, 0, err
		}
	}
	if lo > hi {
		return 0, 0, 0, nil
	}
	return lo, hi, docs, nil
}

// extremeTerm finds the largest (or smallest) value of a bleve numeric
// field by descending its precision levels.
func extremeTerm(reader index.IndexReader, field string, largest bool) (int64, bool, error) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	for shift := 60; shift >= 0; shift -= 4 {
		d, err := reader.FieldDictRange(field, numeric.MustNewPrefixCodedInt64(lo, uint(shift)), numeric.MustNewPrefixCodedInt64(hi, uint(shift)))
		if err != nil {
			return 0, false, err
		}
		found := false
		var best int64
		for {
			e, err := d.Next()
			if err != nil {
				_ = d.Close()
				return 0, false, err
			}
			if e == nil {
				break
			}
			pc := numeric.PrefixCoded(e.Term)
			if s, err := pc.Shift(); err != nil || s != uint(shift) {
				continue
			}
			v, err := pc.Int64()
			if err != nil {
				continue
			}
			if !found || (largest && v > best) || (!largest && v < best) {
				best, found = v, true
			}
		}
		_ = d.Close()
		if !found {
			return 0, false, nil
		}
		// The values under this prefix: best with its low shift bits free.
		lo, hi = best, best+(int64(1)<<shift-1)
	}
	return lo, true, nil
}

var errEnough = errors.New("counted enough")

// countCapped counts q's matches, stopping after limit (no limit when
// limit < 0), without sorting or reading doc values.
func (t *target) countCapped(ctx context.Context, q query.Query, limit int64) (uint64, error) {
	var n uint64
	for _, idx := range t.indexes {
		ii, err := idx.bi.Advanced()
		if err != nil {
			return 0, err
		}
		reader, err := ii.Reader()
		if err != nil {
			return 0, err
		}
		err = func() error {
			defer reader.Close()
			s, err := q.Searcher(ctx, reader, idx.bi.Mapping(), search.SearcherOptions{Score: "none"})
			if err != nil {
				return err
			}
			defer s.Close()
			sctx := &search.SearchContext{DocumentMatchPool: search.NewDocumentMatchPool(s.DocumentMatchPoolSize(), 0), IndexReader: reader}
			for k := 0; ; k++ {
				if k%1024 == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				dm, err := s.Next(sctx)
				if err != nil {
					return err
				}
				if dm == nil {
					return nil
				}
				n++
				sctx.DocumentMatchPool.Put(dm)
				if limit >= 0 && n > uint64(limit) {
					return errEnough
				}
			}
		}()
		if errors.Is(err, errEnough) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}
