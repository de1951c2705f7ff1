package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kobs-dev/kobs/broker"
	"github.com/kobs-dev/kobs/tracing"
	"github.com/kobs-dev/kobs/tracing/store"
)

// newRunCmd is "kobs run", the main job on the embedded defaults (make run):
// a broker, the trace store beside it, and the shipper that moves trace
// events from the broker's trace topic into the store, in one process.
func newRunCmd() *cobra.Command {
	var (
		bf       brokerFlags
		storeCfg store.Config
		af       auditFlags
		agentAt  string
	)
	cmd := &cobra.Command{
		Use:   "run --config server.properties",
		Short: "Run a broker with the trace store and shipper beside it (the embedded default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, logger, err := bf.load()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			storeCfg.Logger = logger.With("component", "tracestore")
			return runAll(ctx, cfg, storeCfg, &af, agentAt, logger)
		},
	}
	bf.register(cmd, "config/server.properties")
	f := cmd.Flags()
	f.StringVar(&storeCfg.Dir, "tracestore-dir", "./data/tracestore", "trace store directory")
	f.StringVar(&storeCfg.Addr, "tracestore-listen", store.DefaultAddr, "trace store HTTP address (Elasticsearch API and /v1/trace/)")
	f.IntVar(&storeCfg.RetentionDays, "tracestore-retention-days", 7, "delete trace indexes older than this many days")
	af.register(cmd, "audit-", "./data/audit") // the audit reconciler: --audit-listen, --audit-bucket, ...
	f.StringVar(&agentAt, "agent-listen", "127.0.0.1:9308", "HTTP address of the lag and failing-ISR agent watching the broker (empty: no agent)")
	return cmd
}

func runAll(ctx context.Context, cfg *broker.Config, storeCfg store.Config, af *auditFlags, agentAt string, logger *slog.Logger) (err error) {
	// Registered first so it runs last, after the broker has closed: the
	// final line says everything stopped cleanly, as "kobs broker" does.
	defer func() {
		if err == nil {
			logger.Info("kobs stopped")
		}
	}()
	// The broker's lines carry no component key: its parts add their own
	// (component=group-coordinator), and slog would print the key twice.
	b, err := broker.New(cfg, logger)
	if err != nil {
		return err
	}
	b.MountHTTP(telemetryHandler(b, cfg))
	if err := b.Start(); err != nil {
		b.Close()
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()

	auditCfg, err := af.config(b.Addrs()[:1], logger.With("component", "audit"))
	if err != nil {
		return err
	}
	st, err := store.Open(storeCfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", storeCfg.Addr)
	if err != nil {
		_ = st.Close()
		return fmt.Errorf("tracestore: listen %s: %w", storeCfg.Addr, err)
	}
	storeURL := "http://" + ln.Addr().String()
	qr, err := tracing.NewQuerier(storeURL, "")
	if err != nil {
		_ = st.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 4)
	pending := 3
	agentURL := ""
	if agentAt != "" {
		// The agent watches the broker as any client would, over TCP.
		a, agentLn, err := startAgent(agentAt, b.Addrs()[:1], logger.With("component", "agent"))
		if err != nil {
			_ = st.Close()
			return err
		}
		defer a.Close()
		agentURL = "http://" + agentLn.Addr().String()
		pending++
		go func() { errs <- serveAgent(ctx, a, agentLn) }()
	}
	// The shipper's /metrics (kobs_trace_events_dropped_total) is served
	// on the trace store's address: GET /metrics there is not the
	// Elasticsearch API (it would read an index named "metrics").
	shipper, err := tracing.NewShipper(tracing.ShipperConfig{
		Brokers: b.Addrs()[:1], URL: storeURL, Logger: logger.With("component", "trace-shipper"),
	})
	if err != nil {
		_ = st.Close()
		return err
	}
	go func() {
		errs <- st.ServeWith(ctx, ln, map[string]http.Handler{"/v1/trace/": qr.Handler(), "GET /metrics": shipper.MetricsHandler()})
	}()
	go func() { errs <- shipper.Run(ctx) }()

	// The audit reconciler on the broker: completeness per topic, group and
	// bucket on --audit-listen (it logs "kobs audit ready").
	go func() { errs <- runAudit(ctx, auditCfg, af.listen, logger.With("component", "audit")) }()

	logger.Info("kobs ready", "kafka", strings.Join(b.Addrs(), ","), "telemetry", telemetryEndpoints(b),
		"tracestore", storeURL, "journeys", storeURL+"/v1/trace/", "trace.metrics", storeURL+"/metrics", "trace.topic", tracing.DefaultTopic, "agent", agentURL,
		"log.dirs", strings.Join(cfg.LogDirs, ","), "tracestore.dir", storeCfg.Dir)

	// The first component to stop (a signal, or a failure) stops the rest.
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
		pending--
	}
	if first != nil {
		logger.Error("shutting down", "reason", "a component failed", "err", first)
	} else {
		logger.Info("shutting down", "reason", context.Cause(ctx))
	}
	cancel()
	for ; pending > 0; pending-- {
		if e := <-errs; e != nil && !errors.Is(e, context.Canceled) {
			first = errors.Join(first, e)
		}
	}
	return errors.Join(first, st.Close())
}
