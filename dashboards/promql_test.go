package dashboards_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/dashboards/promqlcheck"
)

// TestEveryPromQLParses parses every panel query and variable selector of
// the committed dashboards with Prometheus's parser, and requires each to
// name the metrics it reads.
func TestEveryPromQLParses(t *testing.T) {
	exprs, err := promqlcheck.Dashboards("generated")
	require.NoError(t, err)
	require.Greater(t, len(exprs), 60)
	var panels, vars int
	for _, e := range exprs {
		names, err := promqlcheck.MetricNames(e.PromQL)
		require.NoError(t, err, "%s: %s", e.Where, e.PromQL)
		require.NotEmpty(t, names, "%s reads no metric", e.Where)
		if e.Kind == "variable" {
			vars++
		} else {
			panels++
		}
	}
	t.Logf("%d panel queries and %d variable selectors parse", panels, vars)
}

// TestParserRejects makes sure the check can fail.
func TestParserRejects(t *testing.T) {
	_, err := promqlcheck.MetricNames(`sum by (instance) (rate(kafka_server_brokertopicmetrics_messagesin_total[$__rate_interval])`)
	require.Error(t, err)
	_, err = promqlcheck.MetricNames(`{instance="x"}`)
	require.Error(t, err)
	names, err := promqlcheck.MetricNames(`a{x=~"$topic"} / on (x) b offset 5m`)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, names)
}
