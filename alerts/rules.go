package alerts

import "github.com/kobs-dev/kobs/dashboards"

// Rule is one alerting rule with the promtool unit-test cases that prove it
// fires when it should and stays quiet when it should not.
type Rule struct {
	Alert       string
	Expr        string
	For         string // Prometheus duration; "" fires on the first evaluation
	Severity    string // critical pages someone; warning goes to a ticket or chat
	Summary     string // text/template with $labels and $value, as Prometheus expands it
	Description string
	Cases       []Case
}

// Case is one promtool alert_rule_test: input series, an evaluation time,
// and the alerts expected to be firing then (none for a "stays quiet" case).
type Case struct {
	Name     string
	Series   []Series
	EvalTime string
	Fire     []map[string]string // labels of each expected alert, besides severity
	Value    float64             // the alert's value at EvalTime, for $value in annotations
}

// Series is a promtool input series in expanding notation ("1 0x10").
type Series struct {
	Series, Values string
}

// Group is a rule group; Interval is its evaluation interval.
type Group struct {
	Name     string
	Interval string
	Rules    []Rule
}

const (
	critical = "critical"
	warning  = "warning"
)

// Thresholds, named so the runbook and the rules say the same numbers.
const (
	LagSecondsThreshold       = 300  // consumer more than 5 minutes behind
	ProduceP99ThresholdMs     = 500  // produce p99
	FetchP99ThresholdMs       = 2000 // consumer fetch p99 (includes the fetch.max.wait.ms long poll, 500 ms by default)
	HandlerIdleThreshold      = 0.2  // request handler threads busy 80% of the time
	IsrShrinksThreshold       = 5    // ISR shrinks per broker in 15 minutes
	AgentStaleSeconds         = 120  // no successful agent cycle for 2 minutes
	TracePipelineBehindSecond = 120  // trace shipper more than 2 minutes behind
)

var (
	brokerUp = `up{job="` + dashboards.BrokerJob + `"}`
	agentUp  = `up{job="` + dashboards.AgentJob + `"}`
)

// Groups returns every rule group, in file order.
func Groups() []Group {
	return []Group{
		{Name: "kobs-brokers", Interval: "30s", Rules: brokerRules()},
		{Name: "kobs-consumers", Interval: "30s", Rules: consumerRules()},
		{Name: "kobs-pipeline", Interval: "30s", Rules: pipelineRules()},
	}
}

func brokerRules() []Rule {
	return []Rule{
		{
			Alert: "KobsBrokerDown", Expr: brokerUp + ` == 0`, For: "1m", Severity: critical,
			Summary:     `Broker {{ $labels.instance }} is down`,
			Description: `Prometheus has not been able to scrape the kobs broker at {{ $labels.instance }} for 1 minute: the process is down, hung or unreachable. Its partitions have lost a replica or their leader.`,
			Cases: []Case{
				{Name: "down for 2 minutes", EvalTime: "3m",
					Series: []Series{{`up{job="kobs-broker",instance="b1:8778"}`, "1 0x5"}, {`up{job="kobs-broker",instance="b2:8778"}`, "1x5"}},
					Fire:   []map[string]string{{"job": "kobs-broker", "instance": "b1:8778"}}},
				{Name: "a short blip", EvalTime: "3m",
					Series: []Series{{`up{job="kobs-broker",instance="b1:8778"}`, "1 1 0 1 1 1"}}},
			},
		},
		{
			Alert: "KobsNoActiveController", Expr: `sum(kafka_controller_kafkacontroller_activecontrollercount) == 0`, For: "1m", Severity: critical,
			Summary:     `No active controller`,
			Description: `No broker reports ActiveControllerCount 1: the metadata quorum has no leader, so no leader elections, topic changes or ISR changes happen.`,
			Cases: []Case{
				{Name: "no controller", EvalTime: "3m",
					Series: []Series{{`kafka_controller_kafkacontroller_activecontrollercount{instance="b1:8778"}`, "0x5"}, {`kafka_controller_kafkacontroller_activecontrollercount{instance="b2:8778"}`, "0x5"}},
					Fire:   []map[string]string{{}}},
				{Name: "one controller", EvalTime: "3m",
					Series: []Series{{`kafka_controller_kafkacontroller_activecontrollercount{instance="b1:8778"}`, "1x5"}, {`kafka_controller_kafkacontroller_activecontrollercount{instance="b2:8778"}`, "0x5"}}},
			},
		},
		{
			Alert: "KobsMultipleActiveControllers", Expr: `sum(kafka_controller_kafkacontroller_activecontrollercount) > 1`, For: "1m", Severity: critical,
			Summary:     `{{ $value }} brokers claim to be the active controller`,
			Description: `More than one broker reports ActiveControllerCount 1 for over a minute: a split metadata quorum. Metadata changes may be lost or conflict.`,
			Cases: []Case{
				{Name: "two controllers", EvalTime: "3m",
					Series: []Series{{`kafka_controller_kafkacontroller_activecontrollercount{instance="b1:8778"}`, "1x5"}, {`kafka_controller_kafkacontroller_activecontrollercount{instance="b2:8778"}`, "1x5"}},
					Value:  2, Fire: []map[string]string{{}}},
				{Name: "handover", EvalTime: "3m",
					Series: []Series{{`kafka_controller_kafkacontroller_activecontrollercount{instance="b1:8778"}`, "1 1 1 0 0 0"}, {`kafka_controller_kafkacontroller_activecontrollercount{instance="b2:8778"}`, "0 0 1 1 1 1"}}},
			},
		},
		{
			Alert: "KobsOfflinePartitions", Expr: `max(kafka_controller_kafkacontroller_offlinepartitionscount) > 0`, For: "1m", Severity: critical,
			Summary:     `{{ $value }} partitions are offline`,
			Description: `{{ $value }} partitions have no leader: producers and consumers of these partitions get errors. Every replica of them is on a broker that is down, or no in-sync replica is left to elect.`,
			Cases: []Case{
				{Name: "offline", EvalTime: "3m", Series: []Series{{`kafka_controller_kafkacontroller_offlinepartitionscount{instance="b1:8778"}`, "0 3x5"}}, Value: 3, Fire: []map[string]string{{}}},
				{Name: "all online", EvalTime: "3m", Series: []Series{{`kafka_controller_kafkacontroller_offlinepartitionscount{instance="b1:8778"}`, "0x5"}}},
			},
		},
		{
			Alert: "KobsUnderReplicatedPartitions", Expr: `sum by (instance) (kafka_server_replicamanager_underreplicatedpartitions) > 0`, For: "5m", Severity: warning,
			Summary:     `{{ $value }} under-replicated partitions led by {{ $labels.instance }}`,
			Description: `Broker {{ $labels.instance }} leads {{ $value }} partitions whose ISR has been smaller than the replica set for 5 minutes: a follower is down or cannot keep up. One more failure can make them unavailable or lose acknowledged data.`,
			Cases: []Case{
				{Name: "for 6 minutes", EvalTime: "7m", Series: []Series{{`kafka_server_replicamanager_underreplicatedpartitions{instance="b1:8778"}`, "2x10"}}, Value: 2, Fire: []map[string]string{{"instance": "b1:8778"}}},
				{Name: "for 3 minutes only", EvalTime: "7m", Series: []Series{{`kafka_server_replicamanager_underreplicatedpartitions{instance="b1:8778"}`, "0 0 0 0 2 2 2 2 2 2"}}},
			},
		},
		{
			Alert: "KobsUnderMinIsrPartitions", Expr: `sum by (instance) (kafka_server_replicamanager_underminisrpartitioncount) > 0`, For: "1m", Severity: critical,
			Summary:     `{{ $value }} partitions led by {{ $labels.instance }} are under min.insync.replicas`,
			Description: `Broker {{ $labels.instance }} leads {{ $value }} partitions whose ISR is smaller than min.insync.replicas: producers with acks=all get NOT_ENOUGH_REPLICAS and cannot write.`,
			Cases: []Case{
				{Name: "under min ISR", EvalTime: "3m", Series: []Series{{`kafka_server_replicamanager_underminisrpartitioncount{instance="b1:8778"}`, "1x5"}}, Value: 1, Fire: []map[string]string{{"instance": "b1:8778"}}},
				{Name: "healthy", EvalTime: "3m", Series: []Series{{`kafka_server_replicamanager_underminisrpartitioncount{instance="b1:8778"}`, "0x5"}}},
			},
		},
		{
			Alert: "KobsOfflineLogDirectory", Expr: `kafka_log_logmanager_offlinelogdirectorycount > 0`, Severity: critical,
			Summary:     `{{ $value }} log directories offline on {{ $labels.instance }}`,
			Description: `Broker {{ $labels.instance }} took {{ $value }} of its log.dirs offline after an I/O error: the replicas on them are offline, and partitions led there moved or went offline.`,
			Cases: []Case{
				{Name: "disk failed", EvalTime: "2m", Series: []Series{{`kafka_log_logmanager_offlinelogdirectorycount{instance="b1:8778"}`, "0 1x3"}}, Value: 1, Fire: []map[string]string{{"instance": "b1:8778"}}},
				{Name: "all online", EvalTime: "2m", Series: []Series{{`kafka_log_logmanager_offlinelogdirectorycount{instance="b1:8778"}`, "0x3"}}},
			},
		},
		{
			Alert: "KobsLogCleanerUncleanablePartitions", Expr: `sum by (instance) (kafka_log_logcleanermanager_uncleanable_partitions_count) > 0`, For: "15m", Severity: warning,
			Summary:     `{{ $value }} compacted partitions on {{ $labels.instance }} cannot be cleaned`,
			Description: `The log cleaner of {{ $labels.instance }} fails on {{ $value }} compacted partitions (LogCleanerManager uncleanable-partitions-count) and has for 15 minutes: they grow without bound (__consumer_offsets among them slows every group load) until the cause is fixed.`,
			Cases: []Case{
				{Name: "stuck", EvalTime: "20m", Series: []Series{{`kafka_log_logcleanermanager_uncleanable_partitions_count{instance="b1:8778",logDirectory="\"/data\""}`, "1x20"}}, Value: 1, Fire: []map[string]string{{"instance": "b1:8778"}}},
				{Name: "cleaned again", EvalTime: "20m", Series: []Series{{`kafka_log_logcleanermanager_uncleanable_partitions_count{instance="b1:8778",logDirectory="\"/data\""}`, "1x5 0x15"}}},
			},
		},
		{
			Alert: "KobsFrequentIsrShrinks", Expr: `sum by (instance) (increase(kafka_server_replicamanager_isrshrinks_total[15m])) > 5`, Severity: warning,
			Summary:     `ISR of partitions led by {{ $labels.instance }} shrank {{ printf "%.0f" $value }} times in 15 minutes`,
			Description: `Followers keep dropping out of the ISR of partitions led by {{ $labels.instance }} (and usually rejoin): a slow or flapping follower, network trouble, or replica.lag.time.max.ms too low for the load.`,
			Cases: []Case{
				{Name: "flapping", EvalTime: "15m", Series: []Series{{`kafka_server_replicamanager_isrshrinks_total{instance="b1:8778"}`, "0+1x15"}}, Value: 15, Fire: []map[string]string{{"instance": "b1:8778"}}},
				{Name: "one shrink", EvalTime: "15m", Series: []Series{{`kafka_server_replicamanager_isrshrinks_total{instance="b1:8778"}`, "0x5 1x10"}}},
			},
		},
		{
			Alert: "KobsProduceLatencyHigh", Expr: `max by (instance) (kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.99"}) > ` + itoa(ProduceP99ThresholdMs), For: "10m", Severity: warning,
			Summary:     `Produce p99 on {{ $labels.instance }} is {{ printf "%.0f" $value }} ms`,
			Description: `The 99th percentile of Produce request time on {{ $labels.instance }} has been above ` + itoa(ProduceP99ThresholdMs) + ` ms for 10 minutes. Producers see slow acknowledgements and may time out.`,
			Cases: []Case{
				{Name: "slow", EvalTime: "12m", Series: []Series{{`kafka_network_requestmetrics_totaltimems{instance="b1:8778",request="Produce",quantile="0.99"}`, "900x15"}}, Value: 900, Fire: []map[string]string{{"instance": "b1:8778"}}},
				{Name: "fast", EvalTime: "12m", Series: []Series{{`kafka_network_requestmetrics_totaltimems{instance="b1:8778",request="Produce",quantile="0.99"}`, "20x15"}}},
			},
		},
		{
			Alert: "KobsFetchLatencyHigh", Expr: `max by (instance) (kafka_network_requestmetrics_totaltimems{request="FetchConsumer",quantile="0.99"}) > ` + itoa(FetchP99ThresholdMs), For: "10m", Severity: warning,
			Summary:     `Consumer fetch p99 on {{ $labels.instance }} is {{ printf "%.0f" $value }} ms`,
			Description: `The 99th percentile of consumer Fetch time on {{ $labels.instance }} has been above ` + itoa(FetchP99ThresholdMs) + ` ms for 10 minutes, well past the default fetch.max.wait.ms of 500 ms.`,
			Cases: []Case{
				{Name: "slow", EvalTime: "12m", Series: []Series{{`kafka_network_requestmetrics_totaltimems{instance="b1:8778",request="FetchConsumer",quantile="0.99"}`, "2600x15"}}, Value: 2600, Fire: []map[string]string{{"instance": "b1:8778"}}},
				{Name: "long polls only", EvalTime: "12m", Series: []Series{{`kafka_network_requestmetrics_totaltimems{instance="b1:8778",request="FetchConsumer",quantile="0.99"}`, "501x15"}}},
			},
		},
		{
			Alert: "KobsRequestHandlerIdleLow", Expr: `kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_oneminuterate < ` + ftoa(HandlerIdleThreshold), For: "10m", Severity: warning,
			Summary:     `Request handlers on {{ $labels.instance }} are only {{ printf "%.2f" $value }} idle`,
			Description: `The request handler threads on {{ $labels.instance }} have been idle less than ` + itoa(int(HandlerIdleThreshold*100)) + `% of the time for 10 minutes: requests queue up (see RequestQueueTimeMs) and every client slows down.`,
			Cases: []Case{
				{Name: "saturated", EvalTime: "12m", Series: []Series{{`kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_oneminuterate{instance="b1:8778"}`, "0.05x15"}}, Value: 0.05, Fire: []map[string]string{{"instance": "b1:8778"}}},
				{Name: "idle", EvalTime: "12m", Series: []Series{{`kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_oneminuterate{instance="b1:8778"}`, "0.9x15"}}},
			},
		},
	}
}

func consumerRules() []Rule {
	return []Rule{
		{
			Alert: "KobsConsumerLagHigh", Expr: `max by (consumergroup, topic) (kobs_consumergroup_lag_seconds) > ` + itoa(LagSecondsThreshold), For: "5m", Severity: warning,
			Summary:     `Group {{ $labels.consumergroup }} is {{ printf "%.0f" $value }} s behind on {{ $labels.topic }}`,
			Description: `The oldest record consumer group {{ $labels.consumergroup }} has not consumed from topic {{ $labels.topic }} is more than ` + itoa(LagSecondsThreshold) + ` seconds old, for 5 minutes.`,
			Cases: []Case{
				{Name: "behind", EvalTime: "8m", Series: []Series{{`kobs_consumergroup_lag_seconds{consumergroup="g",topic="t",partition="0"}`, "400+30x10"}, {`kobs_consumergroup_lag_seconds{consumergroup="g",topic="t",partition="1"}`, "1x10"}},
					Value: 640, Fire: []map[string]string{{"consumergroup": "g", "topic": "t"}}},
				{Name: "keeping up", EvalTime: "8m", Series: []Series{{`kobs_consumergroup_lag_seconds{consumergroup="g",topic="t",partition="0"}`, "2x10"}}},
			},
		},
		{
			Alert: "KobsConsumerGroupStalled", Expr: `max by (consumergroup) ((kobs_consumergroup_partition_status == 4) or (kobs_consumergroup_partition_status == 5))`, For: "5m", Severity: warning,
			Summary:     `Group {{ $labels.consumergroup }} has stopped or stalled`,
			Description: `Consumer group {{ $labels.consumergroup }} has a partition in Burrow status STOP (no commits while lag is left) or STALL (commits, but the offset does not move while lag is left) for 5 minutes.`,
			Cases: []Case{
				{Name: "stalled", EvalTime: "8m", Series: []Series{{`kobs_consumergroup_partition_status{consumergroup="g",topic="t",partition="0"}`, "5x10"}, {`kobs_consumergroup_partition_status{consumergroup="g",topic="t",partition="1"}`, "1x10"}},
					Fire: []map[string]string{{"consumergroup": "g"}}},
				{Name: "warn only", EvalTime: "8m", Series: []Series{{`kobs_consumergroup_partition_status{consumergroup="g",topic="t",partition="0"}`, "2x10"}}},
			},
		},
		{
			Alert: "KobsAgentDown", Expr: agentUp + ` == 0 or kobs_agent_up == 0`, For: "2m", Severity: warning,
			Summary:     `kobs agent {{ $labels.instance }} is down or cannot reach the cluster`,
			Description: `The kobs agent at {{ $labels.instance }} cannot be scraped, or its last collection cycle failed (kobs_agent_up 0), for 2 minutes: consumer lag and failing-ISR data are missing or stale.`,
			Cases: []Case{
				{Name: "agent up but cycle failing", EvalTime: "4m", Series: []Series{{`up{job="kobs-agent",instance="a:9308"}`, "1x5"}, {`kobs_agent_up{job="kobs-agent",instance="a:9308"}`, "0x5"}},
					Fire: []map[string]string{{"job": "kobs-agent", "instance": "a:9308"}}},
				{Name: "healthy", EvalTime: "4m", Series: []Series{{`up{job="kobs-agent",instance="a:9308"}`, "1x5"}, {`kobs_agent_up{job="kobs-agent",instance="a:9308"}`, "1x5"}}},
			},
		},
		{
			Alert: "KobsAgentStale", Expr: `time() - kobs_agent_last_success_timestamp_seconds > ` + itoa(AgentStaleSeconds), Severity: warning,
			Summary:     `kobs agent {{ $labels.instance }} has not completed a cycle for {{ printf "%.0f" $value }} s`,
			Description: `The agent at {{ $labels.instance }} answers scrapes but its last successful collection is more than ` + itoa(AgentStaleSeconds) + ` seconds old: the lag and ISR numbers are stale.`,
			Cases: []Case{
				// the last success stays at t=60s while time goes on
				{Name: "stuck", EvalTime: "5m", Series: []Series{{`kobs_agent_last_success_timestamp_seconds{instance="a:9308"}`, "0 60x6"}}, Value: 240, Fire: []map[string]string{{"instance": "a:9308"}}},
				{Name: "fresh", EvalTime: "5m", Series: []Series{{`kobs_agent_last_success_timestamp_seconds{instance="a:9308"}`, "0+60x6"}}},
			},
		},
	}
}

func pipelineRules() []Rule {
	return []Rule{
		{
			Alert: "KobsTracePipelineBehind", Expr: `max(kobs_consumergroup_lag_seconds{consumergroup="` + dashboards.ShipperGroup + `"}) > ` + itoa(TracePipelineBehindSecond), For: "5m", Severity: warning,
			Summary:     `The trace shipper is {{ printf "%.0f" $value }} s behind`,
			Description: `The trace shipper (consumer group ` + dashboards.ShipperGroup + `) has been more than ` + itoa(TracePipelineBehindSecond) + ` seconds behind the trace topic for 5 minutes: recent journeys are not queryable yet, and if it stays behind past the trace topic's retention, events are lost.`,
			Cases: []Case{
				{Name: "behind", EvalTime: "8m", Series: []Series{{`kobs_consumergroup_lag_seconds{consumergroup="kobs-trace-shipper",topic="__kobs_trace",partition="0"}`, "300x10"}}, Value: 300, Fire: []map[string]string{{}}},
				{Name: "other group behind", EvalTime: "8m", Series: []Series{{`kobs_consumergroup_lag_seconds{consumergroup="billing",topic="orders",partition="0"}`, "300x10"}}},
			},
		},
		{
			Alert: "KobsTraceEventsDropped", Expr: `sum(increase(kobs_trace_events_dropped_total[10m])) > 0`, Severity: warning,
			Summary:     `{{ printf "%.0f" $value }} trace events dropped in 10 minutes`,
			Description: `Trace events were dropped in the last 10 minutes (interceptor buffers full, or events the store refused): the journeys of the affected messages are incomplete.`,
			Cases: []Case{
				{Name: "dropping", EvalTime: "10m", Series: []Series{{`kobs_trace_events_dropped_total{client="p1"}`, "0 0 5+5x10"}}, Value: 45, Fire: []map[string]string{{}}},
				{Name: "none dropped", EvalTime: "10m", Series: []Series{{`kobs_trace_events_dropped_total{client="p1"}`, "0x12"}}},
			},
		},
		{
			Alert: "KobsAuditMissingRecords", Expr: `max by (topic, group) (kobs_audit_missing_records) > 0`, For: "1m", Severity: warning,
			Summary:     `Group {{ $labels.group }} is missing {{ printf "%.0f" $value }} records of {{ $labels.topic }}`,
			Description: `The audit reconciler found records produced to {{ $labels.topic }} that consumer group {{ $labels.group }} did not consume, in buckets past their grace period.`,
			Cases: []Case{
				{Name: "missing", EvalTime: "3m", Series: []Series{{`kobs_audit_missing_records{topic="t",group="g"}`, "0 12x5"}}, Value: 12, Fire: []map[string]string{{"topic": "t", "group": "g"}}},
				{Name: "complete", EvalTime: "3m", Series: []Series{{`kobs_audit_missing_records{topic="t",group="g"}`, "0x5"}}},
			},
		},
	}
}
