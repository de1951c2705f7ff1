package store

import (
	"math"
	"math/bits"
	"slices"
	"sync"
)

// memIndex is the searchable state of one index, kept in memory and rebuilt
// from the segment log at start. Documents are numbered in the order they
// were written (an overwritten document gets a new number and its old one
// dies), so ascending document numbers are index order (_doc).
//
// Per field it keeps what the field's type needs:
//   - keyword: a term dictionary with postings (sorted document numbers)
//     and per-document term ordinals (doc values for sort and aggregations);
//   - text: a term dictionary of the analysed tokens with postings; phrase
//     queries verify candidates against the source;
//   - long, double, date, boolean: a column of float64 values (epoch
//     millis for dates, 0/1 for booleans) with a presence bitmap; range and
//     term queries scan it;
//   - _field_names: postings of every field path a document has ("exists").
//
// Multi-valued fields keep their first value in the column and all values
// in a side map.
type memIndex struct {
	mu     sync.RWMutex
	chunks [][]docMeta // docMeta of document d: chunks[d>>chunkBits][d&chunkMask]
	nDocs  uint32
	dead   bitmap
	nLive  int
	ids    *dict // live _id -> doc
	fields map[string]*fieldIndex
	// shape caches the fields of the previous document: documents of one
	// shipper come with the same fields in the same order, so most field
	// lookups are a string comparison instead of a map access.
	shape []*fieldIndex
	// _field_names: documents of one shape share the set of field paths
	// they hold, so each document keeps the number of its set.
	nameSetOf map[string]uint32
	nameSets  [][]string
	nameSet   []uint32 // per doc
	keyBuf    []byte
}

type docMeta struct {
	id      string
	loc     uint64
	srcLen  uint32
	seqNo   int64
	version int64
}

type bitmap []uint64

func (b *bitmap) set(i uint32) {
	w := int(i >> 6)
	for len(*b) <= w {
		*b = append(*b, 0)
	}
	(*b)[w] |= 1 << (i & 63)
}

func (b bitmap) has(i uint32) bool {
	w := int(i >> 6)
	return w < len(b) && b[w]&(1<<(i&63)) != 0
}

type fieldIndex struct {
	kind    kind
	srcPath string // where a text field's values are in the source (phrase checks)

	// Terms (keyword, text). post[o] is the only document of term o
	// (most terms of a trace, such as message ids, occur once or a few
	// times), or, with postMany set, the index in lists of all of them.
	path  string
	ord   *dict
	terms []string
	post  []uint32
	lists [][]uint32
	// Keyword doc values: ordinal+1 of the first value; 0 when none.
	kcol   []uint32
	kmulti map[uint32][]uint32

	// Numeric doc values.
	ncol   []float64
	nhas   bitmap
	nmulti map[uint32][]float64
	nmHas  bitmap
	blkMax []float64 // per block of 1<<blockBits documents
	blkMin []float64
}

// postMany marks a post entry that indexes lists.
const postMany = 1 << 31

// chunkBits sizes the chunks of document metadata: growing never copies
// more than one chunk.
const (
	chunkBits = 16
	chunkMask = 1<<chunkBits - 1
)

func newMemIndex() *memIndex {
	m := &memIndex{fields: map[string]*fieldIndex{}, nameSetOf: map[string]uint32{}}
	m.ids = newDict(func(d uint32) string { return m.doc(d).id })
	return m
}

// doc returns document d's metadata.
func (m *memIndex) doc(d uint32) *docMeta { return &m.chunks[d>>chunkBits][d&chunkMask] }

func (m *memIndex) field(path string, k kind) *fieldIndex {
	f := m.fields[path]
	if f == nil {
		f = &fieldIndex{kind: k, path: path}
		if f.hasTerms() {
			f.ord = newDict(func(o uint32) string { return f.terms[o] })
		}
		m.fields[path] = f
	}
	return f
}

// hasTerms tells a term field (keyword, text) from a numeric column.
func (f *fieldIndex) hasTerms() bool {
	return f.kind == kindKeyword || f.kind == kindText
}

// addTerm adds a posting for term (once per document).
func (f *fieldIndex) addTerm(doc uint32, term string) uint32 {
	o, ok := f.ord.get(term)
	if !ok {
		o = uint32(len(f.terms))
		f.terms = append(f.terms, term)
		f.post = append(f.post, doc)
		f.ord.put(term, o)
		return o
	}
	p := f.post[o]
	switch {
	case p&postMany != 0:
		l := f.lists[p&^postMany]
		if l[len(l)-1] != doc {
			f.lists[p&^postMany] = append(l, doc)
		}
	case p != doc:
		f.post[o] = postMany | uint32(len(f.lists))
		f.lists = append(f.lists, []uint32{p, doc})
	}
	return o
}

// postings returns a term's documents; callers do not modify it.
func (f *fieldIndex) postings(o uint32) docSet {
	if p := f.post[o]; p&postMany != 0 {
		return f.lists[p&^postMany]
	}
	return f.post[o : o+1 : o+1]
}

func (f *fieldIndex) addKeyword(doc uint32, term string) {
	o := f.addTerm(doc, term)
	for uint32(len(f.kcol)) <= doc {
		f.kcol = append(f.kcol, 0)
	}
	if f.kcol[doc] == 0 {
		f.kcol[doc] = o + 1
		return
	}
	if f.kmulti == nil {
		f.kmulti = map[uint32][]uint32{}
	}
	if _, ok := f.kmulti[doc]; !ok {
		f.kmulti[doc] = []uint32{f.kcol[doc] - 1}
	}
	f.kmulti[doc] = append(f.kmulti[doc], o)
}

// blockBits sizes the blocks whose smallest and largest values a numeric
// field keeps: a "newest N" search skips every block that cannot beat the
// N it holds, which for time-ordered data is nearly all of them.
const blockBits = 10

func (f *fieldIndex) addNumber(doc uint32, v float64) {
	for uint32(len(f.ncol)) <= doc {
		f.ncol = append(f.ncol, 0)
	}
	blk := int(doc >> blockBits)
	for len(f.blkMax) <= blk {
		f.blkMax = append(f.blkMax, math.Inf(-1))
		f.blkMin = append(f.blkMin, math.Inf(1))
	}
	f.blkMax[blk] = max(f.blkMax[blk], v)
	f.blkMin[blk] = min(f.blkMin[blk], v)
	if !f.nhas.has(doc) {
		f.nhas.set(doc)
		f.ncol[doc] = v
		return
	}
	if f.nmulti == nil {
		f.nmulti = map[uint32][]float64{}
	}
	if !f.nmHas.has(doc) {
		f.nmHas.set(doc)
		f.nmulti[doc] = []float64{f.ncol[doc]}
	}
	f.nmulti[doc] = append(f.nmulti[doc], v)
}

// nums returns doc's values of a numeric field (nil when none). The slice
// may alias the column; callers do not modify it.
func (f *fieldIndex) nums(doc uint32, scratch []float64) []float64 {
	if !f.nhas.has(doc) {
		return nil
	}
	if f.nmHas.has(doc) {
		return f.nmulti[doc]
	}
	return append(scratch[:0], f.ncol[doc])
}

// keywords returns doc's keyword values.
func (f *fieldIndex) keywords(doc uint32, scratch []string) []string {
	if doc >= uint32(len(f.kcol)) || f.kcol[doc] == 0 {
		return nil
	}
	if ords, ok := f.kmulti[doc]; ok {
		out := scratch[:0]
		for _, o := range ords {
			out = append(out, f.terms[o])
		}
		return out
	}
	return append(scratch[:0], f.terms[f.kcol[doc]-1])
}

// parsedDoc is a document's indexable values, produced by docBuilder.
type parsedDoc struct {
	fields []docField
	names  []string // _field_names
}

type docField struct {
	path    string
	kind    kind
	str     string   // keyword
	num     float64  // numbers, dates, booleans
	toks    []string // text tokens
	srcPath string   // text: the source path holding the value
}

// add indexes a new document and returns its number. A live document with
// the same _id dies.
//
// replaces says whether the caller knows a live document has this _id:
// yes, no, or unknown (-1: look it up).
func (m *memIndex) add(meta docMeta, d *parsedDoc, replaces int) uint32 {
	doc := m.nDocs
	if doc >= postMany {
		panic("store: more than 2^31 documents in one index") // the caller refuses writes long before (segment sizes)
	}
	if replaces != 0 {
		if old, ok := m.ids.get(meta.id); ok {
			m.dead.set(old)
			m.nLive--
		}
	}
	if doc&chunkMask == 0 {
		m.chunks = append(m.chunks, make([]docMeta, 0, 1<<chunkBits))
	}
	c := &m.chunks[len(m.chunks)-1]
	*c = append(*c, meta)
	m.nDocs++
	m.ids.put(meta.id, doc)
	m.nLive++
	if len(m.shape) != len(d.fields) {
		m.shape = make([]*fieldIndex, len(d.fields))
	}
	for i := range d.fields {
		df := &d.fields[i]
		f := m.shape[i]
		if f == nil || f.path != df.path {
			f = m.field(df.path, df.kind)
			m.shape[i] = f
		}
		switch df.kind {
		case kindKeyword:
			f.addKeyword(doc, df.str)
		case kindText:
			if f.srcPath == "" {
				f.srcPath = df.srcPath
			}
			for _, t := range df.toks {
				f.addTerm(doc, t)
			}
		default:
			f.addNumber(doc, df.num)
		}
	}
	key := m.keyBuf[:0]
	for _, n := range d.names {
		key = append(append(key, n...), 0)
	}
	m.keyBuf = key
	set, ok := m.nameSetOf[string(key)]
	if !ok {
		set = uint32(len(m.nameSets))
		m.nameSetOf[string(key)] = set
		m.nameSets = append(m.nameSets, d.names)
	}
	m.nameSet = append(m.nameSet, set)
	return doc
}

// remove kills the live document with this _id; false when there is none.
func (m *memIndex) remove(id string) bool {
	doc, ok := m.ids.get(id)
	if !ok {
		return false
	}
	m.ids.del(id)
	m.dead.set(doc)
	m.nLive--
	return true
}

// ---- document sets ----

// docSet is a sorted list of document numbers.
type docSet []uint32

func intersect(a, b docSet) docSet {
	if len(a) > len(b) {
		a, b = b, a
	}
	out := make(docSet, 0, len(a))
	if len(a)*16 < len(b) {
		// Few against many: binary search the longer list.
		for _, d := range a {
			k, ok := slices.BinarySearch(b, d)
			if ok {
				out = append(out, d)
			}
			b = b[k:]
		}
		return out
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

func difference(a, b docSet) docSet {
	out := make(docSet, 0, len(a))
	j := 0
	for _, d := range a {
		for j < len(b) && b[j] < d {
			j++
		}
		if j < len(b) && b[j] == d {
			continue
		}
		out = append(out, d)
	}
	return out
}

// atLeast returns the documents in at least min of sets (a union for 1).
func atLeast(sets []docSet, min int) docSet {
	if min < 1 {
		min = 1
	}
	if len(sets) == 1 && min == 1 {
		return sets[0]
	}
	if len(sets) == 2 && min == 1 {
		a, b := sets[0], sets[1]
		out := make(docSet, 0, len(a)+len(b))
		i, j := 0, 0
		for i < len(a) && j < len(b) {
			switch {
			case a[i] < b[j]:
				out = append(out, a[i])
				i++
			case a[i] > b[j]:
				out = append(out, b[j])
				j++
			default:
				out = append(out, a[i])
				i++
				j++
			}
		}
		out = append(out, a[i:]...)
		return append(out, b[j:]...)
	}
	n := 0
	for _, s := range sets {
		n += len(s)
	}
	all := make([]uint32, 0, n)
	for _, s := range sets {
		all = append(all, s...)
	}
	slices.Sort(all)
	out := make(docSet, 0, len(all))
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j] == all[i] {
			j++
		}
		if j-i >= min {
			out = append(out, all[i])
		}
		i = j
	}
	return out
}

// live returns the live documents of s.
func (m *memIndex) live(s docSet) docSet {
	if len(m.dead) == 0 {
		return s
	}
	out := s[:0:0]
	for _, d := range s {
		if !m.dead.has(d) {
			out = append(out, d)
		}
	}
	return out
}

func (m *memIndex) all() docSet {
	out := make(docSet, 0, m.nLive)
	for d := range m.nDocs {
		if !m.dead.has(d) {
			out = append(out, d)
		}
	}
	return out
}

// Block classes for a range: no value of the block is in it, some may be,
// or all are.
const (
	blockNone = iota
	blockSome
	blockAll
)

func (f *fieldIndex) blockClass(blk int, q qNum) int {
	if blk >= len(f.blkMax) {
		return blockNone
	}
	lo, hi := f.blkMin[blk], f.blkMax[blk]
	if lo > hi {
		return blockNone // no values
	}
	if hi < q.lo || lo > q.hi || (hi == q.lo && !q.loIncl) || (lo == q.hi && !q.hiIncl) {
		return blockNone
	}
	if q.in(lo) && q.in(hi) {
		return blockAll
	}
	return blockSome
}

// numRange scans a numeric column, block by block.
func (f *fieldIndex) numRange(q qNum) docSet {
	var out docSet
	const words = 1 << blockBits / 64
	for blk := range f.blkMax {
		class := f.blockClass(blk, q)
		if class == blockNone {
			continue
		}
		for w := blk * words; w < min((blk+1)*words, len(f.nhas)); w++ {
			word := f.nhas[w]
			for word != 0 {
				b := bits.TrailingZeros64(word)
				word &= word - 1
				d := uint32(w<<6 | b)
				switch {
				case class == blockAll:
					out = append(out, d)
				case f.nmHas.has(d):
					if slices.ContainsFunc(f.nmulti[d], q.in) {
						out = append(out, d)
					}
				case q.in(f.ncol[d]):
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// bounds returns the smallest and largest value of a numeric field.
func (f *fieldIndex) bounds() (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for w, word := range f.nhas {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			word &= word - 1
			d := uint32(w<<6 | b)
			vals := []float64{f.ncol[d]}
			if f.nmHas.has(d) {
				vals = f.nmulti[d]
			}
			for _, v := range vals {
				lo, hi, ok = min(lo, v), max(hi, v), true
			}
		}
	}
	return lo, hi, ok
}

// termsMatching returns the union of the postings of the terms match
// accepts.
func (f *fieldIndex) termsMatching(match func(string) bool) docSet {
	var sets []docSet
	for o, t := range f.terms {
		if match(t) {
			sets = append(sets, f.postings(uint32(o)))
		}
	}
	if len(sets) == 0 {
		return nil
	}
	return atLeast(sets, 1)
}

// withField returns the documents whose field paths include path.
func (m *memIndex) withField(path string) docSet {
	var sets bitmap
	any := false
	for k, names := range m.nameSets {
		if slices.Contains(names, path) {
			sets.set(uint32(k))
			any = true
		}
	}
	if !any {
		return nil
	}
	var out docSet
	for d, set := range m.nameSet {
		if sets.has(set) {
			out = append(out, uint32(d))
		}
	}
	return out
}
