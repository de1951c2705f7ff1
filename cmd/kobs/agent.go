package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kobs-dev/kobs/agent"
)

// kafkaConnFlags are the connection flags of the commands that talk to any
// Kafka-protocol cluster as a client: TLS and SASL as franz-go offers them.
type kafkaConnFlags struct {
	tls            bool
	tlsCA          string
	tlsCert        string
	tlsKey         string
	tlsInsecure    bool
	saslMechanism  string
	saslUser       string
	saslPasswordFl string
}

func (c *kafkaConnFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&c.tls, "tls", false, "connect with TLS (implied by --tls-ca/--tls-cert)")
	f.StringVar(&c.tlsCA, "tls-ca", "", "PEM file of the CA that signed the brokers' certificates (default: system roots)")
	f.StringVar(&c.tlsCert, "tls-cert", "", "PEM client certificate for mutual TLS")
	f.StringVar(&c.tlsKey, "tls-key", "", "PEM key of --tls-cert")
	f.BoolVar(&c.tlsInsecure, "tls-insecure-skip-verify", false, "do not verify the brokers' certificates")
	f.StringVar(&c.saslMechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	f.StringVar(&c.saslUser, "sasl-username", "", "SASL user")
	f.StringVar(&c.saslPasswordFl, "sasl-password-file", "", "file holding the SASL password (else $KOBS_SASL_PASSWORD)")
}

// opts turns the flags into kgo options.
func (c *kafkaConnFlags) opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if c.tls || c.tlsCA != "" || c.tlsCert != "" || c.tlsInsecure {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.tlsInsecure} //nolint:gosec // opt-in flag
		if c.tlsCA != "" {
			pem, err := os.ReadFile(c.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls-ca %s: no PEM certificate", c.tlsCA)
			}
			cfg.RootCAs = pool
		}
		if (c.tlsCert == "") != (c.tlsKey == "") {
			return nil, errors.New("--tls-cert and --tls-key go together")
		}
		if c.tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
			if err != nil {
				return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if c.saslMechanism == "" {
		return opts, nil
	}
	pass := os.Getenv("KOBS_SASL_PASSWORD")
	if c.saslPasswordFl != "" {
		b, err := os.ReadFile(c.saslPasswordFl)
		if err != nil {
			return nil, fmt.Errorf("--sasl-password-file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	switch strings.ToUpper(c.saslMechanism) {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.saslUser, Pass: pass}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.saslUser, Pass: pass}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.saslUser, Pass: pass}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.saslMechanism)
	}
	return opts, nil
}

// newAgentCmd is "kobs agent": the lag and failing-ISR sidecar for any
// Kafka-protocol cluster.
func newAgentCmd() *cobra.Command {
	var (
		cfg       agent.Config
		bootstrap string
		listen    string
		isolation string
		conn      kafkaConnFlags
		memLimit  int64
	)
	cmd := &cobra.Command{
		Use:   "agent --bootstrap-servers HOST:PORT",
		Short: "Watch any Kafka-protocol cluster: consumer lag (offsets, seconds, status) and failing ISRs",
		Long: "Collects the cluster with kadm every --interval and serves Prometheus /metrics\n" +
			"(kafka_exporter's names plus kobs_*) and a JSON API (/v1/health, /v1/groups,\n" +
			"/v1/groups/{group}, /v1/partitions/failing). See agent/README.md for the status rules.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Brokers = perfSplitBrokers(bootstrap)
			switch isolation {
			case "read_uncommitted":
			case "read_committed":
				cfg.ReadCommitted = true
			default:
				return fmt.Errorf("--isolation %q: want read_uncommitted or read_committed", isolation)
			}
			opts, err := conn.opts()
			if err != nil {
				return err
			}
			cfg.Opts = opts
			if memLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
				// A soft limit: the GC works harder near it instead of
				// letting the heap double between cycles.
				debug.SetMemoryLimit(memLimit << 20)
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			cfg.Logger = logger
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runAgent(ctx, cfg, listen, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&bootstrap, "bootstrap-servers", "127.0.0.1:9092", "comma-separated host:port list of the cluster")
	f.StringVar(&listen, "listen", "127.0.0.1:9308", "HTTP address for /metrics and /v1/ (9308 is kafka_exporter's port)")
	f.StringVar(&cfg.ClientID, "client-id", "kobs-agent", "Kafka client id")
	f.DurationVar(&cfg.Interval, "interval", 10*time.Second, "time between collection cycles")
	f.DurationVar(&cfg.Timeout, "timeout", 0, "bound of one cycle (default 4/5 of --interval)")
	f.StringVar(&isolation, "isolation", "read_uncommitted", "read_uncommitted (lag to the high watermark) or read_committed (lag to the last stable offset)")
	f.StringVar(&cfg.LagSeconds, "lag-seconds", agent.ModeInterpolated, "interpolated (from each partition's offset history) or exact (reads the record at the committed offset)")
	f.IntVar(&cfg.ExactMaxReads, "exact-max-reads", 1000, "exact mode: records read per cycle at most (the rest stay interpolated, counted)")
	f.IntVar(&cfg.StatusWindow, "status-window", 10, "cycles the status rules look back over")
	f.IntVar(&cfg.HistoryPoints, "history-points", 60, "(end offset, time) samples kept per partition for lag seconds")
	f.Int64Var(&memLimit, "memory-limit-mb", 256, "soft memory limit of the Go runtime in MiB (0: none; $GOMEMLIMIT wins)")
	conn.register(f)
	return cmd
}

func runAgent(ctx context.Context, cfg agent.Config, listen string, logger *slog.Logger) error {
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("agent: listen %s: %w", listen, err)
	}
	c := a.Config()
	logger.Info("kobs agent ready", "listen", "http://"+ln.Addr().String(), "bootstrap", strings.Join(c.Brokers, ","),
		"interval", c.Interval, "timeout", c.Timeout, "read_committed", c.ReadCommitted, "lag_seconds", c.LagSeconds)
	return serveAgent(ctx, a, ln)
}

// startAgent is the agent of kobs run: defaults, pointed at the broker.
func startAgent(listen string, brokers []string, logger *slog.Logger) (*agent.Agent, net.Listener, error) {
	a, err := agent.New(agent.Config{Brokers: brokers, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("agent: listen %s: %w", listen, err)
	}
	return a, ln, nil
}

// serveAgent collects and serves until ctx ends.
func serveAgent(ctx context.Context, a *agent.Agent, ln net.Listener) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	cancel()
	<-done
	shutdown, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	_ = srv.Shutdown(shutdown)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
