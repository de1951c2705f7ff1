package tracing

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// DefaultTopic is the trace topic the hooks write to and the shipper reads.
const DefaultTopic = "__kobs_trace"

// Opt configures a ProducerHook, a ConsumerHook or an Emitter, in the style
// of kgo's options: each option overrides one default of a private cfg.
type Opt interface{ apply(*cfg) }

type opt func(*cfg)

func (o opt) apply(c *cfg) { o(c) }

type cfg struct {
	brokers      []string
	topic        string
	sampleRate   float64
	maxBuffered  int
	emitterOpts  []kgo.Opt
	emitter      *Emitter
	clientID     string
	host         string
	group        string
	tp           trace.TracerProvider
	otlpEndpoint string
	log          *slog.Logger
}

func defaultCfg() cfg {
	host, _ := os.Hostname()
	return cfg{
		topic:       DefaultTopic,
		sampleRate:  1,
		maxBuffered: 10000,
		host:        host,
		log:         slog.New(slog.DiscardHandler),
	}
}

func (c *cfg) validate() error {
	switch {
	case c.topic == "":
		return errors.New("tracing: empty trace topic")
	case c.sampleRate < 0 || c.sampleRate > 1:
		return fmt.Errorf("tracing: sample rate %v outside [0, 1]", c.sampleRate)
	case c.maxBuffered < 1:
		return fmt.Errorf("tracing: max buffered events %d < 1", c.maxBuffered)
	case c.tp != nil && c.otlpEndpoint != "":
		return errors.New("tracing: TracerProvider and OTLPEndpoint are mutually exclusive")
	}
	return nil
}

func newCfg(opts []Opt) (cfg, error) {
	c := defaultCfg()
	for _, o := range opts {
		o.apply(&c)
	}
	return c, c.validate()
}

// ValidateOpts reports whether opts are valid without building anything.
func ValidateOpts(opts ...Opt) error { _, err := newCfg(opts); return err }

// Brokers sets the seed brokers of the trace producer, overriding the default
// of the traced client's own seed brokers. Use it to keep trace traffic on a
// separate cluster.
func Brokers(seeds ...string) Opt { return opt(func(c *cfg) { c.brokers = seeds }) }

// Topic sets the trace topic, overriding the default "__kobs_trace".
func Topic(t string) Opt { return opt(func(c *cfg) { c.topic = t }) }

// SampleRate sets the fraction of messages traced, overriding the default
// 1.0 (every message). The decision is a hash of the message id, so the
// producer and every consumer trace the same messages without coordination.
func SampleRate(r float64) Opt { return opt(func(c *cfg) { c.sampleRate = r }) }

// MaxBufferedEvents bounds the trace producer's buffer, overriding the
// default 10000. When it is full, new trace events are dropped and counted
// (Stats.Dropped); the traced client is never blocked or failed.
func MaxBufferedEvents(n int) Opt { return opt(func(c *cfg) { c.maxBuffered = n }) }

// EmitterOpts adds kgo options to the trace producer's client (SASL, TLS,
// linger, ...). They are applied after kobs's own.
func EmitterOpts(o ...kgo.Opt) Opt {
	return opt(func(c *cfg) { c.emitterOpts = append(c.emitterOpts, o...) })
}

// WithEmitter makes a hook write through an existing Emitter, so a producer
// and a consumer hook in one process share one trace producer. The hook
// does not close a shared emitter.
func WithEmitter(e *Emitter) Opt { return opt(func(c *cfg) { c.emitter = e }) }

// ClientID sets the client id recorded in produce events, overriding the
// default of the traced client's kgo.ClientID.
func ClientID(id string) Opt { return opt(func(c *cfg) { c.clientID = id }) }

// Host sets the host recorded in events, overriding os.Hostname.
func Host(h string) Opt { return opt(func(c *cfg) { c.host = h }) }

// Group sets the group name recorded in consume events, overriding the
// default of the traced client's kgo.ConsumerGroup. Clients without a group
// (direct partition consumers) default to "direct:<client id>".
func Group(g string) Opt { return opt(func(c *cfg) { c.group = g }) }

// TracerProvider emits produce and consume spans through tp as well; the
// default emits no OpenTelemetry spans.
func TracerProvider(tp trace.TracerProvider) Opt { return opt(func(c *cfg) { c.tp = tp }) }

// OTLPEndpoint emits produce and consume spans through an OpenTelemetry SDK
// tracer provider exporting OTLP over HTTP to endpoint (host:port or a URL).
// The hook's Close flushes and shuts the provider down.
func OTLPEndpoint(endpoint string) Opt { return opt(func(c *cfg) { c.otlpEndpoint = endpoint }) }

// Logger sets the logger for operational messages, overriding the default
// of discarding them.
func Logger(l *slog.Logger) Opt {
	return opt(func(c *cfg) {
		if l != nil {
			c.log = l
		}
	})
}
