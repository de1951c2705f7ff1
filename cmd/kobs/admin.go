package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/broker"
)

// The operator commands (topics, groups, configs, delete-records) take the
// flags of Kafka's kafka-*.sh tools and print what those tools print, so an
// operator's habits and scripts carry over. They talk to the cluster with
// kadm only, so they work against any Kafka-protocol cluster.
//
// One deliberate difference: Kafka's consumer-groups and delete-records tools
// print "Error: ..." and still exit 0 in some cases; ours exit 1 whenever they
// printed an error, so a script can trust the exit code.

// errReported is returned by a command that already printed its failure in
// its Kafka tool's words; main exits 1 without printing it again.
var errReported = errors.New("error reported")

// reported wraps errReported so tests can still see what failed.
func reported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errReported}, args...)...)
}

// usageError is Kafka's CommandLineUtils.printUsageAndExit: the message on
// stderr, a pointer at the help, exit 1.
func usageError(cmd *cobra.Command, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(cmd.ErrOrStderr(), msg)
	fmt.Fprintf(cmd.ErrOrStderr(), "See '%s --help'.\n", cmd.CommandPath())
	return reported("%s", msg)
}

// adminFlags are the connection flags every operator command shares.
type adminFlags struct {
	bootstrap     string
	timeoutMs     int64
	commandConfig string
	conn          kafkaConnFlags // TLS and SASL, the flags of "kobs agent"

	// clientOpts are the kgo options connect used (seeds, client id, TLS,
	// SASL, --command-config), for a command that needs a second client.
	clientOpts []kgo.Opt
}

// register adds --bootstrap-server and --timeout (milliseconds, as
// kafka-consumer-groups.sh's --timeout; the other Kafka tools have none and
// wait for their admin client's 60 s default).
func (a *adminFlags) register(cmd *cobra.Command, defaultTimeoutMs int64) {
	f := cmd.Flags()
	f.StringVar(&a.bootstrap, "bootstrap-server", "", "REQUIRED: comma-separated host:port list of the Kafka cluster to connect to")
	f.Int64Var(&a.timeoutMs, "timeout", defaultTimeoutMs, "ms the whole command may take before it gives up")
	f.StringVar(&a.commandConfig, "command-config", "", "Property file containing configs to be passed to the admin client (client.id, bootstrap.servers; TLS and SASL through the --tls and --sasl-* flags)")
	a.conn.register(f)
}

// commandConfigOpts reads --command-config as Kafka's tools pass it to their
// admin client. What kobs cannot honour is refused (TLS and SASL) or named
// in Kafka's warning (anything else), never silently dropped.
func (a *adminFlags) commandConfigOpts(cmd *cobra.Command) ([]kgo.Opt, error) {
	if a.commandConfig == "" {
		return nil, nil
	}
	props, err := broker.LoadProperties(a.commandConfig)
	if err != nil {
		return nil, fmt.Errorf("--command-config: %w", err)
	}
	var opts []kgo.Opt
	var unused []string
	for _, k := range props.Keys() {
		v, _ := props.Get(k)
		switch {
		case k == "client.id":
			opts = append(opts, kgo.ClientID(v))
		case k == "bootstrap.servers":
			if strings.TrimSpace(a.bootstrap) == "" {
				a.bootstrap = v
			}
		case k == "security.protocol" && strings.EqualFold(v, "PLAINTEXT"):
		case k == "security.protocol", strings.HasPrefix(k, "ssl."), strings.HasPrefix(k, "sasl."):
			return nil, fmt.Errorf("--command-config %s: %s=%s: Java's TLS and SASL properties (keystores, JAAS) are not read; use --tls, --tls-ca, --tls-cert, --tls-key and --sasl-mechanism, --sasl-username, --sasl-password-file", a.commandConfig, k, v)
		default:
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "WARN These configurations '[%s]' were supplied but are not used yet.\n", strings.Join(unused, ", "))
	}
	return opts, nil
}

// connect checks the required flag and returns a kadm client and a context
// bounded by the request timeout. The caller closes the client and cancels.
func (a *adminFlags) connect(cmd *cobra.Command) (*kadm.Client, context.Context, context.CancelFunc, error) {
	extra, err := a.commandConfigOpts(cmd)
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return nil, nil, nil, reported("%v", err)
	}
	if strings.TrimSpace(a.bootstrap) == "" {
		return nil, nil, nil, usageError(cmd, `Missing required argument "[bootstrap-server]"`)
	}
	connOpts, err := a.conn.opts()
	if err != nil {
		return nil, nil, nil, err
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(perfSplitBrokers(a.bootstrap)...), kgo.ClientID("kobs-admin")}, connOpts...)
	opts = append(opts, extra...)
	a.clientOpts = opts
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bootstrap-server %q: %w", a.bootstrap, err)
	}
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, time.Duration(a.timeoutMs)*time.Millisecond)
	return kadm.NewClient(cl), ctx, func() { cancel(); cl.Close() }, nil
}

// countTrue counts the set flags among names.
func countTrue(cmd *cobra.Command, names ...string) (n int, set []string) {
	for _, name := range names {
		if cmd.Flags().Changed(name) {
			n++
			set = append(set, name)
		}
	}
	return n, set
}

// checkInvalid is CommandLineUtils.checkInvalidArgs: when used is set, none
// of invalid may be.
func checkInvalid(cmd *cobra.Command, used string, invalid ...string) error {
	if !cmd.Flags().Changed(used) {
		return nil
	}
	for _, o := range invalid {
		if cmd.Flags().Changed(o) {
			return usageError(cmd, `Option "[%s]" can't be used with option "[%s]"`, used, o)
		}
	}
	return nil
}

// errText is how the commands print a Kafka error: the broker's message when
// it sent one, else the error code and its description.
func errText(err error, msg string) string {
	if msg != "" {
		return msg
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// errName is the bare Kafka error name (UNKNOWN_TOPIC_OR_PARTITION), or the
// error's text for errors that are not Kafka error codes.
func errName(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}

// table prints rows in columns like Kafka's tools do with printf: every
// column but the last padded to its width, the last not padded. A column with
// grow set widens to its longest value (Kafka's "find proper columns width");
// otherwise its width is fixed and a longer value simply overflows, as %-10s
// does. Commands that add columns (the agent's LAG-SECONDS and STATUS) append
// to a table's columns before printing.
type table struct {
	cols []column
	rows [][]string
}

type column struct {
	header string
	width  int
	grow   bool
}

func (t *table) add(row ...string) { t.rows = append(t.rows, row) }

// write prints the header and rows; each line starts with lead (Kafka's
// format strings begin with "\n").
func (t *table) write(w io.Writer, lead string) {
	widths := make([]int, len(t.cols))
	for i, c := range t.cols {
		widths[i] = c.width
		if c.grow {
			for _, r := range t.rows {
				if i < len(r) {
					widths[i] = max(widths[i], len(r[i]))
				}
			}
		}
	}
	line := func(vals []string) {
		var sb strings.Builder
		sb.WriteString(lead)
		for i := range t.cols {
			v := ""
			if i < len(vals) {
				v = vals[i]
			}
			if i == len(t.cols)-1 {
				sb.WriteString(v)
				break
			}
			fmt.Fprintf(&sb, "%-*s ", widths[i], v)
		}
		io.WriteString(w, sb.String())
	}
	hdr := make([]string, len(t.cols))
	for i, c := range t.cols {
		hdr[i] = c.header
	}
	line(hdr)
	for _, r := range t.rows {
		line(r)
	}
}

// kafkaError keeps a message of Kafka's tools (or of the Java library they
// use) verbatim, capital letter included, so what an operator searches for
// reads the same with kobs.
func kafkaError(format string, args ...any) error { return fmt.Errorf(format, args...) }
