package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Handler answers decoded requests. Handle runs on one of the server's
// request handler goroutines and must complete the request (Respond,
// NoResponse or CloseConn) either before returning or later from another
// goroutine; parking a request that waits (a long-poll fetch) must not block
// the handler goroutine, or a few idle consumers would starve the pool.
type Handler interface {
	Handle(r *Request)
}

// Config configures a Server.
type Config struct {
	// Versions is the ApiVersions table: exactly the keys and versions the
	// handler implements. Requests outside it never reach the handler.
	Versions []kmsg.ApiVersionsResponseApiKey
	// MaxRequestBytes is socket.request.max.bytes: larger frames are refused
	// before anything is allocated for them.
	MaxRequestBytes int32
	// Decoders, by API key, replace kmsg's decoding of request bodies
	// whose decoded form could be far larger than the frame (BodyDecoder).
	Decoders map[int16]BodyDecoder
	// Handlers is num.io.threads, QueueSize queued.max.requests.
	Handlers  int
	QueueSize int
	Logger    *slog.Logger
	// Observe, if set, is called once per completed request with its
	// timings (for RequestMetrics). It runs on the connection's goroutine.
	Observe func(r *Request, t Timings, resp kmsg.Response)
	// OnIdle, if set, receives how long a handler waited for work before
	// each request (for RequestHandlerAvgIdlePercent).
	OnIdle func(idle, busy time.Duration)
	// NetworkThreads is num.network.threads: the capacity that network
	// busy time is measured against for NetworkIdle. Go multiplexes
	// connections itself, so this is a yardstick, not a thread count.
	NetworkThreads int

	// Connection limits, Kafka's keys. MaxConnections (max.connections)
	// bounds open connections over all listeners: at the limit the
	// acceptor stops accepting until one closes, as Kafka's does.
	// MaxConnectionsPerIP (max.connections.per.ip) closes a new connection
	// at once when its address already has that many. Zero means no limit.
	MaxConnections      int
	MaxConnectionsPerIP int
	// IdleTimeout is connections.max.idle.ms: a connection with no request
	// for that long is closed. Zero disables it.
	IdleTimeout time.Duration
	// QueuedMaxRequestBytes is queued.max.request.bytes: the bytes of
	// requests read and not yet answered, over all connections; at the
	// limit connections stop reading until memory is freed. <= 0: no limit.
	QueuedMaxRequestBytes int64
	// ReadTimeout bounds how long a request frame may take to arrive once
	// its size prefix is read (a client trickling a body is disconnected);
	// WriteTimeout how long a response write may make no progress (a client
	// that never reads its responses is disconnected). Zero disables them.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
}

// Server accepts Kafka-protocol connections on any number of listeners and
// feeds their requests through one bounded queue to a pool of handler
// goroutines, the shape of Kafka's SocketServer + RequestChannel +
// KafkaRequestHandlerPool.
type Server struct {
	cfg      Config
	handler  Handler
	log      *slog.Logger
	versions map[int16]kmsg.ApiVersionsResponseApiKey
	queue    chan *Request

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// draining is set when Close starts: connections stop reading new
	// requests; connWG counts the connection goroutines Close waits for.
	draining atomic.Bool
	connWG   sync.WaitGroup

	mu        sync.Mutex
	listeners []*listener
	conns     map[net.Conn]struct{}
	perIP     map[string]int // open connections by remote IP (max.connections.per.ip)

	// slots holds one token per open connection when MaxConnections is
	// set; the accept loops block on it at the limit.
	slots chan struct{}
	pool  *memoryPool
	// lastGC is when collectDropped last ran a collection (unix nanos);
	// gcPending is set while one is scheduled.
	lastGC    atomic.Int64
	gcPending atomic.Bool

	// responsesWaiting counts answered requests whose connection has not
	// picked the response up yet (RequestChannel ResponseQueueSize).
	responsesWaiting atomic.Int64
	// netBusy accumulates nanoseconds connections spend reading request
	// bodies, decoding and writing responses; networkIdle is the idle
	// fraction of the last sample window (NetworkProcessorAvgIdlePercent).
	netBusy     atomic.Int64
	networkIdle atomic.Uint64 // float64 bits
}

// NewServer returns a server; call Serve for each listener and Close to stop.
func NewServer(cfg Config, h Handler) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Handlers <= 0 {
		cfg.Handlers = 8
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 500
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 100 << 20
	}
	if cfg.NetworkThreads <= 0 {
		cfg.NetworkThreads = 3
	}
	s := &Server{
		cfg:      cfg,
		handler:  h,
		log:      cfg.Logger,
		versions: map[int16]kmsg.ApiVersionsResponseApiKey{},
		queue:    make(chan *Request, cfg.QueueSize),
		conns:    map[net.Conn]struct{}{},
		perIP:    map[string]int{},
		pool:     newMemoryPool(cfg.QueuedMaxRequestBytes),
	}
	if cfg.MaxConnections > 0 {
		s.slots = make(chan struct{}, cfg.MaxConnections)
	}
	for _, v := range cfg.Versions {
		s.versions[v.ApiKey] = v
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for i := 0; i < cfg.Handlers; i++ {
		s.wg.Add(1)
		go s.runHandler()
	}
	s.networkIdle.Store(math.Float64bits(1))
	s.wg.Add(1)
	go s.sampleNetwork(time.Second)
	return s
}

// ResponsesWaiting is the number of answered requests whose responses are
// not yet picked up by their connection.
func (s *Server) ResponsesWaiting() int64 { return s.responsesWaiting.Load() }

// NetworkIdle is the fraction (0..1) of the network capacity that was idle
// in the last sample window.
func (s *Server) NetworkIdle() float64 { return math.Float64frombits(s.networkIdle.Load()) }

func (s *Server) sampleNetwork(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := s.netBusy.Load(), time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			busy := s.netBusy.Load()
			capacity := float64(now.Sub(lastAt)) * float64(s.cfg.NetworkThreads)
			idle := 1 - float64(busy-last)/capacity
			s.networkIdle.Store(math.Float64bits(min(max(idle, 0), 1)))
			last, lastAt = busy, now
		}
	}
}

// QueueLen is the number of requests waiting for a handler
// (RequestChannel RequestQueueSize).
func (s *Server) QueueLen() int { return len(s.queue) }

// Serve accepts connections on ln until Close. name is the listener name
// (PLAINTEXT) that handlers can see on each request.
//
// Accept errors that can pass (out of file descriptors, a connection reset
// in the backlog) are retried with a backoff of 5 ms doubling to 1 s, as
// net/http does, and logged; the listener reports Serving=false until an
// accept succeeds again. Any other error stops the listener for good, which
// ListenerStats shows (Serving=false) and the log says at ERROR level.
func (s *Server) Serve(name string, ln net.Listener) {
	l := &listener{name: name, ln: ln}
	l.serving.Store(true)
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.acceptLoop(l)
	}()
}

func (s *Server) acceptLoop(l *listener) {
	var backoff time.Duration
	for {
		if !s.takeSlot(l) {
			return
		}
		c, err := l.ln.Accept()
		if err != nil {
			s.releaseSlot()
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			l.acceptErrors.Add(1)
			msg := err.Error()
			l.lastErr.Store(&msg)
			l.serving.Store(false)
			if !temporaryAccept(err) {
				s.log.Error("listener stopped: accept failed permanently; Kafka clients cannot connect to it",
					"listener", l.name, "err", err)
				return
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			l.acceptLog.log(s.log, slog.LevelError, "accept failed; retrying", "listener", l.name, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		if backoff > 0 {
			s.log.Info("listener accepting again", "listener", l.name, "accept_errors_total", l.acceptErrors.Load())
			backoff = 0
		}
		l.serving.Store(true)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		ip := remoteIP(c)
		s.mu.Lock()
		if s.ctx.Err() != nil || s.draining.Load() {
			s.mu.Unlock()
			c.Close()
			s.releaseSlot()
			return
		}
		if s.cfg.MaxConnectionsPerIP > 0 && s.perIP[ip] >= s.cfg.MaxConnectionsPerIP {
			s.mu.Unlock()
			// Counted before the close, so whoever sees the close sees the count.
			l.rejectedPerIP.Add(1)
			c.Close()
			s.releaseSlot()
			l.rejectLog.log(s.log, slog.LevelWarn, "connection rejected: max.connections.per.ip reached",
				"listener", l.name, "remote", ip, "max", s.cfg.MaxConnectionsPerIP, "rejected_total", l.rejectedPerIP.Load())
			continue
		}
		s.conns[c] = struct{}{}
		s.perIP[ip]++
		s.mu.Unlock()
		l.conns.Add(1)
		l.created.Add(1)
		s.wg.Add(1)
		s.connWG.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.connWG.Done()
			s.serveConn(l, c)
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			if s.perIP[ip]--; s.perIP[ip] <= 0 {
				delete(s.perIP, ip)
			}
			s.mu.Unlock()
			l.conns.Add(-1)
			l.closed.Add(1)
			s.releaseSlot()
		}()
	}
}

// takeSlot waits for room under max.connections; false if the server closed.
func (s *Server) takeSlot(l *listener) bool {
	if s.slots == nil {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	l.acceptLog.log(s.log, slog.LevelWarn, "max.connections reached; not accepting until a connection closes",
		"listener", l.name, "max", s.cfg.MaxConnections)
	select {
	case s.slots <- struct{}{}:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Server) releaseSlot() {
	if s.slots != nil {
		<-s.slots
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// Listeners returns the names of the listeners served, in Serve order.
func (s *Server) Listeners() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.name
	}
	return out
}

// ListenerStats returns the state and counters of the named listener.
func (s *Server) ListenerStats(name string) (ListenerStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.name == name {
			return l.stats(), true
		}
	}
	return ListenerStats{}, false
}

// Serving reports whether every listener is accepting connections: the
// broker's health as a Kafka client sees it.
func (s *Server) Serving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if !l.serving.Load() {
			return false
		}
	}
	return true
}

// MemoryPool returns Kafka's MemoryPoolAvailable and MemoryPoolUsed: the
// queued.max.request.bytes budget left and the bytes of requests read and
// not yet answered (available is 0 when the pool is unbounded).
func (s *Server) MemoryPool() (available, used int64) { return s.pool.usage() }

// Close stops accepting, closes every connection and waits for the
// connection and handler goroutines to end.
func (s *Server) Close() {
	// Drain first: stop accepting, stop reading new requests, and let the
	// requests already read be answered before the connections close. A
	// broker closes after its controlled shutdown, so those answers are
	// mostly NOT_LEADER_OR_FOLLOWER, which clients retry elsewhere; a
	// connection closed under a request instead reads as EOF, which
	// franz-go does not retry on a connection's first request (it takes it
	// for missing SASL) and fails the records.
	s.mu.Lock()
	s.draining.Store(true)
	for _, l := range s.listeners {
		l.ln.Close()
	}
	for c := range s.conns {
		// Wakes a connection blocked waiting for its next request; one
		// between requests sees draining before it reads again.
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	drained := make(chan struct{})
	go func() { s.connWG.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		s.log.Warn("closing connections with requests still unanswered", "waited", drainTimeout)
	}

	s.cancel()
	s.pool.close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// drainTimeout bounds how long Close waits for requests in flight: long
// enough for a handler to answer, short next to a request timeout (a
// parked acks=all produce or long-poll fetch is cut off after it).
const drainTimeout = 2 * time.Second

// Done is closed when Close starts; parked requests watch it.
func (s *Server) Done() <-chan struct{} { return s.ctx.Done() }

func (s *Server) runHandler() {
	defer s.wg.Done()
	idleSince := time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case r := <-s.queue:
			now := time.Now()
			r.Dequeued = now
			s.handle(r)
			r.markHandled()
			if s.cfg.OnIdle != nil {
				s.cfg.OnIdle(now.Sub(idleSince), time.Since(now))
			}
			idleSince = time.Now()
		}
	}
}

func (s *Server) handle(r *Request) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("request handler panicked; closing connection",
				"api", kmsg.NameForKey(r.Header.Key), "version", r.Header.Version,
				"client", r.Header.ClientID, "panic", p, "stack", string(debug.Stack()))
			r.CloseConn(fmt.Errorf("handler panic: %v", p))
		}
	}()
	if r.Header.Key == kmsg.ApiVersions.Int16() {
		r.Respond(s.apiVersions(r))
		return
	}
	s.handler.Handle(r)
}

// apiVersions answers ApiVersions from the table. A version above ours gets
// the v0-shaped answer with UNSUPPORTED_VERSION and our ApiVersions range
// (KIP-511), so the client retries at a version we speak.
func (s *Server) apiVersions(r *Request) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	own := s.versions[kmsg.ApiVersions.Int16()]
	if r.Header.Version > own.MaxVersion {
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		resp.ApiKeys = append(resp.ApiKeys, own)
		return resp
	}
	resp.Version = r.Header.Version
	if req, ok := r.Msg.(*kmsg.ApiVersionsRequest); ok && req.Version >= 3 &&
		(!validSoftware(req.ClientSoftwareName) || !validSoftware(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	resp.ApiKeys = append(resp.ApiKeys, s.cfg.Versions...)
	return resp
}

// validSoftware is Kafka's check of client_software_name/version:
// [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?
func validSoftware(s string) bool {
	if s == "" {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	if !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
