package store

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// stdDecode is what parseObject replaces: encoding/json with UseNumber,
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

// parseObject accepts exactly what encoding/json accepts and decodes it to
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
	got, gerr := parseObject(b)
	require.Equal(t, werr == nil, gerr == nil, "%q: encoding/json %v, parseObject %v", b, werr, gerr)
	if werr == nil {
		require.Equal(t, want, got, "%q", b)
	}
}
