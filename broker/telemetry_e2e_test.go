package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/promtest"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

type jolokiaResp struct {
	Request   map[string]any `json:"request"`
	Value     any            `json:"value"`
	Status    int            `json:"status"`
	Timestamp int64          `json:"timestamp"`
	ErrorType string         `json:"error_type"`
	Error     string         `json:"error"`
}

func jolokiaGet(t *testing.T, base, path string) jolokiaResp {
	t.Helper()
	resp, err := http.Get(base + "/jolokia/" + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "Jolokia answers HTTP 200 even for errors")
	var out jolokiaResp
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func count(t *testing.T, v any) int64 {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "value %v is not an attribute map", v)
	c, ok := m["Count"].(float64)
	require.True(t, ok, "no Count in %v", m)
	return int64(c)
}

// TestBrokerTelemetry produces known records over TCP and reads Kafka's
// MBeans back over Jolokia and Prometheus, then has a real Prometheus
// scrape the broker.
func TestBrokerTelemetry(t *testing.T) {
	b := testcluster.Start(t)
	base := "http://" + b.HTTPAddr()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	const topic = "telemetry"
	_, err = kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, nil, topic)
	require.NoError(t, err)

	// 10 produce requests of one 100-record batch each: Kafka counts
	// MessagesIn per record and BytesIn as the size of the record batches.
	const requests, perBatch = 10, 100
	var sentBytes int64
	for i := 0; i < requests; i++ {
		batch := makeBatch(perBatch, 50)
		sentBytes += int64(len(batch))
		sp := produceRaw(t, cl, topic, batch)
		require.Zero(t, sp.ErrorCode)
	}
	n := int64(requests * perBatch)

	bean := "kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=" + topic
	require.Equal(t, n, count(t, jolokiaGet(t, base, "read/"+bean).Value))
	require.Equal(t, sentBytes, count(t, jolokiaGet(t, base, "read/kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic="+topic).Value))
	// The all-topics bean counts the same records (no other topic had any).
	require.Equal(t, n, count(t, jolokiaGet(t, base, "read/kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec").Value))
	// Request metrics are recorded once the response is written, so
	// poll briefly.
	testcluster.Eventually(t, 5*time.Second, func() error {
		got := count(t, jolokiaGet(t, base, "read/kafka.network:type=RequestMetrics,name=TotalTimeMs,request=Produce").Value)
		if got != requests {
			return fmt.Errorf("Produce TotalTimeMs Count %d, want %d", got, requests)
		}
		return nil
	})

	t.Run("errors per request", func(t *testing.T) {
		sp := produceRaw(t, cl, "no-such-topic", makeBatch(1, 10))
		require.NotZero(t, sp.ErrorCode)
		errorsCount := func(code string, want int64) func() error {
			return func() error {
				r := jolokiaGet(t, base, "read/kafka.network:type=RequestMetrics,name=ErrorsPerSec,request=Produce,error="+code)
				if r.Status != 200 {
					return fmt.Errorf("%s: status %d", code, r.Status)
				}
				if c := count(t, r.Value); c != want {
					return fmt.Errorf("%s: Count %d, want %d", code, c, want)
				}
				return nil
			}
		}
		// One NONE per partition response of the 10 good requests, one
		// UNKNOWN_TOPIC_OR_PARTITION for the bad one.
		testcluster.Eventually(t, 5*time.Second, errorsCount("NONE", requests))
		testcluster.Eventually(t, 5*time.Second, errorsCount("UNKNOWN_TOPIC_OR_PARTITION", 1))
	})
	t.Run("pattern read", func(t *testing.T) {
		r := jolokiaGet(t, base, "read/kafka.server:type=BrokerTopicMetrics,*")
		require.Equal(t, 200, r.Status)
		vals := r.Value.(map[string]any)
		for _, name := range []string{"MessagesInPerSec", "BytesInPerSec", "BytesOutPerSec", "TotalProduceRequestsPerSec", "FailedFetchRequestsPerSec"} {
			// Jolokia 2.5+ (canonicalNaming=false by default): names as Kafka registers them.
			require.Contains(t, vals, "kafka.server:type=BrokerTopicMetrics,name="+name+",topic="+topic)
			require.Contains(t, vals, "kafka.server:type=BrokerTopicMetrics,name="+name)
		}
	})
	t.Run("bulk POST", func(t *testing.T) {
		body := `[{"type":"read","mbean":"` + bean + `","attribute":"Count"},
		          {"type":"read","mbean":"kafka.log:type=Log,name=LogEndOffset,topic=` + topic + `,partition=0"},
		          {"type":"read","mbean":"kafka.server:type=ReplicaManager,name=*"}]`
		resp, err := http.Post(base+"/jolokia", "application/json", bytes.NewBufferString(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out []jolokiaResp
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		require.Len(t, out, 3)
		require.Equal(t, float64(n), out[0].Value)
		require.Equal(t, float64(n), out[1].Value.(map[string]any)["Value"])
		rm := out[2].Value.(map[string]any)
		require.Equal(t, float64(1), rm["kafka.server:type=ReplicaManager,name=PartitionCount"].(map[string]any)["Value"])
		require.Equal(t, float64(0), rm["kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions"].(map[string]any)["Value"])
	})
	// After the ReplicaManager checks above: the first commit creates
	// the 50 partitions of __consumer_offsets.
	t.Run("group metadata", func(t *testing.T) {
		offs := kadm.Offsets{}
		offs.AddOffset(topic, 0, 42, -1)
		resp, err := kadm.NewClient(cl).CommitOffsets(context.Background(), "telemetry-group", offs)
		require.NoError(t, err)
		require.NoError(t, resp.Error())
		value := func(name string) float64 {
			v := jolokiaGet(t, base, "read/kafka.coordinator.group:type=GroupMetadataManager,name="+name+"/Value").Value
			f, ok := v.(float64)
			require.True(t, ok, "%s: %v", name, v)
			return f
		}
		require.Equal(t, float64(1), value("NumGroups"))
		require.Equal(t, float64(1), value("NumOffsets"))
	})
	t.Run("unknown MBean", func(t *testing.T) {
		r := jolokiaGet(t, base, "read/kafka.server:type=Nope,name=Nothing")
		require.Equal(t, 404, r.Status)
		require.Equal(t, "javax.management.InstanceNotFoundException", r.ErrorType)
		require.Equal(t, "kafka.server:type=Nope,name=Nothing", r.Error, "Jolokia 2.5+: the message alone")
		require.Zero(t, r.Timestamp, "Jolokia error objects carry no timestamp")
	})

	t.Run("prometheus names", func(t *testing.T) {
		resp, err := http.Get(base + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		parser := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
		require.NoError(t, err)
		value := func(name string, labels map[string]string) float64 {
			t.Helper()
			f, ok := fams[name]
			require.True(t, ok, "no metric family %s", name)
		next:
			for _, m := range f.GetMetric() {
				got := map[string]string{}
				for _, l := range m.GetLabel() {
					got[l.GetName()] = l.GetValue()
				}
				for k, v := range labels {
					if got[k] != v {
						continue next
					}
				}
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				default:
					return m.GetUntyped().GetValue()
				}
			}
			t.Fatalf("%s%v not found", name, labels)
			return 0
		}
		require.Equal(t, float64(n), value("kafka_server_brokertopicmetrics_messagesin_total", map[string]string{"topic": topic}))
		require.Equal(t, float64(sentBytes), value("kafka_server_brokertopicmetrics_bytesin_total", map[string]string{"topic": topic}))
		require.Equal(t, float64(requests+1), value("kafka_network_requestmetrics_totaltimems_count", map[string]string{"request": "Produce"}))
		require.Equal(t, float64(1), value("kafka_network_requestmetrics_errors_total", map[string]string{"request": "Produce", "error": "UNKNOWN_TOPIC_OR_PARTITION"}))
		value("kafka_network_requestmetrics_totaltimems", map[string]string{"request": "Produce", "quantile": "0.99"})
		require.Equal(t, float64(0), value("kafka_server_replicamanager_underreplicatedpartitions", nil))
		require.Equal(t, float64(n), value("kafka_log_log_logendoffset", map[string]string{"topic": topic, "partition": "0"}))
		require.Equal(t, float64(1), value("kafka_controller_kafkacontroller_activecontrollercount", nil))
		require.Equal(t, float64(1), value("kafka_coordinator_group_groupmetadatamanager_numgroups", nil))
	})

	t.Run("live prometheus rate", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts Prometheus")
		}
		prom := promtest.Start(t, b.HTTPAddr())
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		go func() {
			for ctx.Err() == nil {
				_ = cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("tick")})
				time.Sleep(20 * time.Millisecond)
			}
		}()
		q := `rate(kafka_server_brokertopicmetrics_messagesin_total[1m])`
		var last string
		for ctx.Err() == nil {
			v, err := prom.Query(ctx, q)
			if err == nil && v > 0 {
				t.Logf("%s = %g", q, v)
				return
			}
			last = fmt.Sprint(v, err)
			time.Sleep(500 * time.Millisecond)
		}
		t.Fatalf("%s never positive; last: %s", q, last)
	})
}
