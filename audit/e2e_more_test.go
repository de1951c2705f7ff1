package audit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

func committedSeen(r *runningReconciler, g, topic string, p int32) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.c.st.Committed[g][topic][p]; ok {
		return o
	}
	return -1
}

func sumGroup(m map[int64]BucketReport, g string, f func(GroupReport) int64) (n int64) {
	for _, b := range m {
		if gr, err := group(b, g); err == nil {
			n += f(gr)
		}
	}
	return n
}

func allClosed(m map[int64]BucketReport, want counts) error {
	for bk := range want {
		br, ok := m[bk]
		if !ok {
			return fmt.Errorf("no bucket %d", bk)
		}
		if br.Status == StatusPending {
			return fmt.Errorf("bucket %v pending", br.Start)
		}
	}
	return nil
}

// TestAuditRetention: records deleted by retention before a group reached
// them are missing for that group, exactly as many as the log start skipped.
func TestAuditRetention(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	addr := b.Addr()
	const topic, n = "ret", 2000
	createTopic(t, addr, topic, 1, map[string]*string{"segment.bytes": ptr("16384")})
	r := startReconciler(t, addr, t.TempDir())
	produced := produceAudited(t, addr, topic, n, 500*time.Millisecond)

	c := newConsumer(t, addr, topic, "gret")
	c.poll(t, 500)
	c.close()
	testcluster.Eventually(t, 10*time.Second, func() error {
		if o := committedSeen(r, "gret", topic, 0); o != 500 {
			return fmt.Errorf("reconciler saw commit %d", o)
		}
		return nil
	})

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	acr, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "retention.bytes", Value: ptr("30000")}}, topic)
	require.NoError(t, err)
	for _, a := range acr {
		require.NoError(t, a.Err, a.ErrMessage)
	}
	var logStart int64
	testcluster.Eventually(t, 20*time.Second, func() error {
		so, err := adm.ListStartOffsets(context.Background(), topic)
		if err != nil {
			return err
		}
		if logStart = so[topic][0].Offset; logStart <= 500 {
			return fmt.Errorf("log start %d", logStart)
		}
		return nil
	})
	c2 := newConsumer(t, addr, topic, "gret")
	c2.poll(t, int(n-logStart))
	c2.close()

	lost := logStart - 500
	waitReport(t, r, topic, 30*time.Second, func(m map[int64]BucketReport) error {
		if err := allClosed(m, produced); err != nil {
			return err
		}
		missing := sumGroup(m, "gret", func(g GroupReport) int64 { return g.Missing })
		lostSeen := sumGroup(m, "gret", func(g GroupReport) int64 { return g.Lost })
		consumed := sumGroup(m, "gret", func(g GroupReport) int64 { return max(0, val(g.Consumed)) })
		dups := sumGroup(m, "gret", func(g GroupReport) int64 { return g.Duplicates })
		if missing != lost || lostSeen != lost || consumed != n-lost || dups != 0 {
			return fmt.Errorf("missing %d lost %d consumed %d dups %d; want missing=lost=%d consumed %d\n%s\nproduced %v first %v then %v", missing, lostSeen, consumed, dups, lost, n-lost, dump(m), produced, c.got, c2.got)
		}
		for _, br := range m {
			if g, err := group(br, "gret"); err == nil && g.Missing > 0 && (g.Status != StatusMissing || br.Status != StatusMissing) {
				return fmt.Errorf("bucket %v status %s group %s", br.Start, br.Status, g.Status)
			}
		}
		return nil
	})
}

func ptr(s string) *string { return &s }

// TestAuditRewindAndSkew: a group that rewinds shows duplicates equal to the
// re-read records, per bucket; a re-sent flush record is applied once; a
// record stamped an hour ahead lands in the labelled out-of-window bucket.
func TestAuditRewindAndSkew(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	addr := b.Addr()
	const topic, n, back = "rw", 1000, 150
	createTopic(t, addr, topic, 2, nil)
	r := startReconciler(t, addr, t.TempDir())
	produced := produceAudited(t, addr, topic, n, 1200*time.Millisecond)

	c := newConsumer(t, addr, topic, "grw")
	c.poll(t, n)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	require.NoError(t, err)
	rewind := map[string]map[int32]kgo.EpochOffset{topic: {}}
	ends.Each(func(o kadm.ListedOffset) {
		rewind[topic][o.Partition] = kgo.EpochOffset{Epoch: -1, Offset: o.Offset - back}
	})
	c.cl.SetOffsets(rewind)
	first := c.got
	c.got = counts{}
	c.poll(t, 2*back)
	reread := c.got
	c.close()
	require.Equal(t, produced, first)

	// A producer retry that duplicated a flush on the audit topic.
	ccl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{DefaultTopic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer ccl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dup *kgo.Record
	for dup == nil {
		fs := ccl.PollRecords(ctx, 100)
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(rec *kgo.Record) {
			if f, err := decodeFlush(rec.Value); dup == nil && err == nil && len(f.Counts) > 0 && f.Tier == TierProducer {
				dup = rec
			}
		})
	}
	require.NoError(t, cl.ProduceSync(context.Background(), &kgo.Record{Topic: DefaultTopic, Key: dup.Key, Value: dup.Value}).FirstErr())

	// Clock skew: one record an hour ahead.
	hook, err := NewProducerHook(Bucket(testBucket))
	require.NoError(t, err)
	createTopic(t, addr, "skew", 1, nil)
	pcl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("skewed"), kgo.WithHooks(hook))
	require.NoError(t, err)
	require.NoError(t, pcl.ProduceSync(context.Background(), &kgo.Record{Topic: "skew", Value: []byte("x"), Timestamp: time.Now().Add(time.Hour)}).FirstErr())
	pcl.Close()
	hook.Close()
	require.EqualValues(t, 1, hook.Stats().OutOfWindow)

	waitReport(t, r, topic, 30*time.Second, func(m map[int64]BucketReport) error {
		if err := allClosed(m, produced); err != nil {
			return err
		}
		for bk, want := range produced {
			br := m[bk]
			g, err := group(br, "grw")
			if err != nil {
				return err
			}
			wantStatus := StatusComplete
			if reread[bk] > 0 {
				wantStatus = StatusDuplicated
			}
			if val(br.Producer) != want || g.Duplicates != reread[bk] || g.Missing != 0 || val(g.Consumed) != want+reread[bk] || g.Status != wantStatus {
				return fmt.Errorf("bucket %v: producer %d, grw %+v; want dups %d", br.Start, val(br.Producer), g, reread[bk])
			}
		}
		return nil
	})
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n := r.Status().Skipped["resent"]; n != 1 {
			return fmt.Errorf("resent flushes skipped: %d", n)
		}
		rep := r.Report("skew", time.Now().Add(-time.Hour))
		if len(rep) == 0 || rep[len(rep)-1].Status != StatusOutOfWindow || val(rep[len(rep)-1].Producer) != 1 {
			return fmt.Errorf("skew report %+v", rep)
		}
		return nil
	})
	resp, err := http.Get(r.url + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), `kobs_audit_out_of_window_records_total{client="skewed",tier="producer",topic="skew"} 1`)
	require.Contains(t, string(body), fmt.Sprintf(`kobs_audit_duplicate_records{group="grw",topic="rw"} %d`, 2*back))
}

// TestMain lets the test binary double as the audited producer that
// TestAuditProducerKilled kills with SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("KOBS_AUDIT_CHILD") == "produce" {
		childProduce(os.Getenv("KOBS_AUDIT_ADDR"), os.Getenv("KOBS_AUDIT_TOPIC"))
		return
	}
	os.Exit(m.Run())
}

// childProduce produces a record every millisecond or so until killed,
// with an audit hook flushing every second.
func childProduce(addr, topic string) {
	hook, err := NewProducerHook(Bucket(testBucket))
	if err != nil {
		panic(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("doomed"), kgo.WithHooks(hook), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		panic(err)
	}
	fmt.Println("producing", hook.Instance())
	for i := 0; ; i++ {
		cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: []byte("doomed")}, nil)
		if i%10 == 0 {
			time.Sleep(10 * time.Millisecond) // pacing, ~1000 records/s
		}
	}
}

// TestAuditProducerKilled: an audited producer killed with SIGKILL between
// two flushes leaves the buckets it was writing uncertain, not complete.
func TestAuditProducerKilled(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	addr := b.Addr()
	const topic = "doomed"
	createTopic(t, addr, topic, 1, nil)
	r := startReconciler(t, addr, t.TempDir())

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KOBS_AUDIT_CHILD=produce", "KOBS_AUDIT_ADDR="+addr, "KOBS_AUDIT_TOPIC="+topic)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	instance := strings.TrimSpace(strings.TrimPrefix(line, "producing "))

	// Kill it right after the reconciler applied one of its flushes with
	// counts: the next flush is a second away.
	flushTS := func() (int64, uint64) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if in := r.c.st.Instances[instance]; in != nil {
			return in.LastTS, in.Contig
		}
		return 0, 0
	}
	testcluster.Eventually(t, 20*time.Second, func() error {
		if _, seq := flushTS(); seq < 2 {
			return fmt.Errorf("flushes applied: %d", seq)
		}
		return nil
	})
	_, seq := flushTS()
	testcluster.Eventually(t, 5*time.Second, func() error {
		if _, s := flushTS(); s == seq {
			return fmt.Errorf("waiting for flush %d", seq+1)
		}
		return nil
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	waitReport(t, r, topic, 30*time.Second, func(m map[int64]BucketReport) error {
		// Read on every try: a flush the producer sent just before the
		// kill (on a loaded machine the next one can be due by then) is
		// applied after it, and the buckets it covers are complete.
		lastFlush, _ := flushTS()
		var uncertain, after int
		for _, br := range m {
			if br.Status == StatusPending && val(br.Broker) > 0 {
				return fmt.Errorf("bucket %v pending", br.Start)
			}
			if br.Status == StatusUncertain {
				uncertain++
			}
			// Buckets the producer wrote to after its last flush.
			if br.End.UnixMilli() > lastFlush && val(br.Broker) > 0 {
				after++
				if br.Status != StatusUncertain || br.ProducerVsBroker != StatusUncertain {
					return fmt.Errorf("bucket %v after the last flush is %s (%s): %+v", br.Start, br.Status, br.ProducerVsBroker, br)
				}
			}
		}
		if uncertain == 0 || after == 0 {
			return fmt.Errorf("uncertain buckets %d, buckets written after the last flush %d\n%s", uncertain, after, dump(m))
		}
		return nil
	})
	require.Equal(t, 1, r.Status().Instances["producer/dead"])
}

// TestAuditReconcilerRestart: the reconciler stops mid-run and comes back
// from an older copy of its state (as after a crash between two saves):
// every flush is applied exactly once, no bucket is lost or doubled.
func TestAuditReconcilerRestart(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	addr := b.Addr()
	const topic, n = "rs", 20000
	createTopic(t, addr, topic, 2, nil)
	dir := t.TempDir()
	r1 := startReconciler(t, addr, dir)

	done := make(chan counts, 1)
	errc := make(chan error, 1)
	go func() {
		c, err := produceAuditedErr(addr, topic, n, 4*time.Second)
		done <- c
		errc <- err
	}()
	statePath := filepath.Join(dir, stateFile)
	applied := func() int64 {
		r1.mu.Lock()
		defer r1.mu.Unlock()
		return r1.c.st.Totals[key3(topic, string(TierProducer), "")]
	}
	var (
		snapshot []byte
		atSnap   int64
	)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if atSnap = applied(); atSnap == 0 {
			return fmt.Errorf("no producer flush applied yet")
		}
		var err error
		snapshot, err = os.ReadFile(statePath)
		return err
	})
	testcluster.Eventually(t, 10*time.Second, func() error {
		if a := applied(); a <= atSnap {
			return fmt.Errorf("no flush applied since the snapshot (%d)", a)
		}
		return nil
	})
	r1.stop()
	require.NoError(t, os.WriteFile(statePath, snapshot, 0o644)) // the crash lost the later saves
	r2 := startReconciler(t, addr, dir)

	produced := <-done
	require.NoError(t, <-errc)
	require.EqualValues(t, n, produced.total())
	consumed := consumeAudited(t, addr, topic, "grs", n)
	require.Equal(t, produced, consumed)
	waitReport(t, r2, topic, 30*time.Second, func(m map[int64]BucketReport) error {
		if err := allClosed(m, produced); err != nil {
			return err
		}
		for bk, want := range produced {
			br := m[bk]
			g, err := group(br, "grs")
			if err != nil {
				return err
			}
			if val(br.Producer) != want || val(br.Broker) != want || br.Status != StatusComplete || val(g.Consumed) != want {
				return fmt.Errorf("bucket %v: %s producer %d broker %d consumed %d, want %d", br.Start, br.Status, val(br.Producer), val(br.Broker), val(g.Consumed), want)
			}
		}
		return nil
	})
	require.Zero(t, r2.Status().Skipped["resent"])
}

func dump(m map[int64]BucketReport) string {
	var sb strings.Builder
	for _, b := range m {
		fmt.Fprintf(&sb, "%d %s producer=%d broker=%d", b.Bucket, b.Status, val(b.Producer), val(b.Broker))
		for _, g := range b.Groups {
			fmt.Fprintf(&sb, " [%s %s consumed=%d reached=%d lost=%d missing=%d dups=%d]", g.Group, g.Status, val(g.Consumed), val(g.Reached), g.Lost, g.Missing, g.Duplicates)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// TestAuditHookNeverFailsTheClient: with the audit topic unreachable the
// audited producer still produces; the flushes that could not be delivered
// are counted when Close gives up.
func TestAuditHookNeverFailsTheClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	addr := b.Addr()
	createTopic(t, addr, "unaudited", 1, nil)
	hook, err := NewProducerHook(Bucket(testBucket), Brokers("127.0.0.1:1"), CloseTimeout(time.Second))
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.WithHooks(hook))
	require.NoError(t, err)
	for i := range 100 {
		require.NoError(t, cl.ProduceSync(context.Background(), &kgo.Record{Topic: "unaudited", Value: []byte(fmt.Sprint(i))}).FirstErr())
	}
	cl.Close()
	start := time.Now()
	hook.Close()
	require.Less(t, time.Since(start), 5*time.Second)
	st := hook.Stats()
	require.EqualValues(t, 100, st.Counted)
	require.Positive(t, st.Unflushed)
	require.Zero(t, st.Acked)
}

// TestAuditLogAppendTime: on a LogAppendTime topic the broker tier is exact:
// per bucket it equals the records whose (append) timestamps fall in it, as
// kcat reads them, and a kcat group that read everything is complete.
func TestAuditLogAppendTime(t *testing.T) {
	t.Parallel()
	kcat := need(t, "kcat")
	b := startBroker(t)
	addr := b.Addr()
	const topic, n = "appendtime", 20000
	createTopic(t, addr, topic, 2, map[string]*string{"message.timestamp.type": ptr("LogAppendTime")})
	r := startReconciler(t, addr, t.TempDir())
	produced := produceAudited(t, addr, topic, n, 2500*time.Millisecond)
	require.EqualValues(t, n, produced.total())

	byAppend := counts{}
	out := runCmd(t, kcat, "-b", addr, "-G", "gappend", "-c", fmt.Sprint(n), "-f", "%T\n", "-q",
		"-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=100", topic)
	for _, f := range strings.Fields(out) {
		var ts int64
		_, err := fmt.Sscan(f, &ts)
		require.NoError(t, err)
		byAppend[bucketOf(ts, testBucket.Milliseconds())]++
	}
	require.EqualValues(t, n, byAppend.total())
	waitReport(t, r, topic, 30*time.Second, func(m map[int64]BucketReport) error {
		if err := allClosed(m, byAppend); err != nil {
			return err
		}
		var producer int64
		for bk, want := range byAppend {
			br := m[bk]
			g, err := group(br, "gappend")
			if err != nil {
				return err
			}
			if val(br.Broker) != want || g.Status != StatusComplete || val(g.Reached) != want {
				return fmt.Errorf("bucket %v: broker %d, gappend %+v; want %d", br.Start, val(br.Broker), g, want)
			}
		}
		for _, br := range m {
			producer += max(0, val(br.Producer))
		}
		if producer != n {
			return fmt.Errorf("producer total %d", producer)
		}
		return nil
	})
}
