package jsonparse

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// stdDecode is what ParseObject replaces: encoding/json with UseNumber,
// one object and nothing after it.
func stdDecode(src []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, io.ErrUnexpectedEOF
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	return obj, nil
}

var jsonSeeds = []string{
	`{}`, ` {"a":1} `, `{"a":-0.5e+10,"b":[1,"x",true,false,null,{"c":{}}],"d":"\u00e9\ud83d\ude00\n\"\\\/"}`,
	`{"a":"caf\xc3\xa9"}`, "{\"a\":\"\xff\xfe\"}", `{"a":"\ud800"}`, `{"a":"\ud800\u0041"}`, `{"a":1,"a":2}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":nul}`, `{"a":"x` + "\n" + `"}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a" 1}`, `{"a":1,}`, `{"a":[1,]}`, `{a:1}`, `[1]`, `null`, `"x"`, ``, `{`,
	`{"a":1}{"b":2}`, `{"a":1} x`, `{"a":[[[[]]]]}`, `{"":0}`, `{"a":"\t"}`, "{\"a\":\"\t\"}",
}

// ParseObject accepts exactly what encoding/json accepts and decodes it to
// the same values.
func TestParseObjectMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		checkParse(t, []byte(s))
	}
}

func FuzzParseObject(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkParse(t, b) })
}

func checkParse(t *testing.T, b []byte) {
	want, werr := stdDecode(b)
	got, gerr := ParseObject(b)
	require.Equal(t, werr == nil, gerr == nil, "%q: encoding/json %v, ParseObject %v", b, werr, gerr)
	if werr == nil {
		require.Equal(t, want, got, "%q", b)
	}
}

// Skip accepts exactly the JSON texts encoding/json accepts.
func TestSkipMatchesEncodingJSON(t *testing.T) {
	for _, s := range append(jsonSeeds, `1`, `-0`, `"a\u00e9"`, `[1,{"a":[]}]`, `[1 2]`, `{"a":1 "b":2}`, ` true `, `nul`, `"\ud800"`) {
		checkSkip(t, []byte(s))
	}
}

func FuzzScanner(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSkip(t, b)
		checkScalars(t, b)
	})
}

func checkSkip(t *testing.T, b []byte) {
	p := NewScanner(b)
	err := p.Skip()
	ok := err == nil && p.End()
	require.Equal(t, json.Valid(b), ok, "%q: Skip %v", b, err)
}

// checkScalars: Str, StrBytes and Int read what encoding/json decodes into a
// string or an int64, and refuse what it refuses.
func checkScalars(t *testing.T, b []byte) {
	var ws string
	werr := json.Unmarshal(b, &ws)
	if werr == nil && bytes.TrimSpace(b)[0] == 'n' {
		werr = io.EOF // null leaves a string alone; the scanner wants a string
	}
	p := NewScanner(b)
	gs, gerr := p.Str()
	gok := gerr == nil && p.End()
	require.Equal(t, werr == nil, gok, "%q: Str %v, encoding/json %v", b, gerr, werr)
	if gok {
		require.Equal(t, ws, gs, "%q", b)
	}
	p = NewScanner(b)
	gb, gerr := p.StrBytes()
	gok = gerr == nil && p.End()
	require.Equal(t, werr == nil, gok, "%q: StrBytes %v, encoding/json %v", b, gerr, werr)
	if gok {
		require.Equal(t, ws, string(gb), "%q", b)
	}

	var wi int64
	werr = json.Unmarshal(b, &wi)
	if werr == nil && bytes.TrimSpace(b)[0] == 'n' {
		werr = io.EOF
	}
	p = NewScanner(b)
	gi, gerr := p.Int()
	gok = gerr == nil && p.End()
	require.Equal(t, werr == nil, gok, "%q: Int %v, encoding/json %v", b, gerr, werr)
	if gok {
		require.Equal(t, wi, gi, "%q", b)
	}
}

func TestScalarsMatchEncodingJSON(t *testing.T) {
	for _, s := range []string{`"x"`, ` "caf\u00e9" `, `"a\"b"`, "\"\xff\"", `"\ud800"`, `"x`, `"\q"`, `1`, `-0`, `-12`, `1.5`, `1e3`,
		`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`, `123456789012345678`,
		`01`, `-`, `null`, `true`, `[]`, `{}`, ``, `"1"`} {
		checkScalars(t, []byte(s))
	}
}
