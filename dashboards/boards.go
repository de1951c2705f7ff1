package dashboards

// Scrape jobs the queries select on. The generated Prometheus config
// (alerts/generated/prometheus.yml) uses these names; a hand-written one
// must too, or the "up" panels and the down alerts find nothing.
const (
	BrokerJob = "kobs-broker"
	AgentJob  = "kobs-agent"
	AuditJob  = "kobs-audit"
	// TraceJob scrapes the trace shipper's /metrics (kobs run: the trace
	// store's address; kobs trace ship --listen).
	TraceJob = "kobs-trace"
)

// ShipperGroup is the trace shipper's consumer group (tracing.ShipperConfig's
// default); its lag is how far the trace pipeline is behind.
const ShipperGroup = "kobs-trace-shipper"

// All returns every dashboard, in file order.
func All() []Spec {
	return []Spec{clusterOverview(), brokerDetail(), topics(), consumerLag(), replication(), messageTrace(), audit()}
}

// Helpers keep the specs short. ts/st/tb build time series, stat and table
// panels; q is a range query, iq an instant one.
func ts(title, unit, desc string, w, h uint32, qs ...Query) Panel {
	return Panel{Kind: TimeSeries, Title: title, Unit: unit, Description: desc, W: w, H: h, Queries: qs}
}

func st(title, unit, desc string, qs ...Query) Panel {
	return Panel{Kind: Stat, Title: title, Unit: unit, Description: desc, W: 4, H: 4, Queries: qs}
}

func tb(title, unit, desc string, w, h uint32, qs ...Query) Panel {
	return Panel{Kind: Table, Title: title, Unit: unit, Description: desc, W: w, H: h, Queries: qs}
}

func q(expr, legend string) Query  { return Query{Expr: expr, Legend: legend} }
func iq(expr, legend string) Query { return Query{Expr: expr, Legend: legend, Instant: true} }

// rate is rate() over Grafana's $__rate_interval.
func rate(sel string) string { return "rate(" + sel + "[$__rate_interval])" }

func duringFailure(p Panel) Panel { p.OnlyDuringFailure = true; return p }

func clusterOverview() Spec {
	bt := func(name string) string { return `kafka_server_brokertopicmetrics_` + name } // all-topics bean: no topic label
	return Spec{
		File: "kobs-cluster-overview", UID: "kobs-cluster-overview", Title: "kobs / Cluster overview",
		Description: "Is the cluster up, are partitions safe, is data flowing: brokers, controller, partition health, throughput and request latency.",
		Tags:        []string{"kobs", "kafka"},
		Rows: []Row{
			{Title: "Health", Panels: []Panel{
				st("Brokers up", "short", "Broker scrape targets Prometheus reaches (up == 1) out of those it is configured to scrape. A broker that is down or unreachable counts here first.",
					q(`sum(up{job="`+BrokerJob+`"})`, "up"), q(`count(up{job="`+BrokerJob+`"})`, "configured")),
				st("Active controllers", "short", "Brokers reporting ActiveControllerCount 1. Exactly one is healthy; 0 means no controller (no leader elections, no ISR changes), more than one a split brain.",
					q(`sum(kafka_controller_kafkacontroller_activecontrollercount)`, "active controllers")),
				st("Offline partitions", "short", "Partitions without a leader (KafkaController OfflinePartitionsCount): unavailable for produce and consume.",
					q(`max(kafka_controller_kafkacontroller_offlinepartitionscount)`, "offline")),
				st("Under-replicated partitions", "short", "Partitions whose ISR is smaller than their replica set, summed over leaders (ReplicaManager UnderReplicatedPartitions).",
					q(`sum(kafka_server_replicamanager_underreplicatedpartitions)`, "under-replicated")),
				st("Under min ISR", "short", "Partitions whose ISR is below min.insync.replicas: acks=all produce fails with NOT_ENOUGH_REPLICAS.",
					q(`sum(kafka_server_replicamanager_underminisrpartitioncount)`, "under min ISR")),
				st("Partitions", "short", "Partitions in the cluster as the controller sees them (GlobalPartitionCount), across GlobalTopicCount topics.",
					q(`max(kafka_controller_kafkacontroller_globalpartitioncount)`, "partitions")),
			}},
			{Title: "Throughput", Panels: []Panel{
				ts("Messages in", "short", "Messages appended per second per broker: rate() of the MessagesInPerSec counter over the scrapes, next to the broker's own one-minute EWMA (OneMinuteRate), which lags a step change by about a minute.", 12, 8,
					q(`sum by (instance) (`+rate(bt("messagesin_total")+`{topic=""}`)+`)`, "{{instance}} rate()"),
					q(`sum by (instance) (`+bt("messagesin_oneminuterate")+`{topic=""})`, "{{instance}} OneMinuteRate")),
				ts("Bytes in / out", "Bps", "Bytes per second received from producers (in) and sent to consumers and followers (out), per broker: rate() of the counters next to the brokers' OneMinuteRate.", 12, 8,
					q(`sum by (instance) (`+rate(bt("bytesin_total")+`{topic=""}`)+`)`, "{{instance}} in"),
					q(`sum by (instance) (`+rate(bt("bytesout_total")+`{topic=""}`)+`)`, "{{instance}} out"),
					q(`sum by (instance) (`+bt("bytesin_oneminuterate")+`{topic=""})`, "{{instance}} in OneMinuteRate"),
					q(`sum by (instance) (`+bt("bytesout_oneminuterate")+`{topic=""})`, "{{instance}} out OneMinuteRate")),
			}},
			{Title: "Requests", Panels: []Panel{
				ts("Request rate by type", "reqps", "Requests per second by Kafka API (RequestMetrics RequestsPerSec, all versions and brokers).", 12, 8,
					q(`sum by (request) (`+rate(`kafka_network_requestmetrics_requests_total`)+`) > 0`, "{{request}}")),
				ts("p99 total time by request type", "ms", "99th percentile of TotalTimeMs (receive to response sent) by API, worst broker, for the APIs that served requests in the last 5 minutes. Produce with acks=all includes the wait for the ISR.", 12, 8,
					q(`max by (request) (kafka_network_requestmetrics_totaltimems{quantile="0.99"}) and on (request) (sum by (request) (rate(kafka_network_requestmetrics_totaltimems_count[5m])) > 0)`, "{{request}}")),
				ts("Failed produce / fetch requests", "reqps", "Produce and fetch requests that failed on the broker (BrokerTopicMetrics Failed*RequestsPerSec), per second.", 12, 8,
					q(`sum by (instance) (`+rate(bt("failedproducerequests_total")+`{topic=""}`)+`)`, "{{instance}} produce"),
					q(`sum by (instance) (`+rate(bt("failedfetchrequests_total")+`{topic=""}`)+`)`, "{{instance}} fetch")),
				ts("Request handler idle", "percentunit", "Share of time the request handler threads wait for work, one-minute rate (RequestHandlerAvgIdlePercent). Below 0.3 the broker is saturated.", 12, 8,
					q(`kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_oneminuterate`, "{{instance}}")),
			}},
		},
	}
}

func brokerDetail() Spec {
	b := `instance=~"$broker"`
	breakdown := func(request string) []Query {
		var qs []Query
		for _, part := range []struct{ metric, legend string }{
			{"requestqueuetimems", "request queue"}, {"localtimems", "local"}, {"remotetimems", "remote"},
			{"responsequeuetimems", "response queue"}, {"responsesendtimems", "response send"},
		} {
			qs = append(qs, q(`max(kafka_network_requestmetrics_`+part.metric+`{`+b+`,request="`+request+`",quantile="0.99"})`, part.legend))
		}
		return qs
	}
	return Spec{
		File: "kobs-broker", UID: "kobs-broker", Title: "kobs / Broker detail",
		Description: "One broker (or several): thread pools, queues, where request time goes, log flushes, partitions and leaders.",
		Tags:        []string{"kobs", "kafka"},
		Vars:        []Var{{Name: "broker", Label: "Broker", Query: `label_values(kafka_server_replicamanager_leadercount, instance)`}},
		Rows: []Row{
			{Title: "Threads and queues", Panels: []Panel{
				ts("Request handler idle", "percentunit", "Share of time request handler threads wait for work: one-minute rate and lifetime mean (RequestHandlerAvgIdlePercent). Low idle means requests queue behind busy handlers.", 8, 8,
					q(`kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_oneminuterate{`+b+`}`, "{{instance}} 1m"),
					q(`kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent{`+b+`}`, "{{instance}} lifetime mean")),
				ts("Network processor idle", "percentunit", "Share of time the network threads wait for I/O (SocketServer NetworkProcessorAvgIdlePercent). Below 0.3 the network layer is saturated.", 8, 8,
					q(`kafka_network_socketserver_networkprocessoravgidle_percent{`+b+`}`, "{{instance}}")),
				ts("Request and response queues", "short", "Requests waiting for a handler thread (RequestQueueSize) and responses waiting for a network thread (ResponseQueueSize).", 8, 8,
					q(`kafka_network_requestchannel_requestqueuesize{`+b+`}`, "{{instance}} requests"),
					q(`kafka_network_requestchannel_responsequeuesize{`+b+`}`, "{{instance}} responses")),
			}},
			{Title: "Request time breakdown (p99)", Panels: []Panel{
				ts("Produce time breakdown", "ms", "Where Produce requests spend their time, 99th percentile: queued for a handler, local append, remote (waiting for followers with acks=all), queued for the network thread, sending.", 12, 8,
					breakdown("Produce")...),
				ts("Consumer fetch time breakdown", "ms", "Where consumer Fetch requests spend their time, 99th percentile; remote time is the fetch.max.wait.ms long poll when there is no new data.", 12, 8,
					breakdown("FetchConsumer")...),
				ts("Request rate", "reqps", "Requests per second on this broker by API.", 12, 8,
					q(`sum by (request) (`+rate(`kafka_network_requestmetrics_requests_total{`+b+`}`)+`) > 0`, "{{request}}")),
				ts("Errors by code", "reqps", "Error codes in responses per second (RequestMetrics ErrorsPerSec), NONE excluded.", 12, 8,
					q(`sum by (request, error) (`+rate(`kafka_network_requestmetrics_errors_total{`+b+`,error!="NONE"}`)+`) > 0`, "{{request}} {{error}}")),
			}},
			{Title: "Log and partitions", Panels: []Panel{
				ts("Log flush time", "ms", "Time to fsync a log segment (LogFlushStats LogFlushRateAndTimeMs), median and 99th percentile, and flushes per second.", 8, 8,
					q(`kafka_log_logflushstats_logflushrateandtimems{`+b+`,quantile="0.50"}`, "{{instance}} p50"),
					q(`kafka_log_logflushstats_logflushrateandtimems{`+b+`,quantile="0.99"}`, "{{instance}} p99")),
				ts("Partitions and leaders", "short", "Partition replicas on this broker (PartitionCount) and how many it leads (LeaderCount).", 8, 8,
					q(`kafka_server_replicamanager_partitioncount{`+b+`}`, "{{instance}} partitions"),
					q(`kafka_server_replicamanager_leadercount{`+b+`}`, "{{instance}} leaders")),
				ts("Bytes in / out", "Bps", "Bytes per second in from producers and out to consumers and followers on this broker.", 8, 8,
					q(`sum by (instance) (`+rate(`kafka_server_brokertopicmetrics_bytesin_total{`+b+`,topic=""}`)+`)`, "{{instance}} in"),
					q(`sum by (instance) (`+rate(`kafka_server_brokertopicmetrics_bytesout_total{`+b+`,topic=""}`)+`)`, "{{instance}} out")),
			}},
		},
	}
}

func topics() Spec {
	t := `topic=~"$topic",topic!=""` // topic!="": not the all-topics bean
	return Spec{
		File: "kobs-topics", UID: "kobs-topics", Title: "kobs / Topics",
		Description: "Per topic: messages and bytes in and out, log size and offsets per partition.",
		Tags:        []string{"kobs", "kafka"},
		Vars:        []Var{{Name: "topic", Label: "Topic", Query: `label_values(kafka_log_log_size, topic)`}},
		Rows: []Row{
			{Title: "Throughput", Panels: []Panel{
				ts("Messages in", "short", "Messages appended per second per topic, summed over brokers.", 8, 8,
					q(`sum by (topic) (`+rate(`kafka_server_brokertopicmetrics_messagesin_total{`+t+`}`)+`)`, "{{topic}}")),
				ts("Bytes in", "Bps", "Bytes per second produced per topic, summed over brokers.", 8, 8,
					q(`sum by (topic) (`+rate(`kafka_server_brokertopicmetrics_bytesin_total{`+t+`}`)+`)`, "{{topic}}")),
				ts("Bytes out", "Bps", "Bytes per second fetched per topic by consumers and followers, summed over brokers.", 8, 8,
					q(`sum by (topic) (`+rate(`kafka_server_brokertopicmetrics_bytesout_total{`+t+`}`)+`)`, "{{topic}}")),
			}},
			{Title: "Partitions", Panels: []Panel{
				ts("Log size per partition", "bytes", "Bytes on disk per partition (Log Size), largest replica.", 12, 8,
					q(`max by (topic, partition) (kafka_log_log_size{`+t+`})`, "{{topic}}-{{partition}}")),
				ts("Log end offset per partition", "short", "Next offset to be written per partition (Log LogEndOffset), highest replica; its slope is the partition's produce rate.", 12, 8,
					q(`max by (topic, partition) (kafka_log_log_logendoffset{`+t+`})`, "{{topic}}-{{partition}}")),
				tb("Partitions now", "short", "Per partition: log start and end offsets and size, current values.", 24, 8,
					iq(`max by (topic, partition) (kafka_log_log_logstartoffset{`+t+`})`, "start offset"),
					iq(`max by (topic, partition) (kafka_log_log_logendoffset{`+t+`})`, "end offset"),
					iq(`max by (topic, partition) (kafka_log_log_size{`+t+`})`, "size")),
			}},
		},
	}
}

func consumerLag() Spec {
	g := `consumergroup=~"$group",topic=~"$topic"`
	return Spec{
		File: "kobs-consumer-lag", UID: "kobs-consumer-lag", Title: "kobs / Consumer lag",
		Description: "Who is lagging: lag in offsets and in seconds per partition, Burrow-style status over time, group members. From the kobs agent.",
		Tags:        []string{"kobs", "kafka", "agent"},
		Vars: []Var{
			{Name: "group", Label: "Consumer group", Query: `label_values(kafka_consumergroup_lag, consumergroup)`},
			{Name: "topic", Label: "Topic", Query: `label_values(kafka_consumergroup_lag{consumergroup=~"$group"}, topic)`},
		},
		Rows: []Row{
			{Title: "Lag", Panels: []Panel{
				ts("Lag per partition (offsets)", "short", "High watermark minus committed offset per partition (kafka_consumergroup_lag), as kafka_exporter computes it; -1 when the group has not committed.", 12, 8,
					q(`kafka_consumergroup_lag{`+g+`}`, "{{consumergroup}} {{topic}}-{{partition}}")),
				ts("Lag per partition (seconds)", "s", "How old the oldest unconsumed record is per partition, interpolated from the partition's offset history as kafka-lag-exporter does (kobs_consumergroup_lag_seconds).", 12, 8,
					q(`kobs_consumergroup_lag_seconds{`+g+`}`, "{{consumergroup}} {{topic}}-{{partition}}")),
				ts("Lag per group and topic", "short", "Sum of partition lags per group and topic (kafka_consumergroup_lag_sum; partitions without a commit are left out).", 12, 8,
					q(`kafka_consumergroup_lag_sum{`+g+`}`, "{{consumergroup}} {{topic}}")),
				ts("Status over time", "short", "Burrow-style status per group, worst partition: 1 OK, 2 WARN, 3 ERR, 4 STOP, 5 STALL, 6 REWIND (kobs_consumergroup_status). Anything above 1 deserves a look.", 12, 8,
					q(`max by (consumergroup) (kobs_consumergroup_status{consumergroup=~"$group"})`, "{{consumergroup}}")),
			}},
			{Title: "Members", Panels: []Panel{
				ts("Members", "short", "Members per group (kafka_consumergroup_members); 0 means nobody is consuming.", 12, 6,
					q(`kafka_consumergroup_members{consumergroup=~"$group"}`, "{{consumergroup}}")),
				tb("Lag now", "short", "Current offset lag per partition, largest first.", 12, 6,
					iq(`sort_desc(kafka_consumergroup_lag{`+g+`})`, "lag")),
			}},
			{Title: "Agent", Panels: []Panel{
				ts("Agent up and partial", "short", "1 while the agent's last collection cycle read the cluster (kobs_agent_up; at 0 it withholds every lag metric rather than serve stale ones), and 1 when that cycle missed parts of the cluster (kobs_agent_partial).", 12, 6,
					q(`kobs_agent_up`, "{{instance}} up"), q(`kobs_agent_partial`, "{{instance}} partial")),
				ts("Agent freshness", "s", "Seconds since the agent's last successful cycle started, and how long its last cycle took. Lag numbers are this old.", 12, 6,
					q(`time() - kobs_agent_last_success_timestamp_seconds`, "{{instance}} age"), q(`kobs_agent_cycle_seconds`, "{{instance}} cycle time")),
			}},
		},
	}
}

func replication() Spec {
	return Spec{
		File: "kobs-replication", UID: "kobs-replication", Title: "kobs / Replication health",
		Description: "Which partitions lost replicas and since when, ISR churn, follower lag and the metadata quorum.",
		Tags:        []string{"kobs", "kafka", "replication"},
		Rows: []Row{
			{Title: "Failing ISR", Panels: []Panel{
				duringFailure(tb("Failing ISR: missing replicas", "dateTimeAsIso", "Per partition, each broker missing from its ISR (kobs_partition_isr_missing from the agent, label broker), and since when the agent has seen the partition failing (kobs_partition_failing_since_timestamp_seconds). Empty is good.", 16, 8,
					iq(`(kobs_partition_isr_missing == 1) * on (topic, partition) group_left () (kobs_partition_failing_since_timestamp_seconds * 1000)`, "failing since"))),
				st("Under-replicated partitions", "short", "Partitions whose ISR is smaller than their replica set (agent view, kafka_exporter name).",
					q(`sum(kafka_topic_partition_under_replicated_partition)`, "under-replicated")),
				duringFailure(st("Under min ISR (agent)", "short", "Partitions whose ISR is below the topic's min.insync.replicas, from the agent. The agent reports failing partitions only, so this is empty while every partition is healthy.",
					q(`sum(kobs_partition_under_min_isr)`, "under min ISR"))),
			}},
			{Title: "ISR churn and follower lag", Panels: []Panel{
				ts("ISR shrinks / expands", "ops", "ISR shrinks and expands per second per broker (ReplicaManager IsrShrinksPerSec, IsrExpandsPerSec), and ISR changes the controller refused (FailedIsrUpdatesPerSec). Steady shrinking and expanding means a flapping follower; failed updates mean a leader with a stale view of the partition.", 12, 8,
					q(`sum by (instance) (`+rate(`kafka_server_replicamanager_isrshrinks_total`)+`)`, "{{instance}} shrinks"),
					q(`sum by (instance) (`+rate(`kafka_server_replicamanager_isrexpands_total`)+`)`, "{{instance}} expands"),
					q(`sum by (instance) (`+rate(`kafka_server_replicamanager_failedisrupdates_total`)+`)`, "{{instance}} failed updates")),
				ts("Max follower lag", "short", "Largest lag in messages of this broker's follower fetchers behind their leaders (ReplicaFetcherManager MaxLag).", 12, 8,
					q(`kafka_server_replicafetchermanager_maxlag`, "{{instance}}")),
			}},
			{Title: "Quorum", Panels: []Panel{
				ts("Quorum leader", "short", "The metadata quorum's leader id as each node sees it (raft-metrics current-leader); all nodes should agree.", 6, 6,
					q(`kafka_server_raftmetrics_current_leader`, "{{instance}}")),
				ts("Quorum epoch", "short", "The quorum's epoch per node (raft-metrics current-epoch); it increases with each election.", 6, 6,
					q(`kafka_server_raftmetrics_current_epoch`, "{{instance}}")),
				ts("Quorum requests", "reqps", "Requests each node sends to the other quorum members per second, and the responses it gets (raft-channel-metrics request-total, response-total). kobs's quorum pushes the log from the leader, so the active controller sends nearly all; broker-only nodes send their metadata fetches. Requests without responses mean a member does not answer.", 6, 6,
					q(`sum by (instance) (`+rate(`kafka_server_raftchannelmetrics_request_total`)+`)`, "{{instance}} requests"),
					q(`sum by (instance) (`+rate(`kafka_server_raftchannelmetrics_response_total`)+`)`, "{{instance}} responses")),
				ts("Fenced and active brokers", "short", "Brokers the controller considers active and fenced (KafkaController ActiveBrokerCount, FencedBrokerCount).", 6, 6,
					q(`max(kafka_controller_kafkacontroller_activebrokercount)`, "active"),
					q(`max(kafka_controller_kafkacontroller_fencedbrokercount)`, "fenced")),
			}},
		},
	}
}

func messageTrace() Spec {
	es := func(title, unit, desc string, w, h uint32, kind Kind, qs ...ESQuery) Panel {
		return Panel{Kind: kind, Title: title, Unit: unit, Description: desc, W: w, H: h, ES: qs}
	}
	return Spec{
		File: "kobs-message-trace", UID: "kobs-message-trace", Title: "kobs / Message trace",
		Description: "Traced messages from the trace store (Elasticsearch API): volume by topic, end-to-end latency, recent journeys, and whether the trace pipeline keeps up.",
		Tags:        []string{"kobs", "kafka", "tracing"},
		Rows: []Row{
			{Title: "Traced messages", Panels: []Panel{
				es("Traced messages per minute by topic", "short", "Traced messages whose produce was recorded in the trace store, per minute and topic: the records field of batch produce events (one event per acknowledged batch), and 1 for each per-record event (failed sends, and events of kobs versions before batch events).", 12, 8, TimeSeries,
					ESQuery{Query: `type:produce`, Alias: "{{term topic}}",
						Buckets: []ESBucket{{Type: "terms", Field: "topic", Size: 10}, {Type: "date_histogram", Field: TraceTimeField, Interval: "1m"}},
						Metrics: []ESMetric{{Type: "sum", Field: "records", Missing: "1"}}}),
				es("End-to-end latency percentiles", "µs", "Record timestamp to consumer poll, per consumed message (e2e_us; a consume event for a polled batch holds one value per record, and Elasticsearch aggregates each): 50th, 95th and 99th percentile.", 12, 8, TimeSeries,
					ESQuery{Query: `type:consume`,
						Buckets: []ESBucket{{Type: "date_histogram", Field: TraceTimeField, Interval: "auto"}},
						Metrics: []ESMetric{{Type: "percentiles", Field: "e2e_us", Percents: []string{"50", "95", "99"}}}}),
			}},
			{Title: "Journeys", Panels: []Panel{
				es("Recent journeys", "none", "The latest trace events: topic, partition, offset, group and message id; a batch produce event shows its base offset, its first message id and, in records, how many messages it holds (all ids in msg_ids). Query a message's full journey with `kobs trace get <msg_id>` or GET /v1/trace/<msg_id> on the trace store.", 24, 10, Table,
					ESQuery{Metrics: []ESMetric{{Type: "raw_data", Size: 50}}}),
			}},
			{Title: "Pipeline", Panels: []Panel{
				duringFailure(es("Dropped trace events per minute", "short", "Trace events clients could not write (buffer full, trace topic unavailable), from the drop events they record in the trace store (type:drop, field dropped). Journeys of these messages say \"trace incomplete\".", 12, 6, TimeSeries,
					ESQuery{Query: `type:drop`,
						Buckets: []ESBucket{{Type: "date_histogram", Field: TraceTimeField, Interval: "1m"}},
						Metrics: []ESMetric{{Type: "sum", Field: "dropped"}}})),
				{Kind: TimeSeries, Title: "Trace shipper lag", Unit: "s", W: 12, H: 6,
					Description: "How far the trace shipper (consumer group " + ShipperGroup + ") is behind the trace topic, in seconds, from the agent. Journeys newer than this are not yet queryable.",
					Queries:     []Query{q(`max(kobs_consumergroup_lag_seconds{consumergroup="`+ShipperGroup+`"})`, "behind")}},
			}},
		},
	}
}

func audit() Spec {
	return Spec{
		File: "kobs-audit", UID: "kobs-audit", Title: "kobs / Audit",
		Description: "Did every produced message get consumed: completeness, missing and duplicate records per topic and group, from the audit reconciler.",
		Tags:        []string{"kobs", "kafka", "audit"},
		Vars:        []Var{{Name: "topic", Label: "Topic", Query: `label_values(kobs_audit_completeness_ratio, topic)`}},
		Rows: []Row{
			{Title: "Completeness", Panels: []Panel{
				ts("Completeness per group", "percentunit", "Share of produced records each group consumed, per topic, over reconciled buckets (kobs_audit_completeness_ratio). 1 is complete.", 12, 8,
					q(`kobs_audit_completeness_ratio{topic=~"$topic"}`, "{{topic}} {{group}}")),
				ts("Records per tier", "short", "Records counted per tier (producer, broker, consumer group) per second: the tiers should agree.", 12, 8,
					q(`sum by (topic, tier, group) (`+rate(`kobs_audit_records_total{topic=~"$topic"}`)+`)`, "{{topic}} {{tier}} {{group}}")),
			}},
			{Title: "Discrepancies", Panels: []Panel{
				ts("Missing records", "short", "Records produced but not consumed by the group in reconciled buckets (kobs_audit_missing_records).", 8, 8,
					q(`kobs_audit_missing_records{topic=~"$topic"}`, "{{topic}} {{group}}")),
				ts("Duplicate records", "short", "Records consumed more often than produced (kobs_audit_duplicate_records).", 8, 8,
					q(`kobs_audit_duplicate_records{topic=~"$topic"}`, "{{topic}} {{group}}")),
				ts("Uncertain buckets", "short", "Buckets the reconciler could not decide (data still arriving or a tier missing), per topic (kobs_audit_uncertain_buckets).", 8, 8,
					q(`kobs_audit_uncertain_buckets{topic=~"$topic"}`, "{{topic}}")),
			}},
		},
	}
}

// Files returns the JSON file name of every dashboard.
func Files() []string {
	var out []string
	for _, s := range All() {
		out = append(out, s.File+".json")
	}
	return out
}
