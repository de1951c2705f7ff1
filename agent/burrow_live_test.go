package agent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/agent"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

const (
	burrowBin    = "/usr/bin/Burrow"
	zookeeperJar = "/usr/share/java/zookeeper.jar"
)

// needTool fails under make test (KOBS_REQUIRE_BURROW) and skips
// elsewhere when a Debian package's file is missing.
func needTool(t testing.TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	if os.Getenv("KOBS_REQUIRE_BURROW") != "" {
		t.Fatalf("%s missing: install the Debian package %s (scripts/install-test-deps.sh)", path, pkg)
	}
	t.Skipf("%s not installed (Debian package %s)", path, pkg)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// logBuffer collects a child process's output for failure reports.
type logBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sb.Write(p)
}

func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.sb.String() }

// startProcess runs a child until the test ends, dumping its output if
// the test failed. The channel is closed when the child exits.
func startProcess(t testing.TB, name string, cmd *exec.Cmd) (*logBuffer, <-chan struct{}) {
	t.Helper()
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start(), "start %s", name)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, logs.String())
		}
	})
	return logs, done
}

var errChildExited = errors.New("exited before it was ready")

// serveOnFreePort starts a server child on a free loopback port and
// waits (a minute at most) until ready answers nil. The port is found by
// binding :0 and releasing it, so another process of the parallel test
// run can take it before the child (a JVM: seconds) binds it: the child
// then exits with "address already in use" and is started again on
// another port, up to 5 times.
func serveOnFreePort(t testing.TB, name string, newCmd func(addr string) *exec.Cmd, ready func(addr string) error) (string, *exec.Cmd) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		cmd := newCmd(addr)
		logs, exited := startProcess(t, name, cmd)
		deadline := time.Now().Add(time.Minute)
		var err error
		for {
			select {
			case <-exited:
				err = errChildExited
			default:
				err = ready(addr)
			}
			if err == nil {
				return addr, cmd
			}
			if err == errChildExited || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err == errChildExited && attempt < 5 && strings.Contains(strings.ToLower(logs.String()), "address already in use") {
			t.Logf("%s: %s was taken before it bound it; again on another port", name, addr)
			continue
		}
		t.Fatalf("%s on %s not ready within a minute: %v\n%s", name, addr, err, logs.String())
	}
}

// startZooKeeper runs a standalone ZooKeeper on a free loopback port
// (Burrow keeps its locks there) and waits until it serves: "srvr" shows
// a Mode only then ("ruok" answers imok before sessions are accepted).
func startZooKeeper(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	addr, _ := serveOnFreePort(t, "zookeeper", func(addr string) *exec.Cmd {
		_, port, _ := net.SplitHostPort(addr)
		cfg := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=srvr\n", dir, port)
		cfgPath := filepath.Join(dir, "zoo.cfg")
		require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
		return exec.Command("java", "-cp", zookeeperJar+":/usr/share/java/slf4j-simple.jar",
			"org.apache.zookeeper.server.ZooKeeperServerMain", cfgPath)
	}, func(addr string) error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("srvr")); err != nil {
			return err
		}
		out, _ := io.ReadAll(bufio.NewReader(c))
		if !strings.Contains(string(out), "Mode: standalone") {
			return fmt.Errorf("srvr answered %q", out)
		}
		return nil
	})
	return addr
}

// startBurrow runs Burrow against the broker with a generated config
// (broker offsets read every offsetRefresh seconds) and returns its HTTP
// base URL and process. kafka-version 2.1.0 (Burrow 1.2.1's highest):
// kobs, like Kafka 4, serves Fetch from v4, which sarama uses from 0.11.0.
func startBurrow(t testing.TB, zk, broker string, offsetRefresh int) (string, *exec.Cmd) {
	t.Helper()
	dir := t.TempDir()
	httpAddr, cmd := serveOnFreePort(t, "burrow", func(httpAddr string) *exec.Cmd {
		cfg := fmt.Sprintf(`[general]
pidfile="%[1]s/burrow.pid"
[logging]
level="info"
[zookeeper]
servers=["%[2]s"]
root-path="/burrow"
[client-profile.kobs]
kafka-version="2.1.0"
client-id="burrow"
[cluster.kobs]
class-name="kafka"
servers=["%[3]s"]
client-profile="kobs"
offset-refresh=%[5]d
topic-refresh=%[6]d
[consumer.kobs]
class-name="kafka"
cluster="kobs"
servers=["%[3]s"]
client-profile="kobs"
start-latest=false
[storage.default]
class-name="inmemory"
intervals=10
min-distance=1
expire-group=604800
[evaluator.default]
class-name="caching"
expire-cache=1
[httpserver.default]
address="%[4]s"
`, dir, zk, broker, httpAddr, offsetRefresh, 2*offsetRefresh)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "burrow.toml"), []byte(cfg), 0o644))
		cmd := exec.Command(burrowBin, "-config-dir", dir)
		cmd.Dir = dir
		return cmd
	}, func(httpAddr string) error {
		var v map[string]any
		_, err := getJSON("http://"+httpAddr+"/v3/kafka", &v)
		return err
	})
	return "http://" + httpAddr, cmd
}

// burrowLag is Burrow's per-partition current_lag for a group.
func burrowLag(url, group, topic string) (map[int32]int64, error) {
	var v struct {
		Error   bool   `json:"error"`
		Message string `json:"message"`
		Status  struct {
			Partitions []struct {
				Topic      string `json:"topic"`
				Partition  int32  `json:"partition"`
				CurrentLag int64  `json:"current_lag"`
			} `json:"partitions"`
		} `json:"status"`
	}
	code, err := getJSON(url+"/v3/kafka/kobs/consumer/"+group+"/lag", &v)
	if err != nil {
		return nil, err
	}
	if code != 200 || v.Error {
		return nil, fmt.Errorf("burrow: HTTP %d %s", code, v.Message)
	}
	out := map[int32]int64{}
	for _, p := range v.Status.Partitions {
		if p.Topic == topic {
			out[p.Partition] = p.CurrentLag
		}
	}
	return out, nil
}

// TestSideBySideWithBurrow: Burrow 1.2.1 (reading __consumer_offsets) and
// the agent (reading OffsetFetch) report the same lag per partition for
// the same group, before and after the lag changes.
func TestSideBySideWithBurrow(t *testing.T) {
	needTool(t, burrowBin, "burrow")
	needTool(t, zookeeperJar, "zookeeper")
	b := testcluster.Start(t)
	brokers := []string{b.Addr()}
	const topic, group, parts = "payments", "ledger", int32(3)
	ctx := context.Background()

	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	_, err = adm.CreateTopic(ctx, parts, 1, nil, topic)
	require.NoError(t, err)

	zk := startZooKeeper(t)
	burrow, _ := startBurrow(t, zk, b.Addr(), 1)
	a := startAgent(t, agent.Config{Brokers: brokers, Interval: 500 * time.Millisecond})

	prod := newProducer(t, brokers, topic, parts)
	commitSome := func(n int) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.FetchMaxPartitionBytes(100))
		require.NoError(t, err)
		defer cl.Close()
		var recs []*kgo.Record
		for len(recs) < n {
			fs := cl.PollRecords(ctx, n-len(recs))
			requireNoFatal(t, fs)
			recs = append(recs, fs.Records()...)
		}
		require.NoError(t, cl.CommitRecords(ctx, recs...))
	}
	same := func(what string) {
		t.Helper()
		waitFor(t, 90*time.Second, what, func() error {
			want, _, err := truth(ctx, adm, group, topic)
			if err != nil {
				return err
			}
			bl, err := burrowLag(burrow, group, topic)
			if err != nil {
				return err
			}
			m, err := scrape(a.URL)
			if err != nil {
				return err
			}
			for p, l := range want {
				k := key("kafka_consumergroup_lag", "consumergroup", group, "topic", topic, "partition", strconv.Itoa(int(p)))
				if m[k] != float64(l) || bl[p] != l {
					return fmt.Errorf("partition %d: cluster %d, agent %v, burrow %v", p, l, m[k], bl[p])
				}
			}
			t.Logf("%s: cluster, agent and Burrow agree: %v", what, want)
			return nil
		})
	}

	for i := 0; i < 30; i++ {
		require.NoError(t, prod.round(ctx))
	}
	commitSome(40)
	same("after a partial consume")

	for i := 0; i < 20; i++ {
		require.NoError(t, prod.round(ctx))
	}
	commitSome(30)
	same("after more produce and consume")
}
