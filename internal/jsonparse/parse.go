package jsonparse

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ParseObject decodes one JSON object into the values encoding/json
// produces with UseNumber (map[string]any, []any, string, json.Number,
// bool, nil), and refuses anything after it. Every document of a _bulk
// goes through it in the trace store, and encoding/json's
// reflection-driven decoder was half of the store's CPU per event; this
// one is a plain recursive descent over the bytes.
func ParseObject(src []byte) (map[string]any, error) {
	p := Scanner{b: src}
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		if p.i >= len(p.b) {
			return nil, errors.New("unexpected end of JSON input")
		}
		if p.b[p.i] == 'n' && p.lit("null") == nil {
			return nil, errors.New("document source must be a JSON object")
		}
		return nil, p.errAt("looking for beginning of object")
	}
	v, err := p.object(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, errors.New("unexpected content after the document's JSON object")
	}
	return v, nil
}

// Scanner reads one JSON text from a byte slice, value by value, for
// decoders that pick a few fields out of a document without building it
// (see scan.go). Its zero value scans nothing; NewScanner starts one.
type Scanner struct {
	b []byte
	i int
}

const maxJSONDepth = 10000 // encoding/json's nesting limit

func (p *Scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *Scanner) errAt(what string) error {
	if p.i >= len(p.b) {
		return errors.New("unexpected end of JSON input")
	}
	return fmt.Errorf("invalid character %q at offset %d %s", p.b[p.i], p.i, what)
}

func (p *Scanner) object(depth int) (map[string]any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("exceeded max depth")
	}
	p.i++ // '{'
	m := make(map[string]any, 16)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.errAt("looking for beginning of object key string")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.errAt("after object key")
		}
		p.i++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.errAt("")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, nil
		default:
			return nil, p.errAt("after object key:value pair")
		}
	}
}

func (p *Scanner) array(depth int) ([]any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("exceeded max depth")
	}
	p.i++ // '['
	out := []any{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return out, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.errAt("")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return out, nil
		default:
			return nil, p.errAt("after array element")
		}
	}
}

func (p *Scanner) value(depth int) (any, error) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.errAt("")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.lit("true")
	case c == 'f':
		return false, p.lit("false")
	case c == 'n':
		return nil, p.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, p.errAt("looking for beginning of value")
}

func (p *Scanner) lit(s string) error {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		for k := 0; k < len(s) && p.i < len(p.b) && p.b[p.i] == s[k]; k++ {
			p.i++
		}
		return p.errAt("in literal " + s)
	}
	p.i += len(s)
	return nil
}

func (p *Scanner) number() (json.Number, error) {
	start := p.i
	b := p.b
	if b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(b) && b[p.i] >= '0' && b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(b) && b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return "", p.errAt("in numeric literal")
	}
	if p.i < len(b) && b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return "", p.errAt("after decimal point in numeric literal")
		}
	}
	if p.i < len(b) && (b[p.i] == 'e' || b[p.i] == 'E') {
		p.i++
		if p.i < len(b) && (b[p.i] == '+' || b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return "", p.errAt("in exponent of numeric literal")
		}
	}
	return json.Number(b[start:p.i]), nil
}

// str decodes a string at p.i (which is '"').
func (p *Scanner) str() (string, error) {
	p.i++
	start := p.i
	b := p.b
	// Fast path: no escapes, valid ASCII or UTF-8.
	ascii := true
	for p.i < len(b) {
		c := b[p.i]
		switch {
		case c == '"':
			s := b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return string(fixUTF8(s)), nil
			}
			return string(s), nil
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			return "", p.errAt("in string literal")
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return "", errors.New("unexpected end of JSON input")
}

func fixUTF8(s []byte) []byte {
	out := make([]byte, 0, len(s)+8)
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		out = utf8.AppendRune(out, r) // invalid bytes become U+FFFD, as in encoding/json
		s = s[n:]
	}
	return out
}

func (p *Scanner) strSlow(start int) (string, error) {
	b := p.b
	out := append([]byte(nil), b[start:p.i]...)
	for p.i < len(b) {
		c := b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				out = fixUTF8(out)
			}
			return string(out), nil
		case c < 0x20:
			return "", p.errAt("in string literal")
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(b) {
			break
		}
		e := b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.errAt("in \\u hexadecimal character escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if p.i+1 < len(b) && b[p.i] == '\\' && b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if x, ok := p.hex4(); ok {
						r2 = x
					} else {
						p.i = save
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
				} else {
					if r2 >= 0 {
						p.i -= 6 // not a pair: the second escape stands alone
					}
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			p.i--
			return "", p.errAt("in string escape code")
		}
	}
	return "", errors.New("unexpected end of JSON input")
}

func (p *Scanner) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}
