package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DescribeOptions tune DescribeGroup.
type DescribeOptions struct {
	// ReadCommitted measures lag against last stable offsets.
	ReadCommitted bool
	// Samples is the number of collections (default 3, at least 2): the
	// status rules judge a trend, so the status of a one-shot answer comes
	// from a short window of Samples collections Every apart.
	Samples int
	// Every is the time between collections (default 1s).
	Every time.Duration
	// ExactOpts, when set, are the kgo options (seed brokers, TLS, SASL)
	// of a client that reads the record at each lagging committed offset:
	// lag seconds are then exact. Without them lag seconds are
	// interpolated over the Samples collections (NaN for records older
	// than the first one, unless the table can extrapolate).
	ExactOpts []kgo.Opt
}

// ErrGroupNotFound is returned by DescribeGroup for a group the cluster
// does not know.
var ErrGroupNotFound = errors.New("group not found")

// DescribeGroup answers for one group without a running agent, as
// `kobs groups --describe` needs: it collects Samples times and returns
// the group's partitions with CURRENT-OFFSET (Committed), LOG-END-OFFSET
// (End), LAG, CONSUMER-ID, HOST, CLIENT-ID, LAG-SECONDS and STATUS from the
// last collection. cl is the caller's client.
func DescribeGroup(ctx context.Context, cl *kgo.Client, group string, opt DescribeOptions) (*GroupLag, error) {
	if opt.Samples <= 0 {
		opt.Samples = 3
	}
	if opt.Samples < 2 {
		return nil, errors.New("agent: DescribeGroup needs at least 2 samples")
	}
	if opt.Every <= 0 {
		opt.Every = time.Second
	}
	a := &Agent{
		cfg: Config{
			ReadCommitted: opt.ReadCommitted, StatusWindow: opt.Samples, HistoryPoints: opt.Samples,
			LagSeconds: ModeInterpolated, ExactMaxReads: 1 << 30,
		},
		cl:     cl,
		tables: map[string]*topicTables{},
		groups: map[string]*groupWindows{},
	}
	if opt.ExactOpts != nil {
		a.cfg.LagSeconds = ModeExact
		a.exact = &exactReader{opts: opt.ExactOpts, readCommitted: opt.ReadCommitted, maxReads: a.cfg.ExactMaxReads}
	}
	a.errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unused"}, []string{"stage"})
	a.exactSkipped = prometheus.NewCounter(prometheus.CounterOpts{Name: "unused"})

	var v *View
	for i := 0; i < opt.Samples; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(opt.Every):
			}
		}
		s, err := Collect(ctx, cl, CollectOptions{ReadCommitted: opt.ReadCommitted, Groups: []string{group}})
		if err != nil {
			return nil, err
		}
		if a.exact != nil && i < opt.Samples-1 {
			// Exact reads only matter on the last sample.
			saved := a.exact
			a.exact = nil
			v = a.evaluate(ctx, s)
			a.exact = saved
		} else {
			v = a.evaluate(ctx, s)
		}
	}
	g := v.Groups[group]
	if g == nil || (g.State == "Dead" && len(g.Partitions) == 0) {
		return nil, fmt.Errorf("%w: %s", ErrGroupNotFound, group)
	}
	return g, nil
}
