package dashboards_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/dashboards"
)

// TestGeneratedFilesFresh regenerates the dashboards and the provisioning
// files and fails if the committed files differ (run `make dashboards`).
func TestGeneratedFilesFresh(t *testing.T) {
	files, err := dashboards.Render()
	require.NoError(t, err)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("generated", filepath.FromSlash(name)))
		require.NoError(t, err, "%s is not committed: run make dashboards", name)
		require.Equal(t, string(want), string(got), "generated/%s is stale: run make dashboards", name)
	}
	// No stale leftovers either.
	require.NoError(t, filepath.WalkDir("generated", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("generated", p)
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			t.Errorf("generated/%s is not produced by the generator: delete it", rel)
		}
		return nil
	}))
}

// committed loads every committed dashboard JSON, as Grafana would.
func committed(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, f := range dashboards.Files() {
		b, err := os.ReadFile(filepath.Join("generated", f))
		require.NoError(t, err)
		var d map[string]any
		require.NoError(t, json.Unmarshal(b, &d), f)
		out[f] = d
	}
	return out
}

// TestEveryPanelHasTitleUnitDescription reads the committed JSON, not the
// specs, so it checks what Grafana loads.
func TestEveryPanelHasTitleUnitDescription(t *testing.T) {
	n := 0
	for f, d := range committed(t) {
		for _, p := range d["panels"].([]any) {
			p := p.(map[string]any)
			if p["type"] == "row" {
				continue
			}
			n++
			title, _ := p["title"].(string)
			desc, _ := p["description"].(string)
			require.NotEmpty(t, title, "%s: panel without title", f)
			require.NotEmpty(t, desc, "%s: panel %q without description", f, title)
			fc, _ := p["fieldConfig"].(map[string]any)
			def, _ := fc["defaults"].(map[string]any)
			unit, _ := def["unit"].(string)
			require.NotEmpty(t, unit, "%s: panel %q without unit", f, title)
			targets, _ := p["targets"].([]any)
			require.NotEmpty(t, targets, "%s: panel %q without queries", f, title)
			gp := p["gridPos"].(map[string]any)
			require.LessOrEqual(t, gp["x"].(float64)+gp["w"].(float64), 24.0, "%s: panel %q off the grid", f, title)
		}
		vars, _ := d["templating"].(map[string]any)["list"].([]any)
		for _, v := range vars {
			q, _ := v.(map[string]any)["query"].(string)
			require.True(t, strings.HasPrefix(q, "label_values("), "%s: variable query %q is not label_values", f, q)
		}
	}
	require.Greater(t, n, 40, "fewer panels than expected")
	t.Logf("%d panels in %d dashboards, each with title, unit and description", n, len(dashboards.Files()))
}

// TestJSONLoadsIntoGrafanasModel: every committed file unmarshals into
// grafana-foundation-sdk's Dashboard type (panels, targets and
// variables typed by their plugins) and marshals back to the same JSON.
func TestJSONLoadsIntoGrafanasModel(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, f := range dashboards.Files() {
		b, err := os.ReadFile(filepath.Join("generated", f))
		require.NoError(t, err)
		var d dashboard.Dashboard
		require.NoError(t, json.Unmarshal(b, &d), f)
		again, err := json.MarshalIndent(d, "", "  ")
		require.NoError(t, err)
		require.JSONEq(t, string(b), string(again), "%s does not survive Grafana's model", f)
	}
}

// TestAllDashboardsPresent pins the dashboards the issue asks for.
func TestAllDashboardsPresent(t *testing.T) {
	var titles []string
	for _, s := range dashboards.All() {
		titles = append(titles, s.Title)
	}
	sort.Strings(titles)
	require.Equal(t, []string{
		"kobs / Audit", "kobs / Broker detail", "kobs / Cluster overview", "kobs / Consumer lag",
		"kobs / Message trace", "kobs / Replication health", "kobs / Topics",
	}, titles)
}
