package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// TestGenerateCommands: `kobs dashboards generate` and `kobs alerts
// generate` write exactly the committed files (what make dashboards and
// make alerts run), and render refuses to run without Prometheus.
func TestGenerateCommands(t *testing.T) {
	for _, c := range []struct {
		cmd       func() *cobra.Command
		committed string
	}{
		{newDashboardsCmd, "../../dashboards/generated"},
		{newAlertsCmd, "../../alerts/generated"},
	} {
		dir := t.TempDir()
		cmd := c.cmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"generate", "--out", dir})
		require.NoError(t, cmd.Execute())
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		require.NotEmpty(t, lines)
		for _, l := range lines {
			rel, err := filepath.Rel(dir, l)
			require.NoError(t, err)
			got, err := os.ReadFile(l)
			require.NoError(t, err)
			want, err := os.ReadFile(filepath.Join(c.committed, rel))
			require.NoError(t, err, "%s is not committed", rel)
			require.Equal(t, string(want), string(got), rel)
		}
	}

	cmd := newDashboardsCmd()
	cmd.SetArgs([]string{"render", "--out", t.TempDir()})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	require.ErrorContains(t, cmd.Execute(), "--prometheus is required")
}
