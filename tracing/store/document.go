package store

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/registry"

	"github.com/kobs-dev/kobs/internal/jsonparse"
)

// esStandard approximates Elasticsearch's "standard" analyzer: Unicode
// word segmentation plus lowercasing. bleve's own "standard" also removes
// English stop words, which Elasticsearch's does not, so a match query for
// "the" would behave differently; hence the custom analyzer.
var esStandard = sync.OnceValue(func() analysis.Analyzer {
	a, err := registry.NewCache().DefineAnalyzer("es_standard", map[string]any{
		"type":          custom.Name,
		"tokenizer":     unicode.Name,
		"token_filters": []any{lowercase.Name},
	})
	if err != nil {
		panic(fmt.Sprintf("store: define es_standard analyzer: %v", err)) // static config; cannot fail at runtime
	}
	return a
})

// analyzeText returns the terms esStandard produces for s (match queries use
// it so query text and indexed text are analysed the same way).
func analyzeText(s string) []string {
	toks := esStandard().Analyze([]byte(s))
	out := make([]string, 0, len(toks))
	for _, t := range toks {
		out = append(out, string(t.Term))
	}
	return out
}

// decodeSource parses a document source; it must be exactly one JSON object.
func decodeSource(src []byte) (map[string]any, error) { return jsonparse.ParseObject(src) }

// docBuilder turns source documents into their indexable values, adding dynamic
// mappings as Elasticsearch would. It is used by one writer at a time (under
// the index write lock). Published mapping snapshots are immutable because
// queries read them without locks, so the first dynamic field a builder adds
// makes it clone the snapshot; the owner publishes ms after the batch is
// written.
type docBuilder struct {
	ms      *mappingState
	id      string
	doc     *parsedDoc
	changed bool // ms is a private clone with new dynamic fields
}

func (b *docBuilder) build(id string, obj map[string]any) (*parsedDoc, *esError) {
	b.id = id
	b.doc = &parsedDoc{fields: make([]docField, 0, len(obj)+2), names: make([]string, 0, len(obj)+2)}
	for k := range obj {
		if isMetaField(k) {
			return nil, errMapperParsing(nil, "Field [%s] is a metadata field and cannot be added inside a document. Use the index API request parameters.", k)
		}
	}
	props, mode := b.ms.objectAt("")
	if err := b.object("", obj, props, mode); err != nil {
		return nil, err
	}
	return b.doc, nil
}

func (b *docBuilder) object(prefix string, obj map[string]any, props map[string]*fieldMapping, mode dynamicMode) *esError {
	// Walk keys in sorted order so dynamic mapping is deterministic when one
	// document introduces several fields.
	type kv struct {
		k string
		v any
	}
	var buf [32]kv
	kvs := buf[:0]
	for k, v := range obj {
		kvs = append(kvs, kv{k, v})
	}
	slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	for _, e := range kvs {
		if e.k == "" {
			return errMapperParsing(nil, "field name cannot be an empty string")
		}
		if err := b.value(prefix, e.k, e.v, props, mode); err != nil {
			return err
		}
	}
	return nil
}

func (b *docBuilder) value(prefix, name string, v any, props map[string]*fieldMapping, mode dynamicMode) *esError {
	if v == nil {
		return nil
	}
	path := prefix + name
	if b.changed {
		// props may belong to the snapshot this builder cloned away from.
		props, _ = b.ms.objectAt(strings.TrimSuffix(prefix, "."))
	}
	// Dotted names in the source ("a.b": 1) address the object path a -> b,
	// as in Elasticsearch.
	if i := strings.IndexByte(name, '.'); i > 0 && props[name] == nil {
		return b.value(prefix, name[:i], map[string]any{name[i+1:]: v}, props, mode)
	}
	fm := props[name]
	if fm == nil {
		dm := dynamicMappingFor(v)
		if dm == nil {
			return nil // empty array or array of nulls: no mapping, as in Elasticsearch
		}
		switch mode {
		case dynamicFalse:
			return nil // kept in _source, not indexed
		case dynamicStrict:
			parent := strings.TrimSuffix(prefix, ".")
			if parent == "" {
				parent = "_doc"
			}
			return &esError{Type: "strict_dynamic_mapping_exception",
				Reason: fmt.Sprintf("mapping set to strict, dynamic introduction of [%s] within [%s] is not allowed", name, parent),
				status: 400}
		}
		if !b.changed {
			b.ms = b.ms.clone()
			b.changed = true
		}
		b.ms.addDynamic(strings.TrimSuffix(prefix, "."), name, dm)
		if err := b.ms.rebuild(); err != nil {
			return asESError(err)
		}
		props, _ = b.ms.objectAt(strings.TrimSuffix(prefix, "."))
		fm = props[name]
	}
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if err := b.value(prefix, name, e, props, mode); err != nil {
				return err
			}
		}
		return nil
	}
	l := b.ms.lookupLeaf(path)
	if l == nil {
		return nil
	}
	if l.kind == kindObject {
		obj, ok := v.(map[string]any)
		if !ok {
			return errMapperParsing(nil, "object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", path, name)
		}
		if !l.indexed {
			return nil
		}
		b.addName(path)
		childMode, _ := parseDynamic(fm.Dynamic, mode)
		return b.object(path+".", obj, fm.Properties, childMode)
	}
	if _, isObj := v.(map[string]any); isObj {
		return errMapperParsing(nil, "failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%v'",
			path, fm.Type, b.id, preview(v))
	}
	if err := b.leafValue(path, path, l, fm.Type, v); err != nil {
		return err
	}
	for _, sp := range l.subfields {
		sub := fm.Fields[sp[len(path)+1:]]
		if err := b.leafValue(sp, path, b.ms.lookupLeaf(sp), sub.Type, v); err != nil {
			return err
		}
	}
	return nil
}

func preview(v any) string {
	b, _ := json.Marshal(v)
	s := strings.Trim(string(b), `"`)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

func (b *docBuilder) leafValue(path, srcPath string, l *leaf, esType string, v any) *esError {
	fail := func(cause *esError) *esError {
		return errMapperParsing(cause, "failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%s'",
			path, esType, b.id, preview(v))
	}
	// A field that is indexed or keeps doc values ("index": false keeps
	// them, as in Elasticsearch) gets its values in the index; the query
	// compiler refuses to search one whose mapping says it is not indexed.
	keep := l.indexed || l.docValues
	switch l.kind {
	case kindKeyword, kindText:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case json.Number:
			s = x.String()
		case bool:
			s = strconv.FormatBool(x)
		}
		if l.kind == kindKeyword {
			if l.ignoreAbove > 0 && utf8.RuneCountInString(s) > l.ignoreAbove {
				return nil // Elasticsearch keeps it in _source but indexes nothing
			}
			if keep {
				b.doc.fields = append(b.doc.fields, docField{path: path, kind: kindKeyword, str: s})
			}
		} else if l.indexed {
			b.doc.fields = append(b.doc.fields, docField{path: path, kind: kindText, toks: analyzeText(s), srcPath: srcPath})
		}
	case kindLong, kindDouble:
		var f float64
		switch x := v.(type) {
		case json.Number:
			var err error
			if f, err = strconv.ParseFloat(x.String(), 64); err != nil {
				return fail(&esError{Type: "number_format_exception", Reason: fmt.Sprintf("For input string: %q", x)})
			}
		case string:
			var err error
			if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
				return fail(&esError{Type: "number_format_exception", Reason: fmt.Sprintf("For input string: %q", x)})
			}
		default:
			return fail(&esError{Type: "illegal_argument_exception", Reason: fmt.Sprintf("Current token (%s) not numeric, can not use numeric value accessors", jsonTokenName(v))})
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fail(&esError{Type: "illegal_argument_exception", Reason: "[" + esType + "] supports only finite values"})
		}
		if l.kind == kindLong {
			f = math.Trunc(f) // Elasticsearch coerces 1.5 to 1 for integer types
		}
		if keep {
			b.doc.fields = append(b.doc.fields, docField{path: path, kind: l.kind, num: f})
		}
	case kindDate:
		ms, err := dateValue(v, l.format)
		if err != nil {
			return fail(&esError{Type: "illegal_argument_exception", Reason: err.Error()})
		}
		if keep {
			b.doc.fields = append(b.doc.fields, docField{path: path, kind: kindDate, num: float64(ms)})
		}
	case kindBool:
		var bv bool
		switch x := v.(type) {
		case bool:
			bv = x
		case string:
			switch x {
			case "true":
				bv = true
			case "false", "":
			default:
				return fail(&esError{Type: "illegal_argument_exception", Reason: fmt.Sprintf("Failed to parse value [%s] as only [true] or [false] are allowed.", x)})
			}
		default:
			return fail(&esError{Type: "illegal_argument_exception", Reason: "Current token is not a boolean"})
		}
		if keep {
			f := 0.0
			if bv {
				f = 1
			}
			b.doc.fields = append(b.doc.fields, docField{path: path, kind: kindBool, num: f})
		}
	default:
		return nil
	}
	b.addName(path)
	// Parent object paths exist too ("exists" on an object field).
	for p := path; ; {
		i := strings.LastIndexByte(p, '.')
		if i <= 0 {
			break
		}
		p = p[:i]
		b.addName(p)
	}
	return nil
}

// addName records a field path for _field_names, once. A document has a
// handful of fields, so a scan beats a map.
func (b *docBuilder) addName(path string) {
	if !slices.Contains(b.doc.names, path) {
		b.doc.names = append(b.doc.names, path)
	}
}

func jsonTokenName(v any) string {
	switch v.(type) {
	case bool:
		return "VALUE_TRUE"
	case []any:
		return "START_ARRAY"
	case map[string]any:
		return "START_OBJECT"
	}
	return "VALUE_STRING"
}
