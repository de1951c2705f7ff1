package prom

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// TestRulesProduceJmxExporterNames checks, attribute by attribute, the names
// Strimzi's kafka-metrics.yaml (jmx_exporter rules, lowercaseOutputName)
// gives Kafka's beans.
func TestRulesProduceJmxExporterNames(t *testing.T) {
	for _, tc := range []struct {
		bean, attr string
		name       string
		typ        metricType
		labels     []string
	}{
		{"kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=t", "Count",
			"kafka_server_brokertopicmetrics_bytesin_total", counter, []string{"topic", "t"}},
		{"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec", "Count",
			"kafka_server_brokertopicmetrics_messagesin_total", counter, nil},
		{"kafka.server:type=BrokerTopicMetrics,name=FailedFetchRequestsPerSec", "Count",
			"kafka_server_brokertopicmetrics_failedfetchrequests_total", counter, nil},
		{"kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=9", "Count",
			"kafka_network_requestmetrics_requests_total", counter, []string{"request", "Produce", "version", "9"}},
		{"kafka.network:type=RequestMetrics,name=TotalTimeMs,request=Fetch", "99thPercentile",
			"kafka_network_requestmetrics_totaltimems", gauge, []string{"request", "Fetch", "quantile", "0.99"}},
		{"kafka.network:type=RequestMetrics,name=TotalTimeMs,request=Fetch", "999thPercentile",
			"kafka_network_requestmetrics_totaltimems", gauge, []string{"request", "Fetch", "quantile", "0.999"}},
		{"kafka.network:type=RequestMetrics,name=TotalTimeMs,request=Fetch", "50thPercentile",
			"kafka_network_requestmetrics_totaltimems", gauge, []string{"request", "Fetch", "quantile", "0.50"}},
		{"kafka.network:type=RequestMetrics,name=TotalTimeMs,request=Fetch", "Count",
			"kafka_network_requestmetrics_totaltimems_count", counter, []string{"request", "Fetch"}},
		{"kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions", "Value",
			"kafka_server_replicamanager_underreplicatedpartitions", gauge, nil},
		{"kafka.server:type=ReplicaManager,name=IsrShrinksPerSec", "Count",
			"kafka_server_replicamanager_isrshrinks_total", counter, nil},
		{"kafka.controller:type=KafkaController,name=ActiveControllerCount", "Value",
			"kafka_controller_kafkacontroller_activecontrollercount", gauge, nil},
		{"kafka.controller:type=ControllerStats,name=UncleanLeaderElectionsPerSec", "Count",
			"kafka_controller_controllerstats_uncleanleaderelections_total", counter, nil},
		{"kafka.log:type=Log,name=Size,topic=t,partition=0", "Value",
			"kafka_log_log_size", gauge, []string{"topic", "t", "partition", "0"}},
		{"kafka.cluster:type=Partition,name=UnderMinIsr,topic=t,partition=3", "Value",
			"kafka_cluster_partition_underminisr", gauge, []string{"topic", "t", "partition", "3"}},
		{"kafka.server:type=KafkaRequestHandlerPool,name=RequestHandlerAvgIdlePercent", "MeanRate",
			"kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent", gauge, nil},
		// Strimzi's Percent rules come before the generic Value rule
		// (jmx_exporter's kafka-2_0_0.yml has them after: ..avgidlepercent).
		{"kafka.network:type=SocketServer,name=NetworkProcessorAvgIdlePercent", "Value",
			"kafka_network_socketserver_networkprocessoravgidle_percent", gauge, nil},
		// Kafka Metrics beans (socket-server-metrics): the attribute is the name.
		{"kafka.server:type=socket-server-metrics,listener=PLAINTEXT,networkProcessor=0", "connection-count",
			"kafka_server_socket_server_metrics_connection_count", gauge, []string{"listener", "PLAINTEXT", "networkProcessor", "0"}},
		{"kafka.server:type=socket-server-metrics,listener=PLAINTEXT,networkProcessor=0", "connection-creation-total",
			"kafka_server_socket_server_metrics_connection_creation_total", counter, []string{"listener", "PLAINTEXT", "networkProcessor", "0"}},
		{"kafka.server:type=KafkaServer,name=linux-disk-read-bytes", "Value",
			"kafka_server_kafkaserver_linux_disk_read_bytes", gauge, nil},
		{"kafka.log:type=LogManager,name=OfflineLogDirectoryCount", "Value",
			"kafka_log_logmanager_offlinelogdirectorycount", gauge, nil},
		{"kafka.server:type=raft-metrics", "commit-latency-avg",
			"kafka_server_raftmetrics_commit_latency_avg", gauge, nil},
		{"kafka.server:type=raft-channel-metrics", "incoming-byte-total",
			"kafka_server_raftchannelmetrics_incoming_byte_total", counter, nil},
		{"kafka.coordinator.group:type=GroupMetadataManager,name=NumGroups", "Value",
			"kafka_coordinator_group_groupmetadatamanager_numgroups", gauge, nil},
		{"kafka.server:type=ReplicaFetcherManager,name=MaxLag,clientId=Replica", "Value",
			"kafka_server_replicafetchermanager_maxlag", gauge, []string{"clientId", "Replica"}},
		{"kafka.server:type=FetcherLagMetrics,name=ConsumerLag,clientId=ReplicaFetcherThread-0-1,topic=t,partition=0", "Value",
			"kafka_server_fetcherlagmetrics_consumerlag", gauge, []string{"clientId", "ReplicaFetcherThread-0-1", "topic", "t", "partition", "0"}},
		{"kafka.log:type=LogFlushStats,name=LogFlushRateAndTimeMs", "Count",
			"kafka_log_logflushstats_logflushrateandtimems_count", counter, nil},
	} {
		t.Run(tc.bean+"/"+tc.attr, func(t *testing.T) {
			m, ok := apply(kafkaRules, matchString(telemetry.MustParseObjectName(tc.bean), tc.attr, "0"))
			require.True(t, ok)
			require.Equal(t, tc.name, m.name)
			require.Equal(t, tc.typ, m.typ)
			require.Equal(t, tc.labels, m.labels)
		})
	}
	// Not exported by the rules: rates (except *Percent MeanRate), Min/Max/Mean/StdDev, other domains.
	for _, tc := range [][2]string{
		{"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec", "OneMinuteRate"},
		{"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec", "MeanRate"},
		{"kafka.network:type=RequestMetrics,name=TotalTimeMs,request=Fetch", "Max"},
		{"kobs.internal:type=Foo,name=Bar", "Value"},
	} {
		_, ok := apply(kafkaRules, matchString(telemetry.MustParseObjectName(tc[0]), tc[1], "0"))
		require.False(t, ok, "%s %s", tc[0], tc[1])
	}
	// raft-metrics current-state is a string: exported as 1 with the state
	// as a label, the only string an attribute rule turns into a sample.
	m, ok := apply(kafkaRules, matchString(telemetry.MustParseObjectName("kafka.server:type=raft-metrics"), "current-state", "leader"))
	require.True(t, ok)
	require.Equal(t, "kafka_server_raftmetrics_current_state", m.name)
	require.Equal(t, untyped, m.typ)
	require.Equal(t, []string{"current_state", "leader"}, m.labels)
	require.NotNil(t, m.value)
	require.Equal(t, 1.0, *m.value)
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"kafka_server_a-b":   "kafka_server_a_b",
		"a__b":               "a_b",
		"a-_b":               "a_b",
		"9lives":             "_9lives",
		"client.id":          "client_id",
		"ok:name_1":          "ok:name_1",
		`"quoted value"`:     "_quoted_value_",
		"kafka_x_requestsms": "kafka_x_requestsms",
	} {
		require.Equal(t, want, safeName(in), in)
	}
}

func TestLiteralsPrefilter(t *testing.T) {
	require.Equal(t, []string{"kafka", "<type=", ", name=", "PerSec", ", ", "=", "><>Count"},
		literals(`kafka.(\w+)<type=(.+), name=(.+)PerSec\w*, (.+)=(.+)><>Count`))
	require.Equal(t, []string{"kafka", "server<type=", ", client-id=", "><>"},
		literals(`kafka.server<type=(.+), client-id=(.+)><>([a-z-]+)`))
	require.Equal(t, []string{"ab", "d"}, literals(`abc?d`))
	require.Nil(t, literals(`a|b`))
	// The pre-filters must never change which rule wins: compare with the
	// unfiltered rule list on a spread of inputs.
	inputs := []string{
		"kafka.server<type=BrokerTopicMetrics, name=MessagesInPerSec, topic=t><>Count",
		"kafka.server<type=Produce, user=u, client-id=c><>byte-rate",
		"kafka.server<type=Fetch, client-id=c><>throttle-time",
		"kafka.server<type=FetcherLagMetrics, name=ConsumerLag, clientId=x, topic=t, partition=0><>Value",
		"kafka.network<type=RequestMetrics, name=TotalTimeMs, request=Fetch><>999thPercentile",
		"kafka.log<type=Log, name=Size, topic=t, partition=0><>Value",
		`kafka.server<type=Request, user="a><>b"><>Count`,
		"kafka.coordinator.group<type=GroupMetadataManager, name=NumGroups><>Value",
		"kafka.server<type=KafkaRequestHandlerPool, name=RequestHandlerAvgIdlePercent><>MeanRate",
	}
	for _, in := range inputs {
		want, wantOK := applyUnfiltered(kafkaRules, in)
		got, gotOK := apply(kafkaRules, in)
		require.Equal(t, wantOK, gotOK, in)
		require.Equal(t, want, got, in)
	}
}

func applyUnfiltered(rules []rule, s string) (match, bool) {
	plain := make([]rule, len(rules))
	for i, r := range rules {
		r.attrRe, r.needs = nil, nil
		plain[i] = r
	}
	// With no attribute pre-filter possible (two "><>"), apply runs every rule.
	return apply(plain, s+"")
}
