package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Range and term queries on numbers over several blocks (values clustered
// per block, some documents multi-valued or without the field), alone (a
// column scan) and after a term clause (candidates tested), with every kind
// of bound: the answers are what checking each document gives.
func TestNumericRangesAcrossBlocks(t *testing.T) {
	ts := startStore(t, Config{Dir: t.TempDir()})
	status, _ := ts.do(t, "PUT", "/nr", `{"mappings":{"properties":{"v":{"type":"long"},"k":{"type":"keyword"}}}}`)
	require.Equal(t, 200, status)
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 6000
	vals := make([][]int64, n)
	keys := make([]string, n)
	var bulk strings.Builder
	for i := range n {
		keys[i] = fmt.Sprintf("k%d", rng.IntN(3))
		base := int64(i/1024) * 100 // each block has its own value range, as time and offsets do
		switch rng.IntN(10) {
		case 0: // no value
			fmt.Fprintf(&bulk, `{"index":{"_id":"%d"}}`+"\n"+`{"k":%q}`+"\n", i, keys[i])
			continue
		case 1:
			vals[i] = []int64{base + rng.Int64N(100), base + rng.Int64N(300)}
		default:
			vals[i] = []int64{base + rng.Int64N(100)}
		}
		raw, _ := jsonInts(vals[i])
		fmt.Fprintf(&bulk, `{"index":{"_id":"%d"}}`+"\n"+`{"k":%q,"v":%s}`+"\n", i, keys[i], raw)
	}
	status, out := ts.do(t, "POST", "/nr/_bulk", bulk.String())
	require.Equal(t, 200, status)
	require.Equal(t, false, out["errors"])

	for round := range 60 {
		a, b := rng.Int64N(650)-20, rng.Int64N(650)-20
		if a > b {
			a, b = b, a
		}
		if round%7 == 0 {
			b = a // equality through a range, and block edges
		}
		if round%11 == 0 {
			a, b = 100, 199 // exactly one block's range
		}
		loOp := []string{"gt", "gte"}[rng.IntN(2)]
		hiOp := []string{"lt", "lte"}[rng.IntN(2)]
		in := func(v int64) bool {
			return (v > a || (loOp == "gte" && v == a)) && (v < b || (hiOp == "lte" && v == b))
		}
		rangeQ := fmt.Sprintf(`{"range":{"v":{%q:%d,%q:%d}}}`, loOp, a, hiOp, b)
		for _, withKey := range []bool{false, true} {
			q := rangeQ
			if withKey {
				q = fmt.Sprintf(`{"bool":{"filter":[{"term":{"k":"k1"}},%s]}}`, rangeQ)
			}
			var want []string
			for i := range n {
				if (withKey && keys[i] != "k1") || !slices.ContainsFunc(vals[i], in) {
					continue
				}
				want = append(want, fmt.Sprint(i))
			}
			_, body := ts.do(t, "POST", "/nr/_search", fmt.Sprintf(`{"size":10000,"query":%s,"sort":["_doc"]}`, q))
			var got []string
			for _, h := range body["hits"].(map[string]any)["hits"].([]any) {
				got = append(got, h.(map[string]any)["_id"].(string))
			}
			require.Equal(t, want, got, q)
		}
	}
	// Equality on a number after a term clause.
	_, body := ts.do(t, "POST", "/nr/_count", `{"query":{"bool":{"filter":[{"term":{"k":"k2"}},{"term":{"v":150}}]}}}`)
	want := 0
	for i := range n {
		if keys[i] == "k2" && slices.Contains(vals[i], 150) {
			want++
		}
	}
	require.EqualValues(t, want, body["count"])
}

func jsonInts(v []int64) (string, error) {
	if len(v) == 1 {
		return fmt.Sprint(v[0]), nil
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(parts, ",") + "]", nil
}

func TestWildcardMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "a/b", true}, {"a*", "a/b/c", true}, {"*ta", "delta", true}, {"*ta", "data ", false},
		{"?", "é", true}, {"??", "a", false}, {"a?c", "abc", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
		{"[ab]", "[ab]", true}, {"[ab]", "a", false}, {`a\b`, `a\b`, true}, {"**x", "yx", true}, {"", "", true}, {"", "a", false},
	} {
		require.Equal(t, c.want, wildcardMatch([]rune(c.p), []rune(c.s)), "%q ~ %q", c.p, c.s)
	}
}
