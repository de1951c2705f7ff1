package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/audit"
	"github.com/kobs-dev/kobs/perf"
	"github.com/kobs-dev/kobs/tracing"
)

// newPerfCmd returns "kobs perf", the load tools modelled on
// kafka-producer-perf-test and kafka-consumer-perf-test. Flags keep the
// Kafka tools' names so muscle memory and old scripts carry over.
func newPerfCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "perf",
		Short: "Load-test a Kafka-compatible cluster (like kafka-*-perf-test)",
	}
	cmd.AddCommand(newPerfProduceCmd(), newPerfConsumeCmd())
	return cmd
}

func newPerfProduceCmd() *cobra.Command {
	var (
		cfg            perf.ProduceConfig
		bootstrap      string
		lingerMs       int
		reportMs       int
		deliveryTimeMs int
		trace          bool
		traceTopic     string
		traceSample    float64
		producerProps  []string
		auditBucket    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce records and report throughput and latency percentiles",
		// Kafka's --producer-props takes space-separated k=v pairs, which
		// reach us as arguments after the first.
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("producer-props") && !slices.ContainsFunc(args, func(a string) bool { return !strings.Contains(a, "=") }) {
				producerProps = append(producerProps, args...)
				return nil
			}
			return cobra.NoArgs(cmd, args)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			propOpts, perr := applyProducerProps(cmd, producerProps)
			if perr != nil {
				return perr
			}
			cfg.ExtraOpts = append(cfg.ExtraOpts, propOpts...)
			cfg.Brokers = perfSplitBrokers(bootstrap)
			// perf.ProduceConfig reads 0 as "kgo's default linger" and a
			// negative value as "none"; on the command line 0 means none, as
			// Kafka's linger.ms does, and -1 means the client default.
			switch {
			case lingerMs == 0:
				cfg.Linger = -1
			case lingerMs > 0:
				cfg.Linger = time.Duration(lingerMs) * time.Millisecond
			}
			cfg.ReportInterval = time.Duration(reportMs) * time.Millisecond
			cfg.DeliveryTimeout = time.Duration(deliveryTimeMs) * time.Millisecond
			ctx, stop := perfSignalContext(cmd)
			defer stop()
			var hook *tracing.ProducerHook
			if trace {
				// The trace hook stamps every record with a message id and a
				// traceparent and writes produce events to the trace topic,
				// so "kobs trace get" can show the journeys of this run.
				h, err := tracing.NewProducerHook(tracing.Topic(traceTopic), tracing.SampleRate(traceSample))
				if err != nil {
					return err
				}
				hook = h
				cfg.ExtraOpts = append(cfg.ExtraOpts, kgo.WithHooks(hook))
			}
			closeAudit, err := perfAudit(&cfg.ExtraOpts, audit.NewProducerHook, auditBucket, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			_, err = perf.RunProduce(ctx, cfg, cmd.OutOrStdout())
			closeAudit() // after RunProduce closed its client, so every ack is counted
			if hook != nil {
				hook.Close() // after RunProduce closed its client, so every ack is recorded
				st := hook.Stats()
				fmt.Fprintf(cmd.OutOrStdout(), "trace events: %d written to %s, %d dropped (buffer full), %d failed\n",
					st.Written, traceTopic, st.Dropped, st.Failed)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&bootstrap, "bootstrap-server", "127.0.0.1:9092", "comma-separated host:port list to bootstrap from")
	f.StringVar(&bootstrap, "broker-list", "127.0.0.1:9092", "Kafka's older name for --bootstrap-server")
	f.StringArrayVar(&producerProps, "producer-props", nil, "Kafka producer properties k=v (bootstrap.servers, acks, batch.size, linger.ms, compression.type, enable.idempotence, delivery.timeout.ms, client.id); explicit flags win")
	f.BoolVar(&trace, "trace", false, "trace the records (message id + traceparent headers, produce events to the trace topic)")
	f.StringVar(&traceTopic, "trace-topic", tracing.DefaultTopic, "trace topic for --trace")
	f.Float64Var(&traceSample, "trace-sample-rate", 1, "fraction of records traced with --trace")
	f.DurationVar(&auditBucket, "audit", 0, "count the records with an audit hook in buckets of this width (e.g. 1m), flushed to the audit topic")
	f.StringVar(&cfg.Topic, "topic", "", "topic to produce to (required)")
	f.Int64Var(&cfg.NumRecords, "num-records", 0, "number of records to produce (required)")
	f.IntVar(&cfg.RecordSize, "record-size", 0, "record value size in bytes (required)")
	f.Int64Var(&cfg.Throughput, "throughput", -1, "max records/sec; -1 for no limit")
	f.StringVar(&cfg.Acks, "acks", "all", "required acks: 0, 1, all (or -1)")
	f.IntVar(&cfg.BatchBytes, "batch-size", 0, "max bytes per partition batch; 0 for the client default (1MB)")
	f.IntVar(&lingerMs, "linger-ms", -1, "how long to wait to fill a batch; -1 for the client default (10ms)")
	f.StringVar(&cfg.Compression, "compression-type", "none", "none, gzip, snappy, lz4 or zstd")
	f.BoolVar(&cfg.Idempotent, "idempotent", false, "enable idempotent writes (needs --acks all)")
	f.IntVar(&reportMs, "reporting-interval", 5000, "ms between progress lines; -1 for none")
	f.IntVar(&deliveryTimeMs, "delivery-timeout-ms", 120000, "how long a record may wait for its ack before failing")
	for _, name := range []string{"topic", "num-records", "record-size"} {
		perfMarkRequired(cmd, name)
	}
	return cmd
}

func newPerfConsumeCmd() *cobra.Command {
	var (
		cfg         perf.ConsumeConfig
		bootstrap   string
		timeoutMs   int
		reportMs    int
		trace       bool
		traceTopic  string
		traceSample float64
		fromLatest  bool
		auditBkt    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Consume a topic from the start and report throughput and end-to-end latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Brokers = perfSplitBrokers(bootstrap)
			cfg.Timeout = time.Duration(timeoutMs) * time.Millisecond
			if fromLatest {
				cfg.ExtraOpts = append(cfg.ExtraOpts, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
			}
			cfg.ReportInterval = time.Duration(reportMs) * time.Millisecond
			ctx, stop := perfSignalContext(cmd)
			defer stop()
			var hook *tracing.ConsumerHook
			if trace {
				// Consume events (group, member, end-to-end latency) for
				// every traced record polled, so "kobs trace get" shows
				// this group in the journeys.
				h, err := tracing.NewConsumerHook(tracing.Topic(traceTopic), tracing.SampleRate(traceSample))
				if err != nil {
					return err
				}
				hook = h
				cfg.ExtraOpts = append(cfg.ExtraOpts, kgo.WithHooks(hook))
			}
			closeAudit, err := perfAudit(&cfg.ExtraOpts, audit.NewConsumerHook, auditBkt, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			_, err = perf.RunConsume(ctx, cfg, cmd.OutOrStdout())
			closeAudit()
			if hook != nil {
				hook.Close() // after RunConsume closed its client
				st := hook.Stats()
				fmt.Fprintf(cmd.OutOrStdout(), "trace events: %d written to %s, %d dropped (buffer full), %d failed\n",
					st.Written, traceTopic, st.Dropped, st.Failed)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&bootstrap, "bootstrap-server", "127.0.0.1:9092", "comma-separated host:port list to bootstrap from")
	f.StringVar(&bootstrap, "broker-list", "127.0.0.1:9092", "Kafka's older name for --bootstrap-server")
	f.BoolVar(&fromLatest, "from-latest", false, "without a committed offset, start at the end of the log instead of the start")
	f.StringVar(&cfg.Topic, "topic", "", "topic to consume (required)")
	f.Int64Var(&cfg.NumRecords, "messages", 0, "stop after this many records; 0 reads until --timeout passes with none")
	f.StringVar(&cfg.Group, "group", "", "consumer group to join (offsets are committed); empty reads all partitions directly")
	f.DurationVar(&auditBkt, "audit", 0, "count the polled records with an audit hook in buckets of this width (e.g. 1m)")
	f.BoolVar(&trace, "trace", false, "trace the records read (consume events to the trace topic for records with a kobs-msg-id header)")
	f.StringVar(&traceTopic, "trace-topic", tracing.DefaultTopic, "trace topic for --trace")
	f.Float64Var(&traceSample, "trace-sample-rate", 1, "fraction of messages traced with --trace (must match the producer's)")
	f.IntVar(&timeoutMs, "timeout", 10000, "max ms between records before giving up")
	f.IntVar(&reportMs, "reporting-interval", 5000, "ms between rows with --show-detailed-stats")
	f.BoolVar(&cfg.ShowDetailedStats, "show-detailed-stats", false, "print a row per reporting interval")
	f.BoolVar(&cfg.HideHeader, "hide-header", false, "omit the CSV header")
	f.IntVar(&cfg.FetchMaxPartitionBytes, "fetch-size", 0, "max bytes per partition per fetch; 0 for the client default (1MB)")
	f.IntVar(&cfg.FetchMaxBytes, "fetch-max-bytes", 0, "max bytes per fetch; 0 for the client default (50MB)")
	perfMarkRequired(cmd, "topic")
	return cmd
}

// perfAudit adds an audit hook to opts when bucket > 0 and returns what
// closes it (after the client) and prints its counters.
func perfAudit(opts *[]kgo.Opt, newHook func(...audit.Opt) (*audit.Hook, error), bucket time.Duration, out io.Writer) (func(), error) {
	if bucket <= 0 {
		return func() {}, nil
	}
	h, err := newHook(audit.Bucket(bucket))
	if err != nil {
		return nil, err
	}
	*opts = append(*opts, kgo.WithHooks(h))
	return func() {
		h.Close()
		st := h.Stats()
		fmt.Fprintf(out, "audit: %d records counted, %d flushes acknowledged, %d unflushed, %d dropped\n",
			st.Counted, st.Acked, st.Unflushed, st.Dropped)
	}, nil
}

// perfSignalContext ends the run on SIGINT or SIGTERM through its context, so
// an interrupted run still prints its totals so far instead of dying silently.
func perfSignalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

// perfSplitBrokers turns "a:1, b:2" into ["a:1" "b:2"].
func perfSplitBrokers(s string) []string {
	var out []string
	for b := range strings.SplitSeq(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func perfMarkRequired(cmd *cobra.Command, name string) {
	if err := cmd.MarkFlagRequired(name); err != nil {
		// Only a typo in a flag name gets here; fail loudly at startup.
		panic(fmt.Sprintf("mark flag %q required: %v", name, err))
	}
}

// producerPropFlags maps the Kafka producer properties --producer-props
// understands to our flags.
var producerPropFlags = map[string]string{
	"bootstrap.servers":   "bootstrap-server",
	"acks":                "acks",
	"batch.size":          "batch-size",
	"linger.ms":           "linger-ms",
	"compression.type":    "compression-type",
	"enable.idempotence":  "idempotent",
	"delivery.timeout.ms": "delivery-timeout-ms",
}

// applyProducerProps sets the flags behind Kafka producer properties that no
// explicit flag set; an unknown property is an error, not silently ignored.
func applyProducerProps(cmd *cobra.Command, props []string) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	for _, kv := range props {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("--producer-props %q: want key=value", kv)
		}
		if k == "client.id" {
			opts = append(opts, kgo.ClientID(v))
			continue
		}
		name, known := producerPropFlags[k]
		if !known {
			return nil, fmt.Errorf("--producer-props %s: not supported by kobs perf produce (supported: %s, client.id)",
				k, strings.Join(slices.Sorted(maps.Keys(producerPropFlags)), ", "))
		}
		if cmd.Flags().Changed(name) || (name == "bootstrap-server" && cmd.Flags().Changed("broker-list")) {
			continue
		}
		if err := cmd.Flags().Set(name, v); err != nil {
			return nil, fmt.Errorf("--producer-props %s=%s: %w", k, v, err)
		}
	}
	return opts, nil
}
