package broker

import (
	"context"
	"sync"
	"time"

	"github.com/kobs-dev/kobs/broker/controller"
	"github.com/kobs-dev/kobs/broker/metadata"
)

// maxISRBatch bounds the ISR changes sent in one AlterPartitions request.
const maxISRBatch = 1000

// isrBatcher sends this broker's ISR changes to the controller as Kafka's
// AlterPartitionManager does: one request in flight, and the changes that
// queued meanwhile go together in the next one, committed as one metadata
// log entry. After a restart a broker's partitions rejoin hundreds of ISRs
// at once; sent one by one, each change cost a controller round trip and
// a raft commit of its own.
type isrBatcher struct {
	send func(context.Context, []controller.AlterPartitionRequest) ([]metadata.Partition, []error)
	// ctx is the broker's: once it is cancelled (Close) a request in
	// flight fails fast and the sender, which runs only while changes are
	// queued, returns. It is not in the broker's WaitGroup: the replica
	// manager's ISR goroutines may still queue changes while Close waits
	// on that group.
	ctx     context.Context
	timeout time.Duration // per request

	mu      sync.Mutex
	queue   []*isrChange
	sending bool
}

type isrChange struct {
	req  controller.AlterPartitionRequest
	part metadata.Partition
	err  error
	done chan struct{}
}

// alter queues one change and waits for its answer (or ctx).
func (q *isrBatcher) alter(ctx context.Context, req controller.AlterPartitionRequest) (metadata.Partition, error) {
	c := &isrChange{req: req, done: make(chan struct{})}
	q.mu.Lock()
	q.queue = append(q.queue, c)
	start := !q.sending
	q.sending = true
	q.mu.Unlock()
	if start {
		go q.run()
	}
	select {
	case <-c.done:
		return c.part, c.err
	case <-ctx.Done():
		return metadata.Partition{}, ctx.Err()
	}
}

// run sends batches until the queue is empty.
func (q *isrBatcher) run() {
	for {
		q.mu.Lock()
		n := min(len(q.queue), maxISRBatch)
		if n == 0 {
			q.sending = false
			q.mu.Unlock()
			return
		}
		batch := q.queue[:n:n]
		q.queue = q.queue[n:]
		q.mu.Unlock()

		reqs := make([]controller.AlterPartitionRequest, len(batch))
		for i, c := range batch {
			reqs[i] = c.req
		}
		ctx, cancel := context.WithTimeout(q.ctx, q.timeout)
		parts, errs := q.send(ctx, reqs)
		cancel()
		for i, c := range batch {
			c.part, c.err = parts[i], errs[i]
			close(c.done)
		}
	}
}
