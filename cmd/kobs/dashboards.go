package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kobs-dev/kobs/dashboards"
)

// newDashboardsCmd is "kobs dashboards": generate the Grafana dashboards and
// provisioning files, or render them with live data into PNG images.
func newDashboardsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dashboards",
		Short: "Generate the Grafana dashboards, or render them with live data as PNG",
	}
	var dir string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write the dashboards and Grafana provisioning files (make dashboards)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := dashboards.Generate(dir)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), dir+"/"+n)
			}
			return nil
		},
	}
	gen.Flags().StringVar(&dir, "out", dashboards.GeneratedDir, "output directory")
	cmd.AddCommand(gen, newDashboardsRenderCmd())
	return cmd
}

// newDashboardsRenderCmd is "kobs dashboards render": every dashboard with
// live data into one PNG each.
func newDashboardsRenderCmd() *cobra.Command {
	var (
		promURL, esURL, out string
		window, scrape      time.Duration
		vars                []string
	)
	cmd := &cobra.Command{
		Use:   "render --prometheus URL [--es URL] --out DIR",
		Short: "Draw every dashboard with live data into PNG images (no Grafana needed)",
		Long: `Render each generated dashboard with the data Prometheus (and the trace store, for
the message trace dashboard) holds now: its panels on Grafana's grid with titles,
units and legends, one PNG per dashboard. Variables are "All" unless --var sets
them. Each panel's outcome (series drawn, or the query error) is printed.`,
		Example: `  kobs dashboards render --prometheus http://127.0.0.1:9090 --es http://127.0.0.1:9200 --out /tmp/dash`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if promURL == "" {
				return fmt.Errorf("--prometheus is required")
			}
			r := &dashboards.Renderer{
				Prom:           dashboards.PromClient{URL: promURL},
				To:             time.Now(),
				ScrapeInterval: scrape,
				Vars:           map[string]string{},
			}
			r.From = r.To.Add(-window)
			if esURL != "" {
				r.ES = &dashboards.ESClient{URL: esURL}
			}
			for _, kv := range vars {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--var %q: want name=value", kv)
				}
				r.Vars[k] = v
			}
			results, err := r.RenderAll(cmd.Context(), out)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, s := range dashboards.All() {
				fmt.Fprintf(w, "%s/%s.png\n", out, s.File)
				for _, p := range results[s.File] {
					switch {
					case p.Err != nil:
						fmt.Fprintf(w, "  %-45s error: %v\n", p.Panel, p.Err)
					case p.Series == 0:
						fmt.Fprintf(w, "  %-45s no data\n", p.Panel)
					default:
						fmt.Fprintf(w, "  %-45s %d series\n", p.Panel, p.Series)
					}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&promURL, "prometheus", "", "Prometheus base URL")
	f.StringVar(&esURL, "es", "", "trace store (Elasticsearch API) base URL, for the message trace dashboard")
	f.StringVar(&out, "out", "dashboards-png", "output directory")
	f.DurationVar(&window, "range", time.Hour, "time range ending now")
	f.DurationVar(&scrape, "scrape-interval", 15*time.Second, "Prometheus scrape interval (for $__rate_interval)")
	f.StringArrayVar(&vars, "var", nil, "variable value as name=regex (repeatable); default All")
	return cmd
}
