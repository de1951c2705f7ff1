package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// Controller is one node's part of the metadata quorum: on a voter a raft
// member (the raft leader is the active controller), on a broker-only node
// a follower of the log; on every node the publisher of the images the log
// produces, and, when the node is a broker, its registration and
// heartbeats.
type Controller struct {
	cfg    Config
	pub    *metadata.Publisher
	fsm    *fsm
	logger *slog.Logger
	m      *ctlMetrics

	// voters only
	raft      *raft.Raft
	mux       *mux
	transport *raft.NetworkTransport
	store     *guardedStore

	// active is set while this node is raft leader and has applied
	// everything earlier leaders committed (Barrier) and written its
	// controller record: only then does it take decisions.
	active atomic.Bool
	opMu   sync.Mutex // serialises decisions on the active controller

	hbMu     sync.Mutex
	sessions map[int32]*session // active controller: broker heartbeats
	voterLEO map[int32]replicaProgress

	leaderHint atomic.Int32 // broker-only nodes: last known active controller
	clientsMu  sync.Mutex
	clients    map[string]*rpcClient // writes, by address
	// hbClients carry heartbeats on their own connections: a heartbeat
	// must never wait behind a burst of forwarded writes (AlterPartition)
	// on a shared connection, or the broker looks silent and is fenced.
	hbClients map[string]*rpcClient
	fetchers  map[string]*rpcClient // broker-only log fetches (long polls), by address

	// broker lifecycle
	incarnation string
	epoch       atomic.Int64 // this broker's registration epoch, 0 before
	fencedSelf  atomic.Bool
	ready       chan struct{}
	readyOnce   sync.Once
	fatal       chan error
	fatalOnce   sync.Once

	started   atomic.Bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type session struct {
	lastSeen time.Time
	offset   int64
}

type replicaProgress struct {
	LEO  uint64
	Seen time.Time
}

// New checks cfg and opens the node's metadata store (voters), refusing a
// data dir that belongs to another cluster. It publishes the stored state
// on pub (a new publisher if nil) once Start replays it.
//
// Images are published from the goroutine that applies the log, so a
// listener on pub must not call a Controller write (CreateTopics,
// AlterPartition, ...) and wait for it: the write waits for the log to be
// applied, which waits for the listener. Hand such calls to a goroutine.
func New(cfg Config, pub *metadata.Publisher) (*Controller, error) {
	cfg.setDefaults()
	cfg.Voters = maps.Clone(cfg.Voters)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("controller: invalid configuration:\n%w", err)
	}
	if len(cfg.Voters) == 0 {
		voters, err := discoverVoters(cfg, bootstrapTimeout)
		if err != nil {
			return nil, err
		}
		cfg.Voters = voters
	}
	if pub == nil {
		pub = metadata.NewPublisher(metadata.Empty(cfg.ClusterID))
	}
	var inc [8]byte
	_, _ = rand.Read(inc[:])
	c := &Controller{
		cfg: cfg, pub: pub, logger: cfg.Logger.With("component", "controller", "node", cfg.NodeID),
		sessions: map[int32]*session{}, voterLEO: map[int32]replicaProgress{},
		clients: map[string]*rpcClient{}, hbClients: map[string]*rpcClient{}, fetchers: map[string]*rpcClient{}, incarnation: hex.EncodeToString(inc[:]),
		ready: make(chan struct{}), fatal: make(chan error, 1),
	}
	c.leaderHint.Store(-1)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.Roles.Controller {
		if err := c.openStore(); err != nil {
			return nil, err
		}
	}
	clusterID := cfg.ClusterID
	if c.store != nil {
		if v, err := c.store.Get(keyClusterID); err == nil && len(v) > 0 {
			clusterID = string(v)
		}
	}
	c.fsm = newFSM(emptyState(clusterID), pub, c.logger)
	c.m = newCtlMetrics(c)
	c.fsm.onApply = c.m.applied
	return c, nil
}

var keyClusterID = []byte("kobs.cluster.id")

func (c *Controller) openStore() error {
	if err := os.MkdirAll(c.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("controller: metadata dir: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(c.cfg.DataDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("controller: open %s: %w", filepath.Join(c.cfg.DataDir, "raft.db"), err)
	}
	stored, err := store.Get(keyClusterID)
	if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		_ = store.Close()
		return fmt.Errorf("controller: read cluster id: %w", err)
	}
	switch {
	case len(stored) > 0 && c.cfg.ClusterID != "" && string(stored) != c.cfg.ClusterID:
		_ = store.Close()
		return fmt.Errorf("cluster.id: %s is configured but the metadata log in %s belongs to cluster %s", c.cfg.ClusterID, c.cfg.DataDir, stored)
	case len(stored) == 0:
		id := c.cfg.ClusterID
		if id == "" {
			id = metadata.NewTopicID().String()
			c.cfg.ClusterID = id
		}
		if err := store.Set(keyClusterID, []byte(id)); err != nil {
			_ = store.Close()
			return fmt.Errorf("controller: store cluster id: %w", err)
		}
	default:
		c.cfg.ClusterID = string(stored)
	}
	c.store = newGuardedStore(store, filepath.Join(c.cfg.DataDir, "raft.db"), c.logger)
	return nil
}

// ClusterID is the cluster id: configured, or the one stored with the
// metadata log.
func (c *Controller) ClusterID() string { return c.cfg.ClusterID }

// Publisher is the publisher images go to.
func (c *Controller) Publisher() *metadata.Publisher { return c.pub }

// Image is the current metadata image of this node.
func (c *Controller) Image() *metadata.Image { return c.pub.Load() }

// Ready is closed once this broker is registered and unfenced; on a
// controller-only node, once an active controller acknowledged its
// heartbeat (the quorum has formed).
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// Fatal delivers an error that should stop the node: another live process
// registered with this node.id.
func (c *Controller) Fatal() <-chan error { return c.fatal }

// BrokerEpoch is this broker's registration epoch, 0 before registration.
func (c *Controller) BrokerEpoch() int64 { return c.epoch.Load() }

// Start joins the quorum (voters: raft over the CONTROLLER listener;
// broker-only nodes: fetching the log from the voters) and, if this node
// has the broker role, registers self and heartbeats in the background.
// It does not wait for a quorum: watch Ready and Fatal.
func (c *Controller) Start(self metadata.Broker) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("controller: already started")
	}
	if c.cfg.Roles.Controller {
		if err := c.startRaft(); err != nil {
			return err
		}
	} else {
		c.wg.Add(1)
		go c.fetchLoop()
	}
	c.wg.Add(1)
	go c.lifecycle(self)
	return nil
}

func (c *Controller) startRaft() error {
	addr := c.cfg.Voters[c.cfg.NodeID]
	ln := c.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("controller.quorum.voters: cannot listen on node %d's address %s: %w", c.cfg.NodeID, addr, err)
		}
	}
	if len(c.cfg.Voters) == 1 {
		// A one-voter quorum may use an ephemeral port (nobody dials it
		// but this node's own forwarding, which reads it from here).
		addr = ln.Addr().String()
		c.cfg.Voters[c.cfg.NodeID] = addr
	}
	c.mux = newMux(ln, c.serveConn)
	// Only a lone voter waits between failing appends (guardedStore).
	c.store.pace = len(c.cfg.Voters) == 1
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{c.logger, c.store.Quiet}})
	c.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: channelStream{c.mux, &c.m.channel}, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl,
	})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(c.cfg.DataDir, 2, hl)
	if err != nil {
		c.mux.Close()
		return fmt.Errorf("controller: snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.Itoa(int(c.cfg.NodeID)))
	rc.Logger = hl
	if len(c.cfg.Voters) == 1 {
		// Nobody to wait for: a lone voter elects itself at once instead
		// of after raft's default 1-2 s, so a single broker starts fast.
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	}
	if c.cfg.RaftHeartbeatTimeout > 0 {
		// The lease as long as raft allows (the heartbeat timeout): a
		// leader steps down when it has not reached a majority for that
		// long, and with short timeouts half of it (250 ms at 500) was
		// overrun by a scheduling stall on a loaded 2-core machine, an
		// election for nothing. Kafka's quorum leader resigns even later
		// than its followers start an election (1.5 x the fetch timeout).
		rc.HeartbeatTimeout = c.cfg.RaftHeartbeatTimeout
		rc.LeaderLeaseTimeout = c.cfg.RaftHeartbeatTimeout
	}
	if c.cfg.RaftElectionTimeout > 0 {
		rc.ElectionTimeout = c.cfg.RaftElectionTimeout
	}
	if c.cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = c.cfg.SnapshotThreshold
	}
	if c.cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = c.cfg.SnapshotInterval
	}
	if c.cfg.TrailingLogs > 0 {
		rc.TrailingLogs = c.cfg.TrailingLogs
	}
	exists, err := raft.HasExistingState(c.store, c.store, snaps)
	if err != nil {
		c.mux.Close()
		return fmt.Errorf("controller: read raft state: %w", err)
	}
	if !exists {
		// Every voter bootstraps with the same configuration, taken from
		// controller.quorum.voters, which hashicorp/raft allows.
		var servers []raft.Server
		ids := make([]int32, 0, len(c.cfg.Voters))
		for id := range c.cfg.Voters {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(strconv.Itoa(int(id))), Address: raft.ServerAddress(c.cfg.Voters[id])})
		}
		if err := raft.BootstrapCluster(rc, c.store, c.store, snaps, c.transport, raft.Configuration{Servers: servers}); err != nil {
			c.mux.Close()
			return fmt.Errorf("controller: bootstrap quorum: %w", err)
		}
	} else if err := c.checkVoters(rc, snaps); err != nil {
		c.mux.Close()
		return err
	}
	r, err := raft.NewRaft(rc, c.fsm, c.store, c.store, snaps, channelTransport{c.transport, &c.m.channel})
	if err != nil {
		c.mux.Close()
		return fmt.Errorf("controller: start raft: %w", err)
	}
	c.raft = r
	c.wg.Add(1)
	go c.leaderLoop()
	return nil
}

// checkVoters refuses a restart whose controller.quorum.voters differ from
// the voter set stored in the log: the quorum's membership is not changed
// by editing the file.
func (c *Controller) checkVoters(rc *raft.Config, snaps raft.SnapshotStore) error {
	probe := *rc // GetConfiguration marks the config it is given as "skip startup"
	conf, err := raft.GetConfiguration(&probe, noopFSM{}, c.store, c.store, snaps, c.transport)
	if err != nil {
		return fmt.Errorf("controller: read the quorum configuration from %s: %w", c.cfg.DataDir, err)
	}
	stored := map[int32]string{}
	for _, s := range conf.Servers {
		id, _ := strconv.Atoi(string(s.ID))
		stored[int32(id)] = string(s.Address)
	}
	if _, ok := stored[c.cfg.NodeID]; ok && len(stored) == 1 && len(c.cfg.Voters) == 1 {
		return nil // a single voter's address may change: nobody else dials it
	}
	if len(stored) != len(c.cfg.Voters) {
		return fmt.Errorf("controller.quorum.voters: configured %v, but the metadata log in %s was formed by voters %v", c.cfg.Voters, c.cfg.DataDir, stored)
	}
	for id, addr := range c.cfg.Voters {
		if stored[id] != addr {
			return fmt.Errorf("controller.quorum.voters: configured %v, but the metadata log in %s was formed by voters %v", c.cfg.Voters, c.cfg.DataDir, stored)
		}
	}
	return nil
}

type noopFSM struct{}

func (noopFSM) Apply(*raft.Log) any                 { return nil }
func (noopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshot") }
func (noopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

// slogWriter feeds hclog's lines (raft warnings and errors) into slog, at
// DEBUG while quiet says another line already tells what is going on.
type slogWriter struct {
	l     *slog.Logger
	quiet func() bool
}

func (w slogWriter) Write(p []byte) (int, error) {
	if w.quiet != nil && w.quiet() {
		w.l.Debug(string(trimNL(p)))
	} else {
		w.l.Warn(string(trimNL(p)))
	}
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

// Close stops the node: a broker first asks the active controller to fence
// it (controlled shutdown: its partitions get other leaders at once rather
// than after the session timeout); an active controller hands leadership
// to another voter; then raft and the listener stop.
func (c *Controller) Close() error {
	c.closeOnce.Do(func() {
		if c.cfg.Roles.Broker && c.epoch.Load() > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := c.submit(ctx, &command{Op: opHeartbeat, Heartbeat: &heartbeat{ID: c.cfg.NodeID, Voter: -1, Epoch: c.epoch.Load(), Shutdown: true}})
			cancel()
			if err != nil {
				c.logger.Warn("controlled shutdown not acknowledged; the controller fences this broker after broker.session.timeout.ms", "err", err)
			}
		}
		c.cancel()
		if c.raft != nil && c.raft.State() == raft.Leader && len(c.cfg.Voters) > 1 {
			if err := c.raft.LeadershipTransfer().Error(); err != nil {
				c.logger.Info("leadership transfer on shutdown failed", "err", err)
			}
		}
		c.closeErr = c.stop()
	})
	return c.closeErr
}

// raftReadersTimeout bounds the wait for raft's inbound connection readers
// at shutdown: a reader in the middle of a request finishes it within
// microseconds once its socket is cut, unless the disk stalls.
const raftReadersTimeout = 10 * time.Second

// stop shuts everything down without telling anyone (also a test's
// "hard stop").
func (c *Controller) stop() error {
	c.cancel()
	c.active.Store(false)
	if c.store != nil {
		c.store.wake() // a paced append must not hold raft's shutdown
	}
	var errs []error
	if c.raft != nil {
		if err := c.raft.Shutdown().Error(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.mux != nil {
		c.mux.Close()
	}
	if c.transport != nil {
		c.transport.CloseStreams() // outbound pooled connections
		_ = c.transport.Close()
	}
	if c.mux != nil && !c.mux.awaitRaftReaders(raftReadersTimeout) {
		// Closing the store under a reader still handling a heartbeat
		// would make raft panic ("failed to save current term").
		c.logger.Warn("raft connections still being read after shutdown; closing the metadata log anyway", "waited", raftReadersTimeout)
	}
	c.clientsMu.Lock()
	for _, cl := range c.clients {
		cl.close()
	}
	for _, cl := range c.fetchers {
		cl.close()
	}
	for _, cl := range c.hbClients {
		cl.close()
	}
	c.clientsMu.Unlock()
	c.wg.Wait()
	if c.store != nil {
		if err := c.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.m.unregister()
	return errors.Join(errs...)
}

// leaderID is the active controller's node id as this node knows it, -1
// if unknown.
func (c *Controller) leaderID() int32 {
	if c.raft != nil {
		_, id := c.raft.LeaderWithID()
		if id == "" {
			return -1
		}
		n, err := strconv.Atoi(string(id))
		if err != nil {
			return -1
		}
		return int32(n)
	}
	return c.leaderHint.Load()
}

func (c *Controller) client(addr string) *rpcClient { return c.clientIn(c.clients, addr) }

func (c *Controller) clientIn(m map[string]*rpcClient, addr string) *rpcClient {
	c.clientsMu.Lock()
	defer c.clientsMu.Unlock()
	cl := m[addr]
	if cl == nil {
		cl = &rpcClient{addr: addr}
		if c.ctx.Err() != nil {
			cl.closed = true
		}
		m[addr] = cl
	}
	return cl
}

// submit runs cmd on the active controller: here if this node is it,
// otherwise over the controller RPC of the node raft names leader. It
// retries while there is no leader or leadership moves, until ctx ends.
func (c *Controller) submit(ctx context.Context, cmd *command) (*result, error) {
	try := 0
	var last error
	for {
		if c.active.Load() {
			res, err := c.execute(cmd)
			if !errors.Is(err, ErrNotController) {
				return res, err
			}
			last = err
		} else if id := c.leaderID(); id >= 0 && id != c.cfg.NodeID {
			res, err := c.forward(ctx, c.cfg.Voters[id], cmd)
			if err == nil || !errors.Is(err, ErrNotController) && !isNetErr(err) {
				c.awaitApplied(ctx, res)
				return res, err
			}
			last = err
		} else if c.raft == nil {
			// Broker-only and no hint yet: ask the voters in turn; a
			// non-leader answers NOT_CONTROLLER with the leader it knows.
			ids := make([]int32, 0, len(c.cfg.Voters))
			for id := range c.cfg.Voters {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			res, err := c.forward(ctx, c.cfg.Voters[ids[try%len(ids)]], cmd)
			if err == nil || !errors.Is(err, ErrNotController) && !isNetErr(err) {
				c.awaitApplied(ctx, res)
				return res, err
			}
			last = err
		} else {
			last = errorf(ErrNotController, "no active controller known to node %d", c.cfg.NodeID)
		}
		if err := c.storageFailure(); err != nil {
			// No controller because this node cannot write its metadata
			// log: say so now rather than time out.
			return nil, err
		}
		try++
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return nil, errorf(ErrTimeout, "no active controller answered within the deadline (last: %v)", last)
		case <-c.ctx.Done():
			return nil, errorf(ErrNotController, "node %d is shutting down", c.cfg.NodeID)
		case <-time.After(min(50*time.Duration(try), 500) * time.Millisecond):
		}
	}
}

// awaitApplied waits (within ctx) until this node applied the metadata
// offset a forwarded command was committed at and its image's listeners
// ran.
func (c *Controller) awaitApplied(ctx context.Context, res *result) {
	if res == nil || res.Offset <= 0 {
		return
	}
	for {
		_, _, changed := c.fsm.since(^uint64(0), 0)
		if c.fsm.published.Load() >= res.Offset {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-c.ctx.Done():
			return
		}
	}
}

type netErr struct{ error }

func (e netErr) Unwrap() error { return e.error }

func isNetErr(err error) bool {
	var n netErr
	return errors.As(err, &n)
}

func (c *Controller) forward(ctx context.Context, addr string, cmd *command) (*result, error) {
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > 30*time.Second {
		deadline = time.Now().Add(30 * time.Second)
	}
	cl := c.client(addr)
	if cmd.Op == opHeartbeat {
		cl = c.clientIn(c.hbClients, addr)
	}
	resp, err := cl.call(&rpcRequest{Op: "cmd", Cmd: cmd, ClusterID: c.cfg.ClusterID}, deadline)
	if err != nil {
		return nil, netErr{err}
	}
	if resp.Leader >= 0 && c.raft == nil {
		c.leaderHint.Store(resp.Leader)
	}
	return resp.Result, fromWire(resp.Err)
}

// serveConn serves one controller RPC connection.
func (c *Controller) serveConn(conn net.Conn) {
	for {
		var req rpcRequest
		if err := readFrame(conn, &req); err != nil {
			return
		}
		resp := &rpcResponse{Leader: c.leaderID()}
		switch {
		case req.ClusterID != c.cfg.ClusterID:
			resp.Err = toWire(errorf(ErrInvalidRequest, "cluster.id %s of the caller differs from this node's %s", req.ClusterID, c.cfg.ClusterID))
		case req.Op == "cmd" && req.Cmd != nil:
			if !c.active.Load() {
				resp.Err = toWire(errorf(ErrNotController, "node %d is not the active controller", c.cfg.NodeID))
				break
			}
			res, err := c.execute(req.Cmd)
			resp.Result, resp.Err = res, toWire(err)
		case req.Op == "fetch" && req.Fetch != nil:
			resp.Fetch = c.serveFetch(req.Fetch)
		case req.Op == "voters":
			if c.raft == nil {
				resp.Err = toWire(errorf(ErrNotController, "node %d is not a voter of the metadata quorum", c.cfg.NodeID))
				break
			}
			resp.Voters = c.cfg.Voters
		default:
			resp.Err = toWire(errorf(ErrInvalidRequest, "unknown controller rpc %q", req.Op))
		}
		_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := writeFrame(conn, resp); err != nil {
			return
		}
	}
}
