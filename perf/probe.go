package perf

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxProbeWait bounds how long a run waits for the first answer from the
// cluster before it gives up and says why.
const maxProbeWait = 10 * time.Second

// probe asks the bootstrap servers for their API versions before a run, so
// an unreachable cluster fails in seconds with the cause (connection
// refused, no such host, no answer) instead of after a delivery or idle
// timeout with a message that names none.
func probe(ctx context.Context, cl *kgo.Client, brokers []string, wait time.Duration) error {
	wait = min(wait, maxProbeWait)
	if wait <= 0 {
		wait = maxProbeWait
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := cl.Ping(pctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case pctx.Err() != nil:
		return fmt.Errorf("cannot reach bootstrap servers %s: no answer within %s", strings.Join(brokers, ","), wait)
	}
	return fmt.Errorf("cannot reach bootstrap servers %s: %w", strings.Join(brokers, ","), err)
}
