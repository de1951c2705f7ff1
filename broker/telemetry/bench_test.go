package telemetry

import (
	"testing"
	"time"
)

// go test -run x -bench . -benchmem -count 6 ./broker/telemetry | tee new.txt; benchstat old.txt new.txt

func BenchmarkMeterMark(b *testing.B) {
	r := New()
	m := r.Meter(Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec"), "messages")
	b.Run("mode=serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Mark(1)
		}
	})
	b.Run("mode=parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Mark(1)
			}
		})
	})
}

func BenchmarkHistogramUpdate(b *testing.B) {
	r := New()
	h := r.Histogram(Name("kafka.network", "RequestMetrics", "TotalTimeMs", "request", "Produce"))
	b.Run("mode=serial", func(b *testing.B) {
		b.ReportAllocs()
		var i int64
		for b.Loop() {
			i++
			h.Update(i & 1023)
		}
	})
	b.Run("mode=parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var i int64
			for pb.Next() {
				i++
				h.Update(i & 1023)
			}
		})
	})
}

func BenchmarkTimerUpdate(b *testing.B) {
	tm := New().Timer(Name("kafka.log", "LogFlushStats", "LogFlushRateAndTimeMs"))
	b.ReportAllocs()
	for b.Loop() {
		tm.Update(time.Millisecond)
	}
}

func BenchmarkSnapshotHistogram(b *testing.B) {
	r := New()
	n := Name("kafka.network", "RequestMetrics", "TotalTimeMs", "request", "Produce")
	h := r.Histogram(n)
	for i := range 10_000 {
		h.Update(int64(i))
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Get(n)
	}
}
