// Package prom exposes the telemetry registry to Prometheus with the names the
// jmx_exporter Kafka rules produce, so community Kafka dashboards and alerts
// work unchanged against kobs.
//
// The rules are those of jmx_exporter's examples/kafka-2_0_0.yml
// (lowercaseOutputName: true), applied as regular expressions to the same
// "domain<type=T, name=N, k=v><>Attribute" strings jmx_exporter builds, in the
// file's order, first match wins. That gives, for example:
//
//	kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t  Count
//	  -> kafka_server_brokertopicmetrics_messagesin_total{topic="t"}   counter
//	kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions     Value
//	  -> kafka_server_replicamanager_underreplicatedpartitions          gauge
//	kafka.network:type=RequestMetrics,name=TotalTimeMs,request=Fetch    99thPercentile, Count
//	  -> kafka_network_requestmetrics_totaltimems{request,quantile="0.99"} gauge
//	  -> kafka_network_requestmetrics_totaltimems_count{request}          counter
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
