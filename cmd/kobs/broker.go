package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kobs-dev/kobs/broker"
)

func newBrokerCmd() *cobra.Command {
	var bf brokerFlags
	cmd := &cobra.Command{
		Use:   "broker --config server.properties [--override key=value ...]",
		Short: "Run a Kafka-protocol broker configured with Kafka's server.properties keys",
		Long: `Run a kobs broker, like kafka-server-start.sh: --config names a server.properties
file and each --override key=value replaces one of its keys. The broker logs one
"kobs broker ready" line once it serves, and on SIGTERM or SIGINT stops accepting,
flushes its logs and writes its checkpoints before exiting. With
process.roles=controller it runs a dedicated controller (a metadata quorum voter
without Kafka listeners) and logs "kobs controller ready" once the quorum has
formed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, logger, err := bf.load()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runBroker(ctx, cfg, logger)
		},
	}
	bf.register(cmd, "")
	return cmd
}

// brokerFlags are the flags of every command that runs a broker.
type brokerFlags struct {
	configPath string
	overrides  []string
	logLevel   string
}

func (f *brokerFlags) register(cmd *cobra.Command, defaultConfig string) {
	cmd.Flags().StringVar(&f.configPath, "config", defaultConfig, "server.properties file")
	cmd.Flags().StringArrayVar(&f.overrides, "override", nil, "key=value replacing a server.properties key (repeatable)")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
}

func (f *brokerFlags) load() (*broker.Config, *slog.Logger, error) {
	logger, err := newLogger(f.logLevel)
	if err != nil {
		return nil, nil, err
	}
	if f.configPath == "" {
		// As kafka-server-start.sh, a broker starts from a server.properties
		// file; --override only replaces keys of it.
		return nil, nil, errors.New("no config file: give --config server.properties " +
			"(config/server.properties in the repository is a working single-broker example)")
	}
	cfg, err := broker.LoadConfig(f.configPath, f.overrides)
	if err != nil {
		return nil, nil, err
	}
	return cfg, logger, nil
}

// telemetryEndpoints names a broker's telemetry URLs for the ready line.
func telemetryEndpoints(b *broker.Broker) string {
	a := b.HTTPAddr()
	if a == "" {
		return "off"
	}
	return "http://" + a + "/jolokia,http://" + a + "/metrics"
}

func runBroker(ctx context.Context, cfg *broker.Config, logger *slog.Logger) error {
	b, err := broker.New(cfg, logger, broker.WithStartContext(ctx))
	if err != nil {
		return err
	}
	b.MountHTTP(telemetryHandler(b, cfg))
	if err := b.Start(); err != nil {
		b.Close()
		return err
	}
	// "ready" means registered with the metadata quorum: the other voters
	// of a new cluster may still be starting.
	select {
	case <-b.Ready():
	case <-ctx.Done():
	case err := <-b.Fatal():
		b.Close()
		return err
	}
	if cfg.ProcessRoles.Broker {
		logger.Info("kobs broker ready", "node.id", b.NodeID(), "cluster.id", b.ClusterID(), "process.roles", cfg.ProcessRoles,
			"listeners", strings.Join(b.Addrs(), ","), "telemetry", telemetryEndpoints(b), "log.dirs", strings.Join(cfg.LogDirs, ","))
	} else {
		logger.Info("kobs controller ready", "node.id", b.NodeID(), "cluster.id", b.ClusterID(), "process.roles", cfg.ProcessRoles,
			"controller", cfg.ControllerQuorumVoters[cfg.NodeID], "telemetry", telemetryEndpoints(b), "log.dirs", strings.Join(cfg.LogDirs, ","))
	}
	var fatal error
	select {
	case <-ctx.Done():
	case fatal = <-b.Fatal():
		logger.Error("stopping", "err", fatal)
	}
	logger.Info("shutting down", "reason", context.Cause(ctx))
	if err := b.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("kobs broker stopped")
	return fatal
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
