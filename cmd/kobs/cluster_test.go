package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// runningKobs is a "kobs run" process started by startRun.
type runningKobs struct {
	cmd     *exec.Cmd
	ready   map[string]string // the key=value fields of its "kobs ready" line
	mu      sync.Mutex
	lines   []string
	scanned chan struct{}
}

// startRun starts "kobs run" with args and waits for its ready line.
func startRun(t *testing.T, bin string, args ...string) *runningKobs {
	t.Helper()
	r := &runningKobs{cmd: exec.Command(bin, append([]string{"run"}, args...)...), scanned: make(chan struct{})}
	stderr, err := r.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, r.cmd.Start())
	ready := make(chan map[string]string, 1)
	go func() {
		defer close(r.scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.lines = append(r.lines, line)
			r.mu.Unlock()
			if strings.Contains(line, `msg="kobs ready"`) {
				kv := map[string]string{}
				for _, f := range strings.Fields(line) {
					if k, v, ok := strings.Cut(f, "="); ok {
						kv[k] = v
					}
				}
				ready <- kv
			}
		}
	}()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	select {
	case r.ready = <-ready:
	case <-r.scanned:
		_ = r.cmd.Wait()
		t.Fatalf("kobs run exited before ready:\n%s", r.log())
	case <-time.After(90 * time.Second):
		t.Fatalf("kobs run not ready after 90s:\n%s", r.log())
	}
	return r
}

func (r *runningKobs) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// stop sends SIGINT and requires a clean exit.
func (r *runningKobs) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, r.cmd.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { <-r.scanned; done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "kobs run exits 0 on SIGINT:\n%s", r.log())
	case <-time.After(60 * time.Second):
		_ = r.cmd.Process.Kill()
		t.Fatalf("kobs run did not stop within 60s of SIGINT:\n%s", r.log())
	}
	require.Contains(t, r.log(), `msg="kobs stopped"`)
}

// freeClusterBase finds a Kafka port p such that p..p+n-1 and their
// controller ports (+10000) are free now: kobs run --brokers n derives
// fixed ports, which a restart must find again. They are taken below the
// kernel's ephemeral range when it leaves room (Linux's default starts at
// 32768): the ports are free between the check and the bind, and again
// between the stop and the restart, and there any outgoing connection of
// the parallel test run or a listener on :0 could be handed one of them.
func freeClusterBase(t *testing.T, n int) int {
	t.Helper()
	lo, span := 20000, 30000
	if low, ok := ephemeralLow(); ok && low-clusterControllerPort-n-lo >= 1000 {
		span = low - clusterControllerPort - n - lo
	}
	for range 50 {
		p := lo + rand.IntN(span)
		var held []net.Listener
		ok := true
		for i := range n {
			for _, port := range []int{p + i, p + i + clusterControllerPort} {
				ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
				if err != nil {
					ok = false
					break
				}
				held = append(held, ln)
			}
		}
		closeAll(held)
		if ok {
			return p
		}
	}
	t.Fatal("no free run of ports for a 3-node cluster")
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	low, err := strconv.Atoi(f[0])
	return low, err == nil
}

// TestRunBrokers3 is make run's cluster: "kobs run --brokers 3" starts three
// replicating brokers in one process; a topic gets RF 3 and
// min.insync.replicas 2 by default, acks=all records survive a restart of
// the whole process (same cluster id, same data), and every node serves.
func TestRunBrokers3(t *testing.T) {
	bin := testcluster.Binary(t)
	dir := t.TempDir()
	base := freeClusterBase(t, 3)
	conf := filepath.Join(dir, "server.properties")
	require.NoError(t, writeFile(conf, fmt.Sprintf("node.id=1\nlisteners=PLAINTEXT://127.0.0.1:%d\nlog.dirs=%s\n"+
		"kobs.http.listener=127.0.0.1:0\ngroup.initial.rebalance.delay.ms=0\nnum.partitions=2\n"+
		"broker.session.timeout.ms=2000\nbroker.heartbeat.interval.ms=500\n", base, filepath.Join(dir, "broker"))))
	args := []string{"--brokers", "3", "--config", conf, "--tracestore-dir", filepath.Join(dir, "tracestore"),
		"--tracestore-listen", "127.0.0.1:0", "--audit-listen", "127.0.0.1:0", "--audit-state-dir", filepath.Join(dir, "audit"),
		"--agent-listen", ""}
	var addrs, dirs []string
	for i := range 3 {
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(base+i))
		dirs = append(dirs, filepath.Join(dir, "broker-"+strconv.Itoa(i+1)))
	}

	start := time.Now()
	r := startRun(t, bin, args...)
	t.Logf("ready after %v", time.Since(start))
	require.Equal(t, strings.Join(addrs, ","), r.ready["kafka"])
	require.Equal(t, strings.Join(dirs, ","), r.ready["log.dirs"])
	require.Len(t, strings.Split(r.ready["telemetry"], ","), 6, "jolokia and metrics of each node")

	ctx := context.Background()
	adm := admin(t, addrs[1])
	bm, err := adm.BrokerMetadata(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []int32{1, 2, 3}, bm.Brokers.NodeIDs())
	// RF 3 (the default here) needs all three unfenced at that instant,
	// with 2 s sessions: retried while a stalled broker is fenced for a
	// moment; a retried creation that went through already exists.
	testcluster.Eventually(t, 30*time.Second, func() error {
		_, err := adm.CreateTopic(ctx, -1, -1, nil, "orders")
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		return err
	})
	// A whole-cluster restart waits for sessions and elections: a minute.
	fullISR := func() error {
		td, err := adm.ListTopics(ctx, "orders")
		if err == nil {
			err = td["orders"].Err
		}
		if err != nil {
			return err
		}
		if len(td["orders"].Partitions) != 2 {
			return fmt.Errorf("partitions %+v", td["orders"].Partitions)
		}
		for _, p := range td["orders"].Partitions {
			if len(p.Replicas) != 3 || len(p.ISR) != 3 {
				return fmt.Errorf("partition %d: replicas %v isr %v", p.Partition, p.Replicas, p.ISR)
			}
		}
		return nil
	}
	testcluster.Eventually(t, time.Minute, fullISR)
	// DescribeConfigs goes to any broker, and one whose image has not yet
	// applied the new topic answers UNKNOWN_TOPIC_OR_PARTITION (as on
	// Kafka, brokers learn of a topic after CreateTopics returns).
	minISR, found := "", false
	testcluster.Eventually(t, 30*time.Second, func() error {
		rc, err := adm.DescribeTopicConfigs(ctx, "orders")
		if err != nil {
			return err
		}
		c, err := rc.On("orders", nil)
		if err == nil {
			err = c.Err
		}
		if err != nil {
			return err
		}
		for _, kv := range c.Configs {
			if kv.Key == "min.insync.replicas" {
				minISR, found = kv.MaybeValue(), true
			}
		}
		if !found {
			return fmt.Errorf("no min.insync.replicas in %+v", c.Configs)
		}
		return nil
	})
	require.Equal(t, "2", minISR)

	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs[2]), kgo.RequiredAcks(kgo.AllISRAcks()))
	require.NoError(t, err)
	for i := range 20 {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte(strconv.Itoa(i))}).FirstErr())
	}
	cl.Close()
	t.Logf("produced after %v", time.Since(start))
	r.stop(t)
	t.Logf("stopped after %v", time.Since(start))

	// The same command again: the nodes find their data and cluster id.
	r = startRun(t, bin, args...)
	t.Logf("ready again after %v", time.Since(start))
	adm = admin(t, addrs[0])
	testcluster.Eventually(t, time.Minute, fullISR)
	t.Logf("in sync after %v", time.Since(start))
	// Each node answers from its own image, which may still name the
	// leaders of before the restart for a moment, and a new leader's high
	// watermark catches up with its followers' next fetch: the end offsets
	// through every node must come to exactly what was acknowledged (a
	// lost or duplicated record never does).
	for _, a := range addrs {
		adm := kadm.NewClient(mustClient(t, a))
		testcluster.Eventually(t, 30*time.Second, func() error {
			ends, err := adm.ListEndOffsets(ctx, "orders")
			if err == nil {
				err = ends.Error()
			}
			if err != nil {
				return fmt.Errorf("end offsets through %s: %w", a, err)
			}
			var sum int64
			ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
			if sum != 20 {
				return fmt.Errorf("end offsets through %s sum to %d, want the 20 acknowledged", a, sum)
			}
			return nil
		})
	}
	t.Logf("offsets after %v", time.Since(start))
	r.stop(t)
	t.Logf("stopped after %v", time.Since(start))
}

func mustClient(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// TestRunBrokersRefusesWhatItCannotDerive: --brokers N derives each node's
// listeners and quorum, so a config that sets them is refused by name.
func TestRunBrokersRefusesWhatItCannotDerive(t *testing.T) {
	bin := testcluster.Binary(t)
	dir := t.TempDir()
	for _, tc := range []struct{ extra, want string }{
		{"advertised.listeners=PLAINTEXT://kafka.example:9092\n", "remove advertised.listeners"},
		{"process.roles=broker,controller\ncontroller.quorum.voters=1@127.0.0.1:19092\nlisteners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:19092\ncontroller.listener.names=CONTROLLER\n", "from one listener"},
	} {
		conf := filepath.Join(dir, "server.properties")
		require.NoError(t, writeFile(conf, "node.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs="+filepath.Join(dir, "b")+"\n"+tc.extra))
		out, err := exec.Command(bin, "run", "--brokers", "3", "--config", conf, "--agent-listen", "").CombinedOutput()
		require.Error(t, err, "%s", out)
		require.Contains(t, string(out), tc.want)
		require.NoDirExists(t, filepath.Join(dir, "b-1"), "nothing started")
	}
}
