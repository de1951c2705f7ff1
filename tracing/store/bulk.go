package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"strconv"
	"sync"

	"github.com/kobs-dev/kobs/internal/jsonparse"
)

// bulkOp is one action of a _bulk request (or of a single-document API call,
// which runs through the same code).
type bulkOp struct {
	action string // index, create, delete, update
	index  string
	id     string
	autoID bool
	source []byte // index/create document, update body

	pre *prepared // index/create: decoded (and built) before the write lock
}

// prepared is an index/create document decoded and built outside the
// index's write lock, in parallel: the costly part of a write. The build is
// valid only against the mapping snapshot it used and only if it added no
// dynamic field; otherwise apply builds again under the lock.
type prepared struct {
	obj map[string]any
	err error // the source is not a JSON object
	ms  *mappingState
	doc *parsedDoc // nil: build under the lock
	e   *esError   // the build's refusal (mapping errors), valid with ms
}

// shardsInfo is the "_shards" object of write and refresh responses. A
// single-node store has one primary per index; replicas are reported as
// configured but unassigned, as on a one-node Elasticsearch cluster.
type shardsInfo struct {
	Total      int  `json:"total"`
	Successful int  `json:"successful"`
	Skipped    *int `json:"skipped,omitempty"`
	Failed     int  `json:"failed"`
}

// bulkItem is the body of one entry of a bulk response's "items" (and of
// the single-document write APIs). Field order follows Elasticsearch.
type bulkItem struct {
	Index       string      `json:"_index"`
	Type        string      `json:"_type"`
	ID          string      `json:"_id"`
	Version     int64       `json:"_version,omitempty"`
	Result      string      `json:"result,omitempty"`
	Shards      *shardsInfo `json:"_shards,omitempty"`
	SeqNo       *int64      `json:"_seq_no,omitempty"`
	PrimaryTerm int64       `json:"_primary_term,omitempty"`
	Status      int         `json:"status"`
	Error       *esError    `json:"error,omitempty"`
}

func failedItem(op *bulkOp, e *esError) bulkItem {
	return bulkItem{Index: op.index, Type: "_doc", ID: op.id, Status: e.status, Error: e}
}

// parseBulk splits an NDJSON bulk body. Errors in action lines fail the whole
// request (as in Elasticsearch); errors in sources are reported per item later.
func parseBulk(body []byte, defaultIndex string) ([]*bulkOp, *esError) {
	var ops []*bulkOp
	line := 0
	next := func() ([]byte, bool) {
		for len(body) > 0 {
			var l []byte
			if i := bytes.IndexByte(body, '\n'); i >= 0 {
				l, body = body[:i], body[i+1:]
			} else {
				l, body = body, nil
			}
			line++
			l = bytes.TrimRight(l, "\r")
			if len(bytes.TrimSpace(l)) > 0 {
				return l, true
			}
		}
		return nil, false
	}
	for {
		actionLine, ok := next()
		if !ok {
			break
		}
		op, ok := parseAction(actionLine, defaultIndex)
		if !ok {
			return nil, errIllegalArgument("Malformed action/metadata line [%d], expected START_OBJECT or END_OBJECT but found [%s]", line, firstToken(actionLine))
		}
		switch op.action {
		case "index", "create", "update":
			src, ok := next()
			if !ok {
				return nil, &esError{Type: "action_request_validation_exception",
					Reason: "Validation Failed: 1: no requests added;", status: http.StatusBadRequest}
			}
			op.source = src
		case "delete":
		default:
			return nil, errIllegalArgument("Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update] but found [%s]", line, op.action)
		}
		if op.index == "" {
			return nil, &esError{Type: "action_request_validation_exception",
				Reason: "Validation Failed: 1: index is missing;", status: http.StatusBadRequest}
		}
		if op.id == "" {
			if op.action != "index" && op.action != "create" {
				return nil, &esError{Type: "action_request_validation_exception",
					Reason: "Validation Failed: 1: id is missing;", status: http.StatusBadRequest}
			}
			// Elasticsearch generates 20-character URL-safe ids.
			op.id, op.autoID = randomID(15), true
		}
		if len(op.id) > 512 {
			return nil, &esError{Type: "action_request_validation_exception",
				Reason: fmt.Sprintf("Validation Failed: 1: id [%s] is too long, must be no longer than 512 bytes but was: %d;", op.id, len(op.id)),
				status: http.StatusBadRequest}
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return nil, &esError{Type: "action_request_validation_exception",
			Reason: "Validation Failed: 1: no requests added;", status: http.StatusBadRequest}
	}
	return ops, nil
}

// parseAction decodes an action line {"<action>": {"_index": .., "_id": ..}}
// without building maps: it is one line in two of every _bulk.
func parseAction(line []byte, defaultIndex string) (*bulkOp, bool) {
	p := jsonparse.NewScanner(line)
	op := &bulkOp{index: defaultIndex}
	if !p.Consume('{') || p.Peek() != '"' {
		return nil, false
	}
	name, err := p.Str()
	if err != nil {
		return nil, false
	}
	op.action = name
	if !p.Consume(':') {
		return nil, false
	}
	switch {
	case p.Consume('{'):
		if p.Consume('}') {
			break
		}
		for done := false; !done; {
			if p.Peek() != '"' {
				return nil, false
			}
			key, err := p.Str()
			if err != nil || !p.Consume(':') {
				return nil, false
			}
			v, err := p.Value()
			if err != nil {
				return nil, false
			}
			if key == "_index" || key == "_id" {
				dst := &op.index
				if key == "_id" {
					dst = &op.id
				}
				switch x := v.(type) {
				case string:
					*dst = x
				case nil:
				default:
					return nil, false
				}
			}
			switch {
			case p.Consume(','):
			case p.Consume('}'):
				done = true
			default:
				return nil, false
			}
		}
	default:
		if p.Lit("null") != nil {
			return nil, false
		}
	}
	if !p.Consume('}') {
		return nil, false // not exactly one action
	}
	return op, p.End()
}

func firstToken(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	t, err := dec.Token()
	if err != nil {
		return "VALUE_STRING"
	}
	switch t.(type) {
	case json.Delim:
		if t == json.Delim('[') {
			return "START_ARRAY"
		}
		return "START_OBJECT"
	case string:
		return "VALUE_STRING"
	case float64:
		return "VALUE_NUMBER"
	case bool:
		return "VALUE_BOOLEAN"
	}
	return "VALUE_NULL"
}

// updateBody is the subset of the update API's body we implement.
type updateBody struct {
	Doc         json.RawMessage `json:"doc"`
	Upsert      json.RawMessage `json:"upsert"`
	DocAsUpsert bool            `json:"doc_as_upsert"`
	DetectNoop  *bool           `json:"detect_noop"`
	Script      json.RawMessage `json:"script"`
}

// pendingDoc is a write of a batch waiting for the log write to succeed
// before it enters the in-memory index.
type pendingDoc struct {
	op       byte
	replaces int // 1 when a live document has the _id (known from the lookup), else 0
	meta     docMeta
	doc      *parsedDoc
	srcAt    int // offset of the source within the batch's record bytes
}

// apply runs ops (all for this index) in order and fills out[k] for ops[k].
// The batch's records are appended to the log with one write and one fsync;
// nothing is acknowledged unless that succeeded, so a successful item means
// the document survives a crash, and a failed write fails every item that
// depended on it (the shipper retries them and does not commit).
func (i *esIndex) apply(ops []*bulkOp, out []bulkItem) {
	i.writeMu.Lock()
	defer i.writeMu.Unlock()

	replicas := i.meta.Settings.Replicas
	shards := &shardsInfo{Total: 1 + replicas, Successful: 1}
	b := &docBuilder{ms: i.mapping.Load()}
	buf := i.buf[:0]
	var docs []pendingDoc
	overlay := map[string]*storedDoc{}
	// lookup returns the current state of op's document; its source is
	// read only for updates.
	lookup := func(op *bulkOp, needSource bool) (*storedDoc, error) {
		if d, ok := overlay[op.id]; ok {
			return d, nil
		}
		d := &storedDoc{}
		overlay[op.id] = d
		if op.autoID {
			return d, nil
		}
		i.mem.mu.RLock()
		doc, ok := i.mem.ids.get(op.id)
		var m docMeta
		if ok {
			m = *i.mem.doc(doc)
		}
		i.mem.mu.RUnlock()
		if !ok {
			return d, nil
		}
		*d = storedDoc{exists: true, version: m.version, seqNo: m.seqNo}
		if needSource {
			src, err := i.log.read(m.loc, m.srcLen)
			if err != nil {
				delete(overlay, op.id)
				return nil, err
			}
			d.source = src
		}
		return d, nil
	}
	seq := i.seqNo
	var pending []int // items whose success depends on the write
	ok := func(k int, op *bulkOp, result string, status int, version, seqNo int64) {
		s := seqNo
		out[k] = bulkItem{Index: i.name, Type: "_doc", ID: op.id, Version: version, Result: result,
			Shards: shards, SeqNo: &s, PrimaryTerm: 1, Status: status}
		pending = append(pending, k)
	}
	write := func(k int, op *bulkOp, cur *storedDoc, src []byte, obj map[string]any, created bool) {
		version := cur.version + 1
		if !cur.exists && cur.version == 0 {
			version = 1
		}
		var doc *parsedDoc
		if obj == nil {
			doc = b.doc // built by prepare against the current mapping
		} else {
			var e *esError
			if doc, e = b.build(op.id, obj); e != nil {
				out[k] = failedItem(op, e)
				return
			}
		}
		seq++
		var srcAt int
		at := len(buf)
		buf, srcAt = appendRecord(buf, opIndex, seq, version, op.id, src)
		replaces := 0
		if cur.exists {
			replaces = 1
		}
		docs = append(docs, pendingDoc{op: opIndex, doc: doc, srcAt: at + srcAt, replaces: replaces,
			meta: docMeta{id: op.id, srcLen: uint32(len(src)), seqNo: seq, version: version}})
		*cur = storedDoc{exists: true, source: src, version: version, seqNo: seq}
		result, status := "updated", http.StatusOK
		if created {
			result, status = "created", http.StatusCreated
		}
		ok(k, op, result, status, version, seq)
	}

	for k, op := range ops {
		op.index = i.name
		cur, err := lookup(op, op.action == "update")
		if err != nil {
			out[k] = failedItem(op, writeFailure(i.name, err))
			continue
		}
		if op.action == "update" && cur.exists && cur.source == nil {
			// Looked up earlier in this batch without its source.
			i.mem.mu.RLock()
			doc, ok := i.mem.ids.get(op.id)
			var m docMeta
			if ok {
				m = *i.mem.doc(doc)
			}
			i.mem.mu.RUnlock()
			if ok && m.seqNo == cur.seqNo {
				if cur.source, err = i.log.read(m.loc, m.srcLen); err != nil {
					out[k] = failedItem(op, writeFailure(i.name, err))
					continue
				}
			}
		}
		switch op.action {
		case "index", "create":
			if op.action == "create" && cur.exists {
				out[k] = failedItem(op, errVersionConflict(i.name, i.meta.UUID, op.id, cur.version))
				continue
			}
			if op.pre == nil {
				op.pre = &prepared{}
				op.pre.obj, op.pre.err = decodeSource(op.source)
			}
			if op.pre.err != nil {
				out[k] = failedItem(op, errMapperParsing(errJSONParse(op.pre.err), "failed to parse"))
				continue
			}
			if op.pre.ms == b.ms && (op.pre.doc != nil || op.pre.e != nil) {
				if op.pre.e != nil {
					out[k] = failedItem(op, op.pre.e)
					continue
				}
				b.id, b.doc = op.id, op.pre.doc
				write(k, op, cur, op.source, nil, !cur.exists)
				continue
			}
			write(k, op, cur, op.source, op.pre.obj, !cur.exists)
		case "delete":
			seq++
			// Logged even when there is nothing to delete: the sequence
			// number it took must survive a restart.
			buf, _ = appendRecord(buf, opDelete, seq, cur.version+1, op.id, nil)
			docs = append(docs, pendingDoc{op: opDelete, meta: docMeta{id: op.id}})
			if !cur.exists {
				v := cur.version + 1
				out[k] = bulkItem{Index: i.name, Type: "_doc", ID: op.id, Version: v, Result: "not_found",
					Shards: shards, SeqNo: ptr(seq), PrimaryTerm: 1, Status: http.StatusNotFound}
				pending = append(pending, k)
				continue
			}
			*cur = storedDoc{version: cur.version + 1, seqNo: seq}
			ok(k, op, "deleted", http.StatusOK, cur.version, seq)
		case "update":
			var ub updateBody
			if err := json.Unmarshal(op.source, &ub); err != nil {
				out[k] = failedItem(op, errParsing("failed to parse update request: %v", err))
				continue
			}
			if len(ub.Script) > 0 {
				out[k] = failedItem(op, errIllegalArgument("scripted updates are not supported by kobs tracestore"))
				continue
			}
			if len(ub.Doc) == 0 {
				out[k] = failedItem(op, &esError{Type: "action_request_validation_exception",
					Reason: "Validation Failed: 1: script or doc is missing;", status: http.StatusBadRequest})
				continue
			}
			partial, err := decodeSource(ub.Doc)
			if err != nil {
				out[k] = failedItem(op, errMapperParsing(errJSONParse(err), "failed to parse"))
				continue
			}
			if !cur.exists {
				var src []byte
				switch {
				case len(ub.Upsert) > 0:
					src = ub.Upsert
				case ub.DocAsUpsert:
					src = ub.Doc
				default:
					out[k] = failedItem(op, errDocumentMissing(i.name, i.meta.UUID, op.id))
					continue
				}
				obj, err := decodeSource(src)
				if err != nil {
					out[k] = failedItem(op, errMapperParsing(errJSONParse(err), "failed to parse"))
					continue
				}
				write(k, op, cur, src, obj, true)
				continue
			}
			old, err := decodeSource(cur.source)
			if err != nil {
				out[k] = failedItem(op, writeFailure(i.name, fmt.Errorf("stored source of [%s] is corrupt: %w", op.id, err)))
				continue
			}
			merged, changed := mergeSource(old, partial)
			if !changed && (ub.DetectNoop == nil || *ub.DetectNoop) {
				s := cur.seqNo
				out[k] = bulkItem{Index: i.name, Type: "_doc", ID: op.id, Version: cur.version, Result: "noop",
					Shards: &shardsInfo{}, SeqNo: &s, PrimaryTerm: 1, Status: http.StatusOK}
				continue
			}
			src, err := json.Marshal(merged)
			if err != nil {
				out[k] = failedItem(op, writeFailure(i.name, err))
				continue
			}
			write(k, op, cur, src, merged, false)
		}
	}
	if cap(buf) <= 16<<20 {
		i.buf = buf[:0]
	}
	if len(pending) == 0 {
		return
	}
	fail := func(err error) {
		e := writeFailure(i.name, err)
		for _, k := range pending {
			out[k] = failedItem(&bulkOp{index: i.name, id: out[k].ID}, e)
		}
	}
	if b.changed {
		// The mapping the new documents need is durable before they are.
		m := i.meta
		m.Mappings = b.ms.root
		if err := writeMeta(i.path, m); err != nil {
			fail(err)
			return
		}
		i.meta.Mappings = m.Mappings // only the mapping: readers read the other fields unlocked
	}
	segID, at, err := i.log.write(buf)
	if err != nil {
		fail(err)
		return
	}
	i.seqNo = seq
	if b.changed {
		i.mapping.Store(b.ms)
	}
	i.mem.mu.Lock()
	for _, d := range docs {
		if d.op == opDelete {
			i.mem.remove(d.meta.id)
			continue
		}
		d.meta.loc = uint64(segID)<<32 | uint64(at+int64(d.srcAt))
		i.mem.add(d.meta, d.doc, d.replaces)
	}
	i.mem.mu.Unlock()
}

func ptr[T any](v T) *T { return &v }

// mergeSource applies a partial document like Elasticsearch's update API:
// objects merge recursively, everything else is replaced. changed reports
// whether the result differs from old (for noop detection).
func mergeSource(old, partial map[string]any) (map[string]any, bool) {
	changed := false
	out := make(map[string]any, len(old)+len(partial))
	for k, v := range old {
		out[k] = v
	}
	for k, pv := range partial {
		ov, exists := out[k]
		om, oIsMap := ov.(map[string]any)
		pm, pIsMap := pv.(map[string]any)
		if exists && oIsMap && pIsMap {
			m, c := mergeSource(om, pm)
			out[k] = m
			changed = changed || c
			continue
		}
		if !exists || !reflect.DeepEqual(ov, pv) {
			changed = true
		}
		out[k] = pv
	}
	return out, changed
}

// bulkItems is a _bulk response's "items": [{action: item}, ...]. It is
// encoded by hand because it is most of the response of every _bulk, and
// reflection cost more than a microsecond per item; failed items, which
// carry an error object, go through encoding/json.
type bulkItems struct {
	ops []*bulkOp
	out []bulkItem
}

func (b bulkItems) MarshalJSON() ([]byte, error) {
	buf := make([]byte, 0, 200*len(b.out)+2)
	buf = append(buf, '[')
	for k := range b.out {
		if k > 0 {
			buf = append(buf, ',')
		}
		it := &b.out[k]
		buf = append(buf, '{')
		buf = appendJSONString(buf, b.ops[k].action)
		buf = append(buf, ':')
		if it.Error != nil {
			raw, err := json.Marshal(it)
			if err != nil {
				return nil, err
			}
			buf = append(buf, raw...)
			buf = append(buf, '}')
			continue
		}
		buf = append(buf, `{"_index":`...)
		buf = appendJSONString(buf, it.Index)
		buf = append(buf, `,"_type":`...)
		buf = appendJSONString(buf, it.Type)
		buf = append(buf, `,"_id":`...)
		buf = appendJSONString(buf, it.ID)
		if it.Version != 0 {
			buf = append(buf, `,"_version":`...)
			buf = strconv.AppendInt(buf, it.Version, 10)
		}
		if it.Result != "" {
			buf = append(buf, `,"result":`...)
			buf = appendJSONString(buf, it.Result)
		}
		if sh := it.Shards; sh != nil {
			buf = append(buf, `,"_shards":{"total":`...)
			buf = strconv.AppendInt(buf, int64(sh.Total), 10)
			buf = append(buf, `,"successful":`...)
			buf = strconv.AppendInt(buf, int64(sh.Successful), 10)
			if sh.Skipped != nil {
				buf = append(buf, `,"skipped":`...)
				buf = strconv.AppendInt(buf, int64(*sh.Skipped), 10)
			}
			buf = append(buf, `,"failed":`...)
			buf = strconv.AppendInt(buf, int64(sh.Failed), 10)
			buf = append(buf, '}')
		}
		if it.SeqNo != nil {
			buf = append(buf, `,"_seq_no":`...)
			buf = strconv.AppendInt(buf, *it.SeqNo, 10)
		}
		if it.PrimaryTerm != 0 {
			buf = append(buf, `,"_primary_term":`...)
			buf = strconv.AppendInt(buf, it.PrimaryTerm, 10)
		}
		buf = append(buf, `,"status":`...)
		buf = strconv.AppendInt(buf, int64(it.Status), 10)
		buf = append(buf, "}}"...)
	}
	return append(buf, ']'), nil
}

// appendJSONString appends s as a JSON string; strings that need escaping
// go through encoding/json.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			raw, _ := json.Marshal(s)
			return append(buf, raw...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// prepare decodes and builds the index/create documents of ops against the
// index's current mapping, spread over the CPUs, before apply takes the
// write lock: with one _bulk at a time (a shipper's usual pattern) the
// decoding would otherwise run on one core.
func (i *esIndex) prepare(ops []*bulkOp) {
	ms := i.mapping.Load()
	var todo []*bulkOp
	for _, op := range ops {
		if op.action == "index" || op.action == "create" {
			todo = append(todo, op)
		}
	}
	work := func(part []*bulkOp) {
		b := &docBuilder{ms: ms}
		for _, op := range part {
			pre := &prepared{ms: ms}
			op.pre = pre
			if pre.obj, pre.err = decodeSource(op.source); pre.err != nil {
				continue
			}
			doc, e := b.build(op.id, pre.obj)
			if b.changed {
				// A dynamic field: the mapping change is made under the
				// write lock, in order.
				b = &docBuilder{ms: ms}
				continue
			}
			pre.doc, pre.e = doc, e
		}
	}
	parallel(len(todo), func(lo, hi int) { work(todo[lo:hi]) })
}

// parallel splits [0, n) into one range per CPU (none for small n) and runs
// fn on them concurrently.
func parallel(n int, fn func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n/256+1)
	if w <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	per := (n + w - 1) / w
	for lo := 0; lo < n; lo += per {
		wg.Go(func() { fn(lo, min(lo+per, n)) })
	}
	wg.Wait()
}
