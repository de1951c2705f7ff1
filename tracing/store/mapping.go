package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// fieldMapping is one node of an Elasticsearch mapping ("properties" tree),
// kept in Elasticsearch's own JSON form so GET /{index}/_mapping returns what
// the user declared plus what dynamic mapping added, like Elasticsearch does.
type fieldMapping struct {
	Type        string                   `json:"type,omitempty"`
	Dynamic     json.RawMessage          `json:"dynamic,omitempty"`
	Enabled     *bool                    `json:"enabled,omitempty"`
	Format      string                   `json:"format,omitempty"`
	IgnoreAbove int                      `json:"ignore_above,omitempty"`
	Index       *bool                    `json:"index,omitempty"`
	DocValues   *bool                    `json:"doc_values,omitempty"`
	Fields      map[string]*fieldMapping `json:"fields,omitempty"`
	Properties  map[string]*fieldMapping `json:"properties,omitempty"`
}

// rootMapping is the "mappings" object of an index.
type rootMapping struct {
	Dynamic    json.RawMessage          `json:"dynamic,omitempty"`
	Properties map[string]*fieldMapping `json:"properties,omitempty"`
}

// kind is how a mapped field is indexed (memindex.go).
type kind uint8

const (
	kindKeyword kind = iota + 1 // one exact term, doc values for sorting
	kindText                    // analysed with esStandard; phrases are checked against the source
	kindLong                    // a float64 column, rendered as an integer
	kindDouble                  // a float64 column
	kindDate                    // a float64 column holding epoch milliseconds
	kindBool                    // a float64 column holding 0 or 1
	kindObject                  // container; no terms of its own
)

// esTypes maps the Elasticsearch field types we accept to how we index them.
// Types that would need real work to emulate (geo, ip ranges, nested
// queries, flattened) are rejected at mapping time rather than silently
// indexed wrong.
var esTypes = map[string]kind{
	"keyword": kindKeyword, "constant_keyword": kindKeyword, "wildcard": kindKeyword,
	"text": kindText, "match_only_text": kindText,
	"long": kindLong, "integer": kindLong, "short": kindLong, "byte": kindLong, "unsigned_long": kindLong,
	"double": kindDouble, "float": kindDouble, "half_float": kindDouble, "scaled_float": kindDouble,
	"date": kindDate, "date_nanos": kindDate,
	"boolean": kindBool,
	"object":  kindObject, "nested": kindObject,
}

// leaf is the flattened, query-time view of one mapped field path.
type leaf struct {
	kind        kind
	indexed     bool
	docValues   bool
	ignoreAbove int
	format      string
	subfields   []string // full paths of multi-fields ("msg.keyword")
}

// dynamicMode is the "dynamic" setting of an object.
type dynamicMode uint8

const (
	dynamicTrue dynamicMode = iota
	dynamicFalse
	dynamicStrict
)

func parseDynamic(raw json.RawMessage, inherit dynamicMode) (dynamicMode, error) {
	if len(raw) == 0 {
		return inherit, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return inherit, err
	}
	switch v {
	case true, "true":
		return dynamicTrue, nil
	case false, "false":
		return dynamicFalse, nil
	case "strict":
		return dynamicStrict, nil
	}
	return inherit, fmt.Errorf("Could not convert [dynamic] to boolean")
}

// mappingState is an index's mapping plus its flattened lookup table.
// It is mutated only under the index's write lock (dynamic fields) and read
// by queries under mu; see index.mapMu.
type mappingState struct {
	root   rootMapping
	leaves map[string]*leaf
}

func newMappingState(root rootMapping) (*mappingState, error) {
	m := &mappingState{root: root}
	if err := m.rebuild(); err != nil {
		return nil, err
	}
	return m, nil
}

// rebuild validates the tree and recomputes the flat table.
func (m *mappingState) rebuild() error {
	leaves := map[string]*leaf{}
	if _, err := parseDynamic(m.root.Dynamic, dynamicTrue); err != nil {
		return errMapperParsing(nil, "%v", err)
	}
	var walk func(prefix string, props map[string]*fieldMapping) error
	walk = func(prefix string, props map[string]*fieldMapping) error {
		for name, fm := range props {
			if fm == nil {
				return errMapperParsing(nil, "Expected map for property [fields] on field [%s] but got a class java.lang.String", name)
			}
			path := prefix + name
			if strings.HasPrefix(path, "_") && prefix == "" && isMetaField(path) {
				return errMapperParsing(nil, "Field [%s] is defined more than once", path)
			}
			t := fm.Type
			if t == "" {
				if fm.Properties != nil || fm.Fields == nil {
					t = "object"
				}
			}
			k, ok := esTypes[t]
			if !ok {
				return errMapperParsing(nil, "No handler for type [%s] declared on field [%s]", fm.Type, name)
			}
			if k == kindObject {
				leaves[path] = &leaf{kind: kindObject, indexed: fm.Enabled == nil || *fm.Enabled}
				if fm.Enabled != nil && !*fm.Enabled {
					continue
				}
				if _, err := parseDynamic(fm.Dynamic, dynamicTrue); err != nil {
					return errMapperParsing(nil, "%v", err)
				}
				if err := walk(path+".", fm.Properties); err != nil {
					return err
				}
				continue
			}
			l := &leaf{
				kind:        k,
				indexed:     fm.Index == nil || *fm.Index,
				docValues:   (fm.DocValues == nil || *fm.DocValues) && k != kindText,
				ignoreAbove: fm.IgnoreAbove,
				format:      fm.Format,
			}
			leaves[path] = l
			for sub, sm := range fm.Fields {
				sk, ok := esTypes[sm.Type]
				if !ok || sk == kindObject {
					return errMapperParsing(nil, "No handler for type [%s] declared on field [%s]", sm.Type, sub)
				}
				sp := path + "." + sub
				leaves[sp] = &leaf{
					kind:        sk,
					indexed:     sm.Index == nil || *sm.Index,
					docValues:   (sm.DocValues == nil || *sm.DocValues) && sk != kindText,
					ignoreAbove: sm.IgnoreAbove,
					format:      sm.Format,
				}
				l.subfields = append(l.subfields, sp)
			}
			slices.Sort(l.subfields)
		}
		return nil
	}
	if err := walk("", m.root.Properties); err != nil {
		return err
	}
	m.leaves = leaves
	return nil
}

// clone deep-copies the declared tree (via JSON, which is its canonical form).
func (m *mappingState) clone() *mappingState {
	b, _ := json.Marshal(m.root)
	var r rootMapping
	_ = json.Unmarshal(b, &r)
	c := &mappingState{root: r, leaves: maps.Clone(m.leaves)}
	return c
}

// merge adds the properties of other (PUT _mapping); changing the type of an
// existing field is rejected like Elasticsearch does.
func (m *mappingState) merge(other rootMapping) error {
	var mergeProps func(path string, dst, src map[string]*fieldMapping) error
	mergeProps = func(path string, dst, src map[string]*fieldMapping) error {
		for name, sf := range src {
			df, ok := dst[name]
			if !ok {
				dst[name] = sf
				continue
			}
			dt, st := df.Type, sf.Type
			if dt == "" {
				dt = "object"
			}
			if st == "" {
				st = "object"
			}
			if dt != st {
				return errIllegalArgument("mapper [%s%s] cannot be changed from type [%s] to [%s]", path, name, dt, st)
			}
			if df.Properties == nil && sf.Properties != nil {
				df.Properties = map[string]*fieldMapping{}
			}
			if err := mergeProps(path+name+".", df.Properties, sf.Properties); err != nil {
				return err
			}
			for sub, sm := range sf.Fields {
				if df.Fields == nil {
					df.Fields = map[string]*fieldMapping{}
				}
				if old, ok := df.Fields[sub]; ok && old.Type != sm.Type {
					return errIllegalArgument("mapper [%s%s.%s] cannot be changed from type [%s] to [%s]", path, name, sub, old.Type, sm.Type)
				}
				df.Fields[sub] = sm
			}
		}
		return nil
	}
	if m.root.Properties == nil {
		m.root.Properties = map[string]*fieldMapping{}
	}
	if len(other.Dynamic) > 0 {
		m.root.Dynamic = other.Dynamic
	}
	if err := mergeProps("", m.root.Properties, other.Properties); err != nil {
		return err
	}
	return m.rebuild()
}

// metaFields are Elasticsearch's metadata fields; a document may not carry
// them in its source, and we use some of their names for our own fields.
var metaFields = []string{"_id", "_index", "_type", "_source", "_version", "_seq_no", "_primary_term",
	"_routing", "_field_names", "_ignored", "_nested_path", "_tier", "_data_stream_timestamp", "_doc_count"}

func isMetaField(name string) bool { return slices.Contains(metaFields, name) }

// fieldFieldNames is the internal field of exists queries. It is an
// Elasticsearch metadata field name on purpose: a document can never
// contain it (see isMetaField).
const fieldFieldNames = "_field_names"

// lookupLeaf finds the mapping for a dotted path; nil when unmapped.
func (m *mappingState) lookupLeaf(path string) *leaf { return m.leaves[path] }

// objectAt returns the properties map and dynamic mode of the object at
// path ("" is the root), creating nothing.
func (m *mappingState) objectAt(path string) (map[string]*fieldMapping, dynamicMode) {
	mode, _ := parseDynamic(m.root.Dynamic, dynamicTrue)
	props := m.root.Properties
	if path == "" {
		return props, mode
	}
	for _, part := range strings.Split(path, ".") {
		fm := props[part]
		if fm == nil {
			return nil, mode
		}
		mode, _ = parseDynamic(fm.Dynamic, mode)
		props = fm.Properties
	}
	return props, mode
}

// addDynamic records a new field at parent path under name; called with the
// index write lock held and the mapping write lock taken by the caller.
func (m *mappingState) addDynamic(parent, name string, fm *fieldMapping) {
	props := &m.root.Properties
	if parent != "" {
		for _, part := range strings.Split(parent, ".") {
			if *props == nil {
				*props = map[string]*fieldMapping{}
			}
			next := (*props)[part]
			if next == nil {
				next = &fieldMapping{Type: "object"}
				(*props)[part] = next
			}
			props = &next.Properties
		}
	}
	if *props == nil {
		*props = map[string]*fieldMapping{}
	}
	(*props)[name] = fm
}

// dynamicMappingFor infers a mapping for an unmapped JSON value the way
// Elasticsearch's default dynamic mapping does: strings that look like dates
// are dates, other strings are text with a keyword multi-field (ignore_above
// 256), integral numbers are long, other numbers float, objects are objects.
func dynamicMappingFor(v any) *fieldMapping {
	switch x := v.(type) {
	case string:
		if looksLikeDate(x) {
			return &fieldMapping{Type: "date"}
		}
		return &fieldMapping{Type: "text", Fields: map[string]*fieldMapping{"keyword": {Type: "keyword", IgnoreAbove: 256}}}
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return &fieldMapping{Type: "float"}
		}
		return &fieldMapping{Type: "long"}
	case bool:
		return &fieldMapping{Type: "boolean"}
	case map[string]any:
		return &fieldMapping{Type: "object"}
	case []any:
		for _, e := range x {
			if e != nil {
				return dynamicMappingFor(e)
			}
		}
	}
	return nil
}

// parseCreateBody decodes PUT /{index}'s body.
func parseCreateBody(body []byte) (rootMapping, indexSettings, *esError) {
	var req struct {
		Settings json.RawMessage `json:"settings"`
		Mappings json.RawMessage `json:"mappings"`
		Aliases  json.RawMessage `json:"aliases"`
	}
	settings := indexSettings{Shards: 1, Replicas: 1}
	var root rootMapping
	if len(bytes.TrimSpace(body)) == 0 {
		return root, settings, nil
	}
	if err := strictUnmarshal(body, &req); err != nil {
		return root, settings, err
	}
	if len(req.Mappings) > 0 {
		var err *esError
		if root, err = parseMappings(req.Mappings); err != nil {
			return root, settings, err
		}
	}
	if len(req.Settings) > 0 {
		var s map[string]any
		if err := json.Unmarshal(req.Settings, &s); err != nil {
			return root, settings, errParsing("Failed to parse settings: %v", err)
		}
		// Settings come flat ("number_of_shards"), nested under "index",
		// or dotted ("index.number_of_shards"); we only read the two counts,
		// which we echo back in responses, since one index is one shard here.
		flat := map[string]any{}
		var flatten func(prefix string, m map[string]any)
		flatten = func(prefix string, m map[string]any) {
			for k, v := range m {
				if sub, ok := v.(map[string]any); ok {
					flatten(prefix+k+".", sub)
					continue
				}
				flat[strings.TrimPrefix(prefix+k, "index.")] = v
			}
		}
		flatten("", s)
		num := func(v any) (int, bool) {
			switch x := v.(type) {
			case float64:
				return int(x), true
			case string:
				n, err := strconv.Atoi(x)
				return n, err == nil
			}
			return 0, false
		}
		if n, ok := num(flat["number_of_shards"]); ok && n > 0 {
			settings.Shards = n
		}
		if n, ok := num(flat["number_of_replicas"]); ok && n >= 0 {
			settings.Replicas = n
		}
	}
	return root, settings, nil
}

func parseMappings(raw json.RawMessage) (rootMapping, *esError) {
	var root rootMapping
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(raw, &generic); err != nil {
		return root, errMapperParsing(errJSONParse(err), "Failed to parse mapping [_doc]: %v", err)
	}
	for k := range generic {
		switch k {
		case "properties", "dynamic", "_source", "_meta", "date_detection", "numeric_detection", "_routing":
		default:
			return root, errMapperParsing(nil, "Root mapping definition has unsupported parameters:  [%s : %s]", k, string(generic[k]))
		}
	}
	if err := json.Unmarshal(raw, &root); err != nil {
		return root, errMapperParsing(errJSONParse(err), "Failed to parse mapping [_doc]: %v", err)
	}
	if _, err := newMappingState(root); err != nil {
		return root, asESError(err)
	}
	return root, nil
}

// strictUnmarshal decodes a JSON object body and reports malformed JSON the
// way Elasticsearch's REST layer does (a 400, never a 500).
func strictUnmarshal(body []byte, v any) *esError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return &esError{Type: "parsing_exception", Reason: "failed to parse request body: " + err.Error(),
			CausedBy: errJSONParse(err), Line: 1, Col: 1, status: http.StatusBadRequest}
	}
	if dec.More() {
		return &esError{Type: "parsing_exception", Reason: "request body contains more than one JSON value",
			Line: 1, Col: 1, status: http.StatusBadRequest}
	}
	return nil
}

// indexSettings are the settings we echo back; they do not change behaviour.
type indexSettings struct {
	Shards   int `json:"number_of_shards"`
	Replicas int `json:"number_of_replicas"`
}
