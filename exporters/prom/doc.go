// Package prom exposes the telemetry registry to Prometheus with the names the
// jmx_exporter Kafka rules produce, so community Kafka dashboards and alerts
// work unchanged against kobs.
//
// The rules are those of Strimzi's kafka-metrics.yaml (Strimzi 1.2.0, run
// by jmx_exporter 1.6.0; lowercaseOutputName: true), the configuration behind
// the most used community Kafka dashboards and alerts, applied to every bean
// as regular expressions over the same "domain<type=T, name=N, k=v><>Attribute:
// value" strings jmx_exporter builds, in the file's order, first match wins.
// One kobs rule follows them for the group coordinator's beans, which
// Strimzi's generic rules cannot match (two-word domain). That gives, for
// example:
//
//	kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t  Count
//	  -> kafka_server_brokertopicmetrics_messagesin_total{topic="t"}   counter
//	kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions     Value
//	  -> kafka_server_replicamanager_underreplicatedpartitions          gauge
//	kafka.network:type=RequestMetrics,name=TotalTimeMs,request=Fetch    99thPercentile, Count
//	  -> kafka_network_requestmetrics_totaltimems{request,quantile="0.99"} gauge
//	  -> kafka_network_requestmetrics_totaltimems_count{request}          counter
//	kafka.server:type=socket-server-metrics,listener=L,networkProcessor=0  connection-count
//	  -> kafka_server_socket_server_metrics_connection_count{listener,networkProcessor} gauge
//
// Histograms are exported the way jmx_exporter 0.x emulates a Summary: a
// gauge family with a quantile label and a separate _count counter, no _sum.
// Names are emitted as written (no _total appended to _count counters, which
// jmx_exporter 1.x would do). Both choices keep the names dashboards query.
//
// kobs adds, for every meter and timer whose Count a rule exports, the Yammer
// rates as gauges named after that counter without its _total/_count suffix:
// <base>_oneminuterate, _fiveminuterate, _fifteenminuterate and _meanrate.
//
// The collector depends only on telemetry.Reader; it never takes a lock the
// broker's Mark/Update path uses.
package prom
