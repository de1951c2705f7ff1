package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kobs-dev/kobs/tracing"
	"github.com/kobs-dev/kobs/tracing/store"
)

// newTracestoreCmd returns "kobs tracestore": the embedded
// Elasticsearch-7-compatible trace store the shipper writes to by default.
func newTracestoreCmd() *cobra.Command {
	cfg := store.Config{}
	cmd := &cobra.Command{
		Use:   "tracestore",
		Short: "Run the embedded Elasticsearch-compatible trace store",
		Long: "Serves the subset of the Elasticsearch 7 REST API that the trace shipper and the\n" +
			"journey queries use, storing each Elasticsearch index under --dir as an append-only\n" +
			"segment log, indexed in memory (rebuilt from the log at start).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			s, err := store.Open(cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				_ = s.Close()
				return fmt.Errorf("tracestore: listen %s: %w", cfg.Addr, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// Journey queries (GET /v1/trace/...) are answered by querying
			// this store through its own Elasticsearch API, exactly as
			// "kobs trace get" would against any Elasticsearch.
			qr, err := tracing.NewQuerier("http://"+ln.Addr().String(), "")
			if err != nil {
				_ = s.Close()
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tracestore ready on http://%s (dir %s); journeys on /v1/trace/\n", ln.Addr(), cfg.Dir)
			serr := s.ServeWith(ctx, ln, map[string]http.Handler{"/v1/trace/": qr.Handler()})
			cfg.Logger.Info("tracestore shutting down")
			if cerr := s.Close(); serr == nil {
				serr = cerr
			}
			cfg.Logger.Info("tracestore stopped")
			return serr
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "dir", "./data/tracestore", "directory holding the indexes")
	f.StringVar(&cfg.Addr, "listen", store.DefaultAddr, "HTTP listen address (Elasticsearch's port by default)")
	f.IntVar(&cfg.RetentionDays, "retention-days", 7, "delete indexes named *YYYY.MM.DD older than this many days; 0 keeps everything")
	return cmd
}
