package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// serveConn runs one client connection: read a frame, hand it to the
// handler pool, wait for its outcome, write the response, repeat. Reading
// stops while a request is in flight, as Kafka mutes a channel, so pipelined
// requests are answered strictly in order.
func (s *Server) serveConn(listener string, c net.Conn) {
	defer c.Close()
	log := s.log.With("remote", c.RemoteAddr().String(), "listener", listener)
	br := bufio.NewReaderSize(c, 64<<10)
	var (
		sizeBuf [4]byte
		wbuf    []byte
	)
	for {
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && s.ctx.Err() == nil {
				log.Debug("connection read failed", "err", err)
			}
			return
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 0 || size > s.cfg.MaxRequestBytes {
			// Kafka's InvalidReceiveException: refuse before allocating
			// and drop the connection.
			log.Warn("request size exceeds socket.request.max.bytes; closing connection",
				"size", uint32(size), "max", s.cfg.MaxRequestBytes)
			return
		}
		readStart := time.Now()
		frame := make([]byte, size)
		if _, err := io.ReadFull(br, frame); err != nil {
			log.Debug("connection closed mid-request", "err", err)
			return
		}
		r, err := s.decode(frame)
		if err != nil {
			log.Warn("closing connection on bad request", "err", err)
			return
		}
		r.Listener, r.Remote, r.Size, r.Received = listener, c.RemoteAddr(), int(size)+4, time.Now()
		r.waiting = &s.responsesWaiting
		s.netBusy.Add(int64(r.Received.Sub(readStart)))

		select {
		case s.queue <- r:
		case <-s.ctx.Done():
			return
		}
		var o outcome
		select {
		case o = <-r.done:
			s.responsesWaiting.Add(-1)
		case <-s.ctx.Done():
			return
		}
		if o.closeConn != nil {
			log.Warn("closing connection", "api", kmsg.NameForKey(r.Header.Key), "client", r.Header.ClientID, "err", o.closeConn)
			return
		}
		pickup := time.Now()
		if o.resp != nil {
			wbuf = appendResponse(wbuf[:0], r.Header.CorrelationID, o.resp)
			if _, err := c.Write(wbuf); err != nil {
				log.Debug("response write failed", "err", err)
				return
			}
			if cap(wbuf) > 1<<20 {
				wbuf = nil // do not pin one big fetch response per idle connection
			}
		}
		sent := time.Now()
		s.netBusy.Add(int64(sent.Sub(pickup)))
		if s.cfg.Observe != nil {
			s.cfg.Observe(r, r.timings(o.at, pickup, sent), o.resp)
		}
	}
}

// decode checks a frame against the version table and parses it. Unknown
// keys and unsupported versions close the connection as Kafka does, except
// ApiVersions, which is answered in v0 (KIP-511) without parsing the body.
func (s *Server) decode(frame []byte) (*Request, error) {
	h, rest, err := ParseHeader(frame)
	if err != nil {
		return nil, err
	}
	r := &Request{Header: h, done: make(chan outcome, 1)}
	v, ok := s.versions[h.Key]
	switch {
	case !ok:
		return nil, &VersionError{Header: h, Known: kmsg.RequestForKey(h.Key) != nil}
	case h.Key == kmsg.ApiVersions.Int16() && h.Version > v.MaxVersion:
		return r, nil
	case h.Version < v.MinVersion || h.Version > v.MaxVersion:
		return nil, &VersionError{Header: h, Known: true, Min: v.MinVersion, Max: v.MaxVersion}
	}
	if r.Msg, err = ParseBody(h, rest); err != nil {
		return nil, err
	}
	return r, nil
}

// VersionError is a request for an API key or version we do not serve.
type VersionError struct {
	Header   Header
	Known    bool // the key exists in the protocol
	Min, Max int16
}

func (e *VersionError) Error() string {
	if !e.Known {
		return "unknown api key " + strconv.Itoa(int(e.Header.Key))
	}
	if e.Max == 0 && e.Min == 0 {
		return "unsupported api " + kmsg.NameForKey(e.Header.Key)
	}
	return "unsupported version " + strconv.Itoa(int(e.Header.Version)) + " of " + kmsg.NameForKey(e.Header.Key) +
		" (serving " + strconv.Itoa(int(e.Min)) + "-" + strconv.Itoa(int(e.Max)) + ")"
}

// appendResponse frames resp: size, correlation id, header tags when the
// response is flexible (never for ApiVersions, whose response header stays
// v0 so any client can read it), body.
func appendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16() {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst, uint32(len(dst)-4))
	return dst
}

// handled marks when Handle returned, to split local from remote time.
func (r *Request) markHandled() { r.handledAt.Store(time.Now().UnixNano()) }

func (r *Request) timings(answered, pickup, sent time.Time) Timings {
	t := Timings{
		RequestQueue:  r.Dequeued.Sub(r.Received),
		ResponseQueue: pickup.Sub(answered),
		ResponseSend:  sent.Sub(pickup),
		Total:         sent.Sub(r.Received),
	}
	if h := r.handledAt.Load(); h != 0 && time.Unix(0, h).Before(answered) {
		handled := time.Unix(0, h)
		t.Local = handled.Sub(r.Dequeued)
		t.Remote = answered.Sub(handled)
	} else {
		t.Local = answered.Sub(r.Dequeued)
	}
	return t
}
