package store

import (
	"fmt"
	"strings"
	"time"
)

// validateIndexName applies Elasticsearch 7's rules for index names
// (MetadataCreateIndexService.validateIndexOrAliasName) with its messages.
// Every accepted name is also a safe single path element, which is what lets
// us use it as the directory name under Dir/indices.
func validateIndexName(name string) *esError {
	if name == "" {
		return errInvalidIndexName(name, "must not be empty")
	}
	if strings.ContainsAny(name, "\\/*?\"<>| ,") {
		return errInvalidIndexName(name, `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`)
	}
	if strings.Contains(name, "#") {
		return errInvalidIndexName(name, "must not contain '#'")
	}
	if strings.Contains(name, ":") {
		return errInvalidIndexName(name, "must not contain ':'")
	}
	if c := name[0]; c == '_' || c == '-' || c == '+' {
		return errInvalidIndexName(name, "must not start with '_', '-', or '+'")
	}
	if strings.ToLower(name) != name {
		return errInvalidIndexName(name, "must be lowercase")
	}
	if name == "." || name == ".." {
		return errInvalidIndexName(name, "must not be '.' or '..'")
	}
	if len(name) > 255 {
		return errInvalidIndexName(name, fmt.Sprintf("index name is too long, (%d > 255)", len(name)))
	}
	// Not an Elasticsearch rule, but a file system one: control characters
	// (NUL above all) cannot be part of a directory name.
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return errInvalidIndexName(name, "must not contain control characters")
		}
	}
	return nil
}

// simpleMatch is Elasticsearch's Regex.simpleMatch: '*' matches any run of
// characters (including none); there are no other metacharacters.
//
// It runs in linear time: with '*' as the only metacharacter, matching each
// literal segment at its leftmost possible position is never wrong (a later
// position leaves less room for the rest), so there is nothing to backtrack.
// Trying every split recursively, as a direct translation does, takes
// exponential time on patterns like *a*a*a*a*a*b.
func simpleMatch(pattern, s string) bool {
	segs := strings.Split(pattern, "*")
	if len(segs) == 1 {
		return pattern == s
	}
	first, last := segs[0], segs[len(segs)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	rest := s[len(first) : len(s)-len(last)]
	for _, seg := range segs[1 : len(segs)-1] {
		i := strings.Index(rest, seg)
		if i < 0 {
			return false
		}
		rest = rest[i+len(seg):]
	}
	return true
}

// resolveOpts are the index-expression options of Elasticsearch's
// IndicesOptions that matter for a single-node store.
type resolveOpts struct {
	ignoreUnavailable bool // missing concrete names are skipped instead of a 404
	allowNoIndices    bool // an expression that resolves to nothing is not an error
}

// resolveExpression expands an Elasticsearch multi-target expression
// ("a,b", "kobs-trace-*", "_all", "*,-excluded-*") against the existing index
// names. Wildcards that match nothing are silently empty, as in Elasticsearch;
// a concrete name that does not exist is index_not_found_exception unless
// ignore_unavailable is set.
func resolveExpression(expr string, existing []string, o resolveOpts) ([]string, *esError) {
	if expr == "" || expr == "_all" || expr == "*" {
		return append([]string(nil), existing...), nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	wildcardSeen := false
	for _, part := range strings.Split(expr, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		// "-pattern" excludes, but only after a wildcard expression, exactly
		// as in Elasticsearch 7 (otherwise it is a literal name).
		if strings.HasPrefix(part, "-") && wildcardSeen {
			pat := part[1:]
			kept := out[:0]
			for _, n := range out {
				if !simpleMatch(pat, n) {
					kept = append(kept, n)
				} else {
					delete(seen, n)
				}
			}
			out = kept
			continue
		}
		if part == "_all" || strings.Contains(part, "*") {
			wildcardSeen = true
			for _, n := range existing {
				if part == "_all" || simpleMatch(part, n) {
					add(n)
				}
			}
			continue
		}
		found := false
		for _, n := range existing {
			if n == part {
				found = true
				break
			}
		}
		if !found {
			if o.ignoreUnavailable {
				continue
			}
			return nil, errIndexNotFound(part)
		}
		add(part)
	}
	if len(out) == 0 && !o.allowNoIndices {
		return nil, errIndexNotFound(expr)
	}
	return out, nil
}

// indexDate extracts the day from a name that ends in ".YYYY.MM.DD" or
// "-YYYY.MM.DD" (the caller's index-per-day convention).
func indexDate(name string) (time.Time, bool) {
	if len(name) < len("2006.01.02") {
		return time.Time{}, false
	}
	d, err := time.Parse("2006.01.02", name[len(name)-len("2006.01.02"):])
	if err != nil {
		return time.Time{}, false
	}
	return d, true
}
