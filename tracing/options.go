package tracing

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/rcrowley/go-metrics"
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
	blockFor     time.Duration // 0: drop when full
	registry     metrics.Registry
	dropWindow   time.Duration
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
		maxBuffered: DefaultMaxBufferedEvents,
		dropWindow:  time.Second,
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
	case c.blockFor < 0:
		return fmt.Errorf("tracing: block time %s < 0", c.blockFor)
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

// DefaultMaxBufferedEvents is MaxBufferedEvents' default: about 30 MB of
// events, 200 ms of a 500k records/s producer, so a traced client at full
// speed over TCP drops nothing while the trace topic keeps up.
const DefaultMaxBufferedEvents = 100000

// MaxBufferedEvents bounds the events buffered or in flight to the trace
// topic, overriding DefaultMaxBufferedEvents. What happens when it is full
// is the Backpressure choice; either way the traced client is never failed.
func MaxBufferedEvents(n int) Opt { return opt(func(c *cfg) { c.maxBuffered = n }) }

// DropWhenFull is the default backpressure: an event that finds the buffer
// full is dropped at once, so the traced client never waits for the trace
// topic. Every drop is counted (Stats.Dropped) and recorded in a drop event
// (message ids, client, time window) shipped to the trace topic, so the
// journeys concerned say "trace incomplete" instead of "not found".
func DropWhenFull() Opt { return opt(func(c *cfg) { c.blockFor = 0 }) }

// BlockWhenFull makes an event that finds the buffer full wait up to d for
// room before it is dropped (and recorded as with DropWhenFull): the traced
// client slows down to the trace topic's pace instead of losing events.
// After a wait that timed out, events drop without waiting for a second, so
// a dead trace cluster costs the traced client at most d per second.
func BlockWhenFull(d time.Duration) Opt { return opt(func(c *cfg) { c.blockFor = d }) }

// Metrics registers the emitter's counters in reg (the traced
// application's go-metrics registry, e.g. the one it hands sarama or
// exports over Jolokia/Prometheus), as gauges named
// kobs-trace-events-{emitted,written,dropped,failed,blocked,buffered} and
// kobs-trace-drop-events, so trace loss shows on the client's own metrics.
func Metrics(reg metrics.Registry) Opt { return opt(func(c *cfg) { c.registry = reg }) }

// DropWindow sets how often drop events are written (one per client,
// group, topic and reason per window), overriding the default of 1s.
func DropWindow(d time.Duration) Opt {
	return opt(func(c *cfg) {
		if d > 0 {
			c.dropWindow = d
		}
	})
}

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
