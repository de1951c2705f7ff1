package prom

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// smallRegistry is a registry with one of each shape that matters to the
// rules, with deterministic values: a fake clock for rates and fewer
// histogram values than the reservoir holds, so percentiles are exact.
func smallRegistry(t testing.TB) *telemetry.Registry {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	r := telemetry.New(telemetry.WithClock(clock))

	r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec"), "messages").Mark(30)
	r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", "orders"), "messages").Mark(20)
	r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", "audit"), "messages").Mark(10)
	r.Meter(telemetry.Name("kafka.network", "RequestMetrics", "RequestsPerSec", "request", "Produce", "version", "9"), "requests").Mark(5)
	idle := r.MeterWithUnit(telemetry.Name("kafka.server", "KafkaRequestHandlerPool", "RequestHandlerAvgIdlePercent"), "percent", time.Nanosecond)
	idle.Mark(int64(4 * time.Second)) // 4 s idle in the 5 s tick: 0.8; over 10 s: 0.4

	h := r.Histogram(telemetry.Name("kafka.network", "RequestMetrics", "TotalTimeMs", "request", "Produce"))
	for v := int64(1); v <= 100; v++ {
		h.Update(v)
	}
	tm := r.Timer(telemetry.Name("kafka.log", "LogFlushStats", "LogFlushRateAndTimeMs"))
	tm.Update(2 * time.Millisecond)
	tm.Update(4 * time.Millisecond)

	r.Gauge(telemetry.Name("kafka.server", "ReplicaManager", "UnderReplicatedPartitions"), func() int64 { return 1 })
	r.Gauge(telemetry.Name("kafka.log", "Log", "LogEndOffset", "topic", "orders", "partition", "0"), func() int64 { return 42 })
	r.Gauge(telemetry.Name("kafka.cluster", "Partition", "UnderReplicated", "topic", "orders", "partition", "0"), func() int64 { return 0 })
	r.GaugeFloat64(telemetry.Name("kafka.network", "SocketServer", "NetworkProcessorAvgIdlePercent"), func() float64 { return 0.75 })
	r.Gauge(telemetry.Name("kafka.coordinator.group", "GroupMetadataManager", "NumGroups"), func() int64 { return 3 })
	// Not matched by any kafka-2_0_0 rule: must not appear.
	r.Gauge(telemetry.Name("kobs.internal", "Debug", "Whatever"), func() int64 { return 7 })

	now = now.Add(10 * time.Second)
	r.Tick() // every meter's EWMAs: count over one 5 s interval
	return r
}

func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	return want
}

func TestCollectAndCompareGolden(t *testing.T) {
	c := NewCollector(smallRegistry(t))
	// testutil.CollectAndFormat only emits the names it is given, so encode
	// the whole gather here.
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		require.NoError(t, enc.Encode(mf))
	}
	got := buf.Bytes()
	want := golden(t, "small.prom", got)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(string(want))))
	require.NotContains(t, string(got), "kobs_internal")
	require.NotContains(t, string(got), "Whatever")
}

func TestPedanticGatherHasNoDuplicatesOrErrors(t *testing.T) {
	r := smallRegistry(t)
	// Two beans that the rules map to the same series (PerSec\w* swallows
	// "ond"): the second must be dropped, not fail the scrape.
	r.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSecond"), "messages").Mark(1)
	// A tag named quantile on a histogram would give two quantile labels.
	r.Histogram(telemetry.Name("kafka.network", "RequestMetrics", "LocalTimeMs", "quantile", "x")).Update(1)

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(NewCollector(r)))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	require.Len(t, byName["kafka_server_brokertopicmetrics_messagesin_total"].GetMetric(), 3)
	// The first bean in canonical order wins the duplicate: MessagesInPerSec (count 30).
	for _, m := range byName["kafka_server_brokertopicmetrics_messagesin_total"].GetMetric() {
		if len(m.GetLabel()) == 0 {
			require.Equal(t, 30.0, m.GetCounter().GetValue())
		}
	}
	require.NotContains(t, byName, "kafka_network_requestmetrics_localtimems")
}

func TestLintOnlyInheritedProblems(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(NewCollector(smallRegistry(t))))
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	// These follow from keeping jmx_exporter's names, which dashboards rely
	// on: its Summary emulation (gauge + quantile label, counter _count) and
	// Kafka's camelCase tag names. Anything else is a kobs bug.
	inherited := map[string]bool{
		`counter metrics should have "_total" suffix`:                           true,
		`non-histogram and non-summary metrics should not have "_count" suffix`: true,
		`non-summary metrics should not have "quantile" label`:                  true,
	}
	set := map[string]bool{}
	for _, p := range problems {
		if !inherited[p.Text] {
			t.Errorf("unexpected lint problem %s: %s", p.Metric, p.Text)
		}
		set[p.Metric+": "+p.Text] = true
	}
	var got []string
	for k := range set {
		got = append(got, k)
	}
	sort.Strings(got)
	require.Equal(t, []string{
		`kafka_log_logflushstats_logflushrateandtimems: non-summary metrics should not have "quantile" label`,
		`kafka_log_logflushstats_logflushrateandtimems_count: counter metrics should have "_total" suffix`,
		`kafka_log_logflushstats_logflushrateandtimems_count: non-histogram and non-summary metrics should not have "_count" suffix`,
		`kafka_network_requestmetrics_totaltimems: non-summary metrics should not have "quantile" label`,
		`kafka_network_requestmetrics_totaltimems_count: counter metrics should have "_total" suffix`,
		`kafka_network_requestmetrics_totaltimems_count: non-histogram and non-summary metrics should not have "_count" suffix`,
		`kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_count: counter metrics should have "_total" suffix`,
		`kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_count: non-histogram and non-summary metrics should not have "_count" suffix`,
	}, got)
}

// parse scrapes url and parses the text exposition.
func parse(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return mfs
}

func series(mf *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		v := m.GetGauge().GetValue()
		if m.Counter != nil {
			v = m.GetCounter().GetValue()
		}
		out[strings.Join(ls, ",")] = v
	}
	return out
}

func TestHandlerServesParsableMetrics(t *testing.T) {
	r := smallRegistry(t)
	srv := httptest.NewServer(Handler(NewRegistry(r)))
	defer srv.Close()

	mfs := parse(t, srv.URL)
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		require.Contains(t, mfs, name)
	}
	in := mfs["kafka_server_brokertopicmetrics_messagesin_total"]
	require.Equal(t, dto.MetricType_COUNTER, in.GetType())
	require.Equal(t, map[string]float64{"": 30, "topic=audit": 10, "topic=orders": 20}, series(in))

	// Rates: one tick over 5 s with 20 events = 4/s; MeanRate over 10 s = 2/s.
	require.Equal(t, map[string]float64{"": 6, "topic=audit": 2, "topic=orders": 4},
		series(mfs["kafka_server_brokertopicmetrics_messagesin_oneminuterate"]))
	require.Equal(t, map[string]float64{"": 3, "topic=audit": 1, "topic=orders": 2},
		series(mfs["kafka_server_brokertopicmetrics_messagesin_meanrate"]))
	require.Equal(t, dto.MetricType_GAUGE, mfs["kafka_server_brokertopicmetrics_messagesin_fifteenminuterate"].GetType())

	tt := mfs["kafka_network_requestmetrics_totaltimems"]
	require.Equal(t, dto.MetricType_GAUGE, tt.GetType())
	s := series(tt)
	require.Len(t, s, 6)
	require.Equal(t, 50.5, s["quantile=0.50,request=Produce"])
	require.Equal(t, 100.0, s["quantile=0.999,request=Produce"])
	require.Equal(t, map[string]float64{"request=Produce": 100}, series(mfs["kafka_network_requestmetrics_totaltimems_count"]))

	require.Equal(t, map[string]float64{"partition=0,topic=orders": 42}, series(mfs["kafka_log_log_logendoffset"]))
	// jmx_exporter's _percent is the MeanRate; kobs adds the EWMA as well.
	require.Equal(t, map[string]float64{"": 0.4}, series(mfs["kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent"]))
	require.Equal(t, map[string]float64{"": 0.8}, series(mfs["kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_oneminuterate"]))
	require.Equal(t, map[string]float64{"": 2}, series(mfs["kafka_log_logflushstats_logflushrateandtimems_count"]))
	require.Equal(t, map[string]float64{"": 0.2}, series(mfs["kafka_log_logflushstats_logflushrateandtimems_meanrate"]))
	require.Equal(t, map[string]float64{"request=Produce,version=9": 5}, series(mfs["kafka_network_requestmetrics_requests_total"]))
}

func TestDeletedBeansLeaveScrapeAndCache(t *testing.T) {
	r := smallRegistry(t)
	c := NewCollector(r)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	n, err := testutil.GatherAndCount(reg, "kafka_log_log_logendoffset")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	cached := len(c.cache)

	require.Equal(t, 1, r.UnregisterMatching(telemetry.MustParseObjectName("kafka.log:type=Log,name=*,topic=orders,partition=*")))
	n, err = testutil.GatherAndCount(reg, "kafka_log_log_logendoffset")
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, cached-1, len(c.cache), "mapping cache follows the registry")
}
