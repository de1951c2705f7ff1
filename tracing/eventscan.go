package tracing

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/kobs-dev/kobs/internal/jsonparse"
)

// eventHead is what the shipper needs of an event to route it: the daily
// index (TS), the document id (MsgID, Type, Group), the groups index
// (Topic, Group) and the drop metrics (ClientID, Dropped, Error). The event
// itself goes to the store as the bytes read from the trace topic. Byte
// fields point into those bytes (or hold a decoded copy when the JSON
// string had escapes).
type eventHead struct {
	typ      string // TypeProduce, TypeConsume or TypeDrop
	msgID    []byte
	topic    []byte
	group    []byte
	clientID []byte
	reason   []byte // "error": a drop event's reason
	ts       int64
	dropped  int64
}

// batchShape is what ParseEvent's batch validation looks at.
type batchShape struct {
	offset, lastOffset, records int64
	msgIDs                      int
	firstMsgID                  []byte
	emptyMsgID                  bool
	// lengths of the arrays that must be empty or aligned with msg_ids
	keys, traceIDs, sizes, latencies, recordTSDeltas, e2es int
}

// scanEvent reads one trace-topic event as ParseEvent does and accepts and
// refuses the same events (a test and a fuzz target compare them), but
// without decoding it: it checks the JSON syntax and the type of every
// field of Event, and keeps only eventHead. encoding/json's decode of every
// event was most of the shipper's CPU.
//
// One difference: field names match exactly, as the store indexes them,
// where encoding/json also matches them case-insensitively ("Type" would
// fill Event.Type but is not the store's "type" field).
func scanEvent(raw []byte) (eventHead, error) {
	var h eventHead
	var b batchShape
	var typ []byte
	p := jsonparse.NewScanner(raw)
	if p.Peek() != '{' {
		if err := p.Skip(); err != nil {
			return h, corrupt(err)
		}
		return h, fmt.Errorf("%w: not a JSON object", ErrCorruptEvent)
	}
	p.Consume('{')
	if !p.Consume('}') {
		for {
			key, err := p.StrBytes()
			if err != nil {
				return h, corrupt(err)
			}
			if !p.Consume(':') {
				return h, corrupt(p.Err("after object key"))
			}
			if err := h.field(&p, &b, &typ, key); err != nil {
				return h, corrupt(err)
			}
			if p.Consume(',') {
				continue
			}
			if p.Consume('}') {
				break
			}
			return h, corrupt(p.Err("after object key:value pair"))
		}
	}
	if !p.End() {
		return h, corrupt(p.Err("after top-level value"))
	}
	switch string(typ) {
	case TypeProduce:
		h.typ = TypeProduce
	case TypeConsume:
		h.typ = TypeConsume
	case TypeDrop:
		h.typ = TypeDrop
	}
	switch {
	case h.typ == "":
		return h, fmt.Errorf("%w: unknown type %q", ErrCorruptEvent, typ)
	case len(h.msgID) == 0:
		return h, fmt.Errorf("%w: no msg_id", ErrCorruptEvent)
	case len(h.topic) == 0:
		return h, fmt.Errorf("%w: no topic", ErrCorruptEvent)
	case h.ts <= 0:
		return h, fmt.Errorf("%w: no ts", ErrCorruptEvent)
	case h.typ == TypeConsume && len(h.group) == 0:
		return h, fmt.Errorf("%w: consume event without group", ErrCorruptEvent)
	case h.typ == TypeDrop && h.dropped <= 0:
		return h, fmt.Errorf("%w: drop event without a count", ErrCorruptEvent)
	case b.msgIDs > 0:
		if err := b.validate(&h); err != nil {
			return h, fmt.Errorf("%w: batch event: %v", ErrCorruptEvent, err)
		}
	}
	return h, nil
}

func corrupt(err error) error { return fmt.Errorf("%w: %v", ErrCorruptEvent, err) }

// validate is Event.validateBatch on the shape.
func (b *batchShape) validate(h *eventHead) error {
	n := b.msgIDs
	aligned := func(l int) bool { return l == 0 || l == n }
	switch {
	case h.typ == TypeDrop:
		return fmt.Errorf("type %q", h.typ)
	case !bytes.Equal(h.msgID, b.firstMsgID):
		return errors.New("msg_id is not msg_ids[0]")
	case b.records != int64(n):
		return fmt.Errorf("records %d for %d msg_ids", b.records, n)
	case b.offset < 0 || b.lastOffset != b.offset+int64(n)-1:
		return fmt.Errorf("offsets %d..%d for %d records", b.offset, b.lastOffset, n)
	case !aligned(b.keys), !aligned(b.traceIDs), !aligned(b.sizes), !aligned(b.latencies),
		!aligned(b.recordTSDeltas), !aligned(b.e2es):
		return errors.New("arrays not aligned with msg_ids")
	case b.emptyMsgID:
		return errors.New("empty message id")
	}
	return nil
}

// field reads the value of one member of the event object. As
// encoding/json does, a later member overwrites an earlier one of the same
// name, null leaves a string or number field as it was and empties a list,
// and members that are not Event fields are skipped.
func (h *eventHead) field(p *jsonparse.Scanner, b *batchShape, typ *[]byte, key []byte) error {
	switch string(key) {
	case "type":
		return optStr(p, typ)
	case "msg_id":
		return optStr(p, &h.msgID)
	case "topic":
		return optStr(p, &h.topic)
	case "group":
		return optStr(p, &h.group)
	case "client_id":
		return optStr(p, &h.clientID)
	case "error":
		return optStr(p, &h.reason)
	case "trace_id", "span_id", "key", "host", "member":
		var ignored []byte
		return optStr(p, &ignored)
	case "ts":
		return optInt(p, &h.ts, math.MinInt64, math.MaxInt64)
	case "dropped":
		return optInt(p, &h.dropped, math.MinInt64, math.MaxInt64)
	case "offset":
		return optInt(p, &b.offset, math.MinInt64, math.MaxInt64)
	case "last_offset":
		return optInt(p, &b.lastOffset, math.MinInt64, math.MaxInt64)
	case "records":
		return optInt(p, &b.records, math.MinInt64, math.MaxInt64)
	case "partition":
		var ignored int64
		return optInt(p, &ignored, math.MinInt32, math.MaxInt32)
	case "size", "send_ts", "record_ts", "latency_us", "first_ts":
		var ignored int64
		return optInt(p, &ignored, math.MinInt64, math.MaxInt64)
	case "e2e_us":
		// A number, or a batch consume event's array (see UnmarshalJSON).
		switch p.Peek() {
		case '[':
			return intList(p, &b.e2es)
		case 'n':
			b.e2es = 0
			return p.Lit("null")
		}
		var ignored int64
		b.e2es = 0
		return optInt(p, &ignored, math.MinInt64, math.MaxInt64)
	case "msg_ids":
		b.firstMsgID, b.emptyMsgID = nil, false
		return list(p, &b.msgIDs, func(i int) error {
			var id []byte
			if err := optStr(p, &id); err != nil {
				return err
			}
			if i == 0 {
				b.firstMsgID = id
			}
			if len(id) == 0 {
				b.emptyMsgID = true
			}
			return nil
		})
	case "dropped_ids":
		var ignored int
		return strList(p, &ignored, nil)
	case "keys":
		return strList(p, &b.keys, nil)
	case "trace_ids":
		return strList(p, &b.traceIDs, nil)
	case "sizes":
		return intList(p, &b.sizes)
	case "latencies_us":
		return intList(p, &b.latencies)
	case "record_ts_delta_ms":
		return intList(p, &b.recordTSDeltas)
	}
	return p.Skip()
}

// optStr reads a string field; null leaves *dst as it was.
func optStr(p *jsonparse.Scanner, dst *[]byte) error {
	if p.Peek() == 'n' {
		return p.Lit("null")
	}
	v, err := p.StrBytes()
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// optInt reads an integer field of a Go type holding [lo, hi]; null leaves
// *dst as it was.
func optInt(p *jsonparse.Scanner, dst *int64, lo, hi int64) error {
	if p.Peek() == 'n' {
		return p.Lit("null")
	}
	v, err := p.Int()
	if err != nil {
		return err
	}
	if v < lo || v > hi {
		return fmt.Errorf("number %d overflows the field", v)
	}
	*dst = v
	return nil
}

// strList reads a list of strings (null elements are empty strings), or
// null (no list), setting *n to its length and calling each (if not nil)
// on every element.
func strList(p *jsonparse.Scanner, n *int, each func(int, []byte)) error {
	return list(p, n, func(i int) error {
		var v []byte
		if err := optStr(p, &v); err != nil {
			return err
		}
		if each != nil {
			each(i, v)
		}
		return nil
	})
}

// intList reads a list of integers (null elements are 0), or null.
func intList(p *jsonparse.Scanner, n *int) error {
	return list(p, n, func(int) error {
		var ignored int64
		return optInt(p, &ignored, math.MinInt64, math.MaxInt64)
	})
}

func list(p *jsonparse.Scanner, n *int, elem func(int) error) error {
	*n = 0
	if p.Peek() == 'n' {
		return p.Lit("null")
	}
	if !p.Consume('[') {
		if err := p.Skip(); err != nil {
			return err
		}
		return errors.New("not a list")
	}
	if p.Consume(']') {
		return nil
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return err
		}
		*n = i + 1
		if p.Consume(',') {
			continue
		}
		if p.Consume(']') {
			return nil
		}
		return p.Err("after array element")
	}
}
