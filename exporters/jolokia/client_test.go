package jolokia

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClientReadNormalisesShapes(t *testing.T) {
	for name, p := range map[string]Protocol{"jolokia1": Protocol1, "jolokia2": Protocol2} {
		t.Run(name, func(t *testing.T) { testClientReadNormalisesShapes(t, p) })
	}
}

func testClientReadNormalisesShapes(t *testing.T, p Protocol) {
	base := servers(t, WithProtocol(p))["listener"]
	c := NewClient(base+"/jolokia/", nil)
	res, err := c.Read(context.Background(),
		ReadRequest{MBean: "kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,*", Attributes: []string{"Count"}},
		ReadRequest{MBean: "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions"},
		ReadRequest{MBean: "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions", Attributes: []string{"Value"}},
		ReadRequest{MBean: "kafka.server:type=Gone,name=X"},
	)
	require.NoError(t, err)
	require.Len(t, res, 4)
	require.Equal(t, map[string]map[string]any{
		meterAll: {"Count": json.Number("30")},
		meterT1:  {"Count": json.Number("10")},
		meterT2:  {"Count": json.Number("20")},
	}, res[0].Values)
	ur := "kafka.server:name=UnderReplicatedPartitions,type=ReplicaManager"
	require.Equal(t, map[string]map[string]any{ur: {"Value": json.Number("2")}}, res[1].Values)
	require.Equal(t, res[1].Values, res[2].Values)
	require.Equal(t, 404, res[3].Status)
	require.Equal(t, "javax.management.InstanceNotFoundException", res[3].ErrorType)
	require.Nil(t, res[3].Values)
	require.Equal(t, t0.Unix(), res[0].Timestamp)
}

func TestClientTransportErrors(t *testing.T) {
	// Nothing listens on port 1 (a closed server's port could be taken by
	// another process in between).
	_, err := NewClient("http://127.0.0.1:1/jolokia", nil).Read(context.Background(), ReadRequest{MBean: "a:b=c"})
	require.Error(t, err)

	notJolokia := httptest.NewServer(http.NotFoundHandler())
	defer notJolokia.Close()
	_, err = NewClient(notJolokia.URL, nil).Read(context.Background(), ReadRequest{MBean: "a:b=c"})
	require.ErrorContains(t, err, "HTTP 404")
}

func TestWatchPrintsJmxToolTable(t *testing.T) {
	for name, p := range map[string]Protocol{"jolokia1": Protocol1, "jolokia2": Protocol2} {
		t.Run(name, func(t *testing.T) { testWatchPrintsJmxToolTable(t, p) })
	}
}

func testWatchPrintsJmxToolTable(t *testing.T, p Protocol) {
	base := servers(t, WithProtocol(p))["httptest"]
	c := NewClient(base+"/jolokia", nil)
	ticks := []time.Time{time.UnixMilli(1_700_000_000_000), time.UnixMilli(1_700_000_000_500)}
	i := 0
	var out, errs bytes.Buffer
	err := c.Watch(context.Background(), &out, WatchOptions{
		Requests: []ReadRequest{
			{MBean: "kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,*", Attributes: []string{"Count", "MeanRate"}},
			{MBean: "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions"},
			{MBean: "kafka.server:type=Gone,name=X"},
		},
		Interval:   10 * time.Millisecond,
		Iterations: 2,
		Now:        func() time.Time { i++; return ticks[i-1] },
		Errors:     &errs,
	})
	require.NoError(t, err)
	want := strings.Join([]string{
		`"time","` + meterT1 + `:Count","` + meterT1 + `:MeanRate","` + meterT2 + `:Count","` + meterT2 + `:MeanRate","` +
			meterAll + `:Count","` + meterAll + `:MeanRate","kafka.server:name=UnderReplicatedPartitions,type=ReplicaManager:Value"`,
		`1700000000000,10,1.0,20,2.0,30,3.0,2`,
		`1700000000500,10,1.0,20,2.0,30,3.0,2`,
		``,
	}, "\n")
	require.Equal(t, want, out.String())
	require.Equal(t, strings.Repeat("kafka.server:type=Gone,name=X: javax.management.InstanceNotFoundException : kafka.server:type=Gone,name=X\n", 2), errs.String())

	// Nothing matches at all: an error rather than an empty table forever.
	err = c.Watch(context.Background(), &out, WatchOptions{Requests: []ReadRequest{{MBean: "nothing:*"}}, Iterations: 1})
	require.ErrorContains(t, err, "no attribute matched")

	// Until the context ends when Iterations is 0; a cancelled watch is not
	// an error. The context ends once the header and two rows are out (a
	// fixed 50 ms deadline saw one row or none on a loaded machine); the
	// minute is only there so a watch that ignores it cannot hang the test.
	deadline, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	ctx, cancel := context.WithCancelCause(deadline)
	defer cancel(nil)
	enough := errors.New("three lines written")
	out.Reset()
	w := writerFunc(func(p []byte) (int, error) {
		out.Write(p)
		if strings.Count(out.String(), "\n") >= 3 {
			cancel(enough)
		}
		return len(p), nil
	})
	require.NoError(t, c.Watch(ctx, w, WatchOptions{
		Requests: []ReadRequest{{MBean: "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions"}},
		Interval: 5 * time.Millisecond, DateFormat: time.RFC3339,
	}))
	require.ErrorIs(t, context.Cause(ctx), enough, "the watch ended before its context did:\n%s", out.String())
	require.Regexp(t, `^"time","kafka.server:name=UnderReplicatedPartitions,type=ReplicaManager:Value"\n(\d{4}-\d\d-\d\dT\S+,2\n){2}$`, out.String())
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
