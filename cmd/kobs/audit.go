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
	"net/url"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kobs-dev/kobs/audit"
)

// newAuditCmd returns "kobs audit": the reconciler (run) and its report.
func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Did every message produced in a time window get consumed, once, by every group?",
	}
	cmd.AddCommand(newAuditRunCmd(), newAuditReportCmd())
	return cmd
}

// auditFlags are the reconciler settings shared by "kobs audit run" and
// "kobs run".
type auditFlags struct {
	cfg      audit.Config
	listen   string
	topicsRe string
}

func (f *auditFlags) register(cmd *cobra.Command, prefix, defaultStateDir string) {
	fl := cmd.Flags()
	fl.StringVar(&f.listen, prefix+"listen", audit.DefaultListen, "HTTP address of /metrics and the JSON API (/v1/audit/)")
	fl.DurationVar(&f.cfg.Bucket, prefix+"bucket", audit.DefaultBucket, "bucket width (a multiple of the audit hooks' bucket)")
	fl.DurationVar(&f.cfg.Grace, prefix+"grace", 2*time.Minute, "how long after a bucket ends it is judged")
	fl.DurationVar(&f.cfg.SampleInterval, prefix+"sample-interval", 0, "offset sampling period (default: bucket/4, 100ms..5s)")
	fl.DurationVar(&f.cfg.Retain, prefix+"retain", 24*time.Hour, "how long buckets are kept and reported")
	fl.StringVar(&f.cfg.StateDir, prefix+"state-dir", defaultStateDir, "directory of the reconciler state (survives restarts)")
	fl.StringVar(&f.cfg.Topic, prefix+"topic", audit.DefaultTopic, "audit topic")
	fl.StringVar(&f.topicsRe, prefix+"topics", "", "regexp of the topics reconciled from offsets (default: all not starting with __)")
}

func (f *auditFlags) config(brokers []string, logger *slog.Logger) (audit.Config, error) {
	c := f.cfg
	c.Brokers, c.Logger = brokers, logger
	if f.topicsRe != "" {
		re, err := regexp.Compile(f.topicsRe)
		if err != nil {
			return c, fmt.Errorf("--topics: %w", err)
		}
		c.Topics = re
	}
	return c, nil
}

func newAuditRunCmd() *cobra.Command {
	var (
		af        auditFlags
		bootstrap string
		logLevel  string
	)
	cmd := &cobra.Command{
		Use:   "run --bootstrap-servers B [--listen ADDR] [--bucket 1m] [--grace 2m]",
		Short: "Run the audit reconciler: audit topic + offsets -> completeness per topic, group and bucket",
		Long: `Run the audit reconciler against any Kafka-protocol cluster. It reads the counts
the audit hooks flush to the audit topic, samples offsets (ListOffsets by
timestamp at bucket boundaries, log start offsets, committed offsets of every
group), and after the grace period judges every topic and bucket: complete,
missing N, duplicated N, late or uncertain, per group. Prometheus metrics on
/metrics, the JSON API on /v1/audit/report?topic=T&since=1h and
/v1/audit/status. Its state (and the audit-topic offsets it covers) lives in
--state-dir, so a restart counts nothing twice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg, err := af.config(perfSplitBrokers(bootstrap), logger)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runAudit(ctx, cfg, af.listen, logger)
		},
	}
	af.register(cmd, "", "./data/audit")
	cmd.Flags().StringVar(&bootstrap, "bootstrap-servers", "127.0.0.1:9092", "comma-separated host:port list")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// runAudit runs a reconciler and its HTTP endpoint until ctx ends.
func runAudit(ctx context.Context, cfg audit.Config, listen string, logger *slog.Logger) error {
	r, err := audit.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("audit: listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	logger.Info("kobs audit ready", "listen", "http://"+ln.Addr().String(), "bootstrap", strings.Join(cfg.Brokers, ","),
		"bucket", cfg.Bucket, "grace", cfg.Grace, "state.dir", cfg.StateDir)
	err = r.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func newAuditReportCmd() *cobra.Command {
	var (
		server, topic, since string
		asJSON, all          bool
	)
	cmd := &cobra.Command{
		Use:   "report [--topic T] [--since 1h]",
		Short: "Print a topic's reconciliation, one table per bucket, or without --topic every topic and group",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			base := strings.TrimRight(server, "/")
			u := base + "/v1/audit/summary"
			if topic != "" {
				u = base + "/v1/audit/report?" + url.Values{"topic": {topic}, "since": {since}}.Encode()
			}
			body, err := auditGet(ctx, u)
			if err != nil {
				return fmt.Errorf("audit reconciler at %s: %w", server, err)
			}
			if asJSON {
				_, err = cmd.OutOrStdout().Write(body)
				return err
			}
			if topic == "" {
				var sum []audit.TopicSummary
				if err := json.Unmarshal(body, &sum); err != nil {
					return fmt.Errorf("audit reconciler answer: %w", err)
				}
				return printAuditSummary(cmd.OutOrStdout(), sum)
			}
			var rep audit.ReportResponse
			if err := json.Unmarshal(body, &rep); err != nil {
				return fmt.Errorf("audit reconciler answer: %w", err)
			}
			return printAuditReport(cmd.OutOrStdout(), rep, all)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "http://"+audit.DefaultListen, "the reconciler's HTTP address")
	f.StringVar(&topic, "topic", "", "topic to report per bucket (default: a summary of every topic and group)")
	f.StringVar(&since, "since", "1h", "from how long ago (a duration) or when (RFC 3339)")
	f.BoolVar(&asJSON, "json", false, "print the JSON answer")
	f.BoolVar(&all, "all", false, "also print buckets in which no tier counted a record")
	return cmd
}

func auditGet(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// printAuditSummary writes a row per topic and group over the judged
// buckets the reconciler keeps.
func printAuditSummary(w io.Writer, sum []audit.TopicSummary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tGROUP\tEXPECTED\tMISSING\tDUPLICATES\tCOMPLETENESS\tUNCERTAIN BUCKETS")
	for _, t := range sum {
		if len(t.Groups) == 0 {
			fmt.Fprintf(tw, "%s\t-\t\t\t\t\t%d\n", t.Topic, t.Uncertain)
		}
		for _, g := range t.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.4f\t%d\n", t.Topic, g.Group, g.Expected, g.Missing, g.Duplicates, g.Completeness, t.Uncertain)
		}
	}
	return tw.Flush()
}

func num(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// printAuditReport writes one block per bucket: its status and the
// producer and broker counts, then a row per group.
func printAuditReport(w io.Writer, rep audit.ReportResponse, all bool) error {
	fmt.Fprintf(w, "topic %s: %v buckets, judged %v after they end\n", rep.Topic,
		time.Duration(rep.BucketMs)*time.Millisecond, time.Duration(rep.GraceMs)*time.Millisecond)
	shown := 0
	for _, b := range rep.Buckets {
		if !all && b.Bucket != audit.OutOfWindow && val0(b.Producer) == 0 && val0(b.Broker) == 0 && !anyConsumed(b) {
			continue
		}
		shown++
		fmt.Fprintln(w)
		if b.Bucket == audit.OutOfWindow {
			fmt.Fprintf(w, "OUT OF WINDOW (timestamps too far from the clock)\n")
		} else {
			fmt.Fprintf(w, "BUCKET %s .. %s  %s\n", b.Start.Format(time.RFC3339), b.End.Format("15:04:05"), strings.ToUpper(b.Status))
		}
		fmt.Fprintf(w, "  producer %s  broker %s", num(b.Producer), num(b.Broker))
		if b.ProducerVsBroker != "" {
			fmt.Fprintf(w, "  producer vs broker: %s", b.ProducerVsBroker)
			if b.Delta != 0 {
				fmt.Fprintf(w, " (%+d)", b.Delta)
			}
		}
		fmt.Fprintln(w)
		for _, u := range b.Uncertain {
			fmt.Fprintf(w, "  uncertain: %s\n", u)
		}
		if len(b.Groups) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  GROUP\tSOURCE\tCONSUMED\tREACHED\tEXPECTED\tLOST\tMISSING\tDUPLICATES\tSTATUS")
		for _, g := range b.Groups {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", g.Group, g.Source, num(g.Consumed), num(g.Reached),
				g.Expected, g.Lost, g.Missing, g.Duplicates, g.Status)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if shown == 0 {
		fmt.Fprintln(w, "\nno records counted in this window (--all shows empty buckets)")
	}
	return nil
}

func val0(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func anyConsumed(b audit.BucketReport) bool {
	for _, g := range b.Groups {
		if val0(g.Consumed) > 0 {
			return true
		}
	}
	return false
}
