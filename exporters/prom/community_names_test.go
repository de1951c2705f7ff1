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
// the queries use. Every name is required, the KRaft dashboard's raft and
// raft-channel metrics too (a kobs broker is also its quorum's controller).
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
	resolved := 0
	var missing []string
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
		if ok {
			resolved++
		} else {
			missing = append(missing, n.name+" {"+strings.Join(n.labels, ",")+"} ("+n.usedBy+")")
		}
	}
	t.Logf("community dashboard and alert names resolved against a live scrape: %d of %d", resolved, len(names))
	require.Empty(t, missing, "names Strimzi's dashboards or alerts query that the broker does not export")
	require.Equal(t, len(names), resolved)
}
