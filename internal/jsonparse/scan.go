package jsonparse

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// NewScanner starts a scan of b.
func NewScanner(b []byte) Scanner { return Scanner{b: b} }

// Peek skips whitespace and returns the next byte without consuming it, 0
// at the end of the input (a 0 byte is never valid JSON outside a string).
func (p *Scanner) Peek() byte {
	p.ws()
	if p.i >= len(p.b) {
		return 0
	}
	return p.b[p.i]
}

// Consume skips whitespace and consumes c if it comes next.
func (p *Scanner) Consume(c byte) bool {
	if p.Peek() != c || p.i >= len(p.b) {
		return false
	}
	p.i++
	return true
}

// End skips whitespace and reports whether the input is used up.
func (p *Scanner) End() bool {
	p.ws()
	return p.i == len(p.b)
}

// Err describes a syntax error at the current position, in
// encoding/json's words (what is e.g. "after object key").
func (p *Scanner) Err(what string) error { return p.errAt(what) }

// Str reads a string, decoded as encoding/json decodes it.
func (p *Scanner) Str() (string, error) {
	if p.Peek() != '"' {
		return "", p.errAt("looking for beginning of string")
	}
	return p.str()
}

// StrBytes reads a string like Str, returning a slice of the input itself
// when the string needs no decoding (no escapes, valid UTF-8), which is
// nearly always; the slice must not be modified.
func (p *Scanner) StrBytes() ([]byte, error) {
	if p.Peek() != '"' {
		return nil, p.errAt("looking for beginning of string")
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		if plainASCII[c] {
			continue
		}
		switch {
		case c == '"':
			s := p.b[start:j]
			if !ascii && !utf8.Valid(s) {
				v, err := p.str() // invalid UTF-8 becomes U+FFFD
				return []byte(v), err
			}
			p.i = j + 1
			return s, nil
		case c >= 0x80:
			ascii = false
		default: // '\\' or a control character
			v, err := p.str() // escapes to decode, or an error to report
			return []byte(v), err
		}
	}
	p.i = len(p.b)
	return nil, errors.New("unexpected end of JSON input")
}

// plainASCII marks the bytes a string can hold as they are: printable
// ASCII but the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Value reads any value as ParseObject decodes it, as a member of an
// object or array (one level of nesting already used).
func (p *Scanner) Value() (any, error) { return p.value(1) }

// Lit reads the literal s (true, false or null).
func (p *Scanner) Lit(s string) error {
	p.ws()
	return p.lit(s)
}

// Int reads a number into an int64 as encoding/json does for an integer
// field: a number with a fraction or an exponent, or out of range, is an
// error (errNotInt).
func (p *Scanner) Int() (int64, error) {
	c := p.Peek()
	if c != '-' && (c < '0' || c > '9') {
		return 0, p.errAt("looking for beginning of value")
	}
	// One pass for the common case: up to 18 digits (no overflow), then
	// a byte that cannot continue a number.
	start, b := p.i, p.b
	i := start
	neg := b[i] == '-'
	if neg {
		i++
	}
	var v int64
	digits := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && digits <= 18; i++ {
		v = v*10 + int64(b[i]-'0')
		digits++
	}
	leadingZero := digits > 1 && b[start+btoi(neg)] == '0'
	if digits > 0 && digits <= 18 && !leadingZero && (i == len(b) || (b[i] != '.' && b[i] != 'e' && b[i] != 'E')) {
		p.i = i
		if neg {
			v = -v
		}
		return v, nil
	}
	// Everything else (long, fractional, exponent, malformed) is checked
	// as a JSON number first, then as an int64.
	n, err := p.number()
	if err != nil {
		return 0, err
	}
	v, err = strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, ErrNotInt
	}
	return v, nil
}

// ErrNotInt is Int's error for a valid number that is not an int64.
var ErrNotInt = errors.New("number is not an integer in the int64 range")

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Skip reads one value of any kind, checking its syntax, and discards it.
func (p *Scanner) Skip() error { return p.skip(1) }

func (p *Scanner) skip(depth int) error {
	switch c := p.Peek(); {
	case c == '{' || c == '[':
		if depth > maxJSONDepth {
			return errors.New("exceeded max depth")
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		if p.Consume(end) {
			return nil
		}
		for {
			if c == '{' {
				if p.Peek() != '"' {
					return p.errAt("looking for beginning of object key string")
				}
				if err := p.skipStr(); err != nil {
					return err
				}
				if !p.Consume(':') {
					return p.errAt("after object key")
				}
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			switch {
			case p.Consume(','):
			case p.Consume(end):
				return nil
			case c == '{':
				return p.errAt("after object key:value pair")
			default:
				return p.errAt("after array element")
			}
		}
	case c == '"':
		return p.skipStr()
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.number()
		return err
	}
	return p.errAt("looking for beginning of value")
}

// skipStr checks a string at p.i (which is '"') without decoding it.
func (p *Scanner) skipStr() error {
	p.i++
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return nil
		case c < 0x20:
			return p.errAt("in string literal")
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return errors.New("unexpected end of JSON input")
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				p.i++
				if _, ok := p.hex4(); !ok {
					return p.errAt("in \\u hexadecimal character escape")
				}
			default:
				return p.errAt("in string escape code")
			}
		default:
			p.i++
		}
	}
	return errors.New("unexpected end of JSON input")
}

// Raw reads one value like Skip and returns its bytes (a slice of the
// input), for a decoder that hands a rare part of a document to
// encoding/json.
func (p *Scanner) Raw() ([]byte, error) {
	p.ws()
	start := p.i
	if err := p.skip(1); err != nil {
		return nil, err
	}
	return p.b[start:p.i], nil
}
