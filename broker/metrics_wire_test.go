package broker_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// jolokiaValue reads one attribute over the broker's Jolokia endpoint.
func jolokiaValue(t *testing.T, b *testcluster.Broker, mbean, attr string) (float64, bool) {
	t.Helper()
	v, ok, err := jolokiaRead(b, mbean, attr)
	require.NoError(t, err)
	return v, ok
}

// jolokiaRead is jolokiaValue for conditions: it reports what went wrong
// instead of failing the test, so it can run off the test goroutine.
func jolokiaRead(b *testcluster.Broker, mbean, attr string) (float64, bool, error) {
	resp, err := http.Get("http://" + b.HTTPAddr() + "/jolokia/read/" + mbean + "/" + attr)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	var out struct {
		Status int
		Value  any
		Error  string
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, false, err
	}
	if out.Status != 200 {
		return 0, false, nil
	}
	v, ok := out.Value.(float64)
	if !ok {
		return 0, false, fmt.Errorf("%s %s: not a number: %v", mbean, attr, out.Value)
	}
	return v, true, nil
}

// TestListenerLimitsAndMetrics starts a broker with Kafka's connection keys
// and reads the listener's socket-server-metrics back.
func TestListenerLimitsAndMetrics(t *testing.T) {
	b := testcluster.Start(t,
		testcluster.Prop("max.connections.per.ip", "3"),
		// Long enough that the three connections are still open when the
		// fourth is rejected, even after a scheduling stall.
		testcluster.Prop("connections.max.idle.ms", "3000"))
	const bean = "kafka.server:type=socket-server-metrics,listener=PLAINTEXT,networkProcessor=0"
	attr := func(name string) float64 {
		v, ok := jolokiaValue(t, b, bean, name)
		require.True(t, ok, name)
		return v
	}
	// attrIs is the condition form: it runs on the test goroutine inside
	// testcluster.Eventually and fails with the last value seen.
	attrIs := func(want float64, names ...string) func() error {
		return func() error {
			for _, name := range names {
				v, ok, err := jolokiaRead(b, bean, name)
				if err != nil {
					return err
				}
				if !ok || v != want {
					return fmt.Errorf("%s = %v (found %v), want %v", name, v, ok, want)
				}
			}
			return nil
		}
	}
	require.Equal(t, 1.0, attr("listener-serving"))
	require.True(t, b.ListenersServing())

	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", b.Addr())
		require.NoError(t, err)
		defer c.Close()
		conns = append(conns, c)
	}
	testcluster.Eventually(t, 10*time.Second, attrIs(3, "connection-count"))
	// A fourth from the same address is closed at once and counted.
	c, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, 1.0, attr("connection-rejected-per-ip-total"))
	// connections.max.idle.ms closes the silent ones.
	testcluster.Eventually(t, 20*time.Second, func() error {
		if err := attrIs(0, "connection-count")(); err != nil {
			return err
		}
		return attrIs(3, "connection-idle-close-total")()
	})
	require.GreaterOrEqual(t, attr("connection-creation-total"), 3.0)
	require.GreaterOrEqual(t, attr("connection-close-total"), 3.0)

	// The pool gauges exist (queued.max.request.bytes unbounded: nothing used).
	used, ok := jolokiaValue(t, b, "kafka.network:type=SocketServer,name=MemoryPoolUsed", "Value")
	require.True(t, ok)
	require.Zero(t, used)
}

func procIO(t *testing.T) (read, write float64) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/io")
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch k {
		case "read_bytes":
			read = n
		case "write_bytes":
			write = n
		}
	}
	return read, write
}

func TestDiskAndLogDirMetrics(t *testing.T) {
	root := t.TempDir()
	a, second := filepath.Join(root, "a"), filepath.Join(root, "b")
	b := testcluster.Start(t, testcluster.Dir(a+","+second))

	// The broker runs in this process: its disk gauges are this process's
	// /proc/self/io counters, read between two reads of our own.
	r0, w0 := procIO(t)
	r, ok := jolokiaValue(t, b, "kafka.server:type=KafkaServer,name=linux-disk-read-bytes", "Value")
	require.True(t, ok)
	w, ok := jolokiaValue(t, b, "kafka.server:type=KafkaServer,name=linux-disk-write-bytes", "Value")
	require.True(t, ok)
	r1, w1 := procIO(t)
	require.True(t, r0 <= r && r <= r1, "read %v not within [%v, %v]", r, r0, r1)
	require.True(t, w0 <= w && w <= w1, "write %v not within [%v, %v]", w, w0, w1)

	offline := func() float64 {
		v, ok := jolokiaValue(t, b, "kafka.log:type=LogManager,name=OfflineLogDirectoryCount", "Value")
		require.True(t, ok)
		return v
	}
	require.Zero(t, offline())
	// The second dir disappears (an unmounted disk), then comes back.
	require.NoError(t, os.Rename(second, second+".gone"))
	require.Equal(t, 1.0, offline())
	// Per directory, the name quoted as Kafka's Sanitizer quotes a path.
	v, ok := jolokiaValue(t, b, `kafka.log:type=LogManager,name=LogDirectoryOffline,logDirectory="`+strings.ReplaceAll(second, "/", "!/")+`"`, "Value")
	require.True(t, ok)
	require.Equal(t, 1.0, v)
	require.NoError(t, os.Rename(second+".gone", second))
	require.Zero(t, offline())
}
