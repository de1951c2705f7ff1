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
		bf          brokerFlags
		storeCfg    store.Config
		agentListen string
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
			return runAll(ctx, cfg, storeCfg, agentListen, logger)
		},
	}
	bf.register(cmd, "config/server.properties")
	f := cmd.Flags()
	f.StringVar(&storeCfg.Dir, "tracestore-dir", "./data/tracestore", "trace store directory")
	f.StringVar(&storeCfg.Addr, "tracestore-listen", store.DefaultAddr, "trace store HTTP address (Elasticsearch API and /v1/trace/)")
	f.IntVar(&storeCfg.RetentionDays, "tracestore-retention-days", 7, "delete trace indexes older than this many days")
	f.StringVar(&agentListen, "agent-listen", "127.0.0.1:9308", "HTTP address of the lag and failing-ISR agent watching the broker (empty: no agent)")
	return cmd
}

func runAll(ctx context.Context, cfg *broker.Config, storeCfg store.Config, agentListen string, logger *slog.Logger) (err error) {
	b, err := broker.New(cfg, logger.With("component", "broker"))
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		b.Close()
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()

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
	errs := make(chan error, 3)
	pending := 2
	agentURL := ""
	if agentListen != "" {
		// The agent watches the broker as any client would, over TCP.
		a, agentLn, err := startAgent(agentListen, b.Addrs()[:1], logger.With("component", "agent"))
		if err != nil {
			_ = st.Close()
			return err
		}
		defer a.Close()
		agentURL = "http://" + agentLn.Addr().String()
		pending++
		go func() { errs <- serveAgent(ctx, a, agentLn) }()
	}
	go func() {
		errs <- st.ServeWith(ctx, ln, map[string]http.Handler{"/v1/trace/": qr.Handler()})
	}()
	go func() {
		errs <- tracing.RunShipper(ctx, tracing.ShipperConfig{
			Brokers: b.Addrs()[:1], URL: storeURL, Logger: logger.With("component", "trace-shipper"),
		})
	}()

	logger.Info("kobs ready", "kafka", strings.Join(b.Addrs(), ","), "telemetry", telemetryEndpoints(b),
		"tracestore", storeURL, "journeys", storeURL+"/v1/trace/", "trace.topic", tracing.DefaultTopic, "agent", agentURL,
		"log.dirs", strings.Join(cfg.LogDirs, ","), "tracestore.dir", storeCfg.Dir)

	// The first component to stop (a signal, or a failure) stops the rest.
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
		pending--
	}
	logger.Info("shutting down", "reason", context.Cause(ctx), "err", first)
	cancel()
	for ; pending > 0; pending-- {
		if e := <-errs; e != nil && !errors.Is(e, context.Canceled) {
			first = errors.Join(first, e)
		}
	}
	return errors.Join(first, st.Close())
}
