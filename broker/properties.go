package broker

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Properties is a parsed Java properties file, the format of Kafka's
// server.properties. Keys keep their first-seen order so warnings and dumps
// read like the file.
type Properties struct {
	keys   []string
	values map[string]string
}

// NewProperties returns an empty property set.
func NewProperties() *Properties { return &Properties{values: map[string]string{}} }

// Set stores key=value, replacing an earlier value (as a later line in a
// properties file, or an --override, would).
func (p *Properties) Set(key, value string) {
	if _, ok := p.values[key]; !ok {
		p.keys = append(p.keys, key)
	}
	p.values[key] = value
}

// Get returns the value of key and whether it was set.
func (p *Properties) Get(key string) (string, bool) {
	v, ok := p.values[key]
	return v, ok
}

// Keys returns the keys in first-seen order.
func (p *Properties) Keys() []string { return append([]string(nil), p.keys...) }

// LoadProperties reads a properties file.
func LoadProperties(path string) (*Properties, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	p, err := ParseProperties(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return p, nil
}

// ParseProperties reads the subset of java.util.Properties syntax that Kafka
// configuration files use: '#' and '!' comments, key=value or key: value or
// "key value", backslash line continuation, and the common escapes.
func ParseProperties(r io.Reader) (*Properties, error) {
	p := NewProperties()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var pending string
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimLeft(sc.Text(), " \t\f")
		if pending == "" && (line == "" || line[0] == '#' || line[0] == '!') {
			continue
		}
		// An odd number of trailing backslashes continues the logical line.
		if n := trailingBackslashes(line); n%2 == 1 {
			pending += line[:len(line)-1]
			continue
		}
		line = pending + line
		pending = ""
		key, value := splitProperty(line)
		if key == "" {
			return nil, fmt.Errorf("line %d: empty key", lineNo)
		}
		p.Set(unescapeProperty(key), unescapeProperty(value))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if pending != "" {
		key, value := splitProperty(pending)
		p.Set(unescapeProperty(key), unescapeProperty(value))
	}
	return p, nil
}

func trailingBackslashes(s string) int {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n
}

// splitProperty splits at the first unescaped '=', ':' or whitespace.
func splitProperty(line string) (key, value string) {
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case '\\':
			i++
		case '=', ':', ' ', '\t', '\f':
			key = line[:i]
			rest := strings.TrimLeft(line[i:], " \t\f")
			// "key = value" and "key value" both name one separator.
			if c == ' ' || c == '\t' || c == '\f' {
				if rest != "" && (rest[0] == '=' || rest[0] == ':') {
					rest = rest[1:]
				}
			} else {
				rest = rest[1:]
			}
			return key, strings.TrimLeft(rest, " \t\f")
		}
	}
	return line, ""
}

func unescapeProperty(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
