package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kobs-dev/kobs/exporters/jolokia"
)

// newMetricsCmd returns "kobs metrics", a JmxTool-like reader: it polls a
// Jolokia endpoint (kobs's, or the Jolokia agent on an Apache Kafka broker)
// and prints one CSV row per interval. The logic is jolokia.Client.Watch.
func newMetricsCmd() *cobra.Command {
	var (
		url        string
		names      []string
		attributes string
		interval   time.Duration
		iterations int
		dateFormat string
	)
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Print broker metrics read over Jolokia as CSV rows (like Kafka's JmxTool)",
		Example: `  kobs metrics --object-name 'kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,*' \
    --attributes Count,OneMinuteRate --interval 5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var attrs []string
			for _, a := range strings.Split(attributes, ",") {
				if a = strings.TrimSpace(a); a != "" {
					attrs = append(attrs, a)
				}
			}
			reqs := make([]jolokia.ReadRequest, len(names))
			for i, n := range names {
				reqs[i] = jolokia.ReadRequest{MBean: n, Attributes: attrs}
			}
			parent := cmd.Context()
			if parent == nil {
				parent = context.Background()
			}
			ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return jolokia.NewClient(url, nil).Watch(ctx, cmd.OutOrStdout(), jolokia.WatchOptions{
				Requests:   reqs,
				Interval:   interval,
				Iterations: iterations,
				DateFormat: dateFormat,
				Errors:     cmd.ErrOrStderr(),
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "jolokia-url", "http://127.0.0.1:8778/jolokia", "Jolokia endpoint to read")
	f.StringArrayVar(&names, "object-name", nil, "MBean name or pattern to read (repeatable)")
	f.StringVar(&attributes, "attributes", "", "comma-separated attributes to read (default: all)")
	f.DurationVar(&interval, "interval", 5*time.Second, "time between reads")
	f.IntVar(&iterations, "iterations", 0, "number of reads (0: until interrupted)")
	f.StringVar(&dateFormat, "date-format", "", "Go time layout for the time column (default: epoch milliseconds)")
	_ = cmd.MarkFlagRequired("object-name")
	return cmd
}
