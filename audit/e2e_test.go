package audit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/promtest"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestAuditGroups: 100k records through audited producers; an audited group
// reads them all, a second stops halfway, a kcat group without any hook
// reads 40k. Per bucket, after the grace period: producer = broker, group 1
// complete, group 2 and kcat missing exactly what they did not read.
func TestAuditGroups(t *testing.T) {
	t.Parallel()
	kcat := need(t, "kcat")
	b := startBroker(t)
	addr := b.Addr()
	const topic, n = "orders", 100_000
	createTopic(t, addr, topic, 3, nil)
	r := startReconciler(t, addr, t.TempDir())

	produced := produceAudited(t, addr, topic, n, 2500*time.Millisecond)
	require.GreaterOrEqual(t, len(produced), 2, "records should span buckets")
	all := consumeAudited(t, addr, topic, "g1", n)
	half := consumeAudited(t, addr, topic, "g2", n/2)
	require.Equal(t, produced, all)

	kc := counts{}
	out := runCmd(t, kcat, "-b", addr, "-G", "gkcat", "-c", "40000", "-f", "%T\n", "-q",
		"-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=100", topic)
	for _, f := range strings.Fields(out) {
		ts, err := strconv.ParseInt(f, 10, 64)
		require.NoError(t, err)
		kc[bucketOf(ts, testBucket.Milliseconds())]++
	}
	require.EqualValues(t, 40000, kc.total())

	// A corrupt and a foreign record on the audit topic are skipped.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	require.NoError(t, cl.ProduceSync(context.Background(),
		&kgo.Record{Topic: DefaultTopic, Value: []byte("{not json")},
		&kgo.Record{Topic: DefaultTopic, Value: []byte(`{"kind":"someone-else","x":1}`)}).FirstErr())
	cl.Close()

	waitReport(t, r, topic, 60*time.Second, func(m map[int64]BucketReport) error {
		for bk, want := range produced {
			br, ok := m[bk]
			if !ok {
				return fmt.Errorf("no bucket %d", bk)
			}
			if br.Status == StatusPending {
				return fmt.Errorf("bucket %v pending", br.Start)
			}
			if val(br.Producer) != want || val(br.Broker) != want || br.ProducerVsBroker != StatusComplete {
				return fmt.Errorf("bucket %v: producer %d broker %d (%s), want %d", br.Start, val(br.Producer), val(br.Broker), br.ProducerVsBroker, want)
			}
			g1, err := group(br, "g1")
			if err != nil {
				return err
			}
			if g1.Status != StatusComplete || val(g1.Consumed) != want || g1.Missing != 0 || g1.Duplicates != 0 {
				return fmt.Errorf("bucket %v g1: %+v", br.Start, g1)
			}
			for name, got := range map[string]counts{"g2": half, "gkcat": kc} {
				g, err := group(br, name)
				if err != nil {
					return err
				}
				wantStatus := StatusComplete
				if want-got[bk] > 0 {
					wantStatus = StatusMissing
				}
				if g.Missing != want-got[bk] || g.Duplicates != 0 || g.Status != wantStatus || val(g.Reached) != got[bk] {
					return fmt.Errorf("bucket %v %s: %+v, want missing %d", br.Start, name, g, want-got[bk])
				}
			}
			if g, _ := group(br, "gkcat"); g.Source != "offsets" {
				return fmt.Errorf("kcat group source %q", g.Source)
			}
		}
		return nil
	})
	testcluster.Eventually(t, 10*time.Second, func() error {
		if st := r.Status(); st.Skipped["corrupt"] != 1 || st.Skipped["foreign"] != 1 || st.Skipped["resent"] != 0 {
			return fmt.Errorf("skipped %v, want one corrupt and one foreign", st.Skipped)
		}
		return nil
	})

	// The metrics say the same.
	resp, err := http.Get(r.url + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(body)
	for _, want := range []string{
		fmt.Sprintf(`kobs_audit_missing_records{group="g2",topic="orders"} %d`, n-half.total()),
		fmt.Sprintf(`kobs_audit_missing_records{group="gkcat",topic="orders"} %d`, n-kc.total()),
		`kobs_audit_missing_records{group="g1",topic="orders"} 0`,
		`kobs_audit_completeness_ratio{group="g1",topic="orders"} 1`,
		`kobs_audit_completeness_ratio{group="g2",topic="orders"} 0.5`,
		fmt.Sprintf(`kobs_audit_records_total{group="",tier="producer",topic="orders"} %d`, n),
		fmt.Sprintf(`kobs_audit_records_total{group="",tier="broker",topic="orders"} %d`, n),
		fmt.Sprintf(`kobs_audit_records_total{group="g2",tier="consumer",topic="orders"} %d`, n/2),
		fmt.Sprintf(`kobs_audit_records_total{group="gkcat",tier="committed",topic="orders"} %d`, kc.total()),
		fmt.Sprintf(`kobs_audit_records_total{group="g1",tier="committed",topic="orders"} %d`, n),
		`kobs_audit_skipped_records_total{reason="corrupt"} 1`,
		`kobs_audit_uncertain_buckets{topic="orders"} 0`,
	} {
		require.Contains(t, metrics, want)
	}
	// promtool's lint accepts the exposition.
	lint := exec.Command(need(t, "promtool"), "check", "metrics")
	lint.Stdin = strings.NewReader(metrics)
	lintOut, err := lint.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", lintOut)

	// A real Prometheus scraping the reconciler sees the same.
	prom := promtest.Start(t, strings.TrimPrefix(r.url, "http://"))
	testcluster.Eventually(t, 30*time.Second, func() error {
		v, err := prom.Query(context.Background(), `kobs_audit_missing_records{topic="orders",group="g2"}`)
		if err != nil {
			return err
		}
		if int64(v) != n-half.total() {
			return fmt.Errorf("prometheus: missing %v", v)
		}
		return nil
	})
}
