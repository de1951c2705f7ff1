package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kobs-dev/kobs/tracing"
)

// newTraceCmd returns "kobs trace": the shipper that moves trace events from
// the trace topic to an Elasticsearch-compatible store, and journey queries.
func newTraceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Ship message-trace events to a search store and query message journeys",
	}
	cmd.AddCommand(newTraceShipCmd(), newTraceGetCmd())
	return cmd
}

func newTraceShipCmd() *cobra.Command {
	var (
		cfg       tracing.ShipperConfig
		bootstrap string
	)
	cmd := &cobra.Command{
		Use:   "ship",
		Short: "Consume the trace topic and bulk-index it into Elasticsearch or kobs tracestore",
		Long: "Runs a consumer group on the trace topic that writes every event through the\n" +
			"Elasticsearch bulk API to daily indexes (<prefix>YYYY.MM.DD), committing offsets only\n" +
			"after the store acknowledged the bulk. Document ids derive from the events, so a restart\n" +
			"after a crash re-ships without duplicates.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Brokers = perfSplitBrokers(bootstrap)
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			s, err := tracing.NewShipper(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trace shipper: %s (topic %s, group %s) -> %s\n", bootstrap, cfg.Topic, cfg.Group, cfg.URL)
			err = s.Run(ctx)
			st := s.Stats()
			cfg.Logger.Info("trace shipper stopped", "shipped", st.Shipped, "corrupt", st.Corrupt,
				"rejected", st.Rejected, "retries", st.Retries, "commits", st.Committed)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&bootstrap, "bootstrap-server", "127.0.0.1:9092", "comma-separated host:port list of the cluster holding the trace topic")
	f.StringVar(&cfg.URL, "url", "http://127.0.0.1:9200", "Elasticsearch-7-compatible URL (kobs tracestore by default)")
	f.StringVar(&cfg.Topic, "topic", tracing.DefaultTopic, "trace topic")
	f.StringVar(&cfg.Group, "group", "kobs-trace-shipper", "consumer group of the shipper")
	f.StringVar(&cfg.IndexPrefix, "index-prefix", tracing.IndexPrefix, "prefix of the daily indexes")
	f.IntVar(&cfg.BatchEvents, "batch", 5000, "max events per bulk (and per offset commit)")
	f.DurationVar(&cfg.SessionTimeout, "session-timeout", 45*time.Second, "group session timeout: how long a crashed shipper's partitions wait before another shipper takes them")
	return cmd
}

func newTraceGetCmd() *cobra.Command {
	var (
		url, prefix       string
		partition, offset int64
		from, to          string
		asJSON            bool
		msgID, traceID    string
		key, topic        string
		limit             int
	)
	cmd := &cobra.Command{
		Use:   "get",
		Short: "Show message journeys: produced -> stored -> consumed by each group",
		Example: "  kobs trace get --msg-id 3f2a...\n" +
			"  kobs trace get --topic orders --partition 0 --offset 41\n" +
			"  kobs trace get --topic orders --key customer-7\n" +
			"  kobs trace get --topic orders --from -15m --limit 20 --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			params := map[string]string{"msg_id": msgID, "trace_id": traceID, "key": key, "topic": topic,
				"from": from, "to": to, "limit": strconv.Itoa(limit)}
			if partition >= 0 {
				params["partition"] = strconv.FormatInt(partition, 10)
			}
			if offset >= 0 {
				params["offset"] = strconv.FormatInt(offset, 10)
			}
			q, err := tracing.ParseQuery(func(k string) string { return params[k] })
			if err != nil {
				return err
			}
			qr, err := tracing.NewQuerier(url, prefix)
			if err != nil {
				return err
			}
			js, err := qr.Journeys(cmd.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				return tracing.WriteJSON(cmd.OutOrStdout(), js)
			}
			return tracing.WriteText(cmd.OutOrStdout(), js)
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "http://127.0.0.1:9200", "Elasticsearch-7-compatible URL holding the trace indexes")
	f.StringVar(&prefix, "index-prefix", tracing.IndexPrefix, "prefix of the daily indexes")
	f.StringVar(&msgID, "msg-id", "", "message id (the kobs-msg-id header)")
	f.StringVar(&traceID, "trace-id", "", "W3C trace id (from the traceparent header)")
	f.StringVar(&key, "key", "", "record key (with --topic to narrow)")
	f.StringVar(&topic, "topic", "", "topic")
	f.Int64Var(&partition, "partition", -1, "partition (with --topic and --offset)")
	f.Int64Var(&offset, "offset", -1, "offset (with --topic and --partition)")
	f.StringVar(&from, "from", "", "start of the time range: RFC 3339, Unix ms or -15m")
	f.StringVar(&to, "to", "", "end of the time range")
	f.IntVar(&limit, "limit", 100, "max messages")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of tables")
	return cmd
}
