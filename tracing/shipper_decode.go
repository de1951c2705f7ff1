package tracing

import (
	"encoding/json"
	"errors"

	"github.com/olivere/elastic/v7"

	"github.com/kobs-dev/kobs/internal/jsonparse"
)

// bulkDecoder is the shipper's olivere decoder (elastic.SetDecoder): a _bulk
// answer holds one item per event, and encoding/json's reflection over it
// cost about as much CPU as the store spends indexing the events. It
// decodes a BulkResponse by hand into what encoding/json would make of it,
// and leaves every other response, and any bulk answer it does not
// recognise, to encoding/json (as olivere's DefaultDecoder).
type bulkDecoder struct{}

func (bulkDecoder) Decode(data []byte, v any) error {
	if res, ok := v.(*elastic.BulkResponse); ok {
		var fast elastic.BulkResponse
		if decodeBulkResponse(data, &fast) == nil {
			*res = fast
			return nil
		}
	}
	return json.Unmarshal(data, v)
}

var errUnusual = errors.New("not a plain bulk answer")

// decodeBulkResponse decodes {"took":..,"errors":..,"items":[{"<action>":
// {..}},..]}; the rare parts of an item (error details, get results) go
// through encoding/json.
func decodeBulkResponse(data []byte, res *elastic.BulkResponse) error {
	p := jsonparse.NewScanner(data)
	// The index names, the type and the result repeat from item to item:
	// one string each per answer.
	seen := map[string]string{}
	intern := func(dst *string) error {
		b, err := p.StrBytes()
		if err != nil {
			return err
		}
		v, ok := seen[string(b)]
		if !ok {
			v = string(b)
			seen[v] = v
		}
		*dst = v
		return nil
	}
	return object(&p, func(key []byte) error {
		switch string(key) {
		case "took":
			n, err := p.Int()
			res.Took = int(n)
			return err
		case "errors":
			switch p.Peek() {
			case 't':
				res.Errors = true
				return p.Lit("true")
			case 'f':
				res.Errors = false
				return p.Lit("false")
			}
			return errUnusual
		case "items":
			if !p.Consume('[') {
				return errUnusual
			}
			res.Items = make([]map[string]*elastic.BulkResponseItem, 0, 1024)
			if p.Consume(']') {
				return nil
			}
			for {
				item := map[string]*elastic.BulkResponseItem{}
				err := object(&p, func(action []byte) error {
					r := &elastic.BulkResponseItem{}
					item[string(action)] = r
					return bulkItem(&p, r, intern)
				}, false)
				if err != nil {
					return err
				}
				res.Items = append(res.Items, item)
				if p.Consume(',') {
					continue
				}
				if p.Consume(']') {
					return nil
				}
				return errUnusual
			}
		}
		return errUnusual
	}, true)
}

func bulkItem(p *jsonparse.Scanner, r *elastic.BulkResponseItem, intern func(*string) error) error {
	return object(p, func(key []byte) error {
		var err error
		var n int64
		switch string(key) {
		case "_index":
			err = intern(&r.Index)
		case "_type":
			err = intern(&r.Type)
		case "_id":
			r.Id, err = p.Str()
		case "result":
			err = intern(&r.Result)
		case "_version":
			r.Version, err = p.Int()
		case "_seq_no":
			r.SeqNo, err = p.Int()
		case "_primary_term":
			r.PrimaryTerm, err = p.Int()
		case "status":
			n, err = p.Int()
			r.Status = int(n)
		case "_shards":
			r.Shards = &elastic.ShardsInfo{}
			err = object(p, func(key []byte) error {
				var err error
				var n int64
				switch string(key) {
				case "total":
					n, err = p.Int()
					r.Shards.Total = int(n)
				case "successful":
					n, err = p.Int()
					r.Shards.Successful = int(n)
				case "failed":
					n, err = p.Int()
					r.Shards.Failed = int(n)
				default:
					return errUnusual
				}
				return err
			}, false)
		case "error", "get", "forced_refresh":
			raw, err := p.Raw()
			if err != nil {
				return err
			}
			var dst any = &r.Error
			switch string(key) {
			case "get":
				dst = &r.GetResult
			case "forced_refresh":
				dst = &r.ForcedRefresh
			}
			return json.Unmarshal(raw, dst)
		default:
			return errUnusual
		}
		return err
	}, false)
}

// object reads an object, calling member for each member's name with the
// scanner at its value; top says the object must end the input.
func object(p *jsonparse.Scanner, member func(key []byte) error, top bool) error {
	if !p.Consume('{') {
		return errUnusual
	}
	if !p.Consume('}') {
		for {
			key, err := p.StrBytes()
			if err != nil {
				return err
			}
			if !p.Consume(':') {
				return errUnusual
			}
			if err := member(key); err != nil {
				return err
			}
			if p.Consume(',') {
				continue
			}
			if p.Consume('}') {
				break
			}
			return errUnusual
		}
	}
	if top && !p.End() {
		return errUnusual
	}
	return nil
}
