// Package perf implements the load tools behind "kobs perf produce" and
// "kobs perf consume", modelled on kafka-producer-perf-test and
// kafka-consumer-perf-test: a record or throughput budget, periodic stats lines
// and a final line with rates and latency percentiles.
//
// Both run on a franz-go kgo client, so they work against any Kafka-compatible
// broker (kobs, Apache Kafka, Redpanda, kfake); that is what lets
// scripts/bench-produce.sh report kobs as a ratio to another broker.
//
// Output follows the Kafka tools line for line, so scripts that parse theirs
// parse ours:
//
//	50000 records sent, 9998.0 records/sec (9.76 MB/sec), 12.3 ms avg latency, 120.0 ms max latency.
//	1000000 records sent, 99950.234000 records/sec (97.61 MB/sec), 8.12 ms avg latency, 300.00 ms max latency, 5 ms 50th, 20 ms 95th, 40 ms 99th, 120 ms 99.9th.
//
//	start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
//	2024-03-09 07:05:04:042, 2024-03-09 07:05:06:120, 195.3125, 93.9907, 200000, 96246.3908, 0, 2078, 93.9907, 96246.3908
//
// MB means MiB, as in Kafka. Where we differ from Kafka, on purpose:
//   - The consumer also prints end-to-end latency (read time minus record
//     timestamp) with the same percentiles; it is meaningful only while the
//     records are being produced.
//   - A consume run that ends on its idle timeout stops the clock at the
//     last record; Kafka counts the idle wait as consuming time.
//   - The consumer stops at exactly NumRecords; Kafka may read past it by up
//     to one poll.
//   - Percentiles come from a reservoir sample of up to 500,000 latencies
//     (Kafka takes every n-th), since a consumer may not know its total.
//   - Both tools first ask the cluster for its API versions, so an
//     unreachable one fails at once with the cause (connection refused)
//     instead of after the delivery or idle timeout.
//   - With a group, the wait for an assignment does not count against the
//     consumer's idle Timeout (a new group's first rebalance waits the
//     broker's group.initial.rebalance.delay.ms); it is bounded by
//     JoinTimeout and reported as ErrRebalanceRunning. A run that read
//     nothing says whether the topic exists.
//
// Results are also returned as ProduceResult and ConsumeResult, with
// latencies as time.Duration rather than Kafka's whole milliseconds.
package perf
