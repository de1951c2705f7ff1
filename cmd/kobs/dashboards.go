package main

import (
	"fmt"

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
	cmd.AddCommand(gen)
	return cmd
}
