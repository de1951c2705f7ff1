package alerts_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/alerts"
	"github.com/kobs-dev/kobs/dashboards/promqlcheck"
)

// TestGeneratedFilesFresh regenerates the rules, their unit tests and the
// Prometheus config and fails if the committed files differ (make alerts).
func TestGeneratedFilesFresh(t *testing.T) {
	files, err := alerts.Render()
	require.NoError(t, err)
	entries, err := os.ReadDir("generated")
	require.NoError(t, err)
	require.Len(t, entries, len(files), "generated/ holds files the generator does not write")
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("generated", name))
		require.NoError(t, err, "%s is not committed: run make alerts", name)
		require.Equal(t, string(want), string(got), "generated/%s is stale: run make alerts", name)
	}
}

// TestEveryAlertIsComplete: severity, annotations, a runbook section, and
// promtool cases both firing and quiet.
func TestEveryAlertIsComplete(t *testing.T) {
	runbook, err := os.ReadFile("RUNBOOK.md")
	require.NoError(t, err)
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\w+)$`).FindAllStringSubmatch(string(runbook), -1) {
		sections[m[1]] = true
	}
	seen := map[string]bool{}
	for _, g := range alerts.Groups() {
		for _, r := range g.Rules {
			require.False(t, seen[r.Alert], "duplicate alert %s", r.Alert)
			seen[r.Alert] = true
			require.Contains(t, []string{"critical", "warning"}, r.Severity, r.Alert)
			require.NotEmpty(t, r.Summary, r.Alert)
			require.NotEmpty(t, r.Description, r.Alert)
			require.True(t, sections[r.Alert], "RUNBOOK.md has no section ## %s", r.Alert)
			var fires, quiet bool
			for _, c := range r.Cases {
				if len(c.Fire) > 0 {
					fires = true
				} else {
					quiet = true
				}
			}
			require.True(t, fires && quiet, "%s needs a promtool case that fires and one that stays quiet", r.Alert)
		}
	}
	for s := range sections {
		require.True(t, seen[s], "RUNBOOK.md documents %s, which is not an alert", s)
	}
	// The list.
	for _, a := range []string{"KobsBrokerDown", "KobsNoActiveController", "KobsMultipleActiveControllers", "KobsOfflinePartitions",
		"KobsUnderReplicatedPartitions", "KobsUnderMinIsrPartitions", "KobsOfflineLogDirectory", "KobsFrequentIsrShrinks", "KobsConsumerLagHigh",
		"KobsConsumerGroupStalled", "KobsProduceLatencyHigh", "KobsFetchLatencyHigh", "KobsRequestHandlerIdleLow",
		"KobsAgentDown", "KobsAgentStale", "KobsTracePipelineBehind", "KobsTraceEventsDropped", "KobsAuditMissingRecords"} {
		require.True(t, seen[a], "missing alert %s", a)
	}
}

// TestEveryRuleParses parses every rule expression with Prometheus's parser.
func TestEveryRuleParses(t *testing.T) {
	exprs, err := promqlcheck.Rules(filepath.Join("generated", alerts.RulesFile))
	require.NoError(t, err)
	require.Len(t, exprs, ruleCount())
	for _, e := range exprs {
		names, err := promqlcheck.MetricNames(e.PromQL)
		require.NoError(t, err, "%s: %s", e.Where, e.PromQL)
		require.NotEmpty(t, names, e.Where)
	}
}

// ruleCount is the number of rules alerts.Groups defines.
func ruleCount() int {
	n := 0
	for _, g := range alerts.Groups() {
		n += len(g.Rules)
	}
	return n
}

// tool returns the path of a Debian-packaged binary; missing fails the test
// under make test (KOBS_REQUIRE_PROMETHEUS), and skips it otherwise.
func tool(t *testing.T, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("KOBS_REQUIRE_PROMETHEUS") != "" {
			t.Fatalf("KOBS_REQUIRE_PROMETHEUS is set but %s is missing (make deps installs it): %v", path, err)
		}
		t.Skipf("%s not installed", path)
	}
	return path
}

// TestPromtool runs `promtool check rules`, `promtool test rules` (every
// alert firing and quiet, annotations expanded) and `promtool check config`
// on the generated files, and `amtool check-config` on the example
// Alertmanager config.
func TestPromtool(t *testing.T) {
	promtool := tool(t, "/usr/bin/promtool")
	run := func(dir string, name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
		return string(out)
	}
	out := run("generated", promtool, "check", "rules", alerts.RulesFile)
	require.Contains(t, out, fmt.Sprintf("SUCCESS: %d rules found", ruleCount()))
	out = run("generated", promtool, "test", "rules", alerts.RuleTestsFile)
	require.Contains(t, out, "SUCCESS")
	run("generated", promtool, "check", "config", alerts.PrometheusFile)
	run(".", tool(t, "/usr/bin/amtool"), "check-config", "alertmanager.yml")

	// The unit tests can fail: a wrong expected annotation is caught.
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join("generated", alerts.RulesFile))
	require.NoError(t, err)
	tests, err := os.ReadFile(filepath.Join("generated", alerts.RuleTestsFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, alerts.RulesFile), rules, 0o644))
	broken := strings.Replace(string(tests), "2 brokers claim", "3 brokers claim", 1)
	require.NotEqual(t, string(tests), broken)
	require.NoError(t, os.WriteFile(filepath.Join(dir, alerts.RuleTestsFile), []byte(broken), 0o644))
	cmd := exec.Command(promtool, "test", "rules", alerts.RuleTestsFile)
	cmd.Dir = dir
	out2, err := cmd.CombinedOutput()
	require.Error(t, err, "promtool accepted a wrong expectation:\n%s", out2)
	require.Contains(t, string(out2), "FAILED")
}
