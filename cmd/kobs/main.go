// Command kobs is the one binary of kobs: the broker and the tools around it.
package main

import (
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
	root.AddCommand(newRunCmd(), newBrokerCmd(), newPerfCmd(), newMetricsCmd(), newTracestoreCmd(), newTraceCmd(),
		newAuditCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kobs:", err)
		os.Exit(1)
	}
}
