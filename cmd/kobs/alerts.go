package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kobs-dev/kobs/alerts"
)

// newAlertsCmd is "kobs alerts generate": the Prometheus alert rules, their
// promtool unit tests and a Prometheus config for brokers and agent.
func newAlertsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Generate the Prometheus alert rules, their unit tests and a scrape config",
	}
	var dir string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write kobs-rules.yml, kobs-rules.test.yml and prometheus.yml (make alerts)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := alerts.Generate(dir)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), dir+"/"+n)
			}
			return nil
		},
	}
	gen.Flags().StringVar(&dir, "out", alerts.GeneratedDir, "output directory")
	cmd.AddCommand(gen)
	return cmd
}
