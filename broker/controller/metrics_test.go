package controller

import (
	"testing"
	"time"
)

// The windowed rate follows Kafka's Rate over two 30 s samples (the
// values of Kafka's KafkaRaftMetricsTest: 12 records -> 0.4/s, then 9
// more -> 0.7/s), and the average covers both samples.
func TestWindowMatchesKafkaRate(t *testing.T) {
	now := time.Unix(1000, 0)
	var w window
	w.add(now, 12)
	if r := w.rate(now); r != 0.4 {
		t.Fatalf("rate %v, want 0.4", r)
	}
	w.add(now, 9)
	if r := w.rate(now); r != 0.7 {
		t.Fatalf("rate %v, want 0.7", r)
	}
	var l window
	l.add(now, 10)
	l.add(now.Add(31*time.Second), 20)
	if a := l.avg(now.Add(31 * time.Second)); a != 15 {
		t.Fatalf("avg %v, want 15", a)
	}
	if a := l.avg(now.Add(200 * time.Second)); a != 0 {
		t.Fatalf("avg after the window %v, want 0", a)
	}
}
