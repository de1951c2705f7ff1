package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/numeric"
	"github.com/blevesearch/bleve/v2/registry"
	index "github.com/blevesearch/bleve_index_api"
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
func decodeSource(src []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("document source must be a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected content after the document's JSON object")
	}
	return obj, nil
}

// docBuilder turns source documents into bleve documents, adding dynamic
// mappings as Elasticsearch would. It is used by one writer at a time (under
// the index write lock). Published mapping snapshots are immutable because
// queries read them without locks, so the first dynamic field a builder adds
// makes it clone the snapshot; the owner publishes ms after the batch is
// written.
type docBuilder struct {
	ms         *mappingState
	id         string
	doc        *document.Document
	fieldNames map[string]struct{}
	changed    bool // ms is a private clone with new dynamic fields
}

func (b *docBuilder) build(id string, src []byte, obj map[string]any, version, seqNo int64) (*document.Document, *esError) {
	b.id = id
	b.doc = document.NewDocument(id)
	b.fieldNames = map[string]struct{}{}
	for k := range obj {
		if isMetaField(k) {
			return nil, errMapperParsing(nil, "Field [%s] is a metadata field and cannot be added inside a document. Use the index API request parameters.", k)
		}
	}
	props, mode := b.ms.objectAt("")
	if err := b.object("", obj, props, mode, nil); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(b.fieldNames))
	for n := range b.fieldNames {
		names = append(names, n)
	}
	slices.Sort(names) // deterministic term order; cheap for the handful of fields a trace event has
	for _, n := range names {
		b.doc.AddField(document.NewTextFieldCustom(fieldFieldNames, nil, []byte(n), index.IndexField, nil))
	}
	b.doc.AddField(document.NewTextFieldWithIndexingOptions(fieldSource, nil, src, index.StoreField))
	b.doc.AddField(document.NewNumericFieldWithIndexingOptions(fieldVersion, nil, float64(version), index.StoreField))
	b.doc.AddField(document.NewNumericFieldWithIndexingOptions(fieldSeqNo, nil, float64(seqNo), index.StoreField))
	// The same number as a doc value: sorting by _doc (index order) reads it.
	b.doc.AddField(document.NewTextFieldCustom(fieldSeqNo, nil, fullPrecisionTerm(float64(seqNo)), index.IndexField|index.DocValues, nil))
	return b.doc, nil
}

func (b *docBuilder) object(prefix string, obj map[string]any, props map[string]*fieldMapping, mode dynamicMode, pos []uint64) *esError {
	// Walk keys in sorted order so dynamic mapping is deterministic when one
	// document introduces several fields.
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" {
			return errMapperParsing(nil, "field name cannot be an empty string")
		}
		if err := b.value(prefix, k, obj[k], props, mode, pos); err != nil {
			return err
		}
	}
	return nil
}

func (b *docBuilder) value(prefix, name string, v any, props map[string]*fieldMapping, mode dynamicMode, pos []uint64) *esError {
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
		return b.value(prefix, name[:i], map[string]any{name[i+1:]: v}, props, mode, pos)
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
		for i, e := range arr {
			if err := b.value(prefix, name, e, props, mode, append(slices.Clip(pos), uint64(i))); err != nil {
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
		b.fieldNames[path] = struct{}{}
		childMode, _ := parseDynamic(fm.Dynamic, mode)
		return b.object(path+".", obj, fm.Properties, childMode, pos)
	}
	if _, isObj := v.(map[string]any); isObj {
		return errMapperParsing(nil, "failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%v'",
			path, fm.Type, b.id, preview(v))
	}
	if err := b.leafValue(path, l, fm.Type, v, pos); err != nil {
		return err
	}
	for _, sp := range l.subfields {
		sub := fm.Fields[sp[len(path)+1:]]
		if err := b.leafValue(sp, b.ms.lookupLeaf(sp), sub.Type, v, pos); err != nil {
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

func (b *docBuilder) leafValue(path string, l *leaf, esType string, v any, pos []uint64) *esError {
	fail := func(cause *esError) *esError {
		return errMapperParsing(cause, "failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%s'",
			path, esType, b.id, preview(v))
	}
	// bleve derives a field's doc values from its indexed terms, so a field
	// Elasticsearch keeps doc values for (the default, even with
	// "index": false) is indexed here too; the query compiler refuses to
	// search it when the mapping says it is not indexed, as Elasticsearch 7
	// does. Without this, sum/avg/terms over such a field saw no values.
	opts := index.FieldIndexingOptions(0)
	if l.indexed || l.docValues {
		opts |= index.IndexField
	}
	if l.docValues {
		opts |= index.DocValues
	}
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
			if opts != 0 {
				b.doc.AddField(document.NewTextFieldCustom(path, pos, []byte(s), opts, nil))
			}
		} else if l.indexed {
			b.doc.AddField(document.NewTextFieldCustom(path, pos, []byte(s), index.IndexField|index.IncludeTermVectors, esStandard()))
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
		b.addNumber(path, pos, f, l, opts)
	case kindDate:
		ms, err := dateValue(v, l.format)
		if err != nil {
			return fail(&esError{Type: "illegal_argument_exception", Reason: err.Error()})
		}
		b.addNumber(path, pos, float64(ms), l, opts)
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
		if opts != 0 {
			b.doc.AddField(document.NewBooleanFieldWithIndexingOptions(path, pos, bv, opts))
		}
	default:
		return nil
	}
	b.fieldNames[path] = struct{}{}
	// Parent object paths exist too ("exists" on an object field).
	for p := path; ; {
		i := strings.LastIndexByte(p, '.')
		if i <= 0 {
			break
		}
		p = p[:i]
		b.fieldNames[p] = struct{}{}
	}
	return nil
}

// addNumber adds a numeric field. A searchable number gets bleve's 16
// prefix terms (what numeric range queries walk); a number kept only for
// doc values ("index": false) gets just the full-precision term, which is
// all that aggregations and sorting read, at a sixteenth of the cost.
func (b *docBuilder) addNumber(path string, pos []uint64, f float64, l *leaf, opts index.FieldIndexingOptions) {
	switch {
	case l.indexed:
		b.doc.AddField(document.NewNumericFieldWithIndexingOptions(path, pos, f, opts))
	case l.docValues:
		b.doc.AddField(document.NewTextFieldCustom(path, pos, fullPrecisionTerm(f), opts, nil))
	}
}

// fullPrecisionTerm is bleve's shift-0 prefix-coded term for f, the term
// doc-value readers and numeric sorts decode.
func fullPrecisionTerm(f float64) []byte {
	return numeric.MustNewPrefixCodedInt64(numeric.Float64ToInt64(f), 0)
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
