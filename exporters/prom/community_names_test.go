package prom_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

type communityName struct {
	name   string
	labels []string
	usedBy string
	// family is the name prefix of the controller's metrics this name
	// belongs to ("" for the broker's own): such a name is required once
	// the scrape holds any metric with that prefix.
	family string
}

func readCommunityNames(t *testing.T) []communityName {
	t.Helper()
	f, err := os.Open("testdata/community-names.txt")
	require.NoError(t, err)
	defer f.Close()
	var out []communityName
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		require.Len(t, f, 3, "line %q: want name, labels, used by", line)
		n := communityName{name: f[0], usedBy: f[2]}
		if strings.HasPrefix(f[2], "kraft") || strings.HasPrefix(f[2], "controller") {
			// The bean family: kafka_server_raftmetrics_, kafka_server_raftchannelmetrics_,
			// kafka_controller_controllerstats_.
			parts := strings.SplitN(f[0], "_", 4)
			require.Len(t, parts, 4, "line %q", line)
			n.family = strings.Join(parts[:3], "_") + "_"
		}
		if f[1] != "-" {
			n.labels = strings.Split(f[1], ",")
		}
		out = append(out, n)
	}
	require.NoError(t, sc.Err())
	return out
}

// TestCommunityNamesResolve scrapes a real broker that has served produce and
// fetch requests and checks every name Strimzi's dashboards and alert rules
// query (testdata/community-names.txt) against it: present, with the labels
// the queries use. The KRaft dashboard's raft metrics come from a KRaft
// controller; they are counted and reported, and required once the broker
// exports any raft metric.
func TestCommunityNamesResolve(t *testing.T) {
	b := testcluster.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("orders"),
		kgo.ConsumeTopics("orders"), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte("hello")}).FirstErr())
	fetches := cl.PollFetches(ctx)
	require.NoError(t, fetches.Err())
	require.Equal(t, 1, fetches.NumRecords())

	resp, err := http.Get("http://" + b.HTTPAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)

	names := readCommunityNames(t)
	exported := func(prefix string) bool {
		for fam := range families {
			if strings.HasPrefix(fam, prefix) {
				return true
			}
		}
		return false
	}
	resolved, pending := 0, 0
	var missing, waiting []string
	for _, n := range names {
		ok := false
		if fam, found := families[n.name]; found {
			for _, m := range fam.GetMetric() {
				have := map[string]bool{}
				for _, lp := range m.GetLabel() {
					have[lp.GetName()] = lp.GetValue() != ""
				}
				all := true
				for _, l := range n.labels {
					all = all && have[l]
				}
				if all {
					ok = true
					break
				}
			}
		}
		switch {
		case ok:
			resolved++
		case n.family != "" && !exported(n.family):
			pending++ // the KRaft controller's metrics are not on this broker yet
			waiting = append(waiting, n.name)
		default:
			missing = append(missing, n.name+" {"+strings.Join(n.labels, ",")+"} ("+n.usedBy+")")
		}
	}
	t.Logf("community dashboard and alert names resolved against a live scrape: %d of %d; %d controller names pending (their bean family is not exported yet): %v",
		resolved, len(names), pending, waiting)
	require.Empty(t, missing, "names Strimzi's dashboards or alerts query that the broker does not export")
}
