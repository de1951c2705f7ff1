package controller

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/broker/telemetry"
)

// ctlMetrics are the controller's Kafka MBeans. As in KRaft (KIP-?? on
// controller metrics), only nodes with the controller role register the
// kafka.controller beans; standby controllers report the counts of their
// own image (so a lagging one shows), ActiveControllerCount is 1 only on
// the active one.
type ctlMetrics struct {
	c     *Controller
	reg   *telemetry.Registry
	names []telemetry.ObjectName

	unclean  *telemetry.Meter
	election *telemetry.Timer

	timedOutHeartbeats atomic.Int64
	newActives         atomic.Int64

	counts atomic.Pointer[imageCounts]

	channel channelStats // raft-channel-metrics

	// raft-metrics
	mu            sync.Mutex
	commitLatency window
	appended      window
	fetched       window
}

type imageCounts struct {
	offset                                                      int64
	img                                                         *metadata.Image
	topics, partitions, offline, imbalance, liveBrokers, fenced int64
}

func countImage(img *metadata.Image) *imageCounts {
	n := &imageCounts{offset: img.Offset, img: img, topics: int64(len(img.Topics))}
	for _, b := range img.Brokers {
		if b.Fenced {
			n.fenced++
		} else {
			n.liveBrokers++
		}
	}
	for _, t := range img.Topics {
		n.partitions += int64(len(t.Partitions))
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if p.Offline() {
				n.offline++
			}
			if len(p.Replicas) > 0 && p.Leader != p.Replicas[0] {
				n.imbalance++
			}
		}
	}
	return n
}

// image counts, recomputed once per image (gauges are read by scrapers,
// possibly several per image).
func (m *ctlMetrics) imageCounts() *imageCounts {
	img := m.c.pub.Load()
	if n := m.counts.Load(); n != nil && n.img == img {
		return n
	}
	n := countImage(img)
	m.counts.Store(n)
	return n
}

func newCtlMetrics(c *Controller) *ctlMetrics {
	m := &ctlMetrics{c: c, reg: c.cfg.Registry}
	if m.reg == nil {
		return m
	}
	m.registerNodeMetrics()
	if !c.cfg.Roles.Controller {
		return m
	}
	g := func(name string, fn func() int64) {
		n := telemetry.Name("kafka.controller", "KafkaController", name)
		m.reg.Gauge(n, fn)
		m.names = append(m.names, n)
	}
	g("ActiveControllerCount", func() int64 {
		if c.active.Load() {
			return 1
		}
		return 0
	})
	g("OfflinePartitionsCount", func() int64 { return m.imageCounts().offline })
	g("GlobalTopicCount", func() int64 { return m.imageCounts().topics })
	g("GlobalPartitionCount", func() int64 { return m.imageCounts().partitions })
	g("ActiveBrokerCount", func() int64 { return m.imageCounts().liveBrokers })
	g("FencedBrokerCount", func() int64 { return m.imageCounts().fenced })
	g("PreferredReplicaImbalanceCount", func() int64 { return m.imageCounts().imbalance })
	g("MetadataErrorCount", func() int64 { return c.fsm.errors.Load() })
	g("TimedOutBrokerHeartbeatCount", func() int64 { return m.timedOutHeartbeats.Load() })
	g("NewActiveControllersCount", func() int64 { return m.newActives.Load() })
	g("LastAppliedRecordOffset", func() int64 { return c.pub.Load().Offset })
	g("LastCommittedRecordOffset", func() int64 {
		if c.raft == nil {
			return -1
		}
		v, _ := strconv.ParseInt(c.raft.Stats()["commit_index"], 10, 64)
		return v
	})
	un := telemetry.Name("kafka.controller", "ControllerStats", "UncleanLeaderElectionsPerSec")
	m.unclean = m.reg.Meter(un, "elections")
	en := telemetry.Name("kafka.controller", "ControllerStats", "LeaderElectionRateAndTimeMs")
	m.election = m.reg.Timer(en)
	m.names = append(m.names, un, en)
	return m
}

// registerNodeMetrics registers what every node reports, voter or not:
// Kafka's raft-metrics bean (KafkaRaftMetrics; brokers are observers of
// the quorum), raft-channel-metrics (channel.go),
// broker-metadata-metrics for the broker role and MetadataLoader
// CurrentControllerId (KIP-1001). Kafka Metrics values are
// doubles over JMX; current-state is a string.
func (m *ctlMetrics) registerNodeMetrics() {
	c := m.c
	rn := telemetry.Name("kafka.server", "raft-metrics", "")
	m.reg.KafkaMetrics(rn, func() []telemetry.Attribute {
		rm := c.RaftMetrics()
		f := func(n string, v float64) telemetry.Attribute {
			return telemetry.Attribute{Name: n, Value: telemetry.Float64Value(v)}
		}
		return []telemetry.Attribute{
			{Name: "current-state", Value: telemetry.StringValue(rm.CurrentState)},
			f("current-leader", float64(rm.CurrentLeader)),
			f("current-vote", float64(rm.CurrentVote)),
			f("current-epoch", float64(rm.CurrentEpoch)),
			f("high-watermark", float64(rm.HighWatermark)),
			f("log-end-offset", float64(rm.LogEndOffset)),
			f("log-end-epoch", float64(rm.LogEndEpoch)),
			f("commit-latency-avg", rm.CommitLatencyAvg),
			f("commit-latency-max", rm.CommitLatencyMax),
			f("append-records-rate", rm.AppendRecordsRate),
			f("fetch-records-rate", rm.FetchRecordsRate),
		}
	})
	m.names = append(m.names, rn)
	chn := telemetry.Name("kafka.server", "raft-channel-metrics", "")
	m.reg.KafkaMetrics(chn, m.channel.attributes)
	m.names = append(m.names, chn)
	if c.cfg.Roles.Broker {
		bn := telemetry.Name("kafka.server", "broker-metadata-metrics", "")
		m.reg.KafkaMetrics(bn, func() []telemetry.Attribute {
			ts := c.fsm.lastTime.Load()
			lag := float64(0)
			if ts > 0 {
				lag = float64(max(time.Now().UnixMilli()-ts, 0))
			}
			f := func(n string, v float64) telemetry.Attribute {
				return telemetry.Attribute{Name: n, Value: telemetry.Float64Value(v)}
			}
			return []telemetry.Attribute{
				f("last-applied-record-offset", float64(c.pub.Load().Offset)),
				f("last-applied-record-timestamp", float64(ts)),
				f("last-applied-record-lag-ms", lag),
				f("metadata-load-error-count", float64(c.fsm.loadErrors.Load())),
				f("metadata-apply-error-count", float64(c.fsm.errors.Load())),
			}
		})
		m.names = append(m.names, bn)
	}
	cn := telemetry.Name("kafka.server", "MetadataLoader", "CurrentControllerId")
	m.reg.Gauge(cn, func() int64 { return int64(c.leaderID()) })
	m.names = append(m.names, cn)
}

func (m *ctlMetrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, n := range m.names {
		m.reg.Unregister(n)
	}
}

func (m *ctlMetrics) newActive() { m.newActives.Add(1) }

// committed accounts one committed entry of the active controller.
func (m *ctlMetrics) committed(records int, latency time.Duration, elected, unclean int) {
	now := time.Now()
	m.mu.Lock()
	m.commitLatency.add(now, float64(latency)/float64(time.Millisecond))
	m.appended.add(now, float64(records))
	m.mu.Unlock()
	if m.unclean != nil && unclean > 0 {
		m.unclean.Mark(int64(unclean))
	}
	if m.election != nil {
		for range elected {
			m.election.Update(latency)
		}
	}
}

// applied counts records this node applied from another leader's log
// (fetch-records-rate).
func (m *ctlMetrics) applied(records int) {
	if m.c.active.Load() {
		return
	}
	now := time.Now()
	m.mu.Lock()
	m.fetched.add(now, float64(records))
	m.mu.Unlock()
}

// window is Kafka Metrics' SampledStat with its defaults: two samples of
// 30 s; a rate or average covers the current and the previous sample.
type window struct {
	start         [2]time.Time
	sum, cnt, max [2]float64
	cur           int
}

const sampleWindow = 30 * time.Second

func (w *window) roll(now time.Time) {
	if now.Sub(w.start[w.cur]) >= sampleWindow {
		w.cur = 1 - w.cur
		w.start[w.cur], w.sum[w.cur], w.cnt[w.cur], w.max[w.cur] = now, 0, 0, 0
		if now.Sub(w.start[1-w.cur]) >= 2*sampleWindow {
			w.start[1-w.cur], w.sum[1-w.cur], w.cnt[1-w.cur], w.max[1-w.cur] = time.Time{}, 0, 0, 0
		}
	}
}

func (w *window) add(now time.Time, v float64) {
	w.roll(now)
	w.sum[w.cur] += v
	w.cnt[w.cur]++
	w.max[w.cur] = max(w.max[w.cur], v)
}

// maxOf is the largest value over the retained samples (Kafka's Max; 0,
// where Kafka reports NaN, when there was none).
func (w *window) maxOf(now time.Time) float64 {
	w.roll(now)
	return max(w.max[0], w.max[1])
}

func (w *window) avg(now time.Time) float64 {
	w.roll(now)
	if n := w.cnt[0] + w.cnt[1]; n > 0 {
		return (w.sum[0] + w.sum[1]) / n
	}
	return 0
}

// rate is events per second over the retained samples, as Kafka's Rate
// (elapsed time since the oldest sample start).
func (w *window) rate(now time.Time) float64 {
	w.roll(now)
	oldest := w.start[w.cur]
	if o := w.start[1-w.cur]; !o.IsZero() && o.Before(oldest) {
		oldest = o
	}
	el := now.Sub(oldest)
	if oldest.IsZero() || el < sampleWindow {
		el = sampleWindow // Kafka's Rate uses at least one full window
	}
	return (w.sum[0] + w.sum[1]) / el.Seconds()
}
