package store

import "hash/maphash"

// dict maps strings (terms, _ids) to numbers through a map keyed by the
// string's 64-bit hash. Unlike a map[string]uint32 it holds no pointers,
// so the garbage collector never scans its millions of entries, and a
// lookup hashes a word instead of comparing strings. The string an entry
// stands for is kept by the owner (keyOf) and checked on every hit; a
// string whose hash is taken by a different one goes to a small side map.
// keyOf(v) must keep returning the same string for every number ever put:
// terms are never forgotten and a dead document keeps its _id.
type dict struct {
	hash  func(string) uint64
	h     map[uint64]uint32
	coll  map[string]uint32
	keyOf func(uint32) string
}

func newDict(keyOf func(uint32) string) *dict {
	seed := maphash.MakeSeed()
	return &dict{hash: func(s string) uint64 { return maphash.String(seed, s) }, h: map[uint64]uint32{}, keyOf: keyOf}
}

func (d *dict) get(s string) (uint32, bool) {
	if d.coll != nil {
		if v, ok := d.coll[s]; ok {
			return v, true
		}
	}
	v, ok := d.h[d.hash(s)]
	if !ok || d.keyOf(v) != s {
		return 0, false
	}
	return v, true
}

// put sets s's number; keyOf(v) must already return s.
func (d *dict) put(s string, v uint32) {
	if d.coll != nil {
		if _, ok := d.coll[s]; ok {
			d.coll[s] = v
			return
		}
	}
	hv := d.hash(s)
	if old, ok := d.h[hv]; ok && old != v && d.keyOf(old) != s {
		if d.coll == nil {
			d.coll = map[string]uint32{}
		}
		d.coll[s] = v
		return
	}
	d.h[hv] = v
}

// del removes s; its entry must still resolve (keyOf unchanged).
func (d *dict) del(s string) {
	if d.coll != nil {
		if _, ok := d.coll[s]; ok {
			delete(d.coll, s)
			return
		}
	}
	hv := d.hash(s)
	if v, ok := d.h[hv]; ok && d.keyOf(v) == s {
		delete(d.h, hv)
	}
}

func (d *dict) len() int { return len(d.h) + len(d.coll) }
