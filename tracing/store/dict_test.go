package store

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// With a hash that collides all the time, the dict still answers like a
// map[string]uint32 under a random mix of puts (new and moved strings),
// deletes and lookups.
func TestDictCollisions(t *testing.T) {
	owner := map[uint32]string{} // what the dict's numbers stand for, forever
	d := newDict(func(v uint32) string { return owner[v] })
	d.hash = func(s string) uint64 { return uint64(len(s) % 3) }
	ref := map[string]uint32{}
	rng := rand.New(rand.NewPCG(3, 4))
	next := uint32(0)
	for range 20000 {
		s := fmt.Sprintf("k%d", rng.IntN(300))
		switch rng.IntN(3) {
		case 0: // (re)point s at a new number, as a re-written _id does
			next++ // the old number keeps standing for s, as a dead document keeps its _id
			owner[next] = s
			ref[s] = next
			d.put(s, next)
		case 1:
			if _, ok := ref[s]; ok {
				d.del(s)
				delete(ref, s)
			}
		}
		v, ok := d.get(s)
		want, wok := ref[s]
		require.Equal(t, wok, ok, s)
		require.Equal(t, want, v, s)
	}
	for s, want := range ref {
		v, ok := d.get(s)
		require.True(t, ok, s)
		require.Equal(t, want, v, s)
	}
	require.Equal(t, len(ref), d.len())
}
