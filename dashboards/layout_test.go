package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRendererLayoutIsGrafanasGrid: the renderer places every panel where
// the generated dashboard JSON (grafana-foundation-sdk's layout) puts it.
func TestRendererLayoutIsGrafanasGrid(t *testing.T) {
	type pos struct{ X, Y, W, H uint32 }
	for _, s := range All() {
		b, err := os.ReadFile(filepath.Join("generated", s.File+".json"))
		require.NoError(t, err)
		var d struct {
			Panels []struct {
				Type    string `json:"type"`
				Title   string `json:"title"`
				GridPos pos    `json:"gridPos"`
			} `json:"panels"`
		}
		require.NoError(t, json.Unmarshal(b, &d))
		cells, _ := layout(s)
		require.Len(t, cells, len(d.Panels), s.File)
		for i, c := range cells {
			want := d.Panels[i]
			title := c.panel.Title
			if c.row != "" {
				title = c.row
			}
			require.Equal(t, want.Title, title, "%s panel %d", s.File, i)
			require.Equal(t, want.GridPos, pos{c.x, c.y, c.w, c.h}, "%s: %q", s.File, title)
		}
	}
}
