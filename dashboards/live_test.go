package dashboards_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/alerts"
	"github.com/kobs-dev/kobs/dashboards"
	"github.com/kobs-dev/kobs/dashboards/promqlcheck"
	"github.com/kobs-dev/kobs/internal/promtest"
	"github.com/kobs-dev/kobs/internal/testcluster"
	"github.com/kobs-dev/kobs/tracing"
)

// TestLive is the dashboards' and alerts' promise, on real parts: `kobs
// run` (broker, trace store, shipper) with a traced producer and a traced
// consumer group, a real Prometheus using the generated config and rules
// (scraping every second), and a real Alertmanager with the example
// alertmanager.yml. It checks, in order:
//
//  1. every metric name a dashboard or rule queries is in a live scrape of
//     the broker, or listed in dashboards.Pending (printed; a pending name
//     that shows up in the scrape fails the test, so the list only shrinks);
//  2. every Prometheus panel query whose metrics exist returns a series;
//  3. every Elasticsearch panel's request, built as Grafana builds it,
//     returns data from the trace store, or is listed as pending;
//  4. `kobs dashboards render` draws every dashboard into a non-empty PNG;
//  5. the broker is killed: KobsBrokerDown fires in Prometheus and reaches
//     Alertmanager (its API and the webhook receiver).
//
// Only one broker exists until the replicated cluster lands, so the
// under-replicated alert is not induced yet; with the agent, the lag alert
// joins step 5.
func TestLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kobs, Prometheus and Alertmanager; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	run := startKobsRun(t)

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
	promCfg := alerts.PrometheusConfig(alerts.PromConfig{
		Brokers: []string{run.telemetry}, Agents: []string{}, // the agent has not landed: no agent job
		Alertmanagers: []string{amAddr}, ScrapeInterval: "1s", EvalInterval: "1s",
	})
	prom := promtest.StartConfig(t, promCfg, map[string][]byte{alerts.RulesFile: rules})
	pc := dashboards.PromClient{URL: "http://" + prom.Addr}
	promStarted := time.Now()

	workload(ctx, t, run.kafka)

	// Wait for data: a produce rate over scrapes and a consumer group fetching.
	waitFor(ctx, t, "messages flowing in Prometheus", func() (bool, string) {
		ss, err := pc.Query(ctx, `sum(rate(kafka_server_brokertopicmetrics_messagesin_total{topic="orders"}[5s])) > 0 and sum(rate(kafka_server_brokertopicmetrics_bytesout_total{topic="orders"}[5s])) > 0`, time.Now())
		return err == nil && len(ss) > 0, fmt.Sprint(ss, err)
	})

	// 1. Metric names against a live scrape.
	scraped := scrapeNames(ctx, t, "http://"+run.telemetry+"/metrics")
	exprs := allExprs(t)
	referenced := map[string][]string{} // name -> where
	for _, e := range exprs {
		names, err := promqlcheck.MetricNames(e.PromQL)
		require.NoError(t, err, e.Where)
		for _, n := range names {
			referenced[n] = append(referenced[n], e.Where)
		}
	}
	var pendingSeen []string
	for name, where := range referenced {
		switch _, pending := dashboards.Pending[name]; {
		case promqlcheck.Synthetic[name]:
		case scraped[name] && pending:
			t.Errorf("%s is listed in dashboards.Pending (%s) but the broker exports it now: move it out of the list", name, dashboards.Pending[name])
		case scraped[name]:
		case pending:
			pendingSeen = append(pendingSeen, name)
		default:
			t.Errorf("%s is queried by %s but neither exported by the broker nor listed as pending", name, strings.Join(where, "; "))
		}
	}
	for name := range dashboards.Pending {
		if _, ok := referenced[name]; !ok {
			t.Errorf("dashboards.Pending lists %s, which no dashboard or rule queries", name)
		}
	}
	sort.Strings(pendingSeen)
	t.Logf("metric names: %d referenced, %d checked against the live scrape, %d PENDING (exporter not landed):",
		len(referenced), len(referenced)-len(pendingSeen), len(pendingSeen))
	for _, n := range pendingSeen {
		t.Logf("  PENDING %-60s %s", n, dashboards.Pending[n])
	}

	// 2. Every Prometheus panel query whose metrics exist returns a series.
	r := &dashboards.Renderer{Prom: pc, ES: &dashboards.ESClient{URL: run.tracestore}, ScrapeInterval: time.Second}
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
						t.Errorf("%s / %q only has data during a failure: induce it in this test before checking it", s.File, p.Title)
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

	// 3. Elasticsearch panels, requested as Grafana's datasource builds them.
	waitFor(ctx, t, "traced events in the trace store", func() (bool, string) {
		resp, err := http.Get(run.tracestore + "/" + tracing.IndexPrefix + "*/_count")
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
				res, errs, err := r.ES.Search(ctx, p.ES, now.Add(-10*time.Minute), now)
				ok := err == nil
				for i := range res {
					ok = ok && errs[i] == nil && !res[i].Empty()
				}
				why, pending := dashboards.PendingTraceStore[p.Title]
				switch {
				case ok && pending:
					t.Errorf("Elasticsearch panel %q is listed as pending (%s) but the trace store answers it now: move it out of PendingTraceStore", p.Title, why)
				case ok:
				case pending:
					msg := fmt.Sprint(err)
					if err == nil {
						msg = fmt.Sprint(errs)
					}
					t.Logf("  PENDING Elasticsearch panel %q (%s): %.160s", p.Title, why, msg)
				default:
					t.Errorf("Elasticsearch panel %q: no data from the trace store: %v %v", p.Title, err, errs)
				}
			}
		}
	}

	// 4. Render every dashboard.
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
			if panelPending(p) {
				continue
			}
			require.NoError(t, pr.Err, "%s / %q", s.File, pr.Panel)
			require.Positive(t, pr.Series, "%s / %q rendered no data", s.File, pr.Panel)
		}
	}
	t.Logf("rendered %d dashboards into %s", len(dashboards.All()), outDir)

	// 5. Kill the broker: KobsBrokerDown fires and reaches Alertmanager.
	run.kill(t)
	waitFor(ctx, t, "KobsBrokerDown firing in Prometheus", func() (bool, string) {
		ss, err := pc.Query(ctx, `ALERTS{alertname="KobsBrokerDown",alertstate="firing"}`, time.Now())
		return err == nil && len(ss) == 1 && ss[0].Labels["instance"] == run.telemetry, fmt.Sprint(ss, err)
	})
	waitFor(ctx, t, "KobsBrokerDown in Alertmanager's API", func() (bool, string) {
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
			if a.Labels["instance"] == run.telemetry && a.Labels["severity"] == "critical" && a.Status.State == "active" &&
				strings.HasSuffix(a.Annotations["runbook_url"], "RUNBOOK.md#kobsbrokerdown") {
				return true, ""
			}
		}
		return false, string(body)
	})
	waitFor(ctx, t, "KobsBrokerDown delivered to the critical receiver", func() (bool, string) {
		return hook.got("/kobs/critical", "KobsBrokerDown"), hook.String()
	})
	t.Logf("KobsBrokerDown fired in Prometheus, is active in Alertmanager and was delivered to the critical webhook")
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

// kobsRun is a `kobs run` process on free loopback ports.
type kobsRun struct {
	cmd                          *exec.Cmd
	kafka, telemetry, tracestore string
	exited                       chan error
}

func startKobsRun(t *testing.T) *kobsRun {
	t.Helper()
	bin := testcluster.Binary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "server.properties")
	require.NoError(t, os.WriteFile(conf, []byte("node.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs="+
		filepath.Join(dir, "broker")+"\nkobs.http.listener=127.0.0.1:0\ngroup.initial.rebalance.delay.ms=0\nnum.partitions=3\n"), 0o644))
	cmd := exec.Command(bin, "run", "--config", conf, "--tracestore-dir", filepath.Join(dir, "tracestore"), "--tracestore-listen", "127.0.0.1:0",
		"--audit-listen", "127.0.0.1:0", "--audit-state-dir", filepath.Join(dir, "audit"), "--agent-listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	k := &kobsRun{cmd: cmd, exited: make(chan error, 1)}
	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, `msg="kobs ready"`) {
				kv := map[string]string{}
				for _, f := range strings.Fields(line) {
					if a, b, ok := strings.Cut(f, "="); ok {
						kv[a] = b
					}
				}
				ready <- kv
			}
		}
		k.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { k.kill(t) })
	select {
	case kv := <-ready:
		k.kafka, k.tracestore = kv["kafka"], kv["tracestore"]
		tel := strings.Split(kv["telemetry"], ",")[0] // http://host:port/jolokia
		k.telemetry = strings.TrimSuffix(strings.TrimPrefix(tel, "http://"), "/jolokia")
		_, _, err := net.SplitHostPort(k.telemetry)
		require.NoError(t, err, "telemetry endpoint %q", kv["telemetry"])
	case err := <-k.exited:
		t.Fatalf("kobs run exited before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("kobs run not ready after 60 s")
	}
	return k
}

// kill stops the process with SIGKILL, as a crash would.
func (k *kobsRun) kill(t *testing.T) {
	if k.cmd.ProcessState != nil {
		return
	}
	_ = k.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-k.exited:
	case <-time.After(20 * time.Second):
		t.Errorf("kobs run did not exit after SIGKILL")
	}
}

// workload runs a traced producer and a traced consumer group on topic
// "orders" until the test ends, and provokes error responses (config
// lookups of a missing topic) so the error panels have a series.
func workload(ctx context.Context, t *testing.T, kafka string) {
	t.Helper()
	ph, err := tracing.NewProducerHook(tracing.Brokers(kafka), tracing.ClientID("live-producer"))
	require.NoError(t, err)
	prod, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.WithHooks(ph), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	ch, err := tracing.NewConsumerHook(tracing.Brokers(kafka), tracing.Group("billing"), tracing.ClientID("live-consumer"))
	require.NoError(t, err)
	cons, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.WithHooks(ch), kgo.ConsumerGroup("billing"),
		kgo.ConsumeTopics("orders"), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	adm := kadm.NewClient(prod)

	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	t.Cleanup(func() {
		stop()
		wg.Wait()
		cons.Close()
		prod.Close()
		ch.Close()
		ph.Close()
	})
	wg.Add(3)
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
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			fs := cons.PollFetches(wctx)
			_ = fs
		}
	}()
}

// webhook is an Alertmanager webhook receiver recording what it got.
type webhook struct {
	*httptest.Server
	mu   sync.Mutex
	msgs []string // "path alertname"
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
			w.msgs = append(w.msgs, r.URL.Path+" "+a.Labels["alertname"])
		}
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhook) got(path, alert string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if m == path+" "+alert {
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
