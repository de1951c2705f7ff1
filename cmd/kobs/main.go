// Command kobs is the one binary of kobs: the broker and the tools around it.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "kobs",
		Short:         "kobs: a Kafka-compatible broker that is observable by birth, and its monitoring suite",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newBrokerCmd(), newPerfCmd(), newMetricsCmd(), newTracestoreCmd(), newTraceCmd(), newAgentCmd())
	// Operator tools with the flags and output of Kafka's kafka-*.sh tools.
	root.AddCommand(newTopicsCmd(), newGroupsCmd(), newConfigsCmd(), newDeleteRecordsCmd(), newVersionCmd())
	root.AddCommand(newDashboardsCmd(), newAlertsCmd(), newAuditCmd())
	root.Version = kobsVersion()
	if err := root.Execute(); err != nil {
		if !errors.Is(err, errReported) { // the operator tools print their own errors, in Kafka's words
			fmt.Fprintln(os.Stderr, "kobs:", err)
		}
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			os.Exit(coded.ExitCode())
		}
		os.Exit(1)
	}
}
