package main

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kobs-dev/kobs/broker"
	"github.com/kobs-dev/kobs/broker/metadata"
)

// clusterPortStep spaces the nodes' telemetry ports (8778, 8788, 8798):
// one apart would land node 3 on the audit reconciler's 8780.
const (
	clusterHTTPPortStep   = 10
	clusterControllerPort = 10000 // controller port = Kafka port + this (9092 -> 19092)
	clusterMaxRF          = 3
)

// loadCluster derives the configs of an n-node cluster run in one process
// (kobs run --brokers N) from one server.properties: node i gets node.id i,
// the Kafka port + i-1, a CONTROLLER listener on the Kafka port + 10000
// (every node is a voter, as a three-node KRaft quickstart), telemetry on
// the HTTP port + 10(i-1), and "<log dir>-<i>" as its log dir. With three
// or more nodes the replication defaults become what a replicated cluster
// runs with (default.replication.factor and offsets.topic.replication.factor
// 3, min.insync.replicas 2) unless --override sets them. One node is the
// config as written, except that offsets.topic.replication.factor is 1
// unless the config sets it: Kafka's default of 3 would leave every group
// (the trace shipper's and the audit reconciler's too) without a
// coordinator on a lone broker.
func (f *brokerFlags) loadCluster(n int) ([]*broker.Config, *slog.Logger, error) {
	base, logger, err := f.load()
	if err != nil || n == 1 {
		if err == nil && !has(base.Props, "offsets.topic.replication.factor") {
			base.OffsetsTopicReplicationFactor = 1
		}
		return []*broker.Config{base}, logger, err
	}
	if n < 1 || n > 9 {
		return nil, nil, fmt.Errorf("--brokers %d: want 1 to 9", n)
	}
	switch {
	case len(base.Listeners) != 1 || len(base.ControllerListeners) > 0:
		return nil, nil, fmt.Errorf("--brokers %d derives each node's ports from one listener; %s has %d listeners (%v)",
			n, f.configPath, len(base.Listeners)+len(base.ControllerListeners), append(base.Listeners, base.ControllerListeners...))
	case has(base.Props, "advertised.listeners"):
		return nil, nil, fmt.Errorf("--brokers %d derives each node's listener; remove advertised.listeners from %s", n, f.configPath)
	case has(base.Props, "process.roles") || has(base.Props, "controller.quorum.voters"):
		return nil, nil, fmt.Errorf("--brokers %d makes every node a broker and controller voter itself; remove process.roles and controller.quorum.voters from %s (or start each node with kobs broker)", n, f.configPath)
	}
	l := base.Listeners[0]
	overridden := map[string]bool{}
	for _, o := range f.overrides {
		k, _, _ := strings.Cut(o, "=")
		overridden[strings.TrimSpace(k)] = true
	}
	nodeDirs := func(i int) string {
		dirs := make([]string, len(base.LogDirs))
		for j, d := range base.LogDirs {
			dirs[j] = filepath.Clean(d) + "-" + strconv.Itoa(i)
		}
		return strings.Join(dirs, ",")
	}

	// The controller listeners: fixed ports (the voter list must stay the
	// same across restarts), or, for an ephemeral Kafka port (tests),
	// ephemeral listeners bound here and handed to the nodes.
	ctl := make([]net.Listener, n)
	voters := make([]string, n)
	for i := range n {
		addr := net.JoinHostPort(l.Host, "0")
		if l.Port != 0 {
			addr = net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)+clusterControllerPort+i))
		}
		if l.Port == 0 {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				closeAll(ctl)
				return nil, nil, fmt.Errorf("controller listener of node %d: %w", i+1, err)
			}
			ctl[i], addr = ln, ln.Addr().String()
		}
		voters[i] = strconv.Itoa(i+1) + "@" + addr
	}

	clusterID := base.ClusterID
	if clusterID == "" {
		// A cluster started before keeps its id (each node's meta.properties
		// must match); a new one gets a fresh one.
		if p, err := broker.LoadProperties(filepath.Join(strings.Split(nodeDirs(1), ",")[0], "meta.properties")); err == nil {
			clusterID, _ = p.Get("cluster.id")
		}
		if clusterID == "" {
			clusterID = metadata.NewTopicID().String()
		}
	}

	cfgs := make([]*broker.Config, n)
	for i := range n {
		node := i + 1
		p := broker.NewProperties()
		for _, k := range base.Props.Keys() { // the file with --override applied
			v, _ := base.Props.Get(k)
			p.Set(k, v)
		}
		port := func(p int32, off int) string {
			if p == 0 {
				return "0"
			}
			return strconv.Itoa(int(p) + off)
		}
		ctlAddr := strings.SplitN(voters[i], "@", 2)[1]
		p.Set("node.id", strconv.Itoa(node))
		p.Set("process.roles", "broker,controller")
		p.Set("controller.quorum.voters", strings.Join(voters, ","))
		p.Set("controller.listener.names", "CONTROLLER")
		p.Set("listeners", l.Name+"://"+net.JoinHostPort(l.Host, port(l.Port, i))+",CONTROLLER://"+ctlAddr)
		p.Set("cluster.id", clusterID)
		p.Set("log.dirs", nodeDirs(node))
		if base.HTTPListener != "" {
			host, hp, err := net.SplitHostPort(base.HTTPListener)
			if err != nil {
				closeAll(ctl)
				return nil, nil, fmt.Errorf("kobs.http.listener: %w", err)
			}
			v, _ := strconv.Atoi(hp)
			p.Set("kobs.http.listener", net.JoinHostPort(host, port(int32(v), i*clusterHTTPPortStep)))
		}
		if n >= clusterMaxRF {
			for k, v := range map[string]string{
				"default.replication.factor":       strconv.Itoa(clusterMaxRF),
				"offsets.topic.replication.factor": strconv.Itoa(clusterMaxRF),
				"min.insync.replicas":              "2",
			} {
				if !overridden[k] {
					p.Set(k, v)
				}
			}
		} else if !overridden["offsets.topic.replication.factor"] {
			p.Set("offsets.topic.replication.factor", strconv.Itoa(n))
		}
		c, err := broker.NewConfig(p)
		if err != nil {
			closeAll(ctl)
			return nil, nil, fmt.Errorf("node %d of --brokers %d: %w", node, n, err)
		}
		c.ControllerNetListener = ctl[i]
		cfgs[i] = c
	}
	return cfgs, logger, nil
}

func has(p *broker.Properties, key string) bool {
	_, ok := p.Get(key)
	return ok
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			_ = ln.Close()
		}
	}
}
