package broker

import (
	"strings"
	"testing"
	"time"
)

func quorumProps(kv ...string) *Properties {
	p := NewProperties()
	p.Set("node.id", "1")
	p.Set("log.dirs", "/tmp/x")
	for i := 0; i+1 < len(kv); i += 2 {
		p.Set(kv[i], kv[i+1])
	}
	return p
}

func TestQuorumConfigDefaultsToOneVoter(t *testing.T) {
	c, err := NewConfig(quorumProps())
	if err != nil {
		t.Fatal(err)
	}
	if !c.ProcessRoles.Broker || !c.ProcessRoles.Controller || c.ControllerQuorumVoters[1] != "127.0.0.1:0" {
		t.Fatalf("roles %v voters %v", c.ProcessRoles, c.ControllerQuorumVoters)
	}
	if c.BrokerSessionTimeout != 9*time.Second || c.BrokerHeartbeatInterval != 2*time.Second || c.UncleanLeaderElection ||
		!c.AutoLeaderRebalance || c.LeaderImbalanceCheckInterval != 300*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	cc := c.ControllerConfig(nil, nil)
	if cc.DataDir != "/tmp/x/kobs-metadata" || cc.NodeID != 1 {
		t.Fatalf("controller config %+v", cc)
	}
}

func TestQuorumConfigControllerListener(t *testing.T) {
	c, err := NewConfig(quorumProps(
		"process.roles", "broker,controller",
		"controller.quorum.voters", "1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095",
		"listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
		"cluster.id", "abc",
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listeners) != 1 || c.Listeners[0].Name != "PLAINTEXT" || len(c.ControllerListeners) != 1 || len(c.AdvertisedListeners) != 1 {
		t.Fatalf("listeners %v controller %v advertised %v", c.Listeners, c.ControllerListeners, c.AdvertisedListeners)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings: %v", c.Warnings)
	}
}

func TestQuorumConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		key string
		kv  []string
	}{
		{"controller.quorum.voters", []string{"process.roles", "controller", "controller.quorum.voters", "2@h:1"}},
		{"controller.quorum.voters", []string{"process.roles", "broker", "controller.quorum.voters", "1@h:1"}},
		{"controller.quorum.voters", []string{"process.roles", "broker,controller", "controller.quorum.voters", "1@h:1,1@h:2"}},
		{"controller.quorum.voters", []string{"process.roles", "broker,controller", "controller.quorum.voters", "1@h"}},
		{"controller.quorum.voters", []string{"process.roles", "broker,controller", "controller.quorum.voters", "1@127.0.0.1:9999", "listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"}},
		{"process.roles", []string{"process.roles", "brokers", "controller.quorum.voters", "1@h:1"}},
		{"cluster.id", []string{"process.roles", "broker,controller", "controller.quorum.voters", "1@h:1,2@h:2"}},
		{"broker.heartbeat.interval.ms", []string{"broker.heartbeat.interval.ms", "9000"}},
		{"controller.listener.names", []string{"process.roles", "broker", "controller.quorum.voters", "2@h:1", "listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"}},
		// A dedicated controller: only controller listeners, and one.
		{"listeners", []string{"process.roles", "controller", "controller.quorum.voters", "1@127.0.0.1:9093", "cluster.id", "abc", "listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"}},
		{"controller.listener.names", []string{"process.roles", "controller", "controller.quorum.voters", "1@127.0.0.1:9093", "cluster.id", "abc"}},
		// Bootstrap servers alone: a controller must be the only one, on them.
		{"controller.quorum.bootstrap.servers", []string{"process.roles", "controller", "controller.quorum.bootstrap.servers", "h1:9093,h2:9093", "listeners", "CONTROLLER://:9093", "cluster.id", "abc"}},
		{"controller.quorum.bootstrap.servers", []string{"process.roles", "broker", "controller.quorum.bootstrap.servers", "h1", "cluster.id", "abc"}},
		{"controller.quorum.voters", []string{"process.roles", "broker", "cluster.id", "abc"}},
	} {
		_, err := NewConfig(quorumProps(tc.kv...))
		if err == nil || !strings.Contains(err.Error(), tc.key+":") {
			t.Errorf("%v: err %v, want one naming %s", tc.kv, err, tc.key)
		}
	}
}

func TestQuorumConfigSingleNodeUsesItsControllerListener(t *testing.T) {
	c, err := NewConfig(quorumProps("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ControllerQuorumVoters[1] != "127.0.0.1:9093" || len(c.Listeners) != 1 {
		t.Fatalf("voters %v listeners %v", c.ControllerQuorumVoters, c.Listeners)
	}
}

func TestQuorumConfigDedicatedRoles(t *testing.T) {
	ctl, err := NewConfig(quorumProps(
		"process.roles", "controller",
		"controller.quorum.voters", "1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095",
		"listeners", "CONTROLLER://127.0.0.1:9093",
		"cluster.id", "abc",
	))
	if err != nil {
		t.Fatal(err)
	}
	if ctl.ProcessRoles.Broker || !ctl.ProcessRoles.Controller || len(ctl.Listeners) != 0 || len(ctl.ControllerListeners) != 1 {
		t.Fatalf("controller-only: roles %v listeners %v controller listeners %v", ctl.ProcessRoles, ctl.Listeners, ctl.ControllerListeners)
	}
	b, err := NewConfig(quorumProps(
		"node.id", "4",
		"process.roles", "broker",
		"controller.quorum.voters", "1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095",
		"listeners", "PLAINTEXT://127.0.0.1:9092",
		"cluster.id", "abc",
	))
	if err != nil {
		t.Fatal(err)
	}
	if !b.ProcessRoles.Broker || b.ProcessRoles.Controller || len(b.Listeners) != 1 || len(b.ControllerQuorumVoters) != 3 {
		t.Fatalf("broker-only: roles %v listeners %v voters %v", b.ProcessRoles, b.Listeners, b.ControllerQuorumVoters)
	}
}

// Kafka 4's stock KRaft files name controller.quorum.bootstrap.servers
// instead of the voters: a single controller on its own listener
// (kafka-storage format --standalone) and brokers that learn the voters.
func TestQuorumConfigBootstrapServers(t *testing.T) {
	ctl, err := NewConfig(quorumProps(
		"process.roles", "controller",
		"controller.quorum.bootstrap.servers", "localhost:9093",
		"listeners", "CONTROLLER://:9093",
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(ctl.ControllerQuorumVoters) != 1 || ctl.ControllerQuorumVoters[1] != "localhost:9093" {
		t.Fatalf("standalone controller voters %v", ctl.ControllerQuorumVoters)
	}
	b, err := NewConfig(quorumProps(
		"node.id", "2",
		"process.roles", "broker",
		"controller.quorum.bootstrap.servers", "localhost:9093, localhost:9094",
		"listeners", "PLAINTEXT://localhost:9092",
		"cluster.id", "abc",
	))
	if err != nil {
		t.Fatal(err)
	}
	if b.ControllerQuorumVoters != nil || len(b.ControllerQuorumBootstrap) != 2 || b.ControllerConfig(nil, nil).BootstrapServers[1] != "localhost:9094" {
		t.Fatalf("broker: voters %v bootstrap %v", b.ControllerQuorumVoters, b.ControllerQuorumBootstrap)
	}
	both, err := NewConfig(quorumProps(
		"process.roles", "broker,controller",
		"controller.quorum.voters", "1@127.0.0.1:9093",
		"controller.quorum.bootstrap.servers", "127.0.0.1:9093",
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(both.Warnings) != 1 || !strings.Contains(both.Warnings[0], "controller.quorum.bootstrap.servers") {
		t.Fatalf("warnings %v", both.Warnings)
	}
}
