package jolokia

import (
	"maps"
	"slices"
	"strconv"
)

// objectLimitExceeded is what Jolokia's ObjectToJsonConverter writes for every
// value after maxObjects objects.
const objectLimitExceeded = "[Object limit exceeded]"

// effectiveLimit is how Jolokia combines an agent-wide limit with a
// request's processing parameter: the request may lower it, never raise it
// (0 means no limit on either side).
func effectiveLimit(global int, req Request, key string) (int, error) {
	s, ok := req.Params[key]
	if !ok || s == "" {
		return global, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, illegalArgument("Invalid value %q for processing parameter %s: not a non-negative integer", s, key)
	}
	switch {
	case global == 0:
		return v, nil
	case v == 0:
		return global, nil
	}
	return min(v, global), nil
}

// limiter applies maxDepth, maxCollectionSize and maxObjects to a value as
// Jolokia's serializer does while it writes it.
type limiter struct {
	maxDepth, maxCollection, maxObjects int
	objects                             int
}

// limit applies the serialization limits of req to v.
func (a *Agent) limit(req Request, v any) (any, error) {
	var l limiter
	var err error
	if l.maxDepth, err = effectiveLimit(a.limits.MaxDepth, req, "maxDepth"); err != nil {
		return nil, err
	}
	if l.maxCollection, err = effectiveLimit(a.limits.MaxCollectionSize, req, "maxCollectionSize"); err != nil {
		return nil, err
	}
	if l.maxObjects, err = effectiveLimit(a.limits.MaxObjects, req, "maxObjects"); err != nil {
		return nil, err
	}
	if l.maxDepth == 0 && l.maxCollection == 0 && l.maxObjects == 0 {
		return v, nil
	}
	return l.walk(v, 0), nil
}

// walk is checkForLimits plus the collection accessors: stack is the number
// of maps and lists being written around v.
func (l *limiter) walk(v any, stack int) any {
	if l.maxObjects > 0 && l.objects > l.maxObjects {
		return objectLimitExceeded
	}
	switch x := v.(type) {
	case map[string]any:
		if l.maxDepth > 0 && stack >= l.maxDepth {
			return toJSONString(x) // Jolokia falls back to the object's toString()
		}
		l.objects++
		keys := slices.Sorted(maps.Keys(x))
		if l.maxCollection > 0 && len(keys) > l.maxCollection {
			keys = keys[:l.maxCollection]
		}
		out := make(map[string]any, len(keys))
		for _, k := range keys {
			out[k] = l.walk(x[k], stack+1)
		}
		return out
	case []string:
		if l.maxDepth > 0 && stack >= l.maxDepth {
			return toJSONString(x)
		}
		l.objects++
		if l.maxCollection > 0 && len(x) > l.maxCollection {
			x = x[:l.maxCollection]
		}
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = l.walk(s, stack+1)
		}
		return out
	}
	return v
}

func toJSONString(v any) string {
	b, err := marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
