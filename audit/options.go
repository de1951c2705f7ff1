package audit

import (
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultBucket is the default width of an audit time bucket.
const DefaultBucket = time.Minute

// Opt configures an audit Hook, in the style of kgo's options.
type Opt func(*cfg)

type cfg struct {
	topic        string
	brokers      []string
	client       string
	bucket       time.Duration
	flush        time.Duration
	maxFuture    time.Duration
	maxPast      time.Duration
	maxPending   int
	closeTimeout time.Duration
	flusherOpts  []kgo.Opt
	log          *slog.Logger
}

func newCfg(opts []Opt) (cfg, error) {
	c := cfg{
		topic: DefaultTopic, bucket: DefaultBucket, maxFuture: 5 * time.Minute, maxPast: 7 * 24 * time.Hour,
		maxPending: 1000, closeTimeout: 10 * time.Second, log: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&c)
	}
	if c.flush == 0 {
		c.flush = c.bucket
	}
	switch {
	case c.topic == "":
		return c, errors.New("audit: empty audit topic")
	case c.bucket < time.Millisecond || c.bucket%time.Millisecond != 0:
		return c, errors.New("audit: bucket must be a positive whole number of milliseconds")
	case c.flush < 100*time.Millisecond:
		return c, errors.New("audit: flush interval below 100ms")
	case c.maxFuture <= 0 || c.maxPast <= 0:
		return c, errors.New("audit: out-of-window limits must be positive")
	case c.maxPending < 1:
		return c, errors.New("audit: max pending flushes < 1")
	}
	return c, nil
}

// Topic sets the audit topic, overriding "__kobs_audit".
func Topic(t string) Opt { return func(c *cfg) { c.topic = t } }

// Brokers sets the seed brokers of the flush producer, overriding the
// audited client's own seeds.
func Brokers(seeds ...string) Opt { return func(c *cfg) { c.brokers = seeds } }

// ClientID sets the name counts are recorded under, overriding the audited
// client's kgo.ClientID (producer) or kgo.ConsumerGroup (consumer).
func ClientID(id string) Opt { return func(c *cfg) { c.client = id } }

// Bucket sets the bucket width, overriding one minute. The reconciler's
// bucket must be a multiple of it.
func Bucket(d time.Duration) Opt { return func(c *cfg) { c.bucket = d } }

// FlushInterval sets how often counts are flushed, overriding the bucket
// width. A producer killed between flushes loses at most this much of its
// counts, and the reconciler marks those buckets uncertain.
func FlushInterval(d time.Duration) Opt { return func(c *cfg) { c.flush = d } }

// Window sets how far a record timestamp may lie in the past or the future
// of the hook's clock before it is counted in the OutOfWindow bucket,
// overriding 7 days and 5 minutes.
func Window(past, future time.Duration) Opt {
	return func(c *cfg) { c.maxPast, c.maxFuture = past, future }
}

// MaxPendingFlushes bounds the unacknowledged flush records kept for
// re-sending, overriding 1000.
func MaxPendingFlushes(n int) Opt { return func(c *cfg) { c.maxPending = n } }

// CloseTimeout bounds how long Close waits for the last flushes, overriding 10s.
func CloseTimeout(d time.Duration) Opt { return func(c *cfg) { c.closeTimeout = d } }

// FlusherOpts adds kgo options (SASL, TLS, ...) to the flush producer.
func FlusherOpts(o ...kgo.Opt) Opt {
	return func(c *cfg) { c.flusherOpts = append(c.flusherOpts, o...) }
}

// Logger sets the logger for operational messages, overriding discarding them.
func Logger(l *slog.Logger) Opt {
	return func(c *cfg) {
		if l != nil {
			c.log = l
		}
	}
}
