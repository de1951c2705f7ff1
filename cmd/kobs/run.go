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
	"github.com/kobs-dev/kobs/broker/metadata"
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
		brokers  int
	)
	cmd := &cobra.Command{
		Use:   "run --config server.properties",
		Short: "Run a broker with the trace store and shipper beside it (the embedded default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfgs, logger, err := bf.loadCluster(brokers)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			storeCfg.Logger = logger.With("component", "tracestore")
			return runAll(ctx, cfgs, storeCfg, &af, agentAt, logger)
		},
	}
	bf.register(cmd, "config/server.properties")
	f := cmd.Flags()
	f.StringVar(&storeCfg.Dir, "tracestore-dir", "./data/tracestore", "trace store directory")
	f.StringVar(&storeCfg.Addr, "tracestore-listen", store.DefaultAddr, "trace store HTTP address (Elasticsearch API and /v1/trace/)")
	f.IntVar(&storeCfg.RetentionDays, "tracestore-retention-days", 7, "delete trace indexes older than this many days")
	af.register(cmd, "audit-", "./data/audit") // the audit reconciler: --audit-listen, --audit-bucket, ...
	f.IntVar(&brokers, "brokers", 1, "run this many brokers in the process, a replicated cluster: node i on the Kafka port + i-1, "+
		"its controller on the Kafka port + 10000, telemetry on the HTTP port + 10(i-1), data in <log.dirs>-i; "+
		"3 or more use replication factor 3 and min.insync.replicas 2 unless --override sets them")
	f.StringVar(&agentAt, "agent-listen", "127.0.0.1:9308", "HTTP address of the lag and failing-ISR agent watching the broker (empty: no agent)")
	return cmd
}

func runAll(ctx context.Context, cfgs []*broker.Config, storeCfg store.Config, af *auditFlags, agentAt string, logger *slog.Logger) (err error) {
	// Registered first so it runs last, after the brokers have closed: the
	// final line says everything stopped cleanly, as "kobs broker" does.
	defer func() {
		if err == nil {
			logger.Info("kobs stopped")
		}
	}()
	brokers := make([]*broker.Broker, 0, len(cfgs))
	// The nodes close together: one by one, the last ones would wait for a
	// quorum that the first ones took away.
	defer func() { err = errors.Join(err, closeBrokers(brokers)) }()
	var kafka []string
	for _, cfg := range cfgs {
		// The broker's lines carry no component key: its parts add their own
		// (component=group-coordinator), and slog would print the key twice.
		bl := logger
		if len(cfgs) > 1 {
			bl = logger.With("node.id", cfg.NodeID)
		}
		b, err := broker.New(cfg, bl)
		if err != nil {
			return err
		}
		b.MountHTTP(telemetryHandler(b, cfg))
		if err := b.Start(); err != nil {
			b.Close()
			return err
		}
		brokers = append(brokers, b)
		kafka = append(kafka, b.Addrs()[0])
	}
	// Ready: every node registered with the metadata quorum, which needs a
	// majority of them started (they are, above).
	fatal := make(chan error, len(brokers))
	for _, b := range brokers {
		select {
		case <-b.Ready():
		case <-ctx.Done():
			return nil
		case err := <-b.Fatal():
			return fmt.Errorf("node %d: %w", b.NodeID(), err)
		}
		go func() {
			if err, ok := <-b.Fatal(); ok && err != nil {
				fatal <- fmt.Errorf("node %d: %w", b.NodeID(), err)
			}
		}()
	}
	if err := waitAllLive(ctx, brokers); err != nil {
		return err
	}
	auditCfg, err := af.config(kafka, logger.With("component", "audit"))
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
		a, agentLn, err := startAgent(agentAt, kafka, logger.With("component", "agent"))
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
			Brokers: kafka, URL: storeURL, Logger: logger.With("component", "trace-shipper"),
		})
	}()

	// The audit reconciler on the broker: completeness per topic, group and
	// bucket on --audit-listen (it logs "kobs audit ready").
	go func() { errs <- runAudit(ctx, auditCfg, af.listen, logger.With("component", "audit")) }()

	var telemetry []string
	for _, b := range brokers {
		telemetry = append(telemetry, telemetryEndpoints(b))
	}
	logger.Info("kobs ready", "kafka", strings.Join(kafka, ","), "telemetry", strings.Join(telemetry, ","),
		"tracestore", storeURL, "journeys", storeURL+"/v1/trace/", "trace.topic", tracing.DefaultTopic, "agent", agentURL,
		"log.dirs", strings.Join(logDirs(cfgs), ","), "tracestore.dir", storeCfg.Dir)

	// The first component to stop (a signal, or a failure) stops the rest.
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
		pending--
	case first = <-fatal:
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

func logDirs(cfgs []*broker.Config) []string {
	var dirs []string
	for _, c := range cfgs {
		dirs = append(dirs, c.LogDirs...)
	}
	return dirs
}

// closeBrokers closes the nodes at once and waits for all of them.
func closeBrokers(bs []*broker.Broker) error {
	errs := make(chan error, len(bs))
	for _, b := range bs {
		go func() { errs <- b.Close() }()
	}
	var all error
	for range bs {
		all = errors.Join(all, <-errs)
	}
	return all
}

// waitAllLive waits until every node's metadata image shows every node
// registered and unfenced, so that a client sees the whole cluster
// whichever node it asks first ("kobs ready" means that).
func waitAllLive(ctx context.Context, brokers []*broker.Broker) error {
	changed := make(chan struct{}, 1)
	for _, b := range brokers {
		b.Metadata().Subscribe(func(_, _ *metadata.Image) {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}
	for {
		all := true
		for _, b := range brokers {
			im := b.Metadata().Load()
			for _, o := range brokers {
				all = all && im.Live(o.NodeID())
			}
		}
		if all {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}
