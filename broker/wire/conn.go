package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// serveConn runs one client connection: read a frame, hand it to the
// handler pool, wait for its outcome, write the response, repeat. Reading
// stops while a request is in flight, as Kafka mutes a channel, so pipelined
// requests are answered strictly in order.
//
// Memory per connection is bounded by what the client actually sends and
// reads: the body buffer grows as bytes arrive (readFrame), a frame must
// arrive within ReadTimeout, a response write must progress within
// WriteTimeout, and a connection idle for IdleTimeout is closed.
func (s *Server) serveConn(l *listener, c net.Conn) {
	log := s.log.With("remote", c.RemoteAddr().String(), "listener", l.name)
	// Small: idle connections are the many, and bodies bigger than the
	// buffer are read straight into the frame.
	br := bufio.NewReaderSize(c, 4<<10)
	var (
		sizeBuf [4]byte
		wbuf    []byte
	)
	for {
		if s.cfg.IdleTimeout > 0 {
			_ = c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		// After the deadline is set: Close sets draining, then a past
		// deadline, so one of the two stops this read.
		if s.draining.Load() {
			return
		}
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			switch {
			case s.draining.Load():
			case isTimeout(err):
				l.idleClosed.Add(1)
				log.Debug("closing idle connection (connections.max.idle.ms)", "idle", s.cfg.IdleTimeout)
			case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && s.ctx.Err() == nil:
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
		if !s.pool.acquire(int64(size)) {
			return
		}
		readStart := time.Now()
		frame, err := s.readBody(l, c, br, int(size), log)
		if err != nil {
			s.pool.release(int64(size))
			return
		}
		r, err := s.decode(frame)
		if err != nil {
			s.pool.release(int64(size))
			log.Warn("closing connection on bad request", "err", err)
			return
		}
		l.requests.Add(1)
		l.bytesIn.Add(int64(size) + 4)
		r.Listener, r.Remote, r.Size, r.Received = l.name, c.RemoteAddr(), int(size)+4, time.Now()
		r.waiting = &s.responsesWaiting
		s.netBusy.Add(int64(r.Received.Sub(readStart)))

		o, ok := s.dispatch(r)
		s.pool.release(int64(size))
		if !ok {
			return
		}
		if o.closeConn != nil {
			log.Warn("closing connection", "api", kmsg.NameForKey(r.Header.Key), "client", r.Header.ClientID, "err", o.closeConn)
			return
		}
		pickup := time.Now()
		if o.resp != nil {
			var size, n int
			wbuf, size, n, err = writeResponse(c, wbuf, r.Header.CorrelationID, o.resp, s.cfg.WriteTimeout)
			if o.after != nil {
				o.after()
			}
			l.bytesOut.Add(int64(n))
			if err != nil {
				if isTimeout(err) {
					l.writeTimeouts.Add(1)
					l.timeoutLog.log(s.log, slog.LevelWarn, "closing connection: client does not read its responses",
						"listener", l.name, "remote", c.RemoteAddr().String(), "client", r.Header.ClientID,
						"unsent_bytes", size-n, "write_timeout", s.cfg.WriteTimeout, "write_timeouts_total", l.writeTimeouts.Load())
				} else {
					log.Debug("response write failed", "err", err)
				}
				if size >= bigDrop {
					s.collectDropped()
				}
				return
			}
			l.responses.Add(1)
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

// readBody reads one request body under the read deadline.
func (s *Server) readBody(l *listener, c net.Conn, br io.Reader, size int, log *slog.Logger) ([]byte, error) {
	if s.cfg.ReadTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
	} else {
		_ = c.SetReadDeadline(time.Time{})
	}
	frame, err := readFrame(br, size)
	if err != nil {
		if isTimeout(err) && !s.draining.Load() {
			l.readTimeouts.Add(1)
			l.timeoutLog.log(s.log, slog.LevelWarn, "closing connection: request body did not arrive in time",
				"listener", l.name, "remote", c.RemoteAddr().String(), "announced_bytes", size,
				"read_timeout", s.cfg.ReadTimeout, "read_timeouts_total", l.readTimeouts.Load())
		} else {
			log.Debug("connection closed mid-request", "err", err)
		}
		return nil, err
	}
	_ = c.SetReadDeadline(time.Time{}) // a parked request must not time the connection out
	return frame, nil
}

// dispatch queues r for a handler and waits for its outcome; false if the
// server is closing.
func (s *Server) dispatch(r *Request) (outcome, bool) {
	select {
	case s.queue <- r:
	case <-s.ctx.Done():
		return outcome{}, false
	}
	select {
	case o := <-r.done:
		s.responsesWaiting.Add(-1)
		return o, true
	case <-s.ctx.Done():
		return outcome{}, false
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
	if r.Msg, err = parseBody(h, rest, s.cfg.Decoders); err != nil {
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
