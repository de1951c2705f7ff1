package controller

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The CONTROLLER listener (a voter's address in controller.quorum.voters)
// carries two protocols on one port. The first byte of a connection says
// which: hashicorp/raft's NetworkTransport starts every connection with its
// RPC type (0-3), the controller RPC with rpcMagic. The controller RPC is a
// sequence of frames, each a 4-byte big-endian length and a JSON body: the
// client sends an rpcRequest and reads an rpcResponse, one at a time per
// connection. It carries writes forwarded to the active controller and the
// log fetches of broker-only nodes.
const (
	rpcMagic    byte = 0xCB
	maxFrame         = 64 << 20 // a whole metadata state for a broker-only node far behind fits
	dialTimeout      = 2 * time.Second
)

type rpcRequest struct {
	Op    string        `json:"op"` // "cmd", "fetch" or "voters"
	Cmd   *command      `json:"cmd,omitempty"`
	Fetch *fetchRequest `json:"fetch,omitempty"`
	// ClusterID is the caller's cluster.id; a node of another cluster is
	// refused.
	ClusterID string `json:"clusterId"`
}

type rpcResponse struct {
	Result *result        `json:"result,omitempty"`
	Fetch  *fetchResponse `json:"fetch,omitempty"`
	Err    *wireError     `json:"err,omitempty"`
	Leader int32          `json:"leader"` // the answering node's idea of the active controller, -1 unknown
	// Voters answers "voters": the quorum's voter set, for a broker-only
	// node that was given controller.quorum.bootstrap.servers.
	Voters map[int32]string `json:"voters,omitempty"`
}

type fetchRequest struct {
	After     uint64 `json:"after"`
	MaxWaitMs int64  `json:"maxWaitMs"`
}

type fetchResponse struct {
	Entries  []fetchedEntry  `json:"entries,omitempty"`
	Snapshot json.RawMessage `json:"snapshot,omitempty"`
}

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return fmt.Errorf("controller rpc: frame of %d bytes exceeds %d", n, maxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// mux is the CONTROLLER listener: it hands raft connections to raft's
// NetworkTransport (it is its raft.StreamLayer) and serves controller RPC
// connections itself.
type mux struct {
	ln    net.Listener
	raft  chan net.Conn
	serve func(net.Conn)

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     map[net.Conn]struct{}

	// raftHeld counts inbound raft connections not yet closed by their
	// owner: raft's NetworkTransport reads each on a goroutine of its own
	// (handleConn, which closes the connection on its way out) and handles
	// heartbeats right there, writing the term to the stable store. Neither
	// raft.Shutdown nor NetworkTransport.Close waits for those goroutines,
	// so the controller waits for this count to drain before it closes the
	// store (awaitRaftReaders).
	raftHeld sync.WaitGroup
}

func newMux(ln net.Listener, serve func(net.Conn)) *mux {
	m := &mux{ln: ln, raft: make(chan net.Conn), serve: serve, closed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *mux) track(c net.Conn, add bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if add {
		select {
		case <-m.closed:
			return false
		default:
		}
		m.conns[c] = struct{}{}
	} else {
		delete(m.conns, c)
	}
	return true
}

func (m *mux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

func (m *mux) route(c net.Conn) {
	defer m.wg.Done()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if first[0] == rpcMagic {
		if !m.track(c, true) {
			_ = c.Close()
			return
		}
		m.serve(c)
		m.track(c, false)
		_ = c.Close()
		return
	}
	// Raft connections are tracked too: Close must end raft's reader
	// goroutines even when the peer (a node stopped without closing its
	// sockets) never closes its end.
	pc := &prefixConn{Conn: c, r: io.MultiReader(bytesReader(first[:]), c), m: m}
	m.raftHeld.Add(1)
	if !m.track(pc, true) {
		m.raftHeld.Done()
		_ = c.Close()
		return
	}
	select {
	case m.raft <- pc:
	case <-m.closed:
		_ = pc.Close()
	}
}

type prefixConn struct {
	net.Conn
	r       io.Reader
	m       *mux
	release sync.Once
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// Close is its owner's: raft's reader goroutine on its way out, or route
// when raft never took it.
func (p *prefixConn) Close() error {
	p.m.track(p, false)
	err := p.Conn.Close()
	p.release.Do(p.m.raftHeld.Done)
	return err
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: append([]byte(nil), b...)} }

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// Accept implements raft.StreamLayer.
func (m *mux) Accept() (net.Conn, error) {
	select {
	case c := <-m.raft:
		return c, nil
	case <-m.closed:
		return nil, errors.New("controller listener closed")
	}
}

// Close implements raft.StreamLayer; it stops the listener and every
// controller RPC connection.
func (m *mux) Close() error {
	m.closeOnce.Do(func() {
		close(m.closed)
		_ = m.ln.Close()
		m.mu.Lock()
		conns := make([]net.Conn, 0, len(m.conns))
		for c := range m.conns {
			conns = append(conns, c)
		}
		m.mu.Unlock()
		for _, c := range conns {
			if pc, ok := c.(*prefixConn); ok {
				// Cut the socket so that raft's reader fails, but leave
				// the closing to it: it still runs until it sees the error.
				_ = pc.Conn.Close()
				continue
			}
			_ = c.Close()
		}
	})
	m.wg.Wait()
	return nil
}

// awaitRaftReaders waits, after Close, until raft's reader goroutines have
// let go of every inbound connection, and says whether they did in time.
func (m *mux) awaitRaftReaders(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { m.raftHeld.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Addr implements raft.StreamLayer.
func (m *mux) Addr() net.Addr { return m.ln.Addr() }

// Dial implements raft.StreamLayer.
func (m *mux) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// rpcClient is one connection to a node's controller RPC, used by one
// request at a time. close may run while a call waits (a long-polling
// fetch): it closes the connection under its own lock, which fails the
// call at once.
type rpcClient struct {
	addr  string
	stats *channelStats // the raft channel's, for a broker-only node's log fetches; nil otherwise
	mu    sync.Mutex    // one call at a time

	connMu sync.Mutex
	conn   net.Conn
	closed bool
}

func (c *rpcClient) call(req *rpcRequest, deadline time.Time) (*rpcResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connMu.Lock()
	conn, closed := c.conn, c.closed
	c.connMu.Unlock()
	if closed {
		return nil, errors.New("controller rpc client closed")
	}
	if conn == nil {
		var err error
		if c.stats != nil {
			conn, err = c.stats.dial(c.addr, dialTimeout)
		} else {
			conn, err = net.DialTimeout("tcp", c.addr, dialTimeout)
		}
		if err != nil {
			return nil, err
		}
		if _, err := conn.Write([]byte{rpcMagic}); err != nil {
			_ = conn.Close()
			return nil, err
		}
		c.connMu.Lock()
		if c.closed {
			c.connMu.Unlock()
			_ = conn.Close()
			return nil, errors.New("controller rpc client closed")
		}
		c.conn = conn
		c.connMu.Unlock()
	}
	_ = conn.SetDeadline(deadline)
	var resp rpcResponse
	err := writeFrame(conn, req)
	if err == nil {
		err = readFrame(conn, &resp)
	}
	if c.stats != nil {
		c.stats.rpcDone(err)
	}
	if err != nil {
		_ = conn.Close()
		c.connMu.Lock()
		if c.conn == conn {
			c.conn = nil
		}
		c.connMu.Unlock()
		return nil, err
	}
	return &resp, nil
}

func (c *rpcClient) close() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	c.closed = true
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// bootstrapTimeout bounds how long a broker-only node started with
// controller.quorum.bootstrap.servers waits for one of them to answer.
const bootstrapTimeout = time.Minute

// discoverVoters asks controller.quorum.bootstrap.servers, in turn, for the
// quorum's voter set: what a broker-only node needs to follow the log and
// reach the active controller (as Kafka's brokers learn the voters from
// the bootstrap controllers, KIP-853). It retries until one answers or
// timeout passes; an answer refusing this node (another cluster.id) ends
// it at once.
func discoverVoters(cfg Config, timeout time.Duration) (map[int32]string, error) {
	ctx := cfg.Start
	if ctx == nil {
		ctx = context.Background()
	}
	deadline := time.Now().Add(timeout)
	var last error
	cfg.Logger.Info("asking controller.quorum.bootstrap.servers for the metadata quorum's voters", "component", "controller", "node", cfg.NodeID, "servers", cfg.BootstrapServers)
	for {
		for _, addr := range cfg.BootstrapServers {
			cl := &rpcClient{addr: addr}
			resp, err := cl.call(&rpcRequest{Op: "voters", ClusterID: cfg.ClusterID}, time.Now().Add(2*time.Second))
			cl.close()
			switch {
			case err != nil:
				last = fmt.Errorf("%s: %w", addr, err)
			case resp.Err != nil && fromWire(resp.Err) != nil && errors.Is(fromWire(resp.Err), ErrInvalidRequest):
				return nil, fmt.Errorf("controller.quorum.bootstrap.servers: %s refused node %d: %w", addr, cfg.NodeID, fromWire(resp.Err))
			case resp.Err != nil:
				last = fmt.Errorf("%s: %w", addr, fromWire(resp.Err))
			case len(resp.Voters) == 0:
				last = fmt.Errorf("%s answered no voters", addr)
			default:
				cfg.Logger.Info("learned the metadata quorum's voters from controller.quorum.bootstrap.servers", "component", "controller", "node", cfg.NodeID, "from", addr, "voters", resp.Voters)
				return resp.Voters, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("controller.quorum.bootstrap.servers: no controller of %v told its voters within %v (last: %v)", cfg.BootstrapServers, timeout, last)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("controller.quorum.bootstrap.servers: stopped while no controller of %v had told its voters (last: %v): %w", cfg.BootstrapServers, last, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
