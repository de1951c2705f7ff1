package store

import (
	"container/heap"
	"context"
	"slices"
)

// topN returns the first need matches of q in plan's order (after the
// search_after keys when given) and the number of matches. It keeps a
// bounded heap of the best need candidates, so a topic page ("newest 50 by
// time") reads one column value per match and sorts only 50; the sort keys
// of a match that cannot enter the heap are never copied.
func (t *target) topN(ctx context.Context, q qnode, plan *sortPlan, after []sortKey, need int) ([]hitCand, uint64, error) {
	var total uint64
	h := &candHeap{plan: plan}
	err := t.each(ctx, q, func(k int, idx *esIndex, set docSet) error {
		// total counts every match, search_after or not, as in
		// Elasticsearch.
		total += uint64(len(set))
		if need <= 0 {
			return nil
		}
		ix := idx.mem
		cols := make([]*fieldIndex, len(plan.fields))
		for i, f := range plan.fields {
			cols[i] = ix.fields[f]
		}
		keys := make([]sortKey, len(plan.fields))
		scratch := make([]float64, 1)
		var strs []string
		// Block pruning: when the first key is a number sorted with
		// missing values last, a block whose best value is worse than the
		// worst match kept holds nothing that can enter. Walk from the end
		// the sort favours so the heap fills with good matches early.
		first := cols[0]
		prune := first != nil && !first.hasTerms() && !plan.first[0] && plan.fields[0] != "_doc" && plan.fields[0] != "_seq_no"
		backward := plan.desc[0]
		blk, skip := -1, false
		for n := range set {
			if n%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			pos := n
			if backward {
				pos = len(set) - 1 - n
			}
			doc := set[pos]
			if prune {
				if b := int(doc >> blockBits); b != blk {
					blk, skip = b, false
					if h.Len() == need && !h.c[0].keys[0].missing && blk < len(first.blkMax) {
						worst := h.c[0].keys[0].num
						skip = (backward && first.blkMax[blk] < worst) || (!backward && first.blkMin[blk] > worst)
					}
				}
				if skip {
					continue
				}
			}
			plan.keysOf(ix, cols, doc, keys, scratch, strs)
			if after != nil && plan.compare(keys, after) <= 0 {
				continue
			}
			if h.Len() == need {
				// Ties keep the earlier document: it is in index order.
				if h.less(keys, k, doc, &h.c[0]) >= 0 {
					continue
				}
				c := &h.c[0]
				c.k, c.doc, c.meta = k, doc, *ix.doc(doc)
				copy(c.keys, keys)
				heap.Fix(h, 0)
				continue
			}
			heap.Push(h, hitCand{k: k, doc: doc, meta: *ix.doc(doc), keys: slices.Clone(keys)})
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := h.c
	slices.SortFunc(out, func(a, b hitCand) int { return h.less(a.keys, a.k, a.doc, &b) })
	return out, total, nil
}

// candHeap is a max-heap by sort order: its root is the worst kept match.
type candHeap struct {
	plan *sortPlan
	c    []hitCand
}

// less orders (keys, k, doc) against c: negative when it sorts first.
func (h *candHeap) less(keys []sortKey, k int, doc uint32, c *hitCand) int {
	if r := h.plan.compare(keys, c.keys); r != 0 {
		return r
	}
	if k != c.k {
		return k - c.k
	}
	switch {
	case doc < c.doc:
		return -1
	case doc > c.doc:
		return 1
	}
	return 0
}

func (h *candHeap) Len() int { return len(h.c) }
func (h *candHeap) Less(i, j int) bool {
	return h.less(h.c[i].keys, h.c[i].k, h.c[i].doc, &h.c[j]) > 0
}
func (h *candHeap) Swap(i, j int) { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *candHeap) Push(x any)    { h.c = append(h.c, x.(hitCand)) }
func (h *candHeap) Pop() any {
	x := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	return x
}
