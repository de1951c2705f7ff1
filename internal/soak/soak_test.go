//go:build soak

package soak

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// clusterProps are the settings of every soak and bench cluster: a 2 s
// session timeout (the failover goal is stated for it) and a short lag
// time, so a restarted replica rejoins the ISR quickly.
func clusterOpts(extra ...testcluster.Opt) []testcluster.Opt {
	session := "2000"
	if v := os.Getenv("SOAK_SESSION_MS"); v != "" {
		session = v // to compare against another session timeout
	}
	return append([]testcluster.Opt{
		testcluster.Prop("broker.session.timeout.ms", session),
		testcluster.Prop("broker.heartbeat.interval.ms", "500"),
		testcluster.Prop("replica.lag.time.max.ms", "3000"),
		testcluster.Prop("default.replication.factor", "3"),
		testcluster.Prop("group.initial.rebalance.delay.ms", "0"),
	}, extra...)
}

// waitFullISR waits until every running broker reports, for each partition
// of topic, the same leader and all replicas in the ISR.
func waitFullISR(t *testing.T, c *testcluster.Cluster, topic string, partitions int32, timeout time.Duration) {
	t.Helper()
	testcluster.Eventually(t, timeout, func() error {
		for p := int32(0); p < partitions; p++ {
			first := int32(-2)
			for _, addr := range c.Addrs() {
				l, isr, err := partitionState(addr, topic, p)
				if err != nil {
					return fmt.Errorf("%s on %s: %w", topic, addr, err)
				}
				if len(isr) != len(c.IDs()) {
					return fmt.Errorf("%s/%d ISR %v on %s", topic, p, isr, addr)
				}
				if first != -2 && l != first {
					return fmt.Errorf("%s/%d leader %d on %s, %d elsewhere", topic, p, l, addr, first)
				}
				first = l
			}
		}
		return nil
	})
}

func leaderOf(t *testing.T, c *testcluster.Cluster, topic string) int32 {
	var leader int32
	testcluster.Eventually(t, 30*time.Second, func() error {
		for _, addr := range c.Addrs() {
			l, _, err := partitionState(addr, topic, 0)
			if err == nil && l >= 0 {
				leader = l
				return nil
			}
		}
		return errors.New("no leader")
	})
	return leader
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

// killLeaderRounds kills -9 the leader of topic/0 rounds times, restarting
// it and waiting for the full ISR each time, and returns the failover time
// of each kill: from the kill to the first acknowledged produce after the
// process is gone.
func killLeaderRounds(t *testing.T, c *testcluster.Cluster, p *producer, topic string, rounds int) []time.Duration {
	var failovers []time.Duration
	for round := 1; round <= rounds; round++ {
		leader := leaderOf(t, c, topic)
		before := p.ackCount()
		ctrl := "no"
		if quorumLeader(c.Node(leader).Addr()) == leader {
			ctrl = "yes"
		}
		killAt := time.Now()
		c.Node(leader).Kill()
		goneAt := time.Now()
		d, err := p.firstAckAfter(t, goneAt, 60*time.Second)
		if err != nil {
			t.Fatalf("round %d (killed leader %d): %v; producer errors so far: %d, last %v", round, leader, err, p.failed, p.lastErr)
		}
		d += goneAt.Sub(killAt)
		failovers = append(failovers, d)
		elected := "?"
		for _, addr := range c.Addrs() {
			if l, _, err := partitionState(addr, topic, 0); err == nil && l != leader && l >= 0 {
				elected = fmt.Sprintf("new leader %d", l)
				break
			}
		}
		c.Node(leader).Restart()
		waitFullISR(t, c, topic, 1, 90*time.Second)
		report(t, "kill %2d: leader %d kill -9 -> first acknowledged produce %v, %s, killed broker was the active controller: %s (acks so far %d, +%d this round)",
			round, leader, d.Round(time.Millisecond), elected, ctrl, p.ackCount(), p.ackCount()-before)
	}
	return failovers
}

// TestSoakKillsAndRollingRestart: 20 kill -9 rounds of the leader and a
// rolling restart under an idempotent acks=all producer, RF 3 and
// min.insync.replicas=2; everything acknowledged is read back exactly once.
func TestSoakKillsAndRollingRestart(t *testing.T) {
	rounds := 20
	if v := os.Getenv("SOAK_KILLS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	c := testcluster.StartCluster(t, 3, clusterOpts()...)
	const topic = "soak"
	createTopic(t, c.Addrs(), topic, 1, 3, map[string]*string{"min.insync.replicas": strp("2")})
	waitFullISR(t, c, topic, 1, 60*time.Second)
	p := startProducer(t, c.Addrs(), topic, "kill")
	if _, err := p.firstAckAfter(t, time.Now(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	failovers := killLeaderRounds(t, c, p, topic, rounds)
	report(t, "failover over %d kills: p50 %v, max %v, all %v", len(failovers),
		percentile(failovers, 0.5).Round(time.Millisecond), slices.Max(failovers).Round(time.Millisecond), roundAll(failovers))

	for _, id := range c.IDs() {
		start := time.Now()
		c.Node(id).Stop()
		if err := c.Node(id).ExitErr(); err != nil {
			t.Errorf("broker %d: SIGTERM exit: %v", id, err)
		}
		c.Node(id).Restart()
		waitFullISR(t, c, topic, 1, 90*time.Second)
		report(t, "rolling restart: broker %d SIGTERM -> back in every ISR in %v (acks so far %d)", id, time.Since(start).Round(time.Millisecond), p.ackCount())
	}
	acked := p.stop(t)
	read := readBack(t, c.Addrs(), topic)
	compare(t, "kills+rolling restart", acked, read, p)
}

func roundAll(ds []time.Duration) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Round(10*time.Millisecond).String())
	}
	return out
}

// TestSoakConnectionFlood opens thousands of idle connections to every
// broker of a 3-broker cluster while an acks=all producer runs, checks a new
// client is still served, then closes them; nothing acknowledged is lost.
func TestSoakConnectionFlood(t *testing.T) {
	perBroker := 3000
	if v := os.Getenv("SOAK_FLOOD"); v != "" {
		fmt.Sscan(v, &perBroker)
	}
	c := testcluster.StartCluster(t, 3, clusterOpts()...)
	const topic = "flood"
	createTopic(t, c.Addrs(), topic, 3, 3, map[string]*string{"min.insync.replicas": strp("2")})
	waitFullISR(t, c, topic, 3, 60*time.Second)
	p := startProducer(t, c.Addrs(), topic, "flood")
	if _, err := p.firstAckAfter(t, time.Now(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	probeProduce := func(value string) time.Duration {
		start := time.Now()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic(topic))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatalf("a new client's acks=all produce of %s: %v", value, err)
		}
		return time.Since(start)
	}
	report(t, "flood: before it, a new client's acks=all produce (connect, metadata, produce) took %v", probeProduce("probe-before-flood").Round(time.Millisecond))
	var conns []net.Conn
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	start := time.Now()
	var dialErrs int
	var lastDialErr error
	for _, addr := range c.Addrs() {
		for i := 0; i < perBroker; i++ {
			cn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				dialErrs++
				lastDialErr = err
				continue
			}
			conns = append(conns, cn)
		}
	}
	before := p.ackCount()
	report(t, "flood: %d idle connections open (%d dial errors, last %v) in %v; producer acks so far %d",
		len(conns), dialErrs, lastDialErr, time.Since(start).Round(time.Millisecond), before)

	// A new client is served while the idle connections stay open.
	during := probeProduce("probe-during-flood")
	if _, err := p.firstAckAfter(t, time.Now(), 30*time.Second); err != nil {
		t.Fatalf("the running producer during the flood: %v", err)
	}
	report(t, "flood: during it, a new client's acks=all produce took %v; running producer still acknowledged (acks so far %d)", during.Round(time.Millisecond), p.ackCount())
	// Idle connections still open: are they all still alive, or did the
	// broker close some (an idle timeout is allowed; a crash is not)?
	for _, id := range c.IDs() {
		if c.Node(id).Pid() == 0 {
			t.Fatalf("broker %d died during the flood", id)
		}
	}
	for _, cn := range conns {
		cn.Close()
	}
	conns = nil
	if _, err := p.firstAckAfter(t, time.Now(), 30*time.Second); err != nil {
		t.Fatalf("producer after the flood: %v", err)
	}
	acked := p.stop(t)
	acked["probe-before-flood"], acked["probe-during-flood"] = 1, 1
	read := readBack(t, c.Addrs(), topic)
	compare(t, "connection flood", acked, read, p)
}

// TestSoakDiskFull runs one broker on a 32 MiB tmpfs (root only; skipped
// otherwise), fills it with an acks=all producer until produce fails,
// frees the space, checks produce resumes, restarts the broker and reads
// everything acknowledged back.
func TestSoakDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("disk-full cycle needs root to mount a small tmpfs; not done")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s; disk-full cycle not done", err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	}()
	dir := filepath.Join(mnt, "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := testcluster.StartProcess(t, testcluster.Dir(dir), testcluster.Prop("log.segment.bytes", "1048576"))
	defer b.Kill() // before the umount
	const topic = "diskfull"
	createTopic(t, []string{b.Addr()}, topic, 1, 1, nil)

	// Fill the disk but ~1 MiB with a file we can delete later.
	filler := filepath.Join(mnt, "filler")
	var st = func() (free uint64) {
		out, _ := exec.Command("df", "--output=avail", "-B1", mnt).Output()
		f := strings.Fields(string(out))
		fmt.Sscan(f[len(f)-1], &free)
		return free
	}
	free := st()
	if err := os.WriteFile(filler, make([]byte, int(free)-1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProducer(t, []string{b.Addr()}, topic, "disk")
	// Wait until the producer stops getting acks or sees errors.
	deadline := time.Now().Add(90 * time.Second)
	var fullAt time.Time
	for time.Now().Before(deadline) {
		p.mu.Lock()
		failed, lastErr := p.failed, p.lastErr
		p.mu.Unlock()
		n := p.ackCount()
		time.Sleep(2 * time.Second)
		if failed > 0 || p.ackCount() == n {
			fullAt = time.Now()
			report(t, "disk full: %d acknowledged, %d producer errors (last %v), free %d bytes; broker alive %v",
				p.ackCount(), failed, lastErr, st(), b.Pid() != 0)
			break
		}
	}
	if fullAt.IsZero() {
		t.Fatalf("the disk never filled: %d acknowledged, free %d", p.ackCount(), st())
	}
	tail := b.Logs()
	if i := len(tail) - 1500; i > 0 {
		tail = tail[i:]
	}
	t.Logf("broker log tail while full:\n%s", tail)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freedAt := time.Now()
	if _, err := p.firstAckAfter(t, freedAt, 60*time.Second); err != nil {
		t.Errorf("after freeing the disk: %v (broker pid %d)", err, b.Pid())
	} else {
		report(t, "disk freed: produce acknowledged again after %v", time.Since(freedAt).Round(time.Millisecond))
	}
	acked := p.stop(t)
	b.Stop()
	b.Restart()
	read := readBack(t, []string{b.Addr()}, topic)
	compare(t, "disk-full cycle", acked, read, p)
}
