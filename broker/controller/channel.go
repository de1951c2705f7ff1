package controller

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// The raft channel is this node's client side of the metadata quorum, what
// Kafka measures in kafka.server:type=raft-channel-metrics (the Selector of
// KafkaRaftManager's NetworkClient, metric group prefix "raft-channel"):
// the connections this node opens to other quorum members and the
// requests it sends and the responses it reads on them. In kobs that is
//
//   - on a voter, hashicorp/raft's NetworkTransport dialling out:
//     AppendEntries (heartbeats and pipelined appends), RequestVote,
//     RequestPreVote, InstallSnapshot and TimeoutNow. hashicorp/raft pushes
//     the log from the leader, where Kafka's followers fetch it, so the
//     active controller carries most of this traffic and a follower's
//     channel is quiet between elections;
//   - on a broker-only node, the metadata log fetches from the voters
//     (Kafka's observers fetch through the same raft client).
//
// Writes forwarded to the active controller and broker heartbeats are not
// raft traffic (Kafka sends them on its forwarding and heartbeat
// channels) and are not counted here; nor are connections other nodes
// open to this one (Kafka counts those in socket-server-metrics of the
// CONTROLLER listener).
//
// A request counts once this node had a connection to send it on (a dial
// that fails sends nothing; Kafka's Selector counts a request once its
// bytes are written, so a write that fails midway counts here and not
// there), a response once one was read without error; an RPC that failed
// on the wire or with an error from the peer counts as a request without
// a response. Bytes are what the sockets carried.
type channelStats struct {
	created, closed     atomic.Int64
	bytesIn, bytesOut   atomic.Int64
	requests, responses atomic.Int64
}

// attributes are the bean's attributes; Kafka Metrics values are doubles
// over JMX. The -rate and the io-time attributes of Kafka's Selector are
// not kept: Prometheus derives rates from the totals.
func (s *channelStats) attributes() []telemetry.Attribute {
	f := func(n string, v int64) telemetry.Attribute {
		return telemetry.Attribute{Name: n, Value: telemetry.Float64Value(float64(v))}
	}
	created, closed := s.created.Load(), s.closed.Load()
	return []telemetry.Attribute{
		f("connection-count", created-closed),
		f("connection-creation-total", created),
		f("connection-close-total", closed),
		f("request-total", s.requests.Load()),
		f("response-total", s.responses.Load()),
		f("outgoing-byte-total", s.bytesOut.Load()),
		f("incoming-byte-total", s.bytesIn.Load()),
	}
}

// dial opens a counted connection.
func (s *channelStats) dial(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, &dialError{err}
	}
	s.created.Add(1)
	return &countingConn{Conn: c, s: s}, nil
}

// dialError marks a failure to connect: no request went out.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// rpcDone accounts one RPC by its outcome.
func (s *channelStats) rpcDone(err error) {
	var de *dialError
	if errors.As(err, &de) {
		return
	}
	s.requests.Add(1)
	if err == nil {
		s.responses.Add(1)
	}
}

// countingConn counts the bytes a connection carries and its close.
type countingConn struct {
	net.Conn
	s    *channelStats
	once sync.Once
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.s.bytesIn.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.s.bytesOut.Add(int64(n))
	return n, err
}

func (c *countingConn) Close() error {
	c.once.Do(func() { c.s.closed.Add(1) })
	return c.Conn.Close()
}

// channelStream is raft's StreamLayer with counted outbound connections:
// the mux accepts, the stats dial.
type channelStream struct {
	*mux
	s *channelStats
}

func (cs channelStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return cs.s.dial(string(addr), timeout)
}

// channelTransport is raft's NetworkTransport with every outbound RPC
// counted. Embedding keeps the optional interfaces raft looks for
// (WithClose, WithPreVote).
type channelTransport struct {
	*raft.NetworkTransport
	s *channelStats
}

func (t channelTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	t.s.rpcDone(err)
	return err
}

func (t channelTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	err := t.NetworkTransport.RequestVote(id, target, args, resp)
	t.s.rpcDone(err)
	return err
}

func (t channelTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	err := t.NetworkTransport.RequestPreVote(id, target, args, resp)
	t.s.rpcDone(err)
	return err
}

func (t channelTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	err := t.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
	t.s.rpcDone(err)
	return err
}

func (t channelTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	err := t.NetworkTransport.TimeoutNow(id, target, args, resp)
	t.s.rpcDone(err)
	return err
}

func (t channelTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	cp := &channelPipeline{AppendPipeline: p, s: t.s, done: make(chan raft.AppendFuture), stop: make(chan struct{})}
	go cp.forward()
	return cp, nil
}

// channelPipeline counts a pipelined AppendEntries when it is sent and its
// response when raft's decoder completed it without error.
type channelPipeline struct {
	raft.AppendPipeline
	s        *channelStats
	done     chan raft.AppendFuture
	stop     chan struct{}
	stopOnce sync.Once
}

func (p *channelPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	f, err := p.AppendPipeline.AppendEntries(args, resp)
	if err == nil {
		p.s.requests.Add(1)
	}
	return f, err
}

// forward hands completed futures on, counting the answered ones. The
// futures on the inner channel are complete, so Error does not block.
func (p *channelPipeline) forward() {
	for {
		select {
		case f := <-p.AppendPipeline.Consumer():
			if f.Error() == nil {
				p.s.responses.Add(1)
			}
			select {
			case p.done <- f:
			case <-p.stop:
				return
			}
		case <-p.stop:
			return
		}
	}
}

func (p *channelPipeline) Consumer() <-chan raft.AppendFuture { return p.done }

func (p *channelPipeline) Close() error {
	p.stopOnce.Do(func() { close(p.stop) })
	return p.AppendPipeline.Close()
}

// fetcher is the rpcClient a broker-only node fetches the log with from
// the voter at addr: its traffic is the raft channel's.
func (c *Controller) fetcher(addr string) *rpcClient {
	c.clientsMu.Lock()
	defer c.clientsMu.Unlock()
	cl := c.fetchers[addr]
	if cl == nil {
		cl = &rpcClient{addr: addr, stats: &c.m.channel}
		if c.ctx.Err() != nil {
			cl.closed = true
		}
		c.fetchers[addr] = cl
	}
	return cl
}
