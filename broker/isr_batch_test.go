package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/broker/controller"
	"github.com/kobs-dev/kobs/broker/metadata"
)

// TestISRBatcherOneRequestInFlight: while one AlterPartitions request is
// in flight, the changes queued meanwhile wait and go together in the
// next request; each caller gets its own answer.
func TestISRBatcherOneRequestInFlight(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	q := &isrBatcher{ctx: context.Background(), timeout: time.Minute,
		send: func(_ context.Context, reqs []controller.AlterPartitionRequest) ([]metadata.Partition, []error) {
			mu.Lock()
			sizes = append(sizes, len(reqs))
			first := len(sizes) == 1
			mu.Unlock()
			if first {
				<-release // the first request stays in flight
			}
			parts := make([]metadata.Partition, len(reqs))
			errs := make([]error, len(reqs))
			for i, r := range reqs {
				parts[i] = metadata.Partition{PartitionEpoch: r.PartitionEpoch + 1, ISR: r.NewISR}
				if r.Partition%10 == 9 {
					errs[i] = fmt.Errorf("refused %d", r.Partition)
				}
			}
			return parts, errs
		}}
	type answer struct {
		part metadata.Partition
		err  error
	}
	const n = 50
	answers := make([]answer, n)
	var wg sync.WaitGroup
	call := func(i int) {
		defer wg.Done()
		p, err := q.alter(context.Background(), controller.AlterPartitionRequest{Topic: "t", Partition: int32(i), PartitionEpoch: int32(i), NewISR: []int32{1}})
		answers[i] = answer{p, err}
	}
	wg.Add(1)
	go call(0)
	sent := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sizes)
	}
	require.Eventually(t, func() bool { return sent() == 1 }, 10*time.Second, time.Millisecond, "the first request was not sent")
	for i := 1; i < n; i++ {
		wg.Add(1)
		go call(i)
	}
	// All 49 queued behind the one in flight.
	require.Eventually(t, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.queue) == n-1
	}, 10*time.Second, time.Millisecond, "the changes did not queue behind the request in flight")
	close(release)
	wg.Wait()
	require.Equal(t, []int{1, n - 1}, sizes, "one request in flight, the rest in the next")
	for i, a := range answers {
		require.Equal(t, int32(i+1), a.part.PartitionEpoch, "change %d", i)
		if i%10 == 9 {
			require.EqualError(t, a.err, fmt.Sprintf("refused %d", i))
		} else {
			require.NoError(t, a.err)
		}
	}
	// A caller that gives up gets its context's error.
	block := make(chan struct{})
	q.send = func(context.Context, []controller.AlterPartitionRequest) ([]metadata.Partition, []error) {
		<-block
		return []metadata.Partition{{}}, []error{nil}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := q.alter(ctx, controller.AlterPartitionRequest{Topic: "t"})
	require.True(t, errors.Is(err, context.Canceled))
	close(block)
}
