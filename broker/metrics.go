package broker

import (
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/group"
	"github.com/kobs-dev/kobs/broker/replica"
	"github.com/kobs-dev/kobs/broker/telemetry"
	"github.com/kobs-dev/kobs/broker/wire"
)

// This file instruments the broker with Kafka's own MBeans (book ch. 10,
// DESIGN.md section 3). Hot-path metrics are resolved once and kept as
// pointers (per API key, per topic) so a request costs a few atomic adds,
// not registry lookups. Every method is nil-safe: with telemetry off
// (kobs.telemetry.enable=false) the broker holds a nil *metrics.

// kafkaAPIName is Kafka's ApiKeys name where kmsg spells it differently;
// RequestMetrics are tagged with Kafka's names.
var kafkaAPIName = map[int16]string{
	4: "LeaderAndIsr", 17: "SaslHandshake", 22: "InitProducerId", 29: "DescribeAcls",
	30: "CreateAcls", 31: "DeleteAcls", 36: "SaslAuthenticate", 50: "DescribeUserScramCredentials",
	51: "AlterUserScramCredentials", 67: "AllocateProducerIds",
}

func apiName(key int16) string {
	if n, ok := kafkaAPIName[key]; ok {
		return n
	}
	return kmsg.NameForKey(key)
}

// requestMetrics are one request name's RequestMetrics histograms.
type requestMetrics struct {
	total, requestQueue, local, remote, responseQueue, responseSend *telemetry.Histogram
	requestBytes                                                    *telemetry.Histogram
	perVersion                                                      map[int16]*telemetry.Meter // RequestsPerSec{request,version}
}

// topicMetrics are BrokerTopicMetrics meters, either for one topic or for
// all topics.
type topicMetrics struct {
	messagesIn, bytesIn, bytesOut, bytesRejected         *telemetry.Meter
	totalProduce, failedProduce, totalFetch, failedFetch *telemetry.Meter
}

type metrics struct {
	reg      *telemetry.Registry
	requests map[string]*requestMetrics // by Kafka request name (FetchConsumer too)
	all      *topicMetrics
	errors   sync.Map // errorKey -> *telemetry.Meter (ErrorsPerSec{request,error})

	handlerIdle *telemetry.Meter
	handlers    int64
	flush       *telemetry.Timer

	isrShrinks, isrExpands *telemetry.Meter
	isrUpdateFailures      *telemetry.Meter
	partitionHolds         *telemetry.Meter
	truncations            *telemetry.Meter
	truncatedMessages      *telemetry.Meter

	topics sync.Map // topic name -> *topicMetrics
}

func newMetrics(reg *telemetry.Registry, handlers int) *metrics {
	m := &metrics{reg: reg, requests: map[string]*requestMetrics{}, handlers: int64(handlers)}
	for _, a := range apiTable {
		names := []string{apiName(a.key.Int16())}
		if a.key == kmsg.Fetch {
			// Kafka splits fetches into consumer and follower names in
			// addition to "Fetch".
			names = append(names, "FetchConsumer", "FetchFollower")
		}
		for _, n := range names {
			rm := &requestMetrics{perVersion: map[int16]*telemetry.Meter{}}
			h := func(name string) *telemetry.Histogram {
				return reg.Histogram(telemetry.Name("kafka.network", "RequestMetrics", name, "request", n))
			}
			rm.total, rm.requestQueue, rm.local = h("TotalTimeMs"), h("RequestQueueTimeMs"), h("LocalTimeMs")
			rm.remote, rm.responseQueue, rm.responseSend = h("RemoteTimeMs"), h("ResponseQueueTimeMs"), h("ResponseSendTimeMs")
			rm.requestBytes = h("RequestBytes")
			for v := a.min; v <= a.max; v++ {
				rm.perVersion[v] = reg.Meter(telemetry.Name("kafka.network", "RequestMetrics", "RequestsPerSec",
					"request", n, "version", strconv.Itoa(int(v))), "requests")
			}
			m.requests[n] = rm
		}
	}
	m.all = newTopicMetrics(reg, "")
	m.handlerIdle = reg.MeterWithUnit(telemetry.Name("kafka.server", "KafkaRequestHandlerPool", "RequestHandlerAvgIdlePercent"), "percent", time.Nanosecond)
	m.flush = reg.Timer(telemetry.Name("kafka.log", "LogFlushStats", "LogFlushRateAndTimeMs"))
	m.isrShrinks = reg.Meter(telemetry.Name("kafka.server", "ReplicaManager", "IsrShrinksPerSec"), "shrinks")
	m.isrExpands = reg.Meter(telemetry.Name("kafka.server", "ReplicaManager", "IsrExpandsPerSec"), "expands")
	m.isrUpdateFailures = reg.Meter(telemetry.Name("kafka.server", "ReplicaManager", "FailedIsrUpdatesPerSec"), "failedUpdates")
	// A kobs addition beside Kafka's MaxLag: follower partitions held out
	// of fetches after a partition error from the leader
	// (replica.Manager.PartitionHolds).
	m.partitionHolds = reg.Meter(telemetry.Name("kafka.server", "ReplicaFetcherManager", "PartitionHoldsPerSec", "clientId", "Replica"), "holds")
	// kobs additions too: a follower's truncations of a divergent tail
	// after a leader change, and the offsets they removed (Kafka only
	// logs them; they are where acks=1 writes to a dead leader go).
	m.truncations = reg.Meter(telemetry.Name("kafka.server", "ReplicaFetcherManager", "TruncationsPerSec", "clientId", "Replica"), "truncations")
	m.truncatedMessages = reg.Meter(telemetry.Name("kafka.server", "ReplicaFetcherManager", "TruncatedMessagesPerSec", "clientId", "Replica"), "messages")
	return m
}

func newTopicMetrics(reg *telemetry.Registry, topic string) *topicMetrics {
	mt := func(name, event string) *telemetry.Meter {
		// telemetry.Name drops empty tag values: topic "" is the
		// all-topics bean, as in Kafka.
		return reg.Meter(telemetry.Name("kafka.server", "BrokerTopicMetrics", name, "topic", topic), event)
	}
	return &topicMetrics{
		messagesIn: mt("MessagesInPerSec", "messages"), bytesIn: mt("BytesInPerSec", "bytes"),
		bytesOut: mt("BytesOutPerSec", "bytes"), bytesRejected: mt("BytesRejectedPerSec", "bytes"),
		totalProduce: mt("TotalProduceRequestsPerSec", "requests"), failedProduce: mt("FailedProduceRequestsPerSec", "requests"),
		totalFetch: mt("TotalFetchRequestsPerSec", "requests"), failedFetch: mt("FailedFetchRequestsPerSec", "requests"),
	}
}

// observe records one completed request (wire.Config.Observe).
func (m *metrics) observe(r *wire.Request, t wire.Timings, resp kmsg.Response) {
	if m == nil {
		return
	}
	name := apiName(r.Header.Key)
	m.observeAs(name, r, t)
	if resp != nil {
		m.countErrors(name, resp)
	}
	if fr, ok := r.Msg.(*kmsg.FetchRequest); ok {
		if fr.ReplicaID >= 0 {
			m.observeAs("FetchFollower", r, t)
		} else {
			m.observeAs("FetchConsumer", r, t)
		}
	}
}

func (m *metrics) observeAs(name string, r *wire.Request, t wire.Timings) {
	rm := m.requests[name]
	if rm == nil {
		return // ApiVersions fallbacks for versions we do not serve
	}
	if mt := rm.perVersion[r.Header.Version]; mt != nil {
		mt.Mark(1)
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	rm.total.Update(ms(t.Total))
	rm.requestQueue.Update(ms(t.RequestQueue))
	rm.local.Update(ms(t.Local))
	rm.remote.Update(ms(t.Remote))
	rm.responseQueue.Update(ms(t.ResponseQueue))
	rm.responseSend.Update(ms(t.ResponseSend))
	rm.requestBytes.Update(int64(r.Size))
}

type errorKey struct {
	request string
	code    int16
}

// countErrors marks ErrorsPerSec{request,error} once per error code field in
// the response, NONE included, as Kafka's RequestChannel does with the
// response's errorCounts: per partition for partitioned APIs, plus
// top-level codes.
func (m *metrics) countErrors(request string, resp kmsg.Response) {
	counts := map[int16]int64{}
	walkErrorCodes(reflect.ValueOf(resp), counts)
	for code, n := range counts {
		k := errorKey{request, code}
		mt, ok := m.errors.Load(k)
		if !ok {
			name := "NONE"
			if code != 0 {
				name = kerr.ErrorForCode(code).Error()
				if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok {
					name = e.Message
				}
			}
			mt, _ = m.errors.LoadOrStore(k, m.reg.Meter(telemetry.Name("kafka.network", "RequestMetrics", "ErrorsPerSec",
				"request", request, "error", name), "errors"))
		}
		mt.(*telemetry.Meter).Mark(n)
	}
}

// walkErrorCodes counts every int16 field named ErrorCode in a kmsg
// response, descending only into the fields whose types can hold one (a
// per-type plan, computed once), so record bytes, tags and leader hints are
// never visited.
func walkErrorCodes(v reflect.Value, counts map[int16]int64) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkErrorCodes(v.Elem(), counts)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkErrorCodes(v.Index(i), counts)
		}
	case reflect.Struct:
		p := planFor(v.Type())
		if p.errField >= 0 {
			counts[int16(v.Field(p.errField).Int())]++
		}
		for _, i := range p.sub {
			walkErrorCodes(v.Field(i), counts)
		}
	}
}

// errPlan says where a struct type keeps its ErrorCode and which of its
// fields lead to more.
type errPlan struct {
	errField int   // index of the ErrorCode field, -1 if none
	sub      []int // struct, slice-of-struct or pointer fields holding ErrorCodes below
}

var errPlans sync.Map // reflect.Type -> *errPlan

func planFor(t reflect.Type) *errPlan {
	if p, ok := errPlans.Load(t); ok {
		return p.(*errPlan)
	}
	p := &errPlan{errField: -1}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
			p.errField = i
			continue
		}
		if holdsErrorCode(f.Type, map[reflect.Type]bool{t: true}) {
			p.sub = append(p.sub, i)
		}
	}
	errPlans.Store(t, p)
	return p
}

// holdsErrorCode reports whether a value of type t can contain an
// ErrorCode field; seen stops recursion through self-referencing types.
func holdsErrorCode(t reflect.Type, seen map[reflect.Type]bool) bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return false
	}
	seen[t] = true
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 || holdsErrorCode(f.Type, seen) {
			return true
		}
	}
	return false
}

// idle records one handler's wait for work, divided by the pool size as
// Kafka's aggregateIdleMeter does, so the rate reads as the pool's idle
// fraction.
func (m *metrics) idle(idle, _ time.Duration) {
	if m == nil {
		return
	}
	m.handlerIdle.Mark(idle.Nanoseconds() / m.handlers)
}

// produced marks a partition append: records and bytes in, per topic and
// for all topics.
func (m *metrics) produced(tm *topicMetrics, records, bytes int64) {
	if m == nil {
		return
	}
	for _, x := range [2]*topicMetrics{m.all, tm} {
		if x == nil {
			continue
		}
		x.totalProduce.Mark(1)
		x.messagesIn.Mark(records)
		x.bytesIn.Mark(bytes)
	}
}

func (m *metrics) produceFailed(tm *topicMetrics, bytes int64) {
	if m == nil {
		return
	}
	for _, x := range [2]*topicMetrics{m.all, tm} {
		if x == nil {
			continue // unknown topic: only the all-topics bean
		}
		x.totalProduce.Mark(1)
		x.failedProduce.Mark(1)
		x.bytesRejected.Mark(bytes)
	}
}

// fetched marks one partition read of a consumer fetch.
func (m *metrics) fetched(tm *topicMetrics, bytes int64, failed bool) {
	if m == nil {
		return
	}
	for _, x := range [2]*topicMetrics{m.all, tm} {
		if x == nil {
			continue
		}
		x.totalFetch.Mark(1)
		if failed {
			x.failedFetch.Mark(1)
		}
		if bytes > 0 {
			x.bytesOut.Mark(bytes)
		}
	}
}

// isrChanged marks IsrShrinksPerSec or IsrExpandsPerSec for one ISR
// change the controller accepted.
func (m *metrics) isrChanged(expand bool) {
	if m == nil {
		return
	}
	if expand {
		m.isrExpands.Mark(1)
	} else {
		m.isrShrinks.Mark(1)
	}
}

// isrChangeFailed marks FailedIsrUpdatesPerSec.
func (m *metrics) isrChangeFailed() {
	if m != nil {
		m.isrUpdateFailures.Mark(1)
	}
}

// truncated marks TruncationsPerSec and TruncatedMessagesPerSec.
func (m *metrics) truncated(offsets int64) {
	if m != nil {
		m.truncations.Mark(1)
		m.truncatedMessages.Mark(offsets)
	}
}

// partitionHeld marks PartitionHoldsPerSec.
func (m *metrics) partitionHeld() {
	if m != nil {
		m.partitionHolds.Mark(1)
	}
}

// flushed times one log fsync.
func (m *metrics) flushed(d time.Duration) {
	if m == nil {
		return
	}
	m.flush.Update(d)
}

// addTopic registers a topic's BrokerTopicMetrics (once).
func (m *metrics) addTopic(name string) {
	if m == nil {
		return
	}
	if _, ok := m.topics.Load(name); !ok {
		m.topics.LoadOrStore(name, newTopicMetrics(m.reg, name))
	}
}

// topic returns a topic's BrokerTopicMetrics, nil if it has none (unknown
// topic, or telemetry off).
func (m *metrics) topic(name string) *topicMetrics {
	if m == nil {
		return nil
	}
	tm, _ := m.topics.Load(name)
	t, _ := tm.(*topicMetrics)
	return t
}

// removeTopic drops every bean tagged with the topic, as Kafka does when a
// topic is deleted.
func (m *metrics) removeTopic(name string) {
	if m == nil {
		return
	}
	m.topics.Delete(name)
	for _, typ := range []string{"BrokerTopicMetrics"} {
		m.reg.UnregisterMatching(telemetry.MustParseObjectName("kafka.server:type=" + typ + ",topic=" + telemetry.Quote(name) + ",*"))
	}
	m.reg.UnregisterMatching(telemetry.MustParseObjectName("kafka.log:type=Log,topic=" + telemetry.Quote(name) + ",*"))
	m.reg.UnregisterMatching(telemetry.MustParseObjectName("kafka.cluster:type=Partition,topic=" + telemetry.Quote(name) + ",*"))
}

// addPartition registers the Log and Partition gauges of one partition
// (replica.ManagerConfig.OnAdd). They read the partition's log and its
// assignment snapshot when scraped: no lock, nothing on the write path.
func (m *metrics) addPartition(p *replica.Partition) {
	if m == nil {
		return
	}
	m.addTopic(p.Topic)
	tags := []string{"topic", p.Topic, "partition", strconv.Itoa(int(p.Index))}
	g := func(domain, typ, name string, fn func() int64) {
		m.reg.Gauge(telemetry.Name(domain, typ, name, tags...), fn)
	}
	l := p.Log()
	g("kafka.log", "Log", "LogEndOffset", l.LogEndOffset)
	g("kafka.log", "Log", "LogStartOffset", l.LogStartOffset)
	g("kafka.log", "Log", "Size", l.Size)
	g("kafka.log", "Log", "NumLogSegments", func() int64 { return int64(l.NumSegments()) })
	g("kafka.cluster", "Partition", "UnderReplicated", func() int64 { return boolInt(p.State().UnderReplicated()) })
	g("kafka.cluster", "Partition", "UnderMinIsr", func() int64 { return boolInt(p.State().UnderMinISR()) })
	g("kafka.cluster", "Partition", "AtMinIsr", func() int64 { return boolInt(p.State().AtMinISR()) })
	// Kafka reports the ISR and replica counts on the leader only.
	g("kafka.cluster", "Partition", "InSyncReplicasCount", func() int64 {
		if s := p.State(); s.IsLeader() {
			return int64(len(s.ISR))
		}
		return 0
	})
	g("kafka.cluster", "Partition", "ReplicasCount", func() int64 {
		if s := p.State(); s.IsLeader() {
			return int64(len(s.Replicas))
		}
		return 0
	})
	g("kafka.cluster", "Partition", "LastStableOffsetLag", func() int64 { return 0 }) // no open transactions
}

// removePartition drops one partition's Log and Partition gauges
// (replica.ManagerConfig.OnRemove), as when a replica moves away.
func (m *metrics) removePartition(p *replica.Partition) {
	if m == nil {
		return
	}
	for _, pat := range []string{"kafka.log:type=Log", "kafka.cluster:type=Partition"} {
		m.reg.UnregisterMatching(telemetry.MustParseObjectName(pat + ",topic=" + telemetry.Quote(p.Topic) +
			",partition=" + strconv.Itoa(int(p.Index)) + ",*"))
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// registerGroupGauges registers the group coordinator's cache sizes.
func (m *metrics) registerGroupGauges(c *group.Coordinator) {
	if m == nil {
		return
	}
	m.reg.Gauge(telemetry.Name("kafka.coordinator.group", "GroupMetadataManager", "NumGroups"), func() int64 {
		g, _ := c.Counts()
		return int64(g)
	})
	m.reg.Gauge(telemetry.Name("kafka.coordinator.group", "GroupMetadataManager", "NumOffsets"), func() int64 {
		_, o := c.Counts()
		return int64(o)
	})
}

// registerCleanerGauges registers Kafka's LogCleaner and LogCleanerManager
// gauges (one cleaner thread; it cannot die, so DeadThreadCount is 0 by
// construction: a failed clean is counted in uncleanable-partitions-count).
func (m *metrics) registerCleanerGauges(b *Broker) {
	cs := &b.cleanerStats
	read := func(fn func() int64) func() int64 {
		return func() int64 {
			cs.mu.Lock()
			defer cs.mu.Unlock()
			return fn()
		}
	}
	m.reg.Gauge(telemetry.Name("kafka.log", "LogCleaner", "max-clean-time-secs"), read(func() int64 { return int64(cs.lastCleanTime.Seconds()) }))
	m.reg.Gauge(telemetry.Name("kafka.log", "LogCleaner", "cleaner-recopy-percent"), read(func() int64 { return cs.recopyPercent }))
	m.reg.Gauge(telemetry.Name("kafka.log", "LogCleaner", "DeadThreadCount"), func() int64 { return 0 })
	m.reg.Gauge(telemetry.Name("kafka.log", "LogCleanerManager", "max-dirty-percent"), read(func() int64 { return cs.maxDirtyPercent }))
	m.reg.Gauge(telemetry.Name("kafka.log", "LogCleanerManager", "time-since-last-run-ms"), read(func() int64 { return time.Since(cs.lastRun).Milliseconds() }))
	for _, d := range b.cfg.LogDirs {
		m.reg.Gauge(telemetry.Name("kafka.log", "LogCleanerManager", "uncleanable-partitions-count", "logDirectory", d), func() int64 {
			n, _ := cs.uncleanableIn(d)
			return n
		})
		m.reg.Gauge(telemetry.Name("kafka.log", "LogCleanerManager", "uncleanable-bytes", "logDirectory", d), func() int64 {
			_, n := cs.uncleanableIn(d)
			return n
		})
	}
}

// registerBrokerGauges registers the broker-wide gauges: ReplicaManager,
// KafkaController, RequestChannel, SocketServer and ReplicaFetcherManager.
func (m *metrics) registerBrokerGauges(b *Broker) {
	if m == nil {
		return
	}
	count := func(pred func(*replica.State) bool) func() int64 {
		return func() int64 {
			var n int64
			for _, p := range b.replicas.All() {
				if pred(p.State()) {
					n++
				}
			}
			return n
		}
	}
	g := func(domain, typ, name string, fn func() int64) { m.reg.Gauge(telemetry.Name(domain, typ, name), fn) }
	if b.cfg.LogCleanerEnable {
		m.registerCleanerGauges(b)
	}
	g("kafka.server", "ReplicaManager", "UnderReplicatedPartitions", count((*replica.State).UnderReplicated))
	g("kafka.server", "ReplicaManager", "UnderMinIsrPartitionCount", count((*replica.State).UnderMinISR))
	g("kafka.server", "ReplicaManager", "AtMinIsrPartitionCount", count((*replica.State).AtMinISR))
	g("kafka.server", "ReplicaManager", "PartitionCount", func() int64 { return int64(b.replicas.Len()) })
	g("kafka.server", "ReplicaManager", "LeaderCount", count((*replica.State).IsLeader))
	// Replicas the image assigns to this broker that it could not open
	// (Kafka: replicas in an offline log dir).
	g("kafka.server", "ReplicaManager", "OfflineReplicaCount", func() int64 {
		var n int64
		img := b.pub.Load()
		for _, t := range img.Topics {
			for i := range t.Partitions {
				if t.Partitions[i].HasReplica(b.cfg.NodeID) && b.replicas.Partition(t.Name, int32(i)) == nil {
					n++
				}
			}
		}
		return n
	})

	// KafkaController and raft gauges are the controller's own
	// (broker/controller registers them on controller nodes).

	m.reg.Gauge(telemetry.Name("kafka.network", "RequestChannel", "RequestQueueSize"), func() int64 { return int64(b.srv.QueueLen()) })
	m.reg.Gauge(telemetry.Name("kafka.network", "RequestChannel", "ResponseQueueSize"), func() int64 { return b.srv.ResponsesWaiting() })
	m.reg.GaugeFloat64(telemetry.Name("kafka.network", "SocketServer", "NetworkProcessorAvgIdlePercent"), b.srv.NetworkIdle)
	m.reg.Gauge(telemetry.Name("kafka.server", "ReplicaFetcherManager", "MaxLag", "clientId", "Replica"), b.replicas.MaxLag)
}
