package dashboards_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/alerts"
	"github.com/kobs-dev/kobs/dashboards"
	"github.com/kobs-dev/kobs/internal/promtest"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// inducedElsewhere names failure-only panels that TestLiveReplication
// checks during the failure it induces; TestLive skips them (printed).
var inducedElsewhere = map[string]string{
	"Failing ISR: missing replicas": "TestLiveReplication (a follower killed in a 3-broker cluster)",
}

var telemetryRe = regexp.MustCompile(`telemetry=http://([0-9.:]+)/jolokia`)

// TestLiveReplication: a 3-broker kobs cluster (RF 3, min.insync.replicas
// 2) under a producer, the agent, a real Prometheus with the generated
// config and rules, and a real Alertmanager. A follower is killed: the
// failing-ISR panel names the missing broker, and KobsUnderReplicatedPartitions
// and KobsBrokerDown fire and reach Alertmanager's receivers.
func TestLiveReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 brokers, Prometheus and Alertmanager; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	c := testcluster.StartCluster(t, 3, testcluster.Prop("broker.session.timeout.ms", "3000"),
		testcluster.Prop("broker.heartbeat.interval.ms", "500"), testcluster.Prop("replica.lag.time.max.ms", "3000"))
	tel := map[int32]string{}
	for _, id := range c.IDs() {
		m := telemetryRe.FindStringSubmatch(c.Node(id).Logs())
		require.NotNil(t, m, "node %d: no telemetry address in its ready line", id)
		tel[id] = m[1]
	}
	var targets []string
	for _, id := range c.IDs() {
		targets = append(targets, tel[id])
	}
	agentAddr := startAgent(t, strings.Join(c.Addrs(), ","))

	hook := newWebhook(t)
	amConfig, err := os.ReadFile("../alerts/alertmanager.yml")
	require.NoError(t, err)
	amAddr := promtest.StartAlertmanager(t, strings.ReplaceAll(string(amConfig), "http://127.0.0.1:5001", hook.URL))
	rules, err := alerts.RulesWithTiming("3s", "1s")
	require.NoError(t, err)
	prom := promtest.StartConfig(t, alerts.PrometheusConfig(alerts.PromConfig{
		Brokers: targets, Agents: []string{agentAddr}, Audits: []string{},
		Alertmanagers: []string{amAddr}, ScrapeInterval: "1s", EvalInterval: "1s",
	}), map[string][]byte{alerts.RulesFile: rules})
	pc := dashboards.PromClient{URL: "http://" + prom.Addr}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	two := "2"
	waitFor(ctx, t, "topic orders created with RF 3", func() (bool, string) {
		res, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": &two}, "orders")
		if err == nil && res.Err == nil {
			return true, ""
		}
		return false, fmt.Sprint(err, res.Err)
	})
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { stop(); <-done })
	go func() {
		defer close(done)
		for pctx.Err() == nil {
			cl.Produce(pctx, &kgo.Record{Topic: "orders", Value: []byte("x")}, nil)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	waitFor(ctx, t, "healthy cluster in Prometheus (3 brokers up, 9 replicas, no under-replicated partition)", func() (bool, string) {
		up, err1 := pc.Query(ctx, `sum(up{job="kobs-broker"}) == 3 and sum(kafka_server_replicamanager_partitioncount) >= 9 and sum(kafka_server_replicamanager_underreplicatedpartitions) == 0`, time.Now())
		return err1 == nil && len(up) == 1, fmt.Sprint(up, err1)
	})

	// Kill a broker: for the partitions it follows it drops out of the ISR.
	victim := c.IDs()[len(c.IDs())-1]
	c.Node(victim).Kill()
	t.Logf("killed broker %d (telemetry %s)", victim, tel[victim])

	for _, s := range dashboards.All() {
		for _, p := range panelsOf(s) {
			if _, ok := inducedElsewhere[p.Title]; !ok {
				continue
			}
			for _, q := range p.Queries {
				waitFor(ctx, t, fmt.Sprintf("%s / %q names broker %d during the failure", s.File, p.Title, victim), func() (bool, string) {
					ss, err := pc.Query(ctx, q.Expr, time.Now())
					if err != nil {
						return false, err.Error()
					}
					for _, x := range ss {
						if x.Labels["broker"] == fmt.Sprint(victim) && len(x.Values) > 0 && x.Values[0] > 0 {
							return true, ""
						}
					}
					return false, fmt.Sprint(ss)
				})
				t.Logf("failure-only panel %s / %q shows broker %d missing from the ISR", s.File, p.Title, victim)
			}
		}
	}
	waitFor(ctx, t, "KobsUnderReplicatedPartitions firing", func() (bool, string) {
		ss, err := pc.Query(ctx, `ALERTS{alertname="KobsUnderReplicatedPartitions",alertstate="firing"}`, time.Now())
		return err == nil && len(ss) > 0, fmt.Sprint(ss, err)
	})
	waitFor(ctx, t, "KobsUnderReplicatedPartitions delivered to the warning receiver", func() (bool, string) {
		return hook.got("/kobs/warning", "KobsUnderReplicatedPartitions"), hook.String()
	})
	waitFor(ctx, t, "KobsBrokerDown for the killed broker delivered to the critical receiver", func() (bool, string) {
		return hook.got("/kobs/critical", "KobsBrokerDown", "instance="+tel[victim]), hook.String()
	})
	t.Logf("KobsUnderReplicatedPartitions and KobsBrokerDown fired and reached Alertmanager's receivers")
}
