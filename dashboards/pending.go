package dashboards

// Pending maps each metric name that a dashboard or an alert rule queries,
// but that no kobs component exports yet, to the work that will export it.
// The live test (live_test.go) prints this list on every run, treats these
// names as not yet checkable, and fails when one of them shows up in a
// scrape: move it out of here then, and the test checks it like the rest.
var Pending = map[string]string{
	// The agent ([D]): kafka_exporter names and kobs_* lag and ISR metrics.
	"kafka_consumergroup_lag":                          "agent [D]",
	"kafka_consumergroup_lag_sum":                      "agent [D]",
	"kafka_consumergroup_members":                      "agent [D]",
	"kafka_topic_partition_under_replicated_partition": "agent [D]",
	"kobs_consumergroup_lag_seconds":                   "agent [D]",
	"kobs_consumergroup_status":                        "agent [D]",
	"kobs_partition_under_min_isr":                     "agent [D]",
	"kobs_partition_isr_missing":                       "agent [D]",
	"kobs_partition_isr_missing_since_seconds":         "agent [D] (name proposed here)",
	"kobs_agent_up":                                    "agent [D]",
	"kobs_agent_last_success_timestamp_seconds":        "agent [D]",
	// Replication ([C]): the KRaft quorum under Kafka's raft-metrics names.
	"kafka_server_raftmetrics_current_leader": "replication [C]",
	"kafka_server_raftmetrics_current_epoch":  "replication [C]",
	// Trace pipeline ([H]).
	"kobs_trace_events_dropped_total": "trace [H] (name proposed here)",
	// Audit ([G]).
	"kobs_audit_records_total":      "audit [G]",
	"kobs_audit_missing_records":    "audit [G]",
	"kobs_audit_duplicate_records":  "audit [G]",
	"kobs_audit_completeness_ratio": "audit [G]",
	"kobs_audit_uncertain_buckets":  "audit [G]",
}

// PendingTraceStore names the Elasticsearch panels whose requests the trace
// store cannot answer yet (it refuses aggregations and docvalue_fields
// until [H] lands them); the live test prints them and fails once the
// store answers one, so it is moved out.
var PendingTraceStore = map[string]string{
	"Traced messages per minute by topic": "trace store _msearch and aggregations [H]",
	"End-to-end latency percentiles":      "trace store _msearch and aggregations [H]",
	"Recent journeys":                     "trace store _msearch, docvalue_fields and script_fields [H]",
}
