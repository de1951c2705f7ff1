package agent

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// kafka_exporter's metrics (danielqsj/kafka_exporter: kafka_exporter.go),
// same names, help, labels and values.
var (
	descBrokers       = prometheus.NewDesc("kafka_brokers", "Number of Brokers in the Kafka Cluster.", nil, nil)
	descBrokerInfo    = prometheus.NewDesc("kafka_broker_info", "Information about the Kafka Broker.", []string{"id", "address"}, nil)
	descTopicParts    = prometheus.NewDesc("kafka_topic_partitions", "Number of partitions for this Topic", []string{"topic"}, nil)
	tpLabels          = []string{"topic", "partition"}
	descCurrentOffset = prometheus.NewDesc("kafka_topic_partition_current_offset", "Current Offset of a Broker at Topic/Partition", tpLabels, nil)
	descOldestOffset  = prometheus.NewDesc("kafka_topic_partition_oldest_offset", "Oldest Offset of a Broker at Topic/Partition", tpLabels, nil)
	descLeader        = prometheus.NewDesc("kafka_topic_partition_leader", "Leader Broker ID of this Topic/Partition", tpLabels, nil)
	descReplicas      = prometheus.NewDesc("kafka_topic_partition_replicas", "Number of Replicas for this Topic/Partition", tpLabels, nil)
	descISR           = prometheus.NewDesc("kafka_topic_partition_in_sync_replica", "Number of In-Sync Replicas for this Topic/Partition", tpLabels, nil)
	descPreferred     = prometheus.NewDesc("kafka_topic_partition_leader_is_preferred", "1 if Topic/Partition is using the Preferred Broker", tpLabels, nil)
	descUnderRepl     = prometheus.NewDesc("kafka_topic_partition_under_replicated_partition", "1 if Topic/Partition is under Replicated", tpLabels, nil)
	cgtpLabels        = []string{"consumergroup", "topic", "partition"}
	descCGOffset      = prometheus.NewDesc("kafka_consumergroup_current_offset", "Current Offset of a ConsumerGroup at Topic/Partition", cgtpLabels, nil)
	descCGOffsetSum   = prometheus.NewDesc("kafka_consumergroup_current_offset_sum", "Current Offset of a ConsumerGroup at Topic for all partitions", []string{"consumergroup", "topic"}, nil)
	descCGLag         = prometheus.NewDesc("kafka_consumergroup_lag", "Current Approximate Lag of a ConsumerGroup at Topic/Partition", cgtpLabels, nil)
	descCGLagSum      = prometheus.NewDesc("kafka_consumergroup_lag_sum", "Current Approximate Lag of a ConsumerGroup at Topic for all partitions", []string{"consumergroup", "topic"}, nil)
	descCGMembers     = prometheus.NewDesc("kafka_consumergroup_members", "Amount of members in a consumer group", []string{"consumergroup"}, nil)
)

// kobs's own metrics.
var (
	descLagSeconds     = prometheus.NewDesc("kobs_consumergroup_lag_seconds", "Estimated age in seconds of the oldest record the group has not consumed on Topic/Partition (absent when unknown).", cgtpLabels, nil)
	descMaxLagSeconds  = prometheus.NewDesc("kobs_consumergroup_max_lag_seconds", "Largest kobs_consumergroup_lag_seconds of the group.", []string{"consumergroup"}, nil)
	descGroupStatus    = prometheus.NewDesc("kobs_consumergroup_status", "Burrow-style group status as Burrow's code: 1 OK, 2 WARN, 3 ERR, 4 STOP, 5 STALL, 6 REWIND (worst partition).", []string{"consumergroup"}, nil)
	descPartStatus     = prometheus.NewDesc("kobs_consumergroup_partition_status", "Burrow-style partition status as Burrow's code: 1 OK, 2 WARN, 3 ERR, 4 STOP, 5 STALL, 6 REWIND.", cgtpLabels, nil)
	descNoCommit       = prometheus.NewDesc("kobs_consumergroup_partition_no_committed_offset", "1 if the group has no committed offset on a Topic/Partition it is assigned or consumes.", cgtpLabels, nil)
	descUnderMinISR    = prometheus.NewDesc("kobs_partition_under_min_isr", "1 if the ISR is smaller than min.insync.replicas (series present for failing partitions only).", tpLabels, nil)
	descAtMinISR       = prometheus.NewDesc("kobs_partition_at_min_isr", "1 if the ISR size equals min.insync.replicas (series present for failing partitions only).", tpLabels, nil)
	descOffline        = prometheus.NewDesc("kobs_partition_offline", "1 if the partition has no live leader (series present for failing partitions only).", tpLabels, nil)
	descISRMissing     = prometheus.NewDesc("kobs_partition_isr_missing", "1 for each replica broker missing from the partition's ISR.", []string{"topic", "partition", "broker"}, nil)
	descFailingSince   = prometheus.NewDesc("kobs_partition_failing_since_timestamp_seconds", "When the agent first saw the partition failing (under-replicated, under/at min ISR, offline or leader not preferred), continuously.", tpLabels, nil)
	descUp             = prometheus.NewDesc("kobs_agent_up", "1 if the last collection cycle read the cluster and its data is fresh; 0 means every other cluster metric is withheld.", nil, nil)
	descCycleSeconds   = prometheus.NewDesc("kobs_agent_cycle_seconds", "Duration of the last collection cycle.", nil, nil)
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
		descBrokers, descBrokerInfo, descTopicParts, descCurrentOffset, descOldestOffset, descLeader,
		descReplicas, descISR, descPreferred, descUnderRepl, descCGOffset, descCGOffsetSum, descCGLag,
		descCGLagSum, descCGMembers, descLagSeconds, descMaxLagSeconds, descGroupStatus, descPartStatus,
		descNoCommit, descUnderMinISR, descAtMinISR, descOffline, descISRMissing, descFailingSince, descUp,
		descCycleSeconds, descLastSuccess, descPartial, descUnreachable, descControllerInfo,
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
	failing := make(map[TopicPartition]*FailingPartition, len(v.Failing))
	for i := range v.Failing {
		failing[TopicPartition{v.Failing[i].Topic, v.Failing[i].Partition}] = &v.Failing[i]
	}
	for _, t := range s.Topics {
		gauge(descTopicParts, float64(len(t.Partitions)), t.Name)
		for _, p := range t.Partitions {
			part := itoa(p.Partition)
			if p.End >= 0 {
				gauge(descCurrentOffset, float64(p.End), t.Name, part)
			}
			if p.Start >= 0 {
				gauge(descOldestOffset, float64(p.Start), t.Name, part)
			}
			gauge(descLeader, float64(p.Leader), t.Name, part)
			gauge(descReplicas, float64(len(p.Replicas)), t.Name, part)
			gauge(descISR, float64(len(p.ISR)), t.Name, part)
			gauge(descPreferred, b2f(len(p.Replicas) > 0 && p.Leader == p.Replicas[0]), t.Name, part)
			gauge(descUnderRepl, b2f(len(p.ISR) < len(p.Replicas)), t.Name, part)
			// The kobs_partition_* series exist for failing partitions
			// only: at 100,000 partitions, three always-0 series each
			// would add 300,000 series to every scrape.
			if f := failing[TopicPartition{t.Name, p.Partition}]; f != nil {
				gauge(descUnderMinISR, b2f(f.Has(UnderMinISR)), t.Name, part)
				gauge(descAtMinISR, b2f(f.Has(AtMinISR)), t.Name, part)
				gauge(descOffline, b2f(f.Has(Offline)), t.Name, part)
				gauge(descFailingSince, float64(f.Since.UnixNano())/1e9, t.Name, part)
				for _, b := range f.Missing {
					gauge(descISRMissing, 1, t.Name, part, itoa(b))
				}
			}
		}
	}
	for _, name := range v.GroupNames {
		gl := v.Groups[name]
		gauge(descCGMembers, float64(gl.Members), name)
		gauge(descGroupStatus, float64(gl.Status.Code()), name)
		if !math.IsNaN(gl.MaxLagSeconds) {
			gauge(descMaxLagSeconds, gl.MaxLagSeconds, name)
		}
		consumed := map[string]bool{}
		for _, pl := range gl.Partitions {
			if !pl.NoCommit() {
				consumed[pl.Topic] = true
			}
		}
		for _, pl := range gl.Partitions {
			part := itoa(pl.Partition)
			if pl.NoCommit() {
				gauge(descNoCommit, 1, name, pl.Topic, part)
			}
			// kafka_exporter reports the topics a group has committed
			// to, -1 where a partition has no commit.
			if consumed[pl.Topic] {
				gauge(descCGOffset, float64(pl.Committed), name, pl.Topic, part)
				if pl.NoCommit() {
					gauge(descCGLag, -1, name, pl.Topic, part)
				} else if pl.Lag >= 0 {
					gauge(descCGLag, float64(pl.Lag), name, pl.Topic, part)
				}
			}
			if !pl.NoCommit() {
				gauge(descPartStatus, float64(pl.Status.Code()), name, pl.Topic, part)
			}
			if !math.IsNaN(pl.LagSeconds) {
				gauge(descLagSeconds, pl.LagSeconds, name, pl.Topic, part)
			}
		}
		for topic := range consumed {
			gauge(descCGOffsetSum, float64(gl.TopicOffset[topic]), name, topic)
			gauge(descCGLagSum, float64(gl.TopicLag[topic]), name, topic)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }
