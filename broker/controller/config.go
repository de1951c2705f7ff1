package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// Roles is process.roles.
type Roles struct {
	Broker, Controller bool
}

func (r Roles) String() string {
	switch {
	case r.Broker && r.Controller:
		return "broker,controller"
	case r.Controller:
		return "controller"
	case r.Broker:
		return "broker"
	}
	return ""
}

// ParseRoles parses process.roles: "broker", "controller" or both,
// comma-separated.
func ParseRoles(s string) (Roles, error) {
	var r Roles
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(part) {
		case "broker":
			if r.Broker {
				return r, fmt.Errorf("process.roles: %q lists broker twice", s)
			}
			r.Broker = true
		case "controller":
			if r.Controller {
				return r, fmt.Errorf("process.roles: %q lists controller twice", s)
			}
			r.Controller = true
		case "":
		default:
			return r, fmt.Errorf("process.roles: unknown role %q in %q (want broker, controller or both)", strings.TrimSpace(part), s)
		}
	}
	if !r.Broker && !r.Controller {
		return r, errors.New("process.roles: empty")
	}
	return r, nil
}

// ParseVoters parses controller.quorum.voters: id@host:port,... Duplicate
// ids or addresses are refused.
func ParseVoters(s string) (map[int32]string, error) {
	out := map[int32]string{}
	addrs := map[string]int32{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		idStr, addr, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("controller.quorum.voters: %q: want id@host:port", part)
		}
		id, err := strconv.ParseInt(idStr, 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("controller.quorum.voters: %q: bad node id %q", part, idStr)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return nil, fmt.Errorf("controller.quorum.voters: %q: want id@host:port", part)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return nil, fmt.Errorf("controller.quorum.voters: %q: bad port %q", part, port)
		}
		if _, dup := out[int32(id)]; dup {
			return nil, fmt.Errorf("controller.quorum.voters: node id %d is listed twice", id)
		}
		if other, dup := addrs[addr]; dup {
			return nil, fmt.Errorf("controller.quorum.voters: address %s is listed for node %d and node %d", addr, other, id)
		}
		out[int32(id)], addrs[addr] = addr, int32(id)
	}
	if len(out) == 0 {
		return nil, errors.New("controller.quorum.voters: no voter given")
	}
	return out, nil
}

// Config configures a Controller. The keys are Kafka's server.properties
// names.
type Config struct {
	NodeID int32 // node.id
	Roles  Roles // process.roles
	// Voters are controller.quorum.voters: node id -> host:port of its
	// CONTROLLER listener, which carries raft and the controller RPC.
	Voters map[int32]string
	// Start bounds New's wait for controller.quorum.bootstrap.servers
	// (nil: only the one-minute timeout): a broker asked to stop while no
	// controller answers stops at once instead of after the timeout.
	Start context.Context
	// BootstrapServers are controller.quorum.bootstrap.servers (host:port):
	// a broker-only node without Voters asks them for the voter set in New.
	BootstrapServers []string
	// DataDir holds the raft log (raft.db) and snapshots, e.g.
	// <first log dir>/__cluster_metadata-0.
	DataDir   string
	ClusterID string // cluster.id; required with more than one voter
	// Listener, if set, is this voter's controller listener already bound
	// to its address in Voters (tests and embedders bind :0 first, so no
	// port is handed on between close and listen). Nil: Start listens.
	Listener net.Listener
	// ListenerName is the controller listener's name (the first of
	// controller.listener.names), reported by DescribeQuorum.
	ListenerName string

	SessionTimeout               time.Duration // broker.session.timeout.ms (9000)
	HeartbeatInterval            time.Duration // broker.heartbeat.interval.ms (2000)
	UncleanLeaderElection        bool          // unclean.leader.election.enable (false)
	AutoLeaderRebalance          bool          // auto.leader.rebalance.enable (true)
	LeaderImbalanceCheckInterval time.Duration // leader.imbalance.check.interval.seconds (300)
	DefaultReplicationFactor     int16         // default.replication.factor
	DefaultPartitions            int32         // num.partitions
	// MaxPartitionsPerBroker is kobs.max.partitions.per.broker: a topic or
	// partition creation that would give a broker more partition replicas
	// is refused with POLICY_VIOLATION, here where creations are decided
	// one at a time. <= 0: no limit.
	MaxPartitionsPerBroker int

	// Raft tuning; zero values take hashicorp/raft's defaults (1 s
	// heartbeat and election timeouts, a snapshot every 8192 entries
	// checked every 120 s, 10240 trailing entries kept).
	RaftHeartbeatTimeout time.Duration
	RaftElectionTimeout  time.Duration
	SnapshotThreshold    uint64
	SnapshotInterval     time.Duration
	TrailingLogs         uint64

	Logger   *slog.Logger
	Registry *telemetry.Registry // nil: no telemetry
}

// validate refuses a misconfiguration at start, naming the key.
func (c *Config) validate() error {
	var errs []error
	if c.NodeID < 0 {
		errs = append(errs, fmt.Errorf("node.id: %d is negative", c.NodeID))
	}
	if !c.Roles.Broker && !c.Roles.Controller {
		errs = append(errs, errors.New("process.roles: empty"))
	}
	switch {
	case len(c.Voters) > 0:
	case c.Roles.Controller || len(c.BootstrapServers) == 0:
		errs = append(errs, errors.New("controller.quorum.voters: no voter given"))
	}
	addr, voter := c.Voters[c.NodeID]
	if _, port, _ := net.SplitHostPort(addr); voter && port == "0" && len(c.Voters) > 1 {
		errs = append(errs, fmt.Errorf("controller.quorum.voters: node %d has port 0; only a single voter may use an ephemeral port", c.NodeID))
	}
	switch {
	case c.Roles.Controller && !voter && len(c.Voters) > 0:
		errs = append(errs, fmt.Errorf("controller.quorum.voters: node.id %d has process.roles=%s but is not one of the voters", c.NodeID, c.Roles))
	case !c.Roles.Controller && voter:
		errs = append(errs, fmt.Errorf("controller.quorum.voters: node.id %d is a voter but process.roles=%s lacks controller", c.NodeID, c.Roles))
	}
	switch {
	case len(c.Voters) > 1 && c.ClusterID == "":
		errs = append(errs, errors.New("cluster.id: required when controller.quorum.voters has more than one voter (every node must name the same cluster)"))
	case !c.Roles.Controller && c.ClusterID == "":
		errs = append(errs, errors.New("cluster.id: required on a broker-only node (the voters check it on every request)"))
	}
	if c.DataDir == "" && c.Roles.Controller {
		errs = append(errs, errors.New("log.dirs: no directory for the metadata log"))
	}
	if c.SessionTimeout <= 0 {
		errs = append(errs, fmt.Errorf("broker.session.timeout.ms: %v is not positive", c.SessionTimeout))
	}
	if c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.SessionTimeout {
		errs = append(errs, fmt.Errorf("broker.heartbeat.interval.ms: %v must be positive and below broker.session.timeout.ms %v", c.HeartbeatInterval, c.SessionTimeout))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 9 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 2 * time.Second
	}
	if c.LeaderImbalanceCheckInterval == 0 {
		c.LeaderImbalanceCheckInterval = 300 * time.Second
	}
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = 1
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = 1
	}
	if c.ListenerName == "" {
		c.ListenerName = "CONTROLLER"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
