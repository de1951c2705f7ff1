package wire

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file holds what keeps one careless or hostile client from taking the
// listener or the broker's memory: Kafka's connection quotas
// (max.connections, max.connections.per.ip), the request memory pool
// (queued.max.request.bytes), idle, read and write deadlines, and the
// accept loop's retry on temporary errors. Every connection the server drops
// for one of these reasons is counted per listener (ListenerStats) and
// logged, at most once per logEvery per reason.

// ListenerStats is the state of one listener, as the broker exports it
// (socket-server-metrics and the listener health gauge).
type ListenerStats struct {
	// Serving is false while the accept loop is failing (backing off on
	// "too many open files" and the like) or after it stopped for good.
	Serving bool
	// LastAcceptError is the most recent accept failure ("" if none).
	LastAcceptError string

	Connections   int64 // open now
	Created       int64 // accepted since start
	Closed        int64 // closed since start, for any reason
	AcceptErrors  int64 // failed Accept calls
	RejectedPerIP int64 // closed at once: max.connections.per.ip reached
	IdleClosed    int64 // closed after connections.max.idle.ms without a request
	ReadTimeouts  int64 // closed: a request frame did not arrive within the read timeout
	WriteTimeouts int64 // closed: a response write made no progress within the write timeout
	BytesIn       int64 // request bytes read, size prefixes included
	BytesOut      int64 // response bytes written
	Requests      int64 // request frames read
	Responses     int64 // responses written
}

// listener is the server-side state of one Serve call.
type listener struct {
	name string
	ln   net.Listener

	serving atomic.Bool
	lastErr atomic.Pointer[string]

	conns, created, closed, acceptErrors, rejectedPerIP atomic.Int64
	idleClosed, readTimeouts, writeTimeouts             atomic.Int64
	bytesIn, bytesOut, requests, responses              atomic.Int64

	acceptLog, rejectLog, timeoutLog rateLog
}

func (l *listener) stats() ListenerStats {
	s := ListenerStats{
		Serving:       l.serving.Load(),
		Connections:   l.conns.Load(),
		Created:       l.created.Load(),
		Closed:        l.closed.Load(),
		AcceptErrors:  l.acceptErrors.Load(),
		RejectedPerIP: l.rejectedPerIP.Load(),
		IdleClosed:    l.idleClosed.Load(),
		ReadTimeouts:  l.readTimeouts.Load(),
		WriteTimeouts: l.writeTimeouts.Load(),
		BytesIn:       l.bytesIn.Load(),
		BytesOut:      l.bytesOut.Load(),
		Requests:      l.requests.Load(),
		Responses:     l.responses.Load(),
	}
	if e := l.lastErr.Load(); e != nil {
		s.LastAcceptError = *e
	}
	return s
}

// temporaryAccept reports whether an Accept error is worth retrying: running
// out of file descriptors or kernel memory, or a connection that died in the
// backlog. net/http's Server.Serve retries on the same class of errors.
func temporaryAccept(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EAGAIN, syscall.EINTR, syscall.EPROTO} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var te interface{ Temporary() bool }
	if errors.As(err, &te) && te.Temporary() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Accept backoff, as net/http: 5 ms doubling up to 1 s.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// rateLog lets through one log line per logEvery and counts the ones it held
// back, so a flood of bad clients cannot flood the log (the counters in
// ListenerStats keep the full count).
type rateLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const logEvery = 10 * time.Second

// allow reports whether to log now and how many lines were held back since
// the last one that was logged.
func (r *rateLog) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < logEvery {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return true, n
}

func (r *rateLog) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	ok, n := r.allow()
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed_since_last_log", n)
	}
	l.Log(context.Background(), level, msg, args...)
}

// memoryPool is queued.max.request.bytes: the bytes of request frames read
// but not yet answered. Like Kafka's SimpleMemoryPool (non-strict) a request
// is admitted while any memory is left, so one request larger than the pool
// still gets through alone; a connection that finds the pool exhausted stops
// reading (Kafka mutes its channel) until responses free memory.
type memoryPool struct {
	mu        sync.Mutex
	cond      *sync.Cond
	max       int64 // <= 0: unbounded, nothing is tracked but the use
	available int64
	closed    bool
}

func newMemoryPool(limit int64) *memoryPool {
	p := &memoryPool{max: limit, available: max(limit, 0)}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// acquire waits until the pool has memory left, then takes n bytes. It
// returns false if the pool was closed while waiting.
func (p *memoryPool) acquire(n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.max > 0 && p.available <= 0 && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		return false
	}
	p.available -= n
	return true
}

func (p *memoryPool) release(n int64) {
	p.mu.Lock()
	p.available += n
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *memoryPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Available is Kafka's MemoryPoolAvailable (may go negative: see acquire);
// Used is MemoryPoolUsed.
func (p *memoryPool) usage() (available, used int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.max <= 0 {
		return 0, -p.available
	}
	return p.available, p.max - p.available
}

// frameChunk is how much of a request body is committed before any of it
// arrived: the buffer grows with the data, so a client announcing 100 MB and
// sending 10 bytes costs 64 KiB, not 100 MB.
const frameChunk = 64 << 10

// readFrame reads a size-byte request body from r, growing the buffer
// fourfold each time it fills: a client holds at most four times what it
// sent (plus frameChunk), and a 1 MiB produce request costs 1.3 MiB of
// allocations and 320 KiB of copies (BenchmarkReadFrame) instead of the
// 2 MiB and 1 MiB of doubling.
func readFrame(r io.Reader, size int) ([]byte, error) {
	buf := make([]byte, 0, min(size, frameChunk))
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(size, 4*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) < size {
				err = io.ErrUnexpectedEOF
			}
			if len(buf) < size {
				return nil, err
			}
		}
	}
	return buf, nil
}

// writeChunk bounds how much of a response one write deadline covers: a
// client that reads slowly but steadily keeps its connection, one that
// stops reading loses it after WriteTimeout.
const writeChunk = 256 << 10

// writeAll writes b with a fresh write deadline per chunk.
func writeAll(c net.Conn, b []byte, timeout time.Duration) (int, error) {
	written := 0
	for written < len(b) {
		end := min(len(b), written+writeChunk)
		if timeout > 0 {
			if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
				return written, err
			}
		}
		n, err := c.Write(b[written:end])
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// bigDrop is the size of an abandoned response worth a collection.
const bigDrop = 16 << 20

// collectDropped schedules a garbage collection after the server dropped a
// large unsent response: one second later (the connection's goroutine has
// returned by then), and at most one per logEvery, so that a burst of drops
// costs one or two collections. Without it the memory of clients that never
// read stays in the heap until the runtime's next cycle, whose goal was set
// while those responses were live: after 30 clients abandoned 100 MB
// fetches the heap could grow to twice that before Go collects it.
func (s *Server) collectDropped() {
	if !s.gcPending.CompareAndSwap(false, true) {
		return // one is scheduled and will collect this one too
	}
	delay := time.Second
	if since := time.Since(time.Unix(0, s.lastGC.Load())); since < logEvery {
		delay = max(delay, logEvery-since)
	}
	time.AfterFunc(delay, func() {
		s.lastGC.Store(time.Now().UnixNano())
		s.gcPending.Store(false)
		runtime.GC()
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
