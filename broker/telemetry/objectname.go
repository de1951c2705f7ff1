package telemetry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Property is one key=value pair of an ObjectName's key property list. Value
// is stored exactly as it appears in the name, so a quoted value keeps its
// quotes and backslash escapes (that is what JMX does too: ObjectName.quote
// produces a value that is compared in its quoted form).
type Property struct {
	Key   string
	Value string
}

// ObjectName is a JMX ObjectName: a domain plus an ordered key property list.
//
// The insertion order is kept for display (String), because Kafka registers
// its MBeans as type=...,name=...,tags... and tools such as jmx_exporter match
// on that order; lookups use the canonical form (keys sorted), as JMX does.
// An ObjectName is immutable; the zero value is not a valid name.
//
// An ObjectName may be a pattern: wildcards * and ? in the domain or in
// property values, or a property list ending in ",*" (or being just "*").
type ObjectName struct {
	domain      string
	props       []Property // insertion order, never mutated after construction
	propPattern bool       // key property list ends with ,* (or is *)
	valPattern  bool       // some property value holds an unescaped * or ?
	domPattern  bool       // domain holds * or ?
	canonical   string
	display     string
}

// ErrMalformedObjectName is wrapped by every ParseObjectName error so callers
// (the Jolokia endpoint) can map it to javax.management.MalformedObjectNameException.
var ErrMalformedObjectName = errors.New("malformed object name")

// Name builds the ObjectName Kafka's KafkaMetricsGroup would register:
// domain:type=<typ>,name=<name>,k1=v1,... in exactly that order. tags are
// key/value pairs; pairs with an empty value are dropped and values that are
// not plain ([A-Za-z0-9_-%. \t]*) are quoted, like Kafka's Sanitizer.jmxSanitize.
// It panics on an odd number of tags or an invalid key, which are programming
// errors in the instrumentation, never data errors.
func Name(domain, typ, name string, tags ...string) ObjectName {
	if len(tags)%2 != 0 {
		panic(fmt.Sprintf("telemetry.Name(%q, %q, %q): odd number of tag arguments", domain, typ, name))
	}
	props := make([]Property, 0, 2+len(tags)/2)
	add := func(k, v string) {
		if v == "" {
			return
		}
		props = append(props, Property{Key: k, Value: jmxSanitize(v)})
	}
	add("type", typ)
	add("name", name)
	for i := 0; i < len(tags); i += 2 {
		add(tags[i], tags[i+1])
	}
	n, err := NewObjectName(domain, props...)
	if err != nil {
		panic(fmt.Sprintf("telemetry.Name: %v", err))
	}
	return n
}

// NewObjectName builds a non-pattern-list ObjectName from a domain and
// properties in the given order. Values must already be in ObjectName syntax
// (use Quote for arbitrary strings).
func NewObjectName(domain string, props ...Property) (ObjectName, error) {
	if strings.ContainsAny(domain, ":\n") {
		return ObjectName{}, fmt.Errorf("%w: invalid character in domain %q", ErrMalformedObjectName, domain)
	}
	if len(props) == 0 {
		return ObjectName{}, fmt.Errorf("%w: key properties cannot be empty", ErrMalformedObjectName)
	}
	n := ObjectName{domain: domain, props: slices.Clone(props)}
	n.domPattern = strings.ContainsAny(domain, "*?")
	seen := make(map[string]struct{}, len(props))
	for _, p := range n.props {
		if err := checkKey(p.Key); err != nil {
			return ObjectName{}, err
		}
		if _, dup := seen[p.Key]; dup {
			return ObjectName{}, fmt.Errorf("%w: key %q appears twice", ErrMalformedObjectName, p.Key)
		}
		seen[p.Key] = struct{}{}
		pat, err := checkValue(p.Value)
		if err != nil {
			return ObjectName{}, err
		}
		n.valPattern = n.valPattern || pat
	}
	n.finish()
	return n, nil
}

// MustParseObjectName is ParseObjectName that panics; for constants in tests
// and instrumentation.
func MustParseObjectName(s string) ObjectName {
	n, err := ParseObjectName(s)
	if err != nil {
		panic(err)
	}
	return n
}

// ParseObjectName parses the JMX string form domain:key=value[,key=value][,*].
// Whitespace is significant, as in JMX.
func ParseObjectName(s string) (ObjectName, error) {
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return ObjectName{}, fmt.Errorf("%w: %q has no domain part", ErrMalformedObjectName, s)
	}
	n := ObjectName{domain: s[:colon]}
	if strings.ContainsRune(n.domain, '\n') {
		return ObjectName{}, fmt.Errorf("%w: invalid character in domain", ErrMalformedObjectName)
	}
	n.domPattern = strings.ContainsAny(n.domain, "*?")
	rest := s[colon+1:]
	if rest == "" {
		return ObjectName{}, fmt.Errorf("%w: key properties cannot be empty", ErrMalformedObjectName)
	}
	seen := map[string]struct{}{}
	for len(rest) > 0 {
		if rest[0] == '*' && (len(rest) == 1 || rest[1] == ',') {
			if n.propPattern {
				return ObjectName{}, fmt.Errorf("%w: more than one * in key property list", ErrMalformedObjectName)
			}
			n.propPattern = true
			rest = rest[1:]
		} else {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				return ObjectName{}, fmt.Errorf("%w: key property %q has no '='", ErrMalformedObjectName, rest)
			}
			key := rest[:eq]
			if err := checkKey(key); err != nil {
				return ObjectName{}, err
			}
			if _, dup := seen[key]; dup {
				return ObjectName{}, fmt.Errorf("%w: key %q appears twice", ErrMalformedObjectName, key)
			}
			seen[key] = struct{}{}
			rest = rest[eq+1:]
			var val string
			if strings.HasPrefix(rest, `"`) {
				end := quotedEnd(rest)
				if end < 0 {
					return ObjectName{}, fmt.Errorf("%w: unterminated quoted value", ErrMalformedObjectName)
				}
				val, rest = rest[:end], rest[end:]
			} else {
				end := strings.IndexByte(rest, ',')
				if end < 0 {
					end = len(rest)
				}
				val, rest = rest[:end], rest[end:]
			}
			pat, err := checkValue(val)
			if err != nil {
				return ObjectName{}, err
			}
			n.valPattern = n.valPattern || pat
			n.props = append(n.props, Property{Key: key, Value: val})
		}
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return ObjectName{}, fmt.Errorf("%w: expected ',' at %q", ErrMalformedObjectName, rest)
		}
		rest = rest[1:]
		if rest == "" {
			return ObjectName{}, fmt.Errorf("%w: trailing ','", ErrMalformedObjectName)
		}
	}
	n.finish()
	return n, nil
}

// quotedEnd returns the index just past the closing quote of the quoted
// value at the start of s, or -1.
func quotedEnd(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

func checkKey(k string) error {
	if k == "" {
		return fmt.Errorf("%w: empty key", ErrMalformedObjectName)
	}
	if strings.ContainsAny(k, ":,=*?\n") {
		return fmt.Errorf("%w: invalid character in key %q", ErrMalformedObjectName, k)
	}
	return nil
}

// checkValue validates a value in ObjectName syntax and reports whether it is
// a pattern (holds an unescaped * or ?).
func checkValue(v string) (pattern bool, err error) {
	if v == "" {
		return false, fmt.Errorf("%w: empty value", ErrMalformedObjectName)
	}
	if v[0] != '"' {
		if strings.ContainsAny(v, ",=:\"\n") {
			return false, fmt.Errorf("%w: invalid character in value %q (quote it)", ErrMalformedObjectName, v)
		}
		return strings.ContainsAny(v, "*?"), nil
	}
	if len(v) < 2 || v[len(v)-1] != '"' {
		return false, fmt.Errorf("%w: bad quoted value %q", ErrMalformedObjectName, v)
	}
	for i := 1; i < len(v)-1; i++ {
		switch v[i] {
		case '\\':
			i++
			if i >= len(v)-1 || !strings.ContainsRune(`"\*?n`, rune(v[i])) {
				return false, fmt.Errorf("%w: bad escape in quoted value %q", ErrMalformedObjectName, v)
			}
		case '"', '\n':
			return false, fmt.Errorf("%w: bad character in quoted value %q", ErrMalformedObjectName, v)
		case '*', '?':
			pattern = true
		}
	}
	return pattern, nil
}

func (n *ObjectName) finish() {
	var b strings.Builder
	b.WriteString(n.domain)
	b.WriteByte(':')
	writeProps(&b, n.props)
	if n.propPattern {
		if len(n.props) > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('*')
	}
	n.display = b.String()

	sorted := slices.Clone(n.props)
	slices.SortFunc(sorted, func(a, b Property) int { return strings.Compare(a.Key, b.Key) })
	b.Reset()
	b.WriteString(n.domain)
	b.WriteByte(':')
	writeProps(&b, sorted)
	if n.propPattern {
		if len(sorted) > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('*')
	}
	n.canonical = b.String()
}

func writeProps(b *strings.Builder, props []Property) {
	for i, p := range props {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Key)
		b.WriteByte('=')
		b.WriteString(p.Value)
	}
}

// String returns the name with properties in insertion order, the form Kafka
// registers and jmx_exporter sees: kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t.
func (n ObjectName) String() string { return n.display }

// Canonical returns the name with properties sorted by key (JMX
// getCanonicalName), the form used as the registry key and in Jolokia output.
func (n ObjectName) Canonical() string { return n.canonical }

// Domain returns the domain part.
func (n ObjectName) Domain() string { return n.domain }

// IsZero reports whether n is the zero ObjectName.
func (n ObjectName) IsZero() bool { return n.display == "" }

// Properties returns a copy of the key properties in insertion order.
func (n ObjectName) Properties() []Property { return slices.Clone(n.props) }

// NumProperties returns the number of key properties (excluding a trailing *).
func (n ObjectName) NumProperties() int { return len(n.props) }

// Property returns the i-th key property in insertion order.
func (n ObjectName) Property(i int) Property { return n.props[i] }

// Get returns the value of key, as written in the name (quoted if it was).
func (n ObjectName) Get(key string) (string, bool) {
	for _, p := range n.props {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// KeyPropertyList returns the properties in insertion order without the domain
// (JMX getKeyPropertyListString).
func (n ObjectName) KeyPropertyList() string { return n.display[len(n.domain)+1:] }

// CanonicalKeyPropertyList returns the sorted properties without the domain
// (JMX getCanonicalKeyPropertyListString; Jolokia list uses it as map key).
func (n ObjectName) CanonicalKeyPropertyList() string { return n.canonical[len(n.domain)+1:] }

// IsPattern reports whether n contains any wildcard.
func (n ObjectName) IsPattern() bool { return n.domPattern || n.propPattern || n.valPattern }

// Matches reports whether the concrete name matches the pattern n, with the
// rules of javax.management.ObjectName.apply: the domain and values are
// matched with * and ? wildcards; the key sets must be equal unless the
// pattern's list ends with ",*", in which case the pattern's keys must be a
// subset. A pattern never matches another pattern. A non-pattern n matches
// only a name with the same canonical form.
func (n ObjectName) Matches(name ObjectName) bool {
	if name.IsPattern() || name.IsZero() {
		return false
	}
	if !n.IsPattern() {
		return n.canonical == name.canonical
	}
	if !glob(n.domain, name.domain, false) {
		return false
	}
	if !n.propPattern && len(n.props) != len(name.props) {
		return false
	}
	for _, p := range n.props {
		v, ok := name.Get(p.Key)
		if !ok {
			return false
		}
		if !glob(p.Value, v, len(p.Value) > 0 && p.Value[0] == '"') {
			return false
		}
	}
	return true
}

// glob matches s against pattern p with * (any run) and ? (one character).
// In a quoted value a backslash escapes the next character, so \* is a
// literal star; both sides are in their quoted encoding.
func glob(p, s string, quoted bool) bool {
	// Iterative matcher with single-star backtracking (linear in practice).
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; {
			case c == '*':
				starP, starS = pi, si
				pi++
				continue
			case c == '?':
				pi++
				si++
				continue
			case c == '\\' && quoted && pi+1 < len(p):
				if si+1 < len(s) && s[si] == '\\' && s[si+1] == p[pi+1] {
					pi += 2
					si += 2
					continue
				}
			case c == s[si]:
				pi++
				si++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// Quote returns s quoted per javax.management.ObjectName.quote.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '*', '?', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// jmxSanitize is Kafka's Sanitizer.jmxSanitize: keep values matching
// [\w-%\. \t]* as they are, quote everything else.
func jmxSanitize(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		plain := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == '%' || c == '.' || c == ' ' || c == '\t'
		if !plain {
			return Quote(s)
		}
	}
	return s
}
