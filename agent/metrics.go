package agent

import (
	"bufio"
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// kafka_exporter's metrics (danielqsj/kafka_exporter: kafka_exporter.go),
// same names, help, labels and values.
var (
	descBrokers     = prometheus.NewDesc("kafka_brokers", "Number of Brokers in the Kafka Cluster.", nil, nil)
	descBrokerInfo  = prometheus.NewDesc("kafka_broker_info", "Information about the Kafka Broker.", []string{"id", "address"}, nil)
	descTopicParts  = prometheus.NewDesc("kafka_topic_partitions", "Number of partitions for this Topic", []string{"topic"}, nil)
	tpLabels        = []string{"topic", "partition"}
	cgtpLabels      = []string{"consumergroup", "topic", "partition"}
	descCGOffsetSum = prometheus.NewDesc("kafka_consumergroup_current_offset_sum", "Current Offset of a ConsumerGroup at Topic for all partitions", []string{"consumergroup", "topic"}, nil)
	descCGLagSum    = prometheus.NewDesc("kafka_consumergroup_lag_sum", "Current Approximate Lag of a ConsumerGroup at Topic for all partitions", []string{"consumergroup", "topic"}, nil)
	descCGMembers   = prometheus.NewDesc("kafka_consumergroup_members", "Amount of members in a consumer group", []string{"consumergroup"}, nil)
)

// kobs's own metrics.
var (
	descMaxLagSeconds  = prometheus.NewDesc("kobs_consumergroup_max_lag_seconds", "Largest kobs_consumergroup_lag_seconds of the group.", []string{"consumergroup"}, nil)
	descGroupStatus    = prometheus.NewDesc("kobs_consumergroup_status", "Burrow-style group status as Burrow's code: 1 OK, 2 WARN, 3 ERR, 4 STOP, 5 STALL, 6 REWIND (worst partition).", []string{"consumergroup"}, nil)
	descUp             = prometheus.NewDesc("kobs_agent_up", "1 if the last collection cycle read the cluster and its data is fresh; 0 means every other cluster metric is withheld.", nil, nil)
	descCycleSeconds   = prometheus.NewDesc("kobs_agent_cycle_seconds", "Duration of the last collection cycle.", nil, nil)
	descCyclePhase     = prometheus.NewDesc("kobs_agent_cycle_phase_seconds", "Duration of each part of the last successful cycle: a request from sending it to its answer applied (metadata, list_end_offsets, offset_fetch, ...; they overlap after metadata), and evaluate, the agent's own computation.", []string{"phase"}, nil)
	descLastSuccess    = prometheus.NewDesc("kobs_agent_last_success_timestamp_seconds", "When the last successful collection cycle started.", nil, nil)
	descPartial        = prometheus.NewDesc("kobs_agent_partial", "1 if the last successful cycle missed parts of the cluster (see kobs_agent_errors_total and /v1/health).", nil, nil)
	descUnreachable    = prometheus.NewDesc("kobs_agent_broker_unreachable", "1 for a broker that replicas name but the metadata does not list, or that failed a request in the last cycle.", []string{"broker"}, nil)
	descControllerInfo = prometheus.NewDesc("kobs_cluster_controller", "Broker id of the active controller (-1 if unknown).", nil, nil)
)

func (a *Agent) registerMetrics() {
	a.reg = prometheus.NewRegistry()
	a.errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kobs_agent_errors_total",
		Help: "Failures by stage: cycle (no metadata, or timeout) or the request of a partial cycle that failed (list_end_offsets, offset_fetch, ...).",
	}, []string{"stage"})
	for _, st := range []string{"cycle", "metadata", "list_start_offsets", "list_end_offsets", "describe_configs", "list_groups", "describe_groups", "offset_fetch"} {
		a.errorsTotal.WithLabelValues(st)
	}
	a.exactSkipped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kobs_agent_exact_lag_skipped_total",
		Help: "Exact lag-seconds reads skipped because a cycle reached its read bound (their lag seconds stay interpolated).",
	})
	a.reg.MustRegister(a.errorsTotal, a.exactSkipped, (*collector)(a),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Registry is the agent's own Prometheus registry.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// collector renders the current view at scrape time.
type collector Agent

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descBrokers, descBrokerInfo, descTopicParts, descCGOffsetSum, descCGLagSum, descCGMembers,
		descMaxLagSeconds, descGroupStatus, descUp, descCycleSeconds, descCyclePhase, descLastSuccess, descPartial,
		descUnreachable, descControllerInfo,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	a := (*Agent)(c)
	h := a.Health(time.Now())
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descUp, b2f(h.Up))
	gauge(descCycleSeconds, h.CycleSeconds)
	if !h.LastSuccess.IsZero() {
		gauge(descLastSuccess, float64(h.LastSuccess.UnixNano())/1e9)
	}
	for phase, sec := range h.CyclePhases {
		gauge(descCyclePhase, sec, phase)
	}
	v := a.View()
	if !h.Up || v == nil {
		// Never stale as fresh: without a fresh cycle only the agent's
		// own state is exported.
		return
	}
	s := v.Snapshot
	gauge(descPartial, b2f(h.Partial))
	for _, id := range s.Unreachable {
		gauge(descUnreachable, 1, itoa(id))
	}
	gauge(descControllerInfo, float64(s.Controller))
	gauge(descBrokers, float64(len(s.Brokers)))
	for _, b := range s.Brokers {
		gauge(descBrokerInfo, 1, itoa(b.ID), b.Addr())
	}
	for _, t := range s.Topics {
		gauge(descTopicParts, float64(len(t.Partitions)), t.Name)
	}
	for _, name := range v.GroupNames {
		gl := v.Groups[name]
		gauge(descCGMembers, float64(gl.Members), name)
		gauge(descGroupStatus, float64(gl.Status.Code()), name)
		if !math.IsNaN(gl.MaxLagSeconds) {
			gauge(descMaxLagSeconds, gl.MaxLagSeconds, name)
		}
		for topic := range consumedTopics(gl) {
			gauge(descCGOffsetSum, float64(gl.TopicOffset[topic]), name, topic)
			gauge(descCGLagSum, float64(gl.TopicLag[topic]), name, topic)
		}
	}
}

// consumedTopics are the topics a group has committed to: kafka_exporter
// reports only those, with -1 where a partition has no commit.
func consumedTopics(gl *GroupLag) map[string]bool {
	consumed := map[string]bool{}
	for i := range gl.Partitions {
		if !gl.Partitions[i].NoCommit() {
			consumed[gl.Partitions[i].Topic] = true
		}
	}
	return consumed
}

// bulkFamily is a metric family with a series per partition or per group
// partition. These are written straight to the response in the text
// format: through client_golang's registry, 1.1 million series (100,000
// partitions, 100 groups) took minutes and 1.5 GB to gather; streamed
// they take seconds and no memory beyond a buffer.
type bulkFamily struct {
	name, help string
	labels     []string
	each       func(v *View, emit func(value float64, labelValues ...string))
}

var bulkFamilies = []bulkFamily{
	partitionFamily("kafka_topic_partition_current_offset", "Current Offset of a Broker at Topic/Partition", func(p *Partition, _ *FailingPartition, emit func(float64, ...string)) {
		if p.End >= 0 {
			emit(float64(p.End))
		}
	}),
	partitionFamily("kafka_topic_partition_oldest_offset", "Oldest Offset of a Broker at Topic/Partition", func(p *Partition, _ *FailingPartition, emit func(float64, ...string)) {
		if p.Start >= 0 {
			emit(float64(p.Start))
		}
	}),
	partitionFamily("kafka_topic_partition_leader", "Leader Broker ID of this Topic/Partition", func(p *Partition, _ *FailingPartition, emit func(float64, ...string)) {
		emit(float64(p.Leader))
	}),
	partitionFamily("kafka_topic_partition_replicas", "Number of Replicas for this Topic/Partition", func(p *Partition, _ *FailingPartition, emit func(float64, ...string)) {
		emit(float64(len(p.Replicas)))
	}),
	partitionFamily("kafka_topic_partition_in_sync_replica", "Number of In-Sync Replicas for this Topic/Partition", func(p *Partition, _ *FailingPartition, emit func(float64, ...string)) {
		emit(float64(len(p.ISR)))
	}),
	partitionFamily("kafka_topic_partition_leader_is_preferred", "1 if Topic/Partition is using the Preferred Broker", func(p *Partition, _ *FailingPartition, emit func(float64, ...string)) {
		emit(b2f(len(p.Replicas) > 0 && p.Leader == p.Replicas[0]))
	}),
	partitionFamily("kafka_topic_partition_under_replicated_partition", "1 if Topic/Partition is under Replicated", func(p *Partition, _ *FailingPartition, emit func(float64, ...string)) {
		emit(b2f(len(p.ISR) < len(p.Replicas)))
	}),
	// The kobs_partition_* series exist for failing partitions only: at
	// 100,000 partitions, always-0 series would add 300,000 per scrape.
	partitionFamily("kobs_partition_under_min_isr", "1 if the ISR is smaller than min.insync.replicas (series present for failing partitions only).", func(_ *Partition, f *FailingPartition, emit func(float64, ...string)) {
		if f != nil {
			emit(b2f(f.Has(UnderMinISR)))
		}
	}),
	partitionFamily("kobs_partition_at_min_isr", "1 if the ISR size equals min.insync.replicas (series present for failing partitions only).", func(_ *Partition, f *FailingPartition, emit func(float64, ...string)) {
		if f != nil {
			emit(b2f(f.Has(AtMinISR)))
		}
	}),
	partitionFamily("kobs_partition_offline", "1 if the partition has no live leader (series present for failing partitions only).", func(_ *Partition, f *FailingPartition, emit func(float64, ...string)) {
		if f != nil {
			emit(b2f(f.Has(Offline)))
		}
	}),
	partitionFamily("kobs_partition_failing_since_timestamp_seconds", "When the agent first saw the partition failing (under-replicated, under/at min ISR, offline or leader not preferred), continuously.", func(_ *Partition, f *FailingPartition, emit func(float64, ...string)) {
		if f != nil {
			emit(float64(f.Since.UnixNano()) / 1e9)
		}
	}),
	{
		name: "kobs_partition_isr_missing", help: "1 for each replica broker missing from the partition's ISR.",
		labels: []string{"topic", "partition", "broker"},
		each: func(v *View, emit func(float64, ...string)) {
			for i := range v.Failing {
				f := &v.Failing[i]
				for _, b := range f.Missing {
					emit(1, f.Topic, itoa(f.Partition), itoa(b))
				}
			}
		},
	},
	groupPartitionFamily("kafka_consumergroup_current_offset", "Current Offset of a ConsumerGroup at Topic/Partition", func(pl *PartitionLag, consumed bool, emit func(float64)) {
		if consumed {
			emit(float64(pl.Committed))
		}
	}),
	groupPartitionFamily("kafka_consumergroup_lag", "Current Approximate Lag of a ConsumerGroup at Topic/Partition", func(pl *PartitionLag, consumed bool, emit func(float64)) {
		switch {
		case !consumed:
		case pl.NoCommit():
			emit(-1)
		case pl.Lag >= 0:
			emit(float64(pl.Lag))
		}
	}),
	groupPartitionFamily("kobs_consumergroup_lag_seconds", "Estimated age in seconds of the oldest record the group has not consumed on Topic/Partition (absent when unknown).", func(pl *PartitionLag, _ bool, emit func(float64)) {
		if !math.IsNaN(pl.LagSeconds) {
			emit(pl.LagSeconds)
		}
	}),
	groupPartitionFamily("kobs_consumergroup_partition_status", "Burrow-style partition status as Burrow's code: 1 OK, 2 WARN, 3 ERR, 4 STOP, 5 STALL, 6 REWIND.", func(pl *PartitionLag, _ bool, emit func(float64)) {
		if !pl.NoCommit() {
			emit(float64(pl.Status.Code()))
		}
	}),
	groupPartitionFamily("kobs_consumergroup_partition_no_committed_offset", "1 if the group has no committed offset on a Topic/Partition it is assigned or consumes.", func(pl *PartitionLag, _ bool, emit func(float64)) {
		if pl.NoCommit() {
			emit(1)
		}
	}),
}

func partitionFamily(name, help string, value func(*Partition, *FailingPartition, func(float64, ...string))) bulkFamily {
	return bulkFamily{name: name, help: help, labels: tpLabels, each: func(v *View, emit func(float64, ...string)) {
		failing := v.failingIndex()
		for _, t := range v.Snapshot.Topics {
			for _, p := range t.Partitions {
				part := itoa(p.Partition)
				value(p, failing[TopicPartition{t.Name, p.Partition}], func(x float64, _ ...string) { emit(x, t.Name, part) })
			}
		}
	}}
}

func groupPartitionFamily(name, help string, value func(pl *PartitionLag, consumed bool, emit func(float64))) bulkFamily {
	return bulkFamily{name: name, help: help, labels: cgtpLabels, each: func(v *View, emit func(float64, ...string)) {
		for _, gname := range v.GroupNames {
			gl := v.Groups[gname]
			consumed := consumedTopics(gl)
			for i := range gl.Partitions {
				pl := &gl.Partitions[i]
				value(pl, consumed[pl.Topic], func(x float64) { emit(x, gname, pl.Topic, itoa(pl.Partition)) })
			}
		}
	}}
}

// failingIndex maps failing partitions by name, built once per view.
func (v *View) failingIndex() map[TopicPartition]*FailingPartition {
	v.failingOnce.Do(func() {
		v.failingByTP = make(map[TopicPartition]*FailingPartition, len(v.Failing))
		for i := range v.Failing {
			v.failingByTP[TopicPartition{v.Failing[i].Topic, v.Failing[i].Partition}] = &v.Failing[i]
		}
	})
	return v.failingByTP
}

// writeBulk writes the bulk families of a fresh view in the text format.
func writeBulk(w *bufio.Writer, v *View) {
	var line []byte
	for _, f := range bulkFamilies {
		wroteHeader := false
		f.each(v, func(value float64, labelValues ...string) {
			if !wroteHeader {
				wroteHeader = true
				line = append(line[:0], "# HELP "...)
				line = append(line, f.name...)
				line = append(line, ' ')
				line = appendEscaped(line, f.help, false)
				line = append(line, "\n# TYPE "...)
				line = append(line, f.name...)
				line = append(line, " gauge\n"...)
				_, _ = w.Write(line)
			}
			line = append(line[:0], f.name...)
			line = append(line, '{')
			for i, l := range f.labels {
				if i > 0 {
					line = append(line, ',')
				}
				line = append(line, l...)
				line = append(line, '=', '"')
				line = appendEscaped(line, labelValues[i], true)
				line = append(line, '"')
			}
			line = append(line, '}', ' ')
			line = strconv.AppendFloat(line, value, 'g', -1, 64)
			line = append(line, '\n')
			_, _ = w.Write(line)
		})
	}
}

// appendEscaped escapes as the text format wants: backslash and newline,
// and in label values the double quote.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// serveMetrics writes the registry (the agent's own metrics and the
// per-cluster, per-broker, per-topic and per-group series) through
// client_golang's encoder, then the bulk families, gzipped when the
// scraper accepts it (Prometheus does).
func (a *Agent) serveMetrics(w http.ResponseWriter, r *http.Request) {
	mfs, err := a.reg.Gather()
	if err != nil {
		http.Error(w, "gather: "+err.Error(), http.StatusInternalServerError)
		return
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	w.Header().Set("Content-Type", string(format))
	var out io.Writer = w
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		defer gz.Close()
		out = gz
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	defer bw.Flush()
	enc := expfmt.NewEncoder(bw, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return
		}
	}
	if v := a.View(); v != nil && a.Health(time.Now()).Up {
		writeBulk(bw, v)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }
