package controller

import (
	"maps"
	"strings"
	"testing"
	"time"
)

// A broker-only node given controller.quorum.bootstrap.servers instead of
// the voters (Kafka 4's broker.properties) asks them for the voter set,
// skipping one that does not answer, then follows the log and registers.
// A bootstrap server of another cluster refuses it at once; a controller
// cannot do without the voters.
func TestBrokerOnlyNodeLearnsVotersFromBootstrapServers(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	dead := listeners(t, 1)[0]
	deadAddr := dead.Addr().String()
	dead.Close()
	cfg := testConfig(4, nil, "")
	cfg.Roles = Roles{Broker: true}
	cfg.BootstrapServers = []string{deadAddr, cl.voters[2]}
	n4 := cl.start(4, cfg)
	cl.waitLive(4)
	if got := n4.ctl.cfg.Voters; !maps.Equal(got, cl.voters) {
		t.Fatalf("learned voters %v, want %v", got, cl.voters)
	}
	if errs := n4.ctl.CreateTopics(ctx(t), []TopicSpec{{Name: "via-bootstrap", Assignment: [][]int32{{4}}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}

	other := cfg
	other.NodeID, other.ClusterID, other.BootstrapServers = 5, "other-cluster", []string{cl.voters[1]}
	start := time.Now()
	if _, err := New(other, nil); err == nil || !strings.Contains(err.Error(), "controller.quorum.bootstrap.servers") || !strings.Contains(err.Error(), "cluster.id") {
		t.Fatalf("another cluster's bootstrap server: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("refusal took %v: it must not wait for the bootstrap timeout", time.Since(start))
	}

	voter := testConfig(6, nil, t.TempDir())
	voter.BootstrapServers = []string{cl.voters[1]}
	if _, err := New(voter, nil); err == nil || !strings.Contains(err.Error(), "controller.quorum.voters") {
		t.Fatalf("a controller without voters: %v", err)
	}
}
