package broker

import (
	"sync"

	klog "github.com/kobs-dev/kobs/broker/log"
)

// topic is a topic's state on this broker. name, id and internal never
// change; partitions and configs are replaced under Broker.mu.
type topic struct {
	name       string
	id         TopicID
	internal   bool
	configs    map[string]string // overrides only
	partitions []*partition
}

// partition is one partition led by this broker. The log serialises its own
// appends; appendMu additionally keeps validation+append of one produce
// request atomic per partition so later checks (idempotent sequences) see a
// consistent log end.
type partition struct {
	topic    string
	index    int32
	logDir   string
	log      *klog.Log
	appendMu sync.Mutex

	waitMu  sync.Mutex
	waiters map[chan struct{}]struct{}
}

func newPartition(topicName string, index int32, logDir string, l *klog.Log) *partition {
	return &partition{topic: topicName, index: index, logDir: logDir, log: l, waiters: map[chan struct{}]struct{}{}}
}

// highWatermark is the offset below which records are visible to
// consumers. With one replica per partition every appended record is
// committed, so it is the log end offset; replication will lower it to the
// ISR's minimum.
func (p *partition) highWatermark() int64 { return p.log.LogEndOffset() }

// watch registers ch to be signalled (non-blocking) on the next append.
func (p *partition) watch(ch chan struct{}) {
	p.waitMu.Lock()
	p.waiters[ch] = struct{}{}
	p.waitMu.Unlock()
}

func (p *partition) unwatch(ch chan struct{}) {
	p.waitMu.Lock()
	delete(p.waiters, ch)
	p.waitMu.Unlock()
}

// notifyAppend wakes parked fetches.
func (p *partition) notifyAppend() {
	p.waitMu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}
