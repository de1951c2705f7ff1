package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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
		listen    string
	)
	cmd := &cobra.Command{
		Use:   "ship",
		Short: "Consume the trace topic and bulk-index it into Elasticsearch or kobs tracestore",
		Long: "Runs a consumer group on the trace topic that writes every event through the\n" +
			"Elasticsearch bulk API to daily indexes (<prefix>YYYY.MM.DD), committing the offset of a\n" +
			"record only after the store acknowledged all of its events. Document ids derive from the\n" +
			"events, so a restart after a crash re-ships without duplicates.",
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
			metricsAt := ""
			if listen != "" {
				ln, err := net.Listen("tcp", listen)
				if err != nil {
					return fmt.Errorf("trace shipper: listen %s: %w", listen, err)
				}
				metricsAt = ", metrics on http://" + ln.Addr().String() + "/metrics"
				mux := http.NewServeMux()
				mux.Handle("GET /metrics", s.MetricsHandler())
				srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = srv.Serve(ln) }()
				defer srv.Close()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trace shipper: %s (topic %s, group %s) -> %s%s\n", bootstrap, cfg.Topic, cfg.Group, cfg.URL, metricsAt)
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
	f.StringVar(&listen, "listen", tracing.DefaultShipperListen, "HTTP address of /metrics (kobs_trace_events_dropped_total, kobs_trace_shipper_*); empty disables it")
	f.StringVar(&cfg.Topic, "topic", tracing.DefaultTopic, "trace topic")
	f.StringVar(&cfg.Group, "group", "kobs-trace-shipper", "consumer group of the shipper")
	f.StringVar(&cfg.IndexPrefix, "index-prefix", tracing.IndexPrefix, "prefix of the daily indexes")
	f.IntVar(&cfg.BatchEvents, "batch", 5000, "max events per bulk request")
	f.IntVar(&cfg.BatchBytes, "batch-bytes", 5<<20, "max bytes per bulk request")
	f.IntVar(&cfg.Workers, "bulks-in-flight", 2, "bulk requests sent concurrently (the store indexes one while the next fills)")
	f.DurationVar(&cfg.SessionTimeout, "session-timeout", 45*time.Second, "group session timeout: how long a crashed shipper's partitions wait before another shipper takes them")
	return cmd
}

// Exit codes of "kobs trace get", for scripts.
const (
	traceExitIncomplete = 2 // a journey, or a record, whose trace events are (partly) missing
	traceExitNotFound   = 3 // no such message id, or no record at the position
)

// exitError ends the command with a specific exit code after printing err.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) ExitCode() int { return e.code }

func newTraceGetCmd() *cobra.Command {
	var (
		url, prefix       string
		bootstrap         string
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
		Long: "Shows the journeys of the selected messages. It tells apart three answers:\n" +
			"  a full journey (exit 0);\n" +
			"  a journey or record whose trace events are missing, e.g. because a client dropped\n" +
			"  them (\"trace incomplete: events dropped by <client> around <time>\", exit 2);\n" +
			"  no such message id, or no record at topic/partition/offset (exit 3).\n" +
			"With --topic/--partition/--offset and no trace events, the record is looked up in\n" +
			"Kafka (--bootstrap-server) and shown with its headers.",
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
			ctx := cmd.Context()
			js, err := qr.Journeys(ctx, q)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(js) > 0 {
				if asJSON {
					err = tracing.WriteJSON(out, js)
				} else {
					err = tracing.WriteText(out, js)
				}
				if err != nil {
					return err
				}
				for _, j := range js {
					if j.Incomplete {
						return &exitError{traceExitIncomplete, fmt.Errorf("trace incomplete for %d of %d message(s)", countIncomplete(js), len(js))}
					}
				}
				return nil
			}
			switch {
			case q.MsgID != "":
				return &exitError{traceExitNotFound, fmt.Errorf("no such message id %s: no trace events and no drop record name it (or its events are not shipped yet)", q.MsgID)}
			case q.Topic != "" && q.Partition >= 0:
				return lookupRecord(ctx, out, qr, perfSplitBrokers(bootstrap), q.Topic, q.Partition, q.Offset, asJSON)
			}
			if asJSON {
				return tracing.WriteJSON(out, js)
			}
			return tracing.WriteText(out, js)
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "http://127.0.0.1:9200", "Elasticsearch-7-compatible URL holding the trace indexes")
	f.StringVar(&prefix, "index-prefix", tracing.IndexPrefix, "prefix of the daily indexes")
	f.StringVar(&bootstrap, "bootstrap-server", "127.0.0.1:9092", "Kafka cluster to look records up in (with --topic/--partition/--offset)")
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

func countIncomplete(js []tracing.Journey) int {
	n := 0
	for _, j := range js {
		if j.Incomplete {
			n++
		}
	}
	return n
}

// lookupRecord is "trace get" by position when the store knows nothing of
// it: is there a record at all, and what do its headers say?
func lookupRecord(ctx context.Context, out io.Writer, qr *tracing.Querier, brokers []string, topic string, partition int32, offset int64, asJSON bool) error {
	rec, err := tracing.FetchRecord(ctx, brokers, topic, partition, offset)
	if err != nil {
		var nf *tracing.NoRecordError
		if errors.As(err, &nf) {
			return &exitError{traceExitNotFound, err}
		}
		return err
	}
	msgID := ""
	for _, h := range rec.Headers {
		if h.Key == tracing.HeaderMsgID {
			msgID = string(h.Value)
		}
	}
	var gaps []tracing.Gap
	if msgID != "" {
		// Consume events of an untraced position may still exist under
		// the message id (e.g. written before a re-produce), and drop
		// events name dropped ids.
		q := tracing.NewQuery()
		q.MsgID = msgID
		js, err := qr.Journeys(ctx, q)
		if err != nil {
			return err
		}
		for _, j := range js {
			gaps = append(gaps, j.Gaps...)
		}
	}
	if len(gaps) == 0 {
		if gaps, err = qr.GapsNear(ctx, topic, rec.Timestamp, time.Minute); err != nil {
			return err
		}
	}
	if asJSON {
		hs := map[string]string{}
		for _, h := range rec.Headers {
			hs[h.Key] = string(h.Value)
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"journeys": []any{}, "record": map[string]any{
			"topic": topic, "partition": partition, "offset": offset, "timestamp": rec.Timestamp.UTC(),
			"key": string(rec.Key), "size": len(rec.Value), "headers": hs, "msg_id": msgID}, "gaps": gaps}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "record %s[%d]@%d exists in Kafka (timestamp %s, key %q, %d bytes) but has no trace events\n",
			topic, partition, offset, rec.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"), rec.Key, len(rec.Value))
		if len(rec.Headers) == 0 {
			fmt.Fprintln(out, "headers: none (the producer was not traced)")
		}
		for _, h := range rec.Headers {
			fmt.Fprintf(out, "header %s: %s\n", h.Key, h.Value)
		}
		for _, g := range gaps {
			fmt.Fprintln(out, tracing.GapText(g))
		}
		switch {
		case msgID == "":
		case len(gaps) == 0:
			fmt.Fprintln(out, "no drop was recorded for it: its events may not be shipped yet")
		}
	}
	return &exitError{traceExitIncomplete, fmt.Errorf("no trace events for %s[%d]@%d", topic, partition, offset)}
}
