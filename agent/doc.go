// Package agent is the sidecar that watches any Kafka-protocol cluster
// (Apache Kafka, Redpanda, kobs) through franz-go: consumer lag in offsets
// and seconds, a Burrow-style status per group and partition, and
// failing-ISR partitions. `kobs agent` runs it; agent/README.md has the
// status rules, the lag-seconds method and the metric names.
//
// # Running agent
//
// New(Config) then Run(ctx) collects every Config.Interval (Cycle is one
// collection, bounded by Config.Timeout). Handler serves /metrics (its own
// client_golang registry: kafka_exporter's names plus kobs_*) and the JSON
// API (/v1/health, /v1/groups, /v1/groups/{group}, /v1/partitions/failing).
// View is the last successful cycle; Health says whether it is stale and,
// in CyclePhases, where the last cycle's time went (each request from
// sending it to its answer applied, and the agent's own evaluation).
//
// A cycle keeps little beyond its snapshot: per group, per topic, a slice
// of status windows indexed by partition; per topic a slice of offset
// tables (rings of HistoryPoints samples). Groups are evaluated in
// parallel; Metadata and OffsetFetch go straight to a broker, so kgo
// keeps no copy of the cluster's partitions.
//
// # One-shot API (for the CLI: kobs groups, kobs topics)
//
// These read the cluster directly, without a running agent:
//
//   - Collect(ctx, client, CollectOptions) -> *Snapshot: one collection
//     (brokers, controller, topics, partitions with replicas/ISR/offline
//     replicas, start/end/last-stable offsets, min.insync.replicas, groups
//     with members, assignments and committed offsets). Snapshot.Errors and
//     Snapshot.Unreachable say what is partial.
//   - Classify(snapshot) -> []FailingPartition: under-replicated, under and
//     at min ISR, offline, leader not preferred, the broker ids missing
//     from each ISR. UnderReplicatedPartitions, UnderMinISRPartitions and
//     UnavailablePartitions are kafka-topics.sh's --describe filters;
//     ByBroker maps each broker to the partitions it is missing from.
//   - Lags(snapshot) -> map of GroupLag: per group and partition the
//     committed offset, the end offset, the lag (-1 without a commit), the
//     member (consumer id, host, client id), and sums per topic. Statuses
//     and lag seconds need history, so Lags leaves them empty.
//   - DescribeGroup(ctx, client, group, DescribeOptions) -> *GroupLag: the
//     same for one group, plus LAG-SECONDS (exact, from the record at each
//     committed offset, when DescribeOptions.ExactOpts is set) and STATUS
//     over a short window of DescribeOptions.Samples collections. This is
//     what `kobs groups --describe` prints after kafka-consumer-groups.sh's
//     columns: GROUP TOPIC PARTITION CURRENT-OFFSET (Committed, "-" when
//     NoCommit) LOG-END-OFFSET (End) LAG (Lag, "-" when -1) CONSUMER-ID
//     (MemberID) HOST CLIENT-ID, then LAG-SECONDS (LagSeconds, "-" when
//     NaN) and STATUS (Status).
package agent
