package tracing

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Compare runs with benchstat:
//
//	go test ./tracing -run '^$' -bench . -count 6 > new.txt && benchstat old.txt new.txt

// benchEvent is the i-th synthetic event: message i/3, produced once and
// consumed by two groups, on 3 topics x 6 partitions.
func benchEvent(i int, base time.Time) Event {
	m := i / 3
	e := Event{MsgID: fmt.Sprintf("%032x", m*7919+1), TraceID: fmt.Sprintf("%032x", m*104729+1), SpanID: fmt.Sprintf("%016x", i+1),
		Topic: []string{"orders", "payments", "audit"}[m%3], Partition: int32(m % 6), Offset: int64(m / 6),
		Key: fmt.Sprintf("customer-%d", m%5000), Size: 1024, ClientID: "bench", Host: "bench-host",
		TS: base.Add(time.Duration(i) * time.Millisecond).UnixMilli()}
	switch i % 3 {
	case 0:
		e.Type, e.SendTS, e.RecordTS, e.LatencyUS = TypeProduce, e.TS-2, e.TS-1, 2000
	default:
		e.Type, e.Group, e.Member, e.RecordTS, e.E2EUS = TypeConsume, fmt.Sprintf("group-%d", i%3), "member-1", e.TS-5, 5000
	}
	return e
}

// bulkOf renders events [first, first+n) as an _bulk body the way the
// shipper writes them.
func bulkOf(first, n int, base time.Time) []byte {
	var buf bytes.Buffer
	for i := first; i < first+n; i++ {
		e := benchEvent(i, base)
		raw := e.Marshal()
		fmt.Fprintf(&buf, `{"index":{"_index":%q,"_id":%q}}`+"\n", IndexName(IndexPrefix, e.TS), DocID(&e, raw))
		buf.Write(raw)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func putIndex(tb testing.TB, url, name, body string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPut, url+"/"+name, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(tb, 200, resp.StatusCode, "%s", raw)
}

func post(tb testing.TB, url, path string, body []byte) {
	tb.Helper()
	resp, err := http.Post(url+path, "application/x-ndjson", bytes.NewReader(body))
	require.NoError(tb, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(tb, 200, resp.StatusCode, "%.300s", raw)
	require.False(tb, bytes.Contains(raw[:min(64, len(raw))], []byte(`"errors":true`)), "%.500s", raw)
}

// BenchmarkStoreBulk measures the embedded store's ingest of trace events
// with the trace mapping, in the shipper's bulk size, over HTTP.
func BenchmarkStoreBulk(b *testing.B) {
	for _, per := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("bulk=%d", per), func(b *testing.B) {
			ts := startTraceStore(b)
			base := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
			putIndex(b, ts.URL, IndexName(IndexPrefix, base.UnixMilli()), Mapping)
			n := 0
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				body := bulkOf(n, per, base)
				b.StartTimer()
				start := time.Now()
				post(b, ts.URL, "/_bulk", body)
				elapsed += time.Since(start)
				n += per
			}
			start := time.Now()
			post(b, ts.URL, "/_flush", nil)
			elapsed += time.Since(start)
			b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		})
	}
}

// BenchmarkProduceTraceCost produces 1 KiB records (acks=1) against one
// broker over TCP untraced, with the kobs trace interceptor (sampling 1.0,
// default settings) and with franz-go's kotel plugin (OpenTelemetry spans
// through the SDK with a batch processor and a discarding exporter, the
// anchor), rotating the three in every iteration so all see the same
// machine state. It reports the median rate of each and the cost of each
// against the untraced median. The kobs side also writes its trace events
// to the trace topic on the same broker, which is part of its cost; kotel's
// spans go nowhere, which flatters kotel.
func BenchmarkProduceTraceCost(b *testing.B) {
	const perRound = 100000
	br := newBroker(b)
	// Random bytes: a payload of one repeated byte compresses to almost
	// nothing and makes the untraced baseline unrealistically cheap.
	payload := make([]byte, 1024)
	_, _ = crand.Read(payload)
	fixedMsgID := []byte("0123456789abcdef0123456789abcdef")
	fixedTP := []byte("00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
	type result struct{ rate, cpuUS float64 }
	round := func(mode string) result {
		opts := []kgo.Opt{kgo.SeedBrokers(br.Addr()), kgo.DefaultProduceTopic("bench"), kgo.AllowAutoTopicCreation(),
			kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}
		var ph *ProducerHook
		var tp *sdktrace.TracerProvider
		switch mode {
		case "kobs":
			var err error
			ph, err = NewProducerHook()
			require.NoError(b, err)
			opts = append(opts, kgo.WithHooks(ph))
		case "kotel":
			tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			k := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(kotel.TracerProvider(tp),
				kotel.TracerPropagator(propagation.TraceContext{}))))
			opts = append(opts, kgo.WithHooks(k.Hooks()...))
		}
		cl, err := kgo.NewClient(opts...)
		require.NoError(b, err)
		defer cl.Close()
		ctx := context.Background()
		require.NoError(b, cl.ProduceSync(ctx, &kgo.Record{Value: payload}).FirstErr()) // connect and learn metadata outside the clock
		if ph != nil {
			require.NoError(b, ph.Flush(ctx)) // the same for the trace producer
		}
		var failed atomic.Int64
		cpu0 := processCPU(b)
		start := time.Now()
		for range perRound {
			r := &kgo.Record{Value: payload}
			if mode == "headers" {
				// The floor of any per-record trace context: the two
				// headers the kobs hook adds (fixed values), no hook.
				r.Headers = []kgo.RecordHeader{{Key: HeaderMsgID, Value: fixedMsgID}, {Key: HeaderTraceparent, Value: fixedTP}}
			}
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
		}
		require.NoError(b, cl.Flush(ctx))
		d := time.Since(start)
		require.Zero(b, failed.Load())
		// The CPU time counts writing every trace event and span, but not
		// starting and closing clients, which a traced application does
		// once.
		if ph != nil {
			require.NoError(b, ph.Flush(ctx))
		}
		if tp != nil {
			require.NoError(b, tp.ForceFlush(ctx))
		}
		cpu := float64((processCPU(b) - cpu0).Microseconds()) / perRound
		cl.Close()
		if ph != nil {
			ph.Close()
			require.Zero(b, ph.Stats().Dropped, "a dropped event would make the traced side look cheaper")
			require.Equal(b, int64(perRound+1), ph.Stats().Written)
		}
		if tp != nil {
			_ = tp.Shutdown(ctx)
		}
		return result{perRound / d.Seconds(), cpu}
	}
	rates := map[string][]float64{}
	cpus := map[string][]float64{}
	modes := []string{"untraced", "kobs", "kotel"}
	if v := os.Getenv("TRACE_COST_MODES"); v != "" {
		// e.g. TRACE_COST_MODES=untraced,kobs with -cpuprofile, to
		// profile one side; untraced must come first. The mode "headers"
		// produces records carrying the hook's two headers without a hook:
		// the floor of any per-record message id and trace context.
		modes = strings.Split(v, ",")
	}
	i := 0
	for b.Loop() {
		// Rotate the order too, so no mode always runs right after another.
		for k := range modes {
			m := modes[(i+k)%len(modes)]
			var r result
			// Labelled so a -cpuprofile splits by mode (pprof -tagfocus
			// mode=kobs); goroutines a round starts inherit the label,
			// the broker's connection goroutines do not.
			pprof.Do(context.Background(), pprof.Labels("mode", m), func(context.Context) { r = round(m) })
			rates[m] = append(rates[m], r.rate)
			cpus[m] = append(cpus[m], r.cpuUS)
		}
		i++
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	base, baseCPU := med(rates["untraced"]), med(cpus["untraced"])
	b.ReportMetric(base, "untraced-records/s")
	b.ReportMetric(baseCPU, "untraced-cpu-us/rec")
	for _, m := range modes[1:] {
		b.ReportMetric(med(rates[m]), m+"-records/s")
		b.ReportMetric(100*(base-med(rates[m]))/base, m+"-cost-%")
		b.ReportMetric(med(cpus[m]), m+"-cpu-us/rec")
		b.ReportMetric(100*(med(cpus[m])-baseCPU)/baseCPU, m+"-cpu-cost-%")
	}
	b.Logf("rounds per mode %d; records/s: untraced %.0f; kobs %.0f; kotel %.0f", i, rates["untraced"], rates["kobs"], rates["kotel"])
	b.Logf("CPU µs per record (client, broker and trace producer, until every record, trace event and span is flushed): untraced %.2f; kobs %.2f; kotel %.2f",
		cpus["untraced"], cpus["kobs"], cpus["kotel"])
}

// processCPU is the CPU time (user + system) the process used so far: the
// producer, the in-process broker and, for kobs, the trace producer and the
// broker's writes of the trace topic. On a shared machine it varies less
// than the wall-clock rate.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkShipper measures the shipper end to end: events pre-filled in
// the trace topic, shipped into the embedded store over HTTP. The rate is
// taken from the first to the last stored document, so the group join is
// not counted; the CPU per event is the whole process's (broker, shipper
// and store) from the shipper's start to the last stored document.
func BenchmarkShipper(b *testing.B) {
	n := 100000
	if testing.Short() {
		n = 20000
	}
	br := newBroker(b)
	base := time.Now().UTC()
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.DefaultProduceTopic(DefaultTopic), kgo.AllowAutoTopicCreation())
	require.NoError(b, err)
	defer cl.Close()
	ctx := context.Background()
	var failed atomic.Int64
	for i := range n {
		e := benchEvent(i, base)
		cl.Produce(ctx, &kgo.Record{Key: []byte(e.MsgID), Value: e.Marshal()}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	require.NoError(b, cl.Flush(ctx))
	require.Zero(b, failed.Load())
	iter := 0
	var total, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		ts := startTraceStore(b)
		es := ts.es(b)
		s, err := NewShipper(ShipperConfig{Brokers: []string{br.Addr()}, URL: ts.URL, Group: fmt.Sprintf("bench-%d", iter)})
		require.NoError(b, err)
		iter++
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.StartTimer()
		cpu0 := processCPU(b)
		go func() { done <- s.Run(runCtx) }()
		var first time.Time
		for {
			c := countEvents(b, es)
			if c > 0 && first.IsZero() {
				first = time.Now()
			}
			if c == int64(n) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		total += time.Since(first)
		cpu += processCPU(b) - cpu0
		b.StopTimer()
		cancel()
		require.NoError(b, <-done)
		ts.Stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(iter*n)/total.Seconds(), "events/s")
	// The whole process: broker fetches, shipper, store. The machine is
	// shared, and CPU per event varies less than the wall-clock rate.
	b.ReportMetric(float64(cpu.Microseconds())/float64(iter*n), "cpu-µs/event")
}

// BenchmarkJourneyQuery measures journey queries (by message id, by key,
// by topic/partition/offset), a topic's newest 50 journeys in the last hour
// (kobs trace get --topic --since 1h --limit 50) and the topic page
// Grafana's raw-document panel asks for (an _msearch: topic + last hour,
// newest 50 events, sorted by ts then _doc) on a store pre-filled with
// events=N trace events (N/3 messages, one produce and two consumes each,
// one event per millisecond). It reports p50 and p99 per query shape, and
// the fill rate and bytes on disk per event in the log.
//
// Without TRACE_BENCH_EVENTS it runs 30k events (a quick check);
// scripts/bench-trace.sh runs 1M (and 10M with TRACE_BENCH_10M=1). The
// store is filled through its HTTP _bulk API, as the shipper fills it.
func BenchmarkJourneyQuery(b *testing.B) {
	sizes := []int{30000}
	if v := os.Getenv("TRACE_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err)
		sizes = []int{n}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) { benchJourneyQuery(b, n) })
	}
}

// fillStore posts events [0, n) in 5,000-event bulks over two connections,
// rendering the next bodies while the store indexes (the shipper's
// BulkProcessor also keeps requests in flight on more than one worker).
func fillStore(b *testing.B, url string, n int, base time.Time) {
	const per = 5000
	bodies := make(chan []byte, 2)
	go func() {
		defer close(bodies)
		for i := 0; i < n; i += per {
			bodies <- bulkOf(i, min(per, n-i), base)
		}
	}()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			for body := range bodies {
				resp, err := http.Post(url+"/_bulk", "application/x-ndjson", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || bytes.Contains(raw[:min(64, len(raw))], []byte(`"errors":true`)) {
					errs <- fmt.Errorf("bulk: %d %.300s", resp.StatusCode, raw)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		require.NoError(b, <-errs)
	}
	post(b, url, "/_flush", nil)
}

func benchJourneyQuery(b *testing.B, n int) {
	base := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	// TRACE_BENCH_DIR keeps the filled store for the next run (a 10M fill
	// takes the better part of an hour): a directory holding a completed
	// fill of the same size is queried without filling it again.
	var ts *traceStore
	var filledMarker string
	if d := os.Getenv("TRACE_BENCH_DIR"); d != "" {
		dir := filepath.Join(d, fmt.Sprintf("events-%d", n))
		require.NoError(b, os.MkdirAll(dir, 0o755))
		ts = &traceStore{t: b, dir: dir, addr: "127.0.0.1:0"}
		ts.start()
		b.Cleanup(ts.Stop)
		filledMarker = filepath.Join(dir, "filled")
		if _, err := os.Stat(filledMarker); err == nil {
			b.Logf("reusing the store filled with %d events in %s", n, dir)
			benchJourneyQueries(b, ts, n, base)
			return
		}
	} else {
		ts = startTraceStore(b)
	}
	for day := range 2 {
		putIndex(b, ts.URL, IndexName(IndexPrefix, base.AddDate(0, 0, day).UnixMilli()), Mapping)
	}
	putIndex(b, ts.URL, GroupsIndex(IndexPrefix), GroupsMapping)
	for _, t := range []string{"orders", "payments", "audit"} {
		for g := range 3 {
			post(b, ts.URL, "/_bulk", fmt.Appendf(nil, `{"index":{"_index":%q,"_id":"%s|group-%d"}}`+"\n"+`{"topic":%q,"group":"group-%d","first_ts":1}`+"\n",
				GroupsIndex(IndexPrefix), t, g, t, g))
		}
	}
	fill := time.Now()
	fillStore(b, ts.URL, n, base)
	filled := time.Since(fill)
	var disk int64
	_ = filepath.WalkDir(ts.dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				disk += fi.Size()
			}
		}
		return nil
	})
	b.Logf("filled %d events over HTTP _bulk in %v (%.0f events/s); %d bytes on disk, %.0f bytes/event", n, filled.Round(time.Millisecond),
		float64(n)/filled.Seconds(), disk, float64(disk)/float64(n))
	if filledMarker != "" {
		require.NoError(b, os.WriteFile(filledMarker, nil, 0o644))
	}
	benchJourneyQueries(b, ts, n, base)
}

func benchJourneyQueries(b *testing.B, ts *traceStore, n int, base time.Time) {
	qr, err := NewQuerier(ts.URL, "")
	require.NoError(b, err)
	ctx := context.Background()
	msgs := n / 3
	end := benchEvent(n-1, base).TS
	hourAgo := end - time.Hour.Milliseconds()
	journey := func(q func(i int) Query, want int) func(i int) {
		return func(i int) {
			js, err := qr.Journeys(ctx, q(i*7919))
			require.NoError(b, err)
			if want > 0 {
				require.Len(b, js, want)
			} else {
				require.NotEmpty(b, js)
			}
			require.NotNil(b, js[0].Produced)
		}
	}
	grafana := func(topic string) []byte {
		return fmt.Appendf(nil, `{"search_type":"query_then_fetch","ignore_unavailable":true,"index":"%s*"}`+"\n"+
			`{"size":50,"query":{"bool":{"filter":[{"range":{"ts":{"gte":%d,"lte":%d,"format":"epoch_millis"}}},`+
			`{"query_string":{"analyze_wildcard":true,"query":"topic:%s"}}]}},`+
			`"sort":[{"ts":{"order":"desc","unmapped_type":"boolean"}},{"_doc":{"order":"desc"}}],"script_fields":{},"docvalue_fields":["ts"]}`+"\n",
			IndexPrefix, hourAgo, end, topic)
	}
	for _, bc := range []struct {
		name string
		run  func(i int)
	}{
		{"by=msg_id", journey(func(i int) Query { return Query{MsgID: benchEvent(3*(i%msgs), base).MsgID} }, 1)},
		{"by=key", journey(func(i int) Query {
			e := benchEvent(3*(i%msgs), base)
			return Query{Key: e.Key, Topic: e.Topic, Partition: -1, Offset: -1, Limit: 10}
		}, -1)},
		{"by=offset", journey(func(i int) Query {
			e := benchEvent(3*(i%msgs), base)
			return Query{Topic: e.Topic, Partition: e.Partition, Offset: e.Offset}
		}, 1)},
		{"by=topic_last_hour_50", journey(func(int) Query {
			return Query{Topic: "orders", Partition: -1, Offset: -1, From: time.UnixMilli(hourAgo), To: time.UnixMilli(end), Limit: 50}
		}, 50)},
		{"grafana_topic_page_50", func(i int) {
			topic := []string{"orders", "payments", "audit"}[i%3]
			resp, err := http.Post(ts.URL+"/_msearch", "application/x-ndjson", bytes.NewReader(grafana(topic)))
			require.NoError(b, err)
			var r struct {
				Responses []struct {
					Hits struct {
						Hits []struct {
							Source struct {
								Topic string `json:"topic"`
								TS    int64  `json:"ts"`
							} `json:"_source"`
						} `json:"hits"`
					} `json:"hits"`
				} `json:"responses"`
			}
			require.NoError(b, json.NewDecoder(resp.Body).Decode(&r))
			resp.Body.Close()
			require.Len(b, r.Responses, 1)
			hits := r.Responses[0].Hits.Hits
			require.Len(b, hits, 50)
			require.Equal(b, topic, hits[0].Source.Topic)
			require.GreaterOrEqual(b, hits[0].Source.TS, end-9, "the newest event of the topic comes first")
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				bc.run(i)
				lat = append(lat, time.Since(start))
				i++
			}
			b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
		})
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkProducerHookPerRecord is the interceptor's own work per traced
// record on the producer's goroutines: stamping the headers when the record
// is buffered, and adding it to its batch event at the ack, acknowledged in
// batches of 500 records as franz-go does (the batch event's encoding is
// amortized over them; the trace producer's background work is not on this
// clock). B/op and allocs/op are the stable numbers on a shared machine;
// the record itself (kgo.Record, allocated by the caller) is counted too.
func BenchmarkProducerHookPerRecord(b *testing.B) {
	br := newBroker(b)
	h, err := NewProducerHook(Brokers(br.Addr()), ClientID("bench"), MaxBufferedEvents(1<<22))
	require.NoError(b, err)
	defer h.Close()
	payload := make([]byte, 1024)
	key := []byte("customer-17")
	ctx := context.Background()
	const batch = 500
	recs := make([]*kgo.Record, 0, batch)
	offset := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		r := &kgo.Record{Topic: "orders", Key: key, Value: payload, Context: ctx, Timestamp: time.Now()}
		h.OnProduceRecordBuffered(r)
		if recs = append(recs, r); len(recs) == batch {
			for _, r := range recs {
				r.Partition, r.Offset = 3, offset
				offset++
				h.OnProduceRecordUnbuffered(r, nil)
			}
			recs = recs[:0]
		}
	}
	b.StopTimer()
	require.NoError(b, h.Flush(ctx))
	require.Zero(b, h.Stats().Dropped)
}
