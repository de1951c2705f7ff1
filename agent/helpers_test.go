package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/agent"
)

// running is an agent collecting in the background behind an HTTP server.
type running struct {
	*agent.Agent
	URL string
}

func startAgent(t *testing.T, cfg agent.Config) *running {
	t.Helper()
	a, err := agent.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close(); a.Close() })
	return &running{Agent: a, URL: srv.URL}
}

// metrics is one scrape: "name{k=v,...}" (labels sorted) -> value.
type metrics map[string]float64

func key(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var kv []string
	for i := 0; i+1 < len(labels); i += 2 {
		kv = append(kv, labels[i]+"="+labels[i+1])
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// scrape returns the metrics, or an error (for use inside conditions).
func scrape(url string) (metrics, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	out := metrics{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName(), l.GetValue())
			}
			var v float64
			switch {
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Untyped != nil:
				v = m.GetUntyped().GetValue()
			default:
				continue
			}
			out[key(name, labels...)] = v
		}
	}
	return out, nil
}

// getJSON decodes an API answer, returning the HTTP status.
func getJSON(url string, v any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// waitFor polls cond until it returns nil (the test goroutine only).
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, timeout, err)
}

// producer writes records to every partition of a topic at a steady pace
// and remembers each record's timestamp.
type producer struct {
	cl    *kgo.Client
	topic string
	parts int32

	mu    sync.Mutex
	times map[int32]map[int64]time.Time
	err   error
}

func newProducer(t *testing.T, brokers []string, topic string, parts int32) *producer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return &producer{cl: cl, topic: topic, parts: parts, times: map[int32]map[int64]time.Time{}}
}

// round produces one record to each partition and waits for the acks.
func (p *producer) round(ctx context.Context) error {
	var wg sync.WaitGroup
	for part := int32(0); part < p.parts; part++ {
		wg.Add(1)
		p.cl.Produce(ctx, &kgo.Record{Topic: p.topic, Partition: part, Value: []byte("v")}, func(r *kgo.Record, err error) {
			defer wg.Done()
			p.mu.Lock()
			defer p.mu.Unlock()
			if err != nil {
				if p.err == nil {
					p.err = err
				}
				return
			}
			if p.times[r.Partition] == nil {
				p.times[r.Partition] = map[int64]time.Time{}
			}
			p.times[r.Partition][r.Offset] = r.Timestamp
		})
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// run produces a round every period until ctx ends; the returned wait
// reports the first error.
func (p *producer) run(ctx context.Context, period time.Duration) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			if err := p.round(ctx); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-t.C:
			}
		}
	}()
	return func() error { return <-done }
}

func (p *producer) timeOf(part int32, offset int64) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.times[part][offset]
	return t, ok
}

// truth is the cluster's own answer: HW - committed per partition.
func truth(ctx context.Context, adm *kadm.Client, group, topic string) (map[int32]int64, map[int32]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, nil, err
	}
	lag, com := map[int32]int64{}, map[int32]int64{}
	for p, o := range ends[topic] {
		c, ok := committed.Lookup(topic, p)
		if !ok || c.At < 0 {
			return nil, nil, fmt.Errorf("partition %d has no commit", p)
		}
		lag[p] = o.Offset - c.At
		com[p] = c.At
	}
	return lag, com, nil
}

// requireNoFatal fails on a fetch error a consumer cannot retry past (a
// group coordinator still loading is retried by kgo, and reported).
func requireNoFatal(t *testing.T, fs kgo.Fetches) {
	t.Helper()
	fs.EachError(func(topic string, p int32, err error) {
		if !kerr.IsRetriable(err) {
			t.Fatalf("fetch %s-%d: %v", topic, p, err)
		}
	})
}

// createTopic creates a topic, retrying for up to 30 s: a topic with a
// replica on every broker needs all of them unfenced at that moment, and a
// broker whose heartbeats stalled past its session on a loaded machine is
// fenced for a while (INVALID_REPLICATION_FACTOR). A retry of a creation
// that went through meets TOPIC_ALREADY_EXISTS, which is success.
func createTopic(t *testing.T, adm *kadm.Client, parts int32, rf int16, cfg map[string]*string, name string) {
	t.Helper()
	waitFor(t, 30*time.Second, "topic "+name+" created", func() error {
		_, err := adm.CreateTopic(context.Background(), parts, rf, cfg, name)
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		return err
	})
}
