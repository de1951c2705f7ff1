package wire

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Header is a decoded request header (v0-v2).
type Header struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string
}

// Errors from ParseHeader and ParseRequest. The connection is closed on any
// of them, as Kafka closes it when a request cannot be parsed.
var (
	ErrShortFrame     = errors.New("request frame shorter than a request header")
	ErrUnknownKey     = errors.New("unknown api key")
	ErrMalformedFrame = errors.New("malformed request")
)

// ParseHeader decodes the fixed part of a request header and returns the
// header and the bytes that follow the client id. Tagged fields (header v2)
// depend on the version being flexible and are skipped by ParseBody.
func ParseHeader(frame []byte) (Header, []byte, error) {
	if len(frame) < 10 { // key, version, correlation id, client id length
		return Header{}, nil, ErrShortFrame
	}
	r := kbin.Reader{Src: frame}
	h := Header{Key: r.Int16(), Version: r.Int16(), CorrelationID: r.Int32()}
	// The client id stays a non-compact nullable string even in header v2,
	// so that brokers can always read it before knowing the version table.
	if cid := r.NullableString(); cid != nil {
		h.ClientID = *cid
	}
	if !r.Ok() {
		return Header{}, nil, fmt.Errorf("%w: truncated client id", ErrMalformedFrame)
	}
	return h, r.Src, nil
}

// A BodyDecoder decodes the body of one API key at a version in place of
// kmsg. It exists for bodies whose decoded form can be many times their
// wire size (a 100 MB CreateTopics frame of ten million 10-byte topics
// decodes into gigabytes): the decoder reads the array lengths from the
// wire first and decodes only a bounded part of a request it will refuse.
// It gets the body after the request header and its tags, and returns a
// request whose Key and version are the header's.
type BodyDecoder func(version int16, body []byte) (kmsg.Request, error)

// ParseBody decodes the request body of h.Key at h.Version. The caller has
// checked the version against the ApiVersions table.
func ParseBody(h Header, rest []byte) (kmsg.Request, error) { return parseBody(h, rest, nil) }

func parseBody(h Header, rest []byte, decoders map[int16]BodyDecoder) (kmsg.Request, error) {
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return nil, fmt.Errorf("%w %d", ErrUnknownKey, h.Key)
	}
	req.SetVersion(h.Version)
	if req.IsFlexible() {
		r := kbin.Reader{Src: rest}
		kmsg.SkipTags(&r)
		if !r.Ok() {
			return nil, fmt.Errorf("%w: bad header tags", ErrMalformedFrame)
		}
		rest = r.Src
	}
	if dec := decoders[h.Key]; dec != nil {
		req, err := dec(h.Version, rest)
		if err != nil {
			return nil, fmt.Errorf("%w: %s v%d: %v", ErrMalformedFrame, kmsg.NameForKey(h.Key), h.Version, err)
		}
		return req, nil
	}
	if err := req.ReadFrom(rest); err != nil {
		return nil, fmt.Errorf("%w: %s v%d: %v", ErrMalformedFrame, kmsg.NameForKey(h.Key), h.Version, err)
	}
	return req, nil
}

// Request is one client request moving through the broker. Exactly one of
// Respond, NoResponse or CloseConn must be called, from any goroutine; after
// that the connection reads its next request (Kafka mutes a connection while
// one of its requests is in flight, which is what keeps pipelined responses
// in order).
type Request struct {
	Header Header
	Msg    kmsg.Request
	// Listener is the name of the listener the request arrived on and
	// Remote the client's address.
	Listener string
	Remote   net.Addr
	// Size is the frame size in bytes, header included.
	Size int

	// Timing points, as Kafka's RequestMetrics split them.
	Received time.Time // frame read
	Dequeued time.Time // a handler took it off the request queue

	done      chan outcome
	doneOnce  sync.Once
	handledAt atomic.Int64  // unix nanos when Handle returned
	waiting   *atomic.Int64 // the server's count of answered, unsent responses
}

type outcome struct {
	resp      kmsg.Response
	closeConn error
	at        time.Time
	after     func() // RespondThen
}

// Respond sends resp as the answer to r.
func (r *Request) Respond(resp kmsg.Response) { r.finish(outcome{resp: resp}) }

// RespondThen sends resp and calls after once the connection is done with
// it (written, or the write failed), so buffers resp refers to can be
// reused. If the server shuts down before the response is picked up,
// after is not called.
func (r *Request) RespondThen(resp kmsg.Response, after func()) {
	r.finish(outcome{resp: resp, after: after})
}

// NoResponse completes r without writing anything (Produce with acks=0).
func (r *Request) NoResponse() { r.finish(outcome{}) }

// CloseConn completes r by closing its connection, logging why.
func (r *Request) CloseConn(why error) { r.finish(outcome{closeConn: why}) }

func (r *Request) finish(o outcome) {
	o.at = time.Now()
	r.doneOnce.Do(func() {
		if r.waiting != nil {
			r.waiting.Add(1)
		}
		r.done <- o
	})
}

// Timings is the life of one request, in Kafka's RequestMetrics terms.
type Timings struct {
	RequestQueue  time.Duration // received -> dequeued by a handler
	Local         time.Duration // handler work before the request parked or answered
	Remote        time.Duration // parked waiting (long-poll fetch, acks=all)
	ResponseQueue time.Duration // answered -> picked up by the connection
	ResponseSend  time.Duration // writing the response
	Total         time.Duration
}
