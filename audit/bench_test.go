package audit

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// BenchmarkAuditProduceCost produces 512-byte records over TCP to one kobs
// broker with and without the audit hook, alternating rounds in one run so
// both see the same machine, and reports the median rate of each and the
// relative cost. The audited side also flushes its counts to the audit
// topic on the same broker.
func BenchmarkAuditProduceCost(b *testing.B) {
	const perRound = 100000
	br := testcluster.Start(b)
	payload := make([]byte, 512)
	_, _ = crand.Read(payload) // incompressible, or the baseline is unrealistically cheap
	// round returns records/s and CPU time (this process: the client and
	// the in-process broker) per record.
	round := func(audited bool) (float64, float64) {
		opts := []kgo.Opt{kgo.SeedBrokers(br.Addr()), kgo.DefaultProduceTopic("bench"), kgo.AllowAutoTopicCreation()}
		var h *Hook
		if audited {
			var err error
			h, err = NewProducerHook(Bucket(time.Second))
			require.NoError(b, err)
			opts = append(opts, kgo.WithHooks(h))
		}
		cl, err := kgo.NewClient(opts...)
		require.NoError(b, err)
		defer cl.Close()
		ctx := context.Background()
		require.NoError(b, cl.ProduceSync(ctx, &kgo.Record{Value: payload}).FirstErr()) // connect outside the clock
		start, cpu0 := time.Now(), cpuTime()
		for range perRound {
			cl.Produce(ctx, &kgo.Record{Value: payload}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
		require.NoError(b, cl.Flush(ctx))
		d, cpu := time.Since(start), cpuTime()-cpu0
		if h != nil {
			cl.Close()
			h.Close()
			require.EqualValues(b, perRound+1, h.Stats().Counted)
		}
		return perRound / d.Seconds(), float64(cpu.Nanoseconds()) / perRound
	}
	var plain, audited, plainCPU, auditedCPU []float64
	for b.Loop() {
		if len(plain)%2 == 0 { // alternate which side goes first
			r, c := round(false)
			plain, plainCPU = append(plain, r), append(plainCPU, c)
			r, c = round(true)
			audited, auditedCPU = append(audited, r), append(auditedCPU, c)
		} else {
			r, c := round(true)
			audited, auditedCPU = append(audited, r), append(auditedCPU, c)
			r, c = round(false)
			plain, plainCPU = append(plain, r), append(plainCPU, c)
		}
	}
	// The cost is the median over adjacent pairs, which see about the same
	// machine load; the load of a shared machine drifts between pairs.
	costs, cpuCosts := make([]float64, len(plain)), make([]float64, len(plain))
	for i := range plain {
		costs[i] = 100 * (plain[i] - audited[i]) / plain[i]
		cpuCosts[i] = 100 * (auditedCPU[i] - plainCPU[i]) / plainCPU[i]
	}
	b.ReportMetric(median(plainCPU), "plain-cpu-ns/rec")
	b.ReportMetric(median(auditedCPU), "audited-cpu-ns/rec")
	b.ReportMetric(median(cpuCosts), "cpu-cost-%")
	b.ReportMetric(median(plain), "plain-rec/s")
	b.ReportMetric(median(audited), "audited-rec/s")
	b.ReportMetric(median(costs), "cost-%")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkReconcile1000Topics100Groups is the reconciler core at scale:
// per bucket, one producer flush over 1,000 topics and one consumer flush
// from each of 100 groups over the same topics (101 records, 101,000
// counts, decoded from JSON as read from the audit topic), then one offset
// sample (a boundary and the committed offsets of 100 groups on 1,000
// topics) and an evaluation of every bucket that may have changed. The
// numbers are per bucket; the state keeps `keep` buckets.
func BenchmarkReconcile1000Topics100Groups(b *testing.B) {
	const topics, groups, keep = 1000, 100, 10
	bucket, grace := time.Minute, 2*time.Minute
	base := bucketOf(time.Now().Add(-24*time.Hour).UnixMilli(), bucket.Milliseconds())
	st := newState(bucket.Milliseconds())
	st.Since = base
	c := newCore(st, bucket, grace, time.Duration(keep)*bucket, 5*time.Minute)
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("topic-%04d", i)
	}
	const perTopic = 1000
	encode := func(inst string, tier Tier, client string, seq uint64, b0, ts int64) []byte {
		f := Flush{Kind: flushKind, Instance: inst, Seq: seq, Tier: tier, Client: client, BucketMs: bucket.Milliseconds(),
			FlushMs: bucket.Milliseconds(), TS: ts}
		for _, t := range names {
			f.Counts = append(f.Counts, Count{Topic: t, Bucket: b0, Records: perTopic, Bytes: perTopic * 100})
		}
		v, _ := json.Marshal(&f)
		return v
	}
	var applyDur, sampleDur, applyCPU, sampleCPU time.Duration
	var counts int64
	i := 0
	for b.Loop() {
		b.StopTimer()
		b0 := base + int64(i)*bucket.Milliseconds()
		now := b0 + bucket.Milliseconds() + grace.Milliseconds() + 1
		recs := [][]byte{encode("p", TierProducer, "producer", uint64(i+1), b0, b0+bucket.Milliseconds())}
		for g := range groups {
			recs = append(recs, encode(fmt.Sprintf("c%d", g), TierConsumer, fmt.Sprintf("group-%03d", g), uint64(i+1), b0, b0+bucket.Milliseconds()))
		}
		s := &sample{LogStart: map[string]map[int32]int64{}, End: map[string]map[int32]int64{},
			Boundaries: map[int64]map[string]map[int32]int64{}, Committed: map[string]map[string]map[int32]int64{}}
		for _, bb := range []int64{b0, b0 + bucket.Milliseconds()} {
			s.Boundaries[bb] = map[string]map[int32]int64{}
			for _, t := range names {
				s.Boundaries[bb][t] = map[int32]int64{0: (bb - base) / bucket.Milliseconds() * perTopic}
			}
		}
		end := int64(i+1) * perTopic
		for _, t := range names {
			s.LogStart[t] = map[int32]int64{0: 0}
			s.End[t] = map[int32]int64{0: end}
		}
		for g := range groups {
			m := map[string]map[int32]int64{}
			for _, t := range names {
				m[t] = map[int32]int64{0: end}
			}
			s.Committed[fmt.Sprintf("group-%03d", g)] = m
		}
		b.StartTimer()
		t0, u0 := time.Now(), cpuTime()
		for _, v := range recs {
			if err := c.applyRecord(v, now); err != nil {
				b.Fatal(err)
			}
		}
		t1, u1 := time.Now(), cpuTime()
		c.observe(s, now)
		c.evaluate(now)
		t2, u2 := time.Now(), cpuTime()
		applyDur += t1.Sub(t0)
		sampleDur += t2.Sub(t1)
		applyCPU += u1 - u0
		sampleCPU += u2 - u1
		counts += int64(len(recs)) * topics
		i++
	}
	b.StopTimer()
	// Every bucket reconciled complete for every group.
	last := c.reports(names[0], base+int64(i-1)*bucket.Milliseconds())
	require.NotEmpty(b, last)
	require.Equal(b, StatusComplete, last[0].Status, "%+v", last[0])
	require.Len(b, last[0].Groups, groups)
	t0, u0 := time.Now(), cpuTime()
	v, err := json.Marshal(st)
	require.NoError(b, err)
	b.ReportMetric(float64((cpuTime() - u0).Milliseconds()), "state-encode-cpu-ms")
	b.ReportMetric(float64(counts)/applyDur.Seconds(), "counts/s")
	b.ReportMetric(float64(applyDur.Milliseconds())/float64(i), "apply-ms/bucket")
	b.ReportMetric(float64(sampleDur.Milliseconds())/float64(i), "sample+eval-ms/bucket")
	// CPU time (all threads, GC included) says more than wall time on a
	// shared machine.
	b.ReportMetric(float64(applyCPU.Milliseconds())/float64(i), "apply-cpu-ms/bucket")
	b.ReportMetric(float64(sampleCPU.Milliseconds())/float64(i), "sample+eval-cpu-ms/bucket")
	b.ReportMetric(float64(len(v))/1e6, "state-MB")
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "state-encode-ms")
}

// BenchmarkHookCount is the hook's own work per acknowledged record.
func BenchmarkHookCount(b *testing.B) {
	h, err := NewProducerHook(Bucket(time.Minute))
	require.NoError(b, err)
	defer h.Close()
	r := &kgo.Record{Topic: "t", Value: make([]byte, 512), Timestamp: time.Now()}
	for b.Loop() {
		h.OnProduceRecordUnbuffered(r, nil)
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
