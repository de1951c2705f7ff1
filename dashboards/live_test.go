package dashboards_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/alerts"
	"github.com/kobs-dev/kobs/dashboards"
	"github.com/kobs-dev/kobs/dashboards/promqlcheck"
	"github.com/kobs-dev/kobs/internal/promtest"
	"github.com/kobs-dev/kobs/internal/testcluster"
	"github.com/kobs-dev/kobs/tracing"
)

// TestLive is the dashboards' and alerts' promise, on real parts: a
// 3-broker kobs cluster (topics with replication factor 3,
// min.insync.replicas 2) with the trace store, the trace shipper and the
// audit reconciler beside it (each its own kobs process), a traced producer
// and a traced consumer group, `kobs agent`, a real Prometheus using the
// generated config and rules (scraping every second), and a real
// Alertmanager with the example alertmanager.yml. One cluster serves the
// steady state, the induced failures and the alerts. It checks, in order:
//
//  1. every metric name a dashboard or rule queries is in a live scrape of
//     the brokers, the agent or the audit reconciler, or listed in
//     dashboards.Pending (printed; a pending name that shows up in the
//     scrape fails the test, so the list only shrinks);
//  2. every Prometheus panel query whose metrics exist returns a series,
//     and the replication panels show a real quorum and real followers
//     (one quorum leader all three brokers agree on, three active brokers,
//     a follower lag series from every broker);
//  3. every Elasticsearch panel's request, built as Grafana builds it,
//     returns data from the trace store, or is listed as pending;
//  4. the consumer stops: the agent reports its partitions STOP and its lag
//     grows; KobsConsumerGroupStalled and KobsConsumerLagHigh (threshold
//     lowered for the test) reach Alertmanager's warning receiver;
//  5. a follower broker is killed: the failing-ISR panel names it, the
//     under-replicated panels (broker and agent view), ISR shrinks and
//     fenced brokers show the failure, KobsUnderReplicatedPartitions
//     reaches the warning receiver and KobsBrokerDown is active in
//     Alertmanager's API and reaches the critical receiver;
//  6. `kobs dashboards render` (the library and the CLI) draws every
//     dashboard, the failure included, into a non-empty PNG.
func TestLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 brokers, the trace store, shipper, audit reconciler, agent, Prometheus and Alertmanager; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute) // each wait has its own minute
	defer cancel()

	st := startStack(t)
	kafka := strings.Join(st.kafka, ",")

	// Alertmanager with the example config, receivers pointed at a
	// webhook the test reads.
	hook := newWebhook(t)
	amConfig, err := os.ReadFile("../alerts/alertmanager.yml")
	require.NoError(t, err)
	amAddr := promtest.StartAlertmanager(t, strings.ReplaceAll(string(amConfig), "http://127.0.0.1:5001", hook.URL))

	// Prometheus with the generated config shape and rules; `for` shortened
	// so an alert fires in seconds (promtool tests check the real ones).
	rules, err := alerts.RulesWithTiming("3s", "1s")
	require.NoError(t, err)
	// And the lag threshold lowered, so a stopped consumer crosses it in
	// seconds rather than the real five minutes.
	lagRule := fmt.Sprintf("max by (consumergroup, topic) (kobs_consumergroup_lag_seconds) > %d", alerts.LagSecondsThreshold)
	require.Contains(t, string(rules), lagRule)
	rules = []byte(strings.Replace(string(rules), lagRule, "max by (consumergroup, topic) (kobs_consumergroup_lag_seconds) > 5", 1))
	agentAddr := startAgent(t, kafka)
	promCfg := alerts.PrometheusConfig(alerts.PromConfig{
		Brokers: st.telemetryAddrs(), Agents: []string{agentAddr}, Audits: []string{st.audit}, Traces: []string{st.shipper},
		Alertmanagers: []string{amAddr}, ScrapeInterval: "1s", EvalInterval: "1s",
	})
	prom := promtest.StartConfig(t, promCfg, map[string][]byte{alerts.RulesFile: rules})
	pc := dashboards.PromClient{URL: "http://" + prom.Addr}
	promStarted := time.Now()

	stopConsumer := workload(ctx, t, st.kafka)

	// Wait for data: a produce rate over scrapes, a consumer group
	// fetching, and a healthy replicated cluster.
	waitFor(ctx, t, "messages flowing in Prometheus", func() (bool, string) {
		ss, err := pc.Query(ctx, `sum(rate(kafka_server_brokertopicmetrics_messagesin_total{topic="orders"}[5s])) > 0 and sum(rate(kafka_server_brokertopicmetrics_bytesout_total{topic="orders"}[5s])) > 0`, time.Now())
		return err == nil && len(ss) > 0, fmt.Sprint(ss, err)
	})
	waitFor(ctx, t, "healthy cluster in Prometheus (3 brokers up, orders on 9 replicas, none under-replicated)", func() (bool, string) {
		ss, err := pc.Query(ctx, `sum(up{job="`+dashboards.BrokerJob+`"}) == 3 and sum(kafka_cluster_partition_replicascount{topic="orders"}) == 9 and sum(kafka_server_replicamanager_underreplicatedpartitions) == 0`, time.Now())
		return err == nil && len(ss) == 1, fmt.Sprint(ss, err)
	})

	// 1. Metric names against a live scrape.
	exprs := allExprs(t)
	referenced := map[string][]string{} // name -> where
	for _, e := range exprs {
		names, err := promqlcheck.MetricNames(e.PromQL)
		require.NoError(t, err, e.Where)
		for _, n := range names {
			referenced[n] = append(referenced[n], e.Where)
		}
	}
	onlyInFailurePanels := failureOnlyNames(t)
	// The audit reconciler exports its judgements once it judged a
	// bucket (bucket and grace of 2 s here): scrape until every name
	// that must be there is.
	var scraped map[string]bool
	waitFor(ctx, t, "every queried metric name in a live scrape of the brokers, the agent, the audit reconciler and the trace shipper", func() (bool, string) {
		scraped = map[string]bool{}
		for _, target := range append(st.telemetryAddrs(), agentAddr, st.audit, st.shipper) {
			for n := range scrapeNames(ctx, t, "http://"+target+"/metrics") {
				scraped[n] = true
			}
		}
		var missing []string
		for name, where := range referenced {
			_, pending := dashboards.Pending[name]
			if !scraped[name] && !pending && !promqlcheck.Synthetic[name] && onlyInFailurePanels[name] == "" {
				missing = append(missing, name+" (queried by "+strings.Join(where, "; ")+")")
			}
		}
		sort.Strings(missing)
		return len(missing) == 0, "neither exported nor listed as pending: " + strings.Join(missing, ", ")
	})
	var pendingSeen []string
	failureOnlyUnseen := 0
	for name, where := range referenced {
		switch _, pending := dashboards.Pending[name]; {
		case promqlcheck.Synthetic[name]:
		case onlyInFailurePanels[name] != "" && !scraped[name] && !pending:
			failureOnlyUnseen++
			t.Logf("  PENDING %s: only exported during a failure, read only by failure-only panel %s", name, onlyInFailurePanels[name])
		case scraped[name] && pending:
			t.Errorf("%s is listed in dashboards.Pending (%s) but the broker exports it now: move it out of the list", name, dashboards.Pending[name])
		case scraped[name]:
		case pending:
			pendingSeen = append(pendingSeen, name)
		default:
			t.Errorf("%s is queried by %s but neither exported by the broker, the agent or the audit reconciler, nor listed as pending", name, strings.Join(where, "; "))
		}
	}
	for name := range dashboards.Pending {
		if _, ok := referenced[name]; !ok {
			t.Errorf("dashboards.Pending lists %s, which no dashboard or rule queries", name)
		}
	}
	sort.Strings(pendingSeen)
	t.Logf("metric names: %d referenced, %d found in the live scrapes (or made by Prometheus), %d only exported during a failure, %d PENDING (exporter not landed):",
		len(referenced), len(referenced)-len(pendingSeen)-failureOnlyUnseen, failureOnlyUnseen, len(pendingSeen))
	for _, n := range pendingSeen {
		t.Logf("  PENDING %-60s %s", n, dashboards.Pending[n])
	}

	// 2. Every Prometheus panel query whose metrics exist returns a series.
	r := &dashboards.Renderer{Prom: pc, ES: &dashboards.ESClient{URL: st.tracestore}, ScrapeInterval: time.Second}
	checked, pendingQueries := 0, 0
	for _, s := range dashboards.All() {
		for _, row := range s.Rows {
			for _, p := range row.Panels {
				for _, q := range p.Queries {
					names, err := promqlcheck.MetricNames(q.Expr)
					require.NoError(t, err)
					if waits := pendingOf(names); len(waits) > 0 {
						pendingQueries++
						t.Logf("  PENDING query %s / %q: waits for %s", s.File, p.Title, strings.Join(waits, ", "))
						continue
					}
					if p.OnlyDuringFailure {
						failureOnly(t, s, p)
						continue
					}
					checked++
					expr := r.Expr(q.Expr)
					waitFor(ctx, t, fmt.Sprintf("%s / %q: %s returns a series", s.File, p.Title, expr), func() (bool, string) {
						now := time.Now()
						ss, err := pc.QueryRange(ctx, expr, now.Add(-30*time.Second), now, time.Second)
						return err == nil && len(ss) > 0, fmt.Sprint(len(ss), " series, err ", err)
					})
				}
			}
		}
	}
	t.Logf("panel queries: %d return series live, %d PENDING", checked, pendingQueries)

	// The replication panels show a real replicated cluster, not just a
	// series: one quorum leader all three brokers agree on, in an epoch
	// they agree on; three active brokers, none fenced; a follower-lag
	// series from every broker (each follows the others' partitions).
	panelCheck(ctx, t, r, "kobs-replication", "Quorum leader", func(ss []sample) string {
		return agree(ss, 3, 1)
	})
	panelCheck(ctx, t, r, "kobs-replication", "Quorum epoch", func(ss []sample) string {
		return agree(ss, 3, 1)
	})
	panelCheck(ctx, t, r, "kobs-replication", "Fenced and active brokers", func(ss []sample) string {
		if v := byLegend(ss); v["active"] != 3 || v["fenced"] != 0 {
			return fmt.Sprintf("want 3 active, 0 fenced: %v", v)
		}
		return ""
	})
	panelCheck(ctx, t, r, "kobs-replication", "Max follower lag", func(ss []sample) string {
		if len(ss) != 3 {
			return fmt.Sprintf("want a series per broker, got %d", len(ss))
		}
		return ""
	})
	panelCheck(ctx, t, r, "kobs-replication", "Quorum requests", func(ss []sample) string {
		// The active controller replicates to the two other voters.
		v := byLegend(ss)
		for _, x := range ss {
			inst := strings.TrimSuffix(x.Legend, " requests")
			if inst != x.Legend && x.Value > 0 && v[inst+" responses"] > 0 {
				return ""
			}
		}
		return fmt.Sprint("no node sends quorum requests that are answered: ", v)
	})
	// ... and every broker is a follower (the gauge exists on any broker).
	waitFor(ctx, t, "every broker follows partitions (replicas it does not lead)", func() (bool, string) {
		ss, err := pc.Query(ctx, `kafka_server_replicamanager_partitioncount - kafka_server_replicamanager_leadercount > 0`, time.Now())
		return err == nil && len(ss) == 3, fmt.Sprint(ss, err)
	})
	t.Logf("replication panels: one quorum leader and epoch on 3 brokers, 3 active brokers, answered quorum requests, follower lag from 3 brokers that all follow partitions")

	// Variables: label_values(selector, label) has values, as Grafana asks.
	for _, s := range dashboards.All() {
		for _, v := range s.Vars {
			sel, label, err := promqlcheck.LabelValues(v.Query)
			require.NoError(t, err)
			names, err := promqlcheck.MetricNames(sel)
			require.NoError(t, err)
			if waits := pendingOf(names); len(waits) > 0 {
				t.Logf("  PENDING variable %s / %s: waits for %s", s.File, v.Name, strings.Join(waits, ", "))
				continue
			}
			sel = r.Expr(sel) // a variable may refer to another one
			waitFor(ctx, t, fmt.Sprintf("%s variable %s has values", s.File, v.Name), func() (bool, string) {
				vals, err := pc.LabelValues(ctx, sel, label, time.Now().Add(-time.Minute), time.Now())
				return err == nil && len(vals) > 0, fmt.Sprint(vals, err)
			})
		}
	}

	// 3. Elasticsearch panels, requested as Grafana's datasource builds them.
	waitFor(ctx, t, "traced events in the trace store", func() (bool, string) {
		resp, err := http.Get(st.tracestore + "/" + tracing.IndexPrefix + "*/_count")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var c struct {
			Count int `json:"count"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&c)
		return c.Count > 0, fmt.Sprint("count ", c.Count)
	})
	now := time.Now()
	for _, s := range dashboards.All() {
		for _, row := range s.Rows {
			for _, p := range row.Panels {
				if len(p.ES) == 0 {
					continue
				}
				if p.OnlyDuringFailure {
					_, listed := dashboards.PendingFailure[p.Title]
					if _, ok := inducedByKill[p.Title]; ok || listed {
						failureOnly(t, s, p)
						continue
					}
					// The workload induced it: some bucket must be positive.
					positive := func() (bool, string) {
						res, errs, err := r.ES.Search(ctx, p.ES, time.Now().Add(-10*time.Minute), time.Now())
						if err != nil {
							return false, err.Error()
						}
						for i, rr := range res {
							if errs[i] != nil {
								return false, errs[i].Error()
							}
							for _, ser := range rr.Series {
								if slices.Max(append(ser.Values, 0)) > 0 {
									return true, ""
								}
							}
						}
						return false, fmt.Sprint(res)
					}
					if why, pending := dashboards.PendingTraceStore[p.Title]; pending {
						// The failure must be in the store (its events
						// counted), or the panel's emptiness proves nothing.
						q := p.ES[0]
						q.Metrics = []dashboards.ESMetric{{Type: "count"}}
						countPanel := dashboards.Panel{Title: p.Title + " (count)", ES: []dashboards.ESQuery{q}}
						waitFor(ctx, t, fmt.Sprintf("%s / %q: the induced failure's events in the trace store", s.File, p.Title), func() (bool, string) {
							res, errs, err := r.ES.Search(ctx, countPanel.ES, time.Now().Add(-10*time.Minute), time.Now())
							if err != nil || errs[0] != nil {
								return false, fmt.Sprint(err, errs)
							}
							for _, ser := range res[0].Series {
								if slices.Max(append(ser.Values, 0)) > 0 {
									return true, ""
								}
							}
							return false, fmt.Sprint(res)
						})
						if ok, _ := positive(); ok {
							t.Errorf("%s / %q is listed in PendingTraceStore (%s) but the store answers it now: move it out", s.File, p.Title, why)
						} else {
							t.Logf("  PENDING Elasticsearch panel %s / %q (%s): its events are stored, the panel's aggregation is 0", s.File, p.Title, why)
						}
						continue
					}
					waitFor(ctx, t, fmt.Sprintf("%s / %q shows the induced failure", s.File, p.Title), positive)
					t.Logf("  failure-only panel %s / %q shows the failure the workload induced", s.File, p.Title)
					continue
				}
				search := func(now time.Time) (bool, string) {
					res, errs, err := r.ES.Search(ctx, p.ES, now.Add(-10*time.Minute), now)
					ok := err == nil
					for i := range res {
						ok = ok && errs[i] == nil && !res[i].Empty()
					}
					if err == nil {
						return ok, fmt.Sprint(errs)
					}
					return ok, err.Error()
				}
				why, pending := dashboards.PendingTraceStore[p.Title]
				if !pending {
					// Waited for, not read once: the store had some
					// event above, not necessarily this panel's kind
					// (the shipper can lag on a loaded machine).
					waitFor(ctx, t, fmt.Sprintf("Elasticsearch panel %q has data from the trace store", p.Title), func() (bool, string) {
						return search(time.Now())
					})
					continue
				}
				ok, msg := search(now)
				if ok {
					t.Errorf("Elasticsearch panel %q is listed as pending (%s) but the trace store answers it now: move it out of PendingTraceStore", p.Title, why)
				} else {
					t.Logf("  PENDING Elasticsearch panel %q (%s): %.160s", p.Title, why, msg)
				}
			}
		}
	}

	// 4. Stop the consumer while the producer goes on: the agent sees the
	// group's partitions STOP, KobsConsumerGroupStalled fires and reaches
	// the warning receiver.
	stopConsumer()
	waitFor(ctx, t, "KobsConsumerGroupStalled firing in Prometheus", func() (bool, string) {
		ss, err := pc.Query(ctx, `ALERTS{alertname="KobsConsumerGroupStalled",alertstate="firing",consumergroup="billing"}`, time.Now())
		if err == nil && len(ss) == 1 {
			return true, ""
		}
		st, _ := pc.Query(ctx, `kobs_consumergroup_partition_status{consumergroup="billing"}`, time.Now())
		return false, fmt.Sprint(ss, err, " statuses: ", st)
	})
	waitFor(ctx, t, "KobsConsumerGroupStalled delivered to the warning receiver", func() (bool, string) {
		return hook.got("/kobs/warning", "KobsConsumerGroupStalled", "consumergroup=billing"), hook.String()
	})
	t.Logf("KobsConsumerGroupStalled fired in Prometheus and was delivered to the warning webhook")
	waitFor(ctx, t, "KobsConsumerLagHigh for billing/orders firing in Prometheus", func() (bool, string) {
		ss, err := pc.Query(ctx, `ALERTS{alertname="KobsConsumerLagHigh",alertstate="firing",consumergroup="billing",topic="orders"}`, time.Now())
		return err == nil && len(ss) == 1, fmt.Sprint(ss, err)
	})
	waitFor(ctx, t, "KobsConsumerLagHigh for billing delivered to the warning receiver", func() (bool, string) {
		return hook.got("/kobs/warning", "KobsConsumerLagHigh", "consumergroup=billing"), hook.String()
	})
	t.Logf("KobsConsumerLagHigh (threshold lowered to 5 s) fired and was delivered to the warning webhook")

	// 5. Kill a follower (a broker that is not the active controller): it
	// drops out of the ISR of every partition it follows.
	victim := st.follower(ctx, t)
	killed := time.Now()
	st.c.Node(victim).Kill()
	vtel := st.telemetry[victim]
	t.Logf("killed broker %d (telemetry %s)", victim, vtel)
	positive := func(ss []sample) string {
		for _, x := range ss {
			if x.Value > 0 {
				return ""
			}
		}
		return fmt.Sprint("no positive value: ", ss)
	}
	for _, s := range dashboards.All() {
		for _, p := range panelsOf(s) {
			if _, ok := inducedByKill[p.Title]; !ok || !p.OnlyDuringFailure || len(p.Queries) == 0 {
				continue
			}
			if p.Title != "Failing ISR: missing replicas" {
				panelCheck(ctx, t, r, s.File, p.Title, positive)
				t.Logf("  failure-only panel %s / %q shows the failure", s.File, p.Title)
				continue
			}
			for _, q := range p.Queries {
				waitFor(ctx, t, fmt.Sprintf("%s / %q names broker %d during the failure", s.File, p.Title, victim), func() (bool, string) {
					ss, err := pc.Query(ctx, r.Expr(q.Expr), time.Now())
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
				t.Logf("  failure-only panel %s / %q shows broker %d missing from the ISR", s.File, p.Title, victim)
			}
		}
	}
	panelCheck(ctx, t, r, "kobs-cluster-overview", "Under-replicated partitions", positive)
	panelCheck(ctx, t, r, "kobs-cluster-overview", "Under min ISR", positive)
	panelCheck(ctx, t, r, "kobs-replication", "Under-replicated partitions", positive)
	panelCheckSince(ctx, t, r, killed, "kobs-replication", "ISR shrinks / expands", func(ss []sample) string {
		for _, x := range ss {
			if strings.HasSuffix(x.Legend, " shrinks") && x.Value > 0 {
				return ""
			}
		}
		return fmt.Sprint("no ISR shrinks: ", ss)
	})
	panelCheck(ctx, t, r, "kobs-replication", "Fenced and active brokers", func(ss []sample) string {
		if v := byLegend(ss); v["active"] != 2 || v["fenced"] != 1 {
			return fmt.Sprintf("want 2 active, 1 fenced: %v", v)
		}
		return ""
	})
	t.Logf("replication panels during the failure: under-replicated (broker and agent view) > 0, under min ISR (broker and agent view) > 0, ISR shrinks > 0, 1 fenced broker")
	waitFor(ctx, t, "KobsUnderReplicatedPartitions delivered to the warning receiver", func() (bool, string) {
		return hook.got("/kobs/warning", "KobsUnderReplicatedPartitions"), hook.String()
	})
	waitFor(ctx, t, "KobsUnderMinIsrPartitions firing in Prometheus", func() (bool, string) {
		ss, err := pc.Query(ctx, `ALERTS{alertname="KobsUnderMinIsrPartitions",alertstate="firing"}`, time.Now())
		return err == nil && len(ss) > 0, fmt.Sprint(ss, err)
	})
	waitFor(ctx, t, "KobsBrokerDown for the killed broker in Alertmanager's API", func() (bool, string) {
		resp, err := http.Get("http://" + amAddr + "/api/v2/alerts?filter=alertname%3D%22KobsBrokerDown%22")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var got []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			Status      struct {
				State string `json:"state"`
			} `json:"status"`
		}
		body, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(body, &got)
		for _, a := range got {
			if a.Labels["instance"] == vtel && a.Labels["severity"] == "critical" && a.Status.State == "active" &&
				strings.HasSuffix(a.Annotations["runbook_url"], "RUNBOOK.md#kobsbrokerdown") {
				return true, ""
			}
		}
		return false, string(body)
	})
	waitFor(ctx, t, "KobsBrokerDown for the killed broker delivered to the critical receiver", func() (bool, string) {
		return hook.got("/kobs/critical", "KobsBrokerDown", "instance="+vtel), hook.String()
	})
	t.Logf("KobsUnderReplicatedPartitions reached the warning webhook; KobsBrokerDown for broker %d is active in Alertmanager and reached the critical webhook", victim)

	if ss, err := pc.Query(ctx, `max_over_time(kafka_server_replicafetchermanager_maxlag[10m])`, time.Now()); err == nil {
		lags := map[string]float64{}
		for _, x := range ss {
			lags[x.Labels["instance"]] = x.Values[0]
		}
		t.Logf("largest follower lag (MaxLag) per broker over the run: %v", lags)
	}

	// 6. Render every dashboard: the stopped consumer's lag and the
	// missing follower are on them.
	outDir := os.Getenv("KOBS_RENDER_DIR") // keep the images to look at them
	if outDir == "" {
		outDir = t.TempDir()
	}
	r.To = time.Now()
	r.From = promStarted
	results, err := r.RenderAll(ctx, outDir)
	require.NoError(t, err)
	for _, s := range dashboards.All() {
		checkPNG(t, filepath.Join(outDir, s.File+".png"))
		for i, pr := range results[s.File] {
			p := panelsOf(s)[i]
			if panelPending(p) || (p.OnlyDuringFailure && inducedByKill[p.Title] == "") {
				continue
			}
			require.NoError(t, pr.Err, "%s / %q", s.File, pr.Panel)
			require.Positive(t, pr.Series, "%s / %q rendered no data", s.File, pr.Panel)
		}
	}
	t.Logf("rendered %d dashboards into %s", len(dashboards.All()), outDir)

	// The same through the CLI, as an operator runs it.
	cliDir := t.TempDir()
	out, err := exec.CommandContext(ctx, testcluster.Binary(t), "dashboards", "render", "--prometheus", pc.URL,
		"--es", st.tracestore, "--out", cliDir, "--range", time.Since(promStarted).Round(time.Second).String(), "--scrape-interval", "1s").CombinedOutput()
	require.NoError(t, err, "kobs dashboards render:\n%s", out)
	var file string
	images, panelLines := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(line, "  ") {
			file = line
			checkPNG(t, file)
			images++
			continue
		}
		panelLines++
		fields := strings.SplitN(strings.TrimSpace(line), "  ", 2)
		status := strings.TrimSpace(fields[len(fields)-1])
		if strings.HasSuffix(status, " series") {
			continue
		}
		var p dashboards.Panel
		for _, s := range dashboards.All() {
			if strings.HasSuffix(file, "/"+s.File+".png") {
				for _, q := range panelsOf(s) {
					if q.Title == strings.TrimSpace(fields[0]) {
						p = q
					}
				}
			}
		}
		require.NotEmpty(t, p.Title, "unknown panel line %q", line)
		require.True(t, panelPending(p) || p.OnlyDuringFailure, "kobs dashboards render: %s: %s", file, line)
	}
	require.Equal(t, len(dashboards.All()), images)
	t.Logf("kobs dashboards render (the CLI): %d images, %d panels reported", images, panelLines)
}

// inducedByKill names the failure-only panels TestLive checks while the
// follower it kills is down.
var inducedByKill = map[string]string{
	"Failing ISR: missing replicas": "the follower kill (step 5)",
	"Under min ISR (agent)":         "the follower kill (step 5; topic ledger needs 3 in sync)",
}

// sample is one series of a panel query evaluated now: its legend as the
// panel draws it, its labels and value.
type sample struct {
	Legend string
	Labels map[string]string
	Value  float64
}

// panelCheck waits until the queries of a panel, evaluated now as the
// renderer evaluates them, satisfy check (which returns "" when they do).
func panelCheck(ctx context.Context, t *testing.T, r *dashboards.Renderer, file, title string, check func([]sample) string) {
	t.Helper()
	panelCheckSince(ctx, t, r, time.Time{}, file, title, check)
}

// panelCheckSince is panelCheck over the graph since a time (each series'
// largest value): a rate that spiked when a failure began.
func panelCheckSince(ctx context.Context, t *testing.T, r *dashboards.Renderer, since time.Time, file, title string, check func([]sample) string) {
	t.Helper()
	var p dashboards.Panel
	for _, s := range dashboards.All() {
		if s.File != file {
			continue
		}
		for _, x := range panelsOf(s) {
			if x.Title == title {
				p = x
			}
		}
	}
	require.NotEmpty(t, p.Title, "no panel %s / %q", file, title)
	waitFor(ctx, t, fmt.Sprintf("%s / %q", file, title), func() (bool, string) {
		var all []sample
		for _, q := range p.Queries {
			var ss []dashboards.Series
			var err error
			if since.IsZero() {
				ss, err = r.Prom.Query(ctx, r.Expr(q.Expr), time.Now())
			} else {
				ss, err = r.Prom.QueryRange(ctx, r.Expr(q.Expr), since, time.Now(), time.Second)
			}
			if err != nil {
				return false, err.Error()
			}
			for _, x := range ss {
				if len(x.Values) > 0 {
					all = append(all, sample{dashboards.Legend(q.Legend, x.Labels), x.Labels, slices.Max(x.Values)})
				}
			}
		}
		why := check(all)
		return why == "", why
	})
}

// agree: n series, one value on all of them, at least min.
func agree(ss []sample, n int, min float64) string {
	if len(ss) != n {
		return fmt.Sprintf("want %d series, got %d: %v", n, len(ss), ss)
	}
	for _, x := range ss {
		if x.Value != ss[0].Value || x.Value < min {
			return fmt.Sprintf("want one value >= %v on all: %v", min, ss)
		}
	}
	return ""
}

// byLegend maps each series' legend to its value.
func byLegend(ss []sample) map[string]float64 {
	out := map[string]float64{}
	for _, x := range ss {
		out[x.Legend] = x.Value
	}
	return out
}

// failureOnlyNames maps the metric names read only by panels listed in
// dashboards.PendingFailure (never by another panel or a rule) to such a
// panel: an exporter may omit them while all is well.
func failureOnlyNames(t *testing.T) map[string]string {
	t.Helper()
	only, other := map[string]string{}, map[string]bool{}
	for _, s := range dashboards.All() {
		for _, p := range panelsOf(s) {
			_, listed := dashboards.PendingFailure[p.Title]
			if _, ok := inducedByKill[p.Title]; ok {
				listed = true
			}
			for _, q := range p.Queries {
				names, err := promqlcheck.MetricNames(q.Expr)
				require.NoError(t, err)
				for _, n := range names {
					if p.OnlyDuringFailure && listed {
						only[n] = fmt.Sprintf("%s / %q", s.File, p.Title)
					} else {
						other[n] = true
					}
				}
			}
		}
	}
	rules, err := promqlcheck.Rules(filepath.Join("..", alerts.GeneratedDir, alerts.RulesFile))
	require.NoError(t, err)
	for _, r := range rules {
		names, err := promqlcheck.MetricNames(r.PromQL)
		require.NoError(t, err)
		for _, n := range names {
			other[n] = true
		}
	}
	for n := range other {
		delete(only, n)
	}
	return only
}

// failureOnly reports a panel that only has data during a failure: listed
// in PendingFailure (printed), or an error (the test must induce it).
func failureOnly(t *testing.T, s dashboards.Spec, p dashboards.Panel) {
	t.Helper()
	if by, ok := inducedByKill[p.Title]; ok {
		t.Logf("  failure-only panel %s / %q is checked by %s", s.File, p.Title, by)
		return
	}
	if why, ok := dashboards.PendingFailure[p.Title]; ok {
		t.Logf("  PENDING failure-only panel %s / %q: %s", s.File, p.Title, why)
		return
	}
	t.Errorf("%s / %q only has data during a failure: induce it in this test before checking it", s.File, p.Title)
}

func panelsOf(s dashboards.Spec) []dashboards.Panel {
	var out []dashboards.Panel
	for _, r := range s.Rows {
		out = append(out, r.Panels...)
	}
	return out
}

func pendingOf(names []string) []string {
	var out []string
	for _, n := range names {
		if why, ok := dashboards.Pending[n]; ok {
			out = append(out, n+" ("+why+")")
		}
	}
	return out
}

// panelPending: a panel with a pending query or a pending trace-store request.
func panelPending(p dashboards.Panel) bool {
	if _, ok := dashboards.PendingTraceStore[p.Title]; ok && len(p.ES) > 0 {
		return true
	}
	for _, q := range p.Queries {
		names, _ := promqlcheck.MetricNames(q.Expr)
		if len(pendingOf(names)) > 0 {
			return true
		}
	}
	return false
}

func allExprs(t *testing.T) []promqlcheck.Expr {
	t.Helper()
	d, err := promqlcheck.Dashboards("generated")
	require.NoError(t, err)
	r, err := promqlcheck.Rules(filepath.Join("..", alerts.GeneratedDir, alerts.RulesFile))
	require.NoError(t, err)
	return append(d, r...)
}

// scrapeNames GETs a /metrics page and returns the metric names in it.
func scrapeNames(ctx context.Context, t *testing.T, url string) map[string]bool {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, names)
	return names
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, path)
	b := img.Bounds()
	require.Equal(t, 1440, b.Dx(), "%s: not Grafana's 24-column grid width", path)
	require.Greater(t, b.Dy(), 300, path)
	// Panel-shaped: frames, text and lines give many colours; a blank or
	// single-colour image would not.
	colours := map[uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	require.Greater(t, len(colours), 20, "%s looks empty", path)
}

// waitFor polls cond until it holds, for at most a minute.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last string
	for {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; last: %.600s", what, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// stack is the system under test: a 3-broker kobs cluster and, beside it,
// each as its own kobs process the way an operator deploys them next to a
// cluster, the trace store, the trace shipper and the audit reconciler.
type stack struct {
	c          *testcluster.Cluster
	kafka      []string         // bootstrap addresses
	telemetry  map[int32]string // host:port of each broker's /metrics
	tracestore string           // http://host:port
	audit      string           // host:port of the reconciler's /metrics
	shipper    string           // host:port of the trace shipper's /metrics
}

var (
	telemetryRe  = regexp.MustCompile(`telemetry=http://([0-9.:]+)/jolokia`)
	tracestoreRe = regexp.MustCompile(`tracestore ready on (http://[0-9.:]+)`)
	shipperRe    = regexp.MustCompile(`metrics on http://([0-9.:]+)/metrics`)
)

// startStack starts the cluster (replication factor 3 for every topic,
// min.insync.replicas 2; short session and ISR timeouts so a killed broker
// is fenced and leaves the ISRs in seconds) and its companions.
func startStack(t *testing.T) *stack {
	t.Helper()
	c := testcluster.StartCluster(t, 3,
		testcluster.Prop("default.replication.factor", "3"), testcluster.Prop("min.insync.replicas", "2"),
		testcluster.Prop("num.partitions", "3"), testcluster.Prop("group.initial.rebalance.delay.ms", "0"),
		// The leaders drop the dead broker from their ISRs
		// (replica.lag.time.max.ms, counted in IsrShrinksPerSec) before
		// the controller fences it (broker.session.timeout.ms), so both
		// the ISR shrinks and the fenced-broker panels have a case. (With
		// Kafka's defaults, 30 s and 9 s, fencing comes first.)
		testcluster.Prop("replica.lag.time.max.ms", "2000"),
		testcluster.Prop("broker.session.timeout.ms", "6000"), testcluster.Prop("broker.heartbeat.interval.ms", "500"))
	st := &stack{c: c, kafka: c.Addrs(), telemetry: map[int32]string{}}
	for _, id := range c.IDs() {
		m := telemetryRe.FindStringSubmatch(c.Node(id).Logs())
		require.NotNil(t, m, "node %d: no telemetry address in its ready line", id)
		st.telemetry[id] = m[1]
	}
	kafka := strings.Join(st.kafka, ",")
	dir := t.TempDir()
	kv := startProc(t, "kobs tracestore", "tracestore ready on", "tracestore", "--dir", filepath.Join(dir, "tracestore"), "--listen", "127.0.0.1:0")
	m := tracestoreRe.FindStringSubmatch(kv["line"])
	require.NotNil(t, m, "tracestore ready line %q", kv["line"])
	st.tracestore = m[1]
	kv = startProc(t, "kobs trace ship", "trace shipper:", "trace", "ship", "--bootstrap-server", kafka, "--url", st.tracestore, "--listen", "127.0.0.1:0")
	m = shipperRe.FindStringSubmatch(kv["line"])
	require.NotNil(t, m, "trace shipper line %q names no metrics address", kv["line"])
	st.shipper = m[1]
	kv = startProc(t, "kobs audit run", `msg="kobs audit ready"`, "audit", "run", "--bootstrap-servers", kafka,
		"--listen", "127.0.0.1:0", "--state-dir", filepath.Join(dir, "audit"), "--bucket", "2s", "--grace", "2s")
	st.audit = strings.TrimPrefix(kv["listen"], "http://")
	_, _, err := net.SplitHostPort(st.audit)
	require.NoError(t, err, "audit listen %v", kv)
	return st
}

func (st *stack) telemetryAddrs() []string {
	var out []string
	for _, id := range st.c.IDs() {
		out = append(out, st.telemetry[id])
	}
	return out
}

// follower picks a broker that is not the active controller, so killing it
// fails replicas, not the metadata quorum's leadership.
func (st *stack) follower(ctx context.Context, t *testing.T) int32 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.kafka...))
	require.NoError(t, err)
	defer cl.Close()
	var victim int32 = -1
	waitFor(ctx, t, "the active controller in the metadata", func() (bool, string) {
		md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		if err != nil || md.Controller < 1 {
			return false, fmt.Sprint(md.Controller, err)
		}
		for _, id := range st.c.IDs() {
			if id != md.Controller {
				victim = id
			}
		}
		return true, ""
	})
	return victim
}

// startProc runs `kobs args...` until the test ends and waits for a line of
// its output containing marker; it returns that line's key=value fields
// (and the line itself under "line").
func startProc(t *testing.T, what, marker string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(testcluster.Binary(t), args...)
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	_ = pw.Close() // the child holds its copy; EOF comes when it exits
	exited := make(chan error, 1)
	lines := readyLines(pr, exited, cmd, marker)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = pr.Close()
	})
	return waitReady(t, what, lines, exited, 1)
}

// readyLines parses the key=value fields of the log lines containing one
// of the markers and sends them; at EOF it reports the process's exit.
func readyLines(r io.Reader, exited chan error, cmd *exec.Cmd, markers ...string) chan map[string]string {
	out := make(chan map[string]string, len(markers))
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			for _, m := range markers {
				if strings.Contains(line, m) {
					kv := map[string]string{"line": line}
					for _, f := range strings.Fields(line) {
						if a, b, ok := strings.Cut(f, "="); ok {
							kv[a] = b
						}
					}
					out <- kv
				}
			}
		}
		exited <- cmd.Wait()
	}()
	return out
}

// waitReady merges n ready lines.
func waitReady(t *testing.T, what string, lines chan map[string]string, exited chan error, n int) map[string]string {
	t.Helper()
	all := map[string]string{}
	for i := 0; i < n; i++ {
		select {
		case kv := <-lines:
			for a, b := range kv {
				all[a] = b
			}
		case err := <-exited:
			t.Fatalf("%s exited before ready: %v", what, err)
		case <-time.After(60 * time.Second):
			t.Fatalf("%s not ready after 60 s", what)
		}
	}
	return all
}

// startAgent runs `kobs agent` against the broker, cycling every second.
func startAgent(t *testing.T, kafka string) string {
	t.Helper()
	cmd := exec.Command(testcluster.Binary(t), "agent", "--bootstrap-servers", kafka, "--listen", "127.0.0.1:0", "--interval", "1s")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	lines := readyLines(stderr, exited, cmd, `msg="kobs agent ready"`)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	kv := waitReady(t, "kobs agent", lines, exited, 1)
	addr := strings.TrimPrefix(kv["listen"], "http://")
	_, _, err = net.SplitHostPort(addr)
	require.NoError(t, err, "agent listen %v", kv)
	return addr
}

// workload runs a traced producer and a traced consumer group on topic
// "orders" until the test ends, and provokes error responses (config
// lookups of a missing topic) so the error panels have a series.
func workload(ctx context.Context, t *testing.T, kafka []string) (stopConsumer func()) {
	t.Helper()
	// orders: replicated on all three brokers, acks=all needing two of
	// them. ledger (no traffic) needs all three in sync, so a broker down
	// puts it under min ISR: the under-min-ISR panels and alert get a
	// real case. Created before any client asks for them (a consumer's
	// metadata request would auto-create orders with the defaults).
	admCl, err := kgo.NewClient(kgo.SeedBrokers(kafka...))
	require.NoError(t, err)
	for topic, minISR := range map[string]string{"orders": "2", "ledger": "3"} {
		waitFor(ctx, t, "topic "+topic+" created with replication factor 3", func() (bool, string) {
			_, err := kadm.NewClient(admCl).CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
			if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
				return true, "" // exists: an earlier attempt whose answer was lost made it
			}
			return false, err.Error()
		})
	}
	admCl.Close()
	ph, err := tracing.NewProducerHook(tracing.Brokers(kafka...), tracing.ClientID("live-producer"))
	require.NoError(t, err)
	prod, err := kgo.NewClient(kgo.SeedBrokers(kafka...), kgo.WithHooks(ph), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	ch, err := tracing.NewConsumerHook(tracing.Brokers(kafka...), tracing.Group("billing"), tracing.ClientID("live-consumer"))
	require.NoError(t, err)
	cons, err := kgo.NewClient(kgo.SeedBrokers(kafka...), kgo.WithHooks(ch), kgo.ConsumerGroup("billing"),
		kgo.ConsumeTopics("orders"), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	adm := kadm.NewClient(prod)
	// A traced producer with a one-event buffer, bursting: it drops trace
	// events and records the drops (type:drop) for the dropped-events panel.
	dh, err := tracing.NewProducerHook(tracing.Brokers(kafka...), tracing.ClientID("live-dropper"), tracing.MaxBufferedEvents(1))
	require.NoError(t, err)
	dropper, err := kgo.NewClient(kgo.SeedBrokers(kafka...), kgo.WithHooks(dh), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	for i := 0; i < 500; i++ {
		dropper.Produce(ctx, &kgo.Record{Topic: "orders", Value: []byte("burst")}, nil)
	}
	require.NoError(t, dropper.Flush(ctx))
	dropper.Close()
	dh.Close()
	require.Positive(t, dh.Emitter().Stats().Dropped, "the one-event buffer dropped nothing")

	var wg, consWG sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	cctx, cstop := context.WithCancel(wctx)
	var once sync.Once
	stopConsumer = func() {
		once.Do(func() {
			cstop()
			consWG.Wait()
			cons.Close() // leaves the group
			ch.Close()
		})
	}
	t.Cleanup(func() {
		stop()
		wg.Wait()
		stopConsumer()
		prod.Close()
		ph.Close()
	})
	wg.Add(2)
	go func() { // an error response now and then, for the error panels
		defer wg.Done()
		for wctx.Err() == nil {
			_, _ = adm.DescribeTopicConfigs(wctx, "no-such-topic-for-the-errors-panel")
			select {
			case <-wctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	go func() {
		defer wg.Done()
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-wctx.Done():
				return
			case <-tk.C:
				prod.Produce(wctx, &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint(i % 7)), Value: bytes.Repeat([]byte("x"), 200)}, nil)
			}
		}
	}()
	consWG.Add(1)
	go func() {
		defer consWG.Done()
		for cctx.Err() == nil {
			cons.PollFetches(cctx)
		}
	}()
	return stopConsumer
}

// webhook is an Alertmanager webhook receiver recording what it got.
type webhook struct {
	*httptest.Server
	mu   sync.Mutex
	msgs []string // "path alertname consumergroup=G instance=I"
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var msg struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		_ = json.NewDecoder(r.Body).Decode(&msg)
		w.mu.Lock()
		for _, a := range msg.Alerts {
			w.msgs = append(w.msgs, r.URL.Path+" "+a.Labels["alertname"]+" consumergroup="+a.Labels["consumergroup"]+" instance="+a.Labels["instance"])
		}
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

// got reports whether an alert was delivered to path, with the given
// label=value fields (consumergroup, instance) if any.
func (w *webhook) got(path, alert string, fields ...string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		f := strings.Fields(m)
		if f[0] != path || f[1] != alert {
			continue
		}
		ok := true
		for _, want := range fields {
			ok = ok && slices.Contains(f[2:], want)
		}
		if ok {
			return true
		}
	}
	return false
}

func (w *webhook) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "; ")
}
