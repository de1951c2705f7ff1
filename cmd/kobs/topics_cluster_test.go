package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestTopicsDescribeFiltersOnReplicatedCluster: the describe filters on
// three kobs brokers (one metadata quorum, replication factor 3,
// min.insync.replicas 2, then 3) as a broker goes down and comes back; the
// ISR the filters saw is cross-checked with kadm's metadata.
func TestTopicsDescribeFiltersOnReplicatedCluster(t *testing.T) {
	c := testcluster.StartCluster(t, 3,
		testcluster.Prop("replica.lag.time.max.ms", "2000"),
		testcluster.Prop("broker.session.timeout.ms", "3000"),
		testcluster.Prop("broker.heartbeat.interval.ms", "300"),
		testcluster.Prop("replica.fetch.wait.max.ms", "100"),
		testcluster.Prop("kobs.http.listener", ""))
	seed := strings.Join(c.Addrs(), ",")
	bs := []string{"topics", "--bootstrap-server", seed}
	testcluster.Eventually(t, 30*time.Second, func() error {
		_, errOut, err := kobs(t, append(bs, "--create", "--topic", "ha", "--partitions", "3", "--replication-factor", "3",
			"--config", "min.insync.replicas=2", "--if-not-exists")...)
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	})
	partLine := regexp.MustCompile(`^\tTopic: ha\tPartition: (\d+)\tLeader: (\S+)\tReplicas: (\S+)\tIsr: (\S*)\t`)
	// filtered is the partitions a filter prints, as "p:isr".
	filtered := func(flag string) ([]string, error) {
		out, errOut, err := kobs(t, append(bs, "--describe", "--topic", "ha", flag, "--timeout", "5000")...)
		if err != nil {
			return nil, fmt.Errorf("%v: %s", err, errOut)
		}
		var ps []string
		for _, l := range nonEmptyLines(out) {
			m := partLine.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("not a partition line: %q", l)
			}
			ps = append(ps, m[1])
		}
		return ps, nil
	}
	expect := func(what string, want map[string][]string) {
		t.Helper()
		testcluster.Eventually(t, 45*time.Second, func() error {
			for flag, w := range want {
				got, err := filtered(flag)
				if err != nil {
					return err
				}
				if !slices.Equal(got, w) {
					return fmt.Errorf("%s: %s printed partitions %v, want %v", what, flag, got, w)
				}
			}
			return nil
		})
	}
	all, none := []string{"0", "1", "2"}, []string(nil)
	expect("healthy", map[string][]string{
		"--under-replicated-partitions": none, "--under-min-isr-partitions": none,
		"--at-min-isr-partitions": none, "--unavailable-partitions": none,
	})

	// One broker down: every partition is under-replicated and at min ISR.
	c.Node(3).Kill()
	expect("broker 3 down", map[string][]string{
		"--under-replicated-partitions": all, "--at-min-isr-partitions": all,
		"--under-min-isr-partitions": none, "--unavailable-partitions": none,
	})
	// Broker 1 is asked, the filters may have been answered by broker 2: its
	// image can lag a moment behind, so kadm gets the same ceiling.
	adm1 := admin(t, c.Node(1).Addr())
	testcluster.Eventually(t, 30*time.Second, func() error {
		md, err := adm1.Metadata(context.Background(), "ha")
		if err != nil {
			return err
		}
		if len(md.Topics["ha"].Partitions) != 3 {
			return fmt.Errorf("kadm sees %d partitions", len(md.Topics["ha"].Partitions))
		}
		for _, p := range md.Topics["ha"].Partitions {
			if len(p.ISR) != 2 || slices.Contains(p.ISR, 3) {
				return fmt.Errorf("kadm disagrees: partition %d ISR %v, want two without broker 3", p.Partition, p.ISR)
			}
		}
		return nil
	})

	// Asking for three in-sync replicas with two alive: under min ISR.
	// (A second broker down would cost the three-voter quorum its majority,
	// and with it any further metadata change, as in Kafka.)
	kobsOK(t, "configs", "--bootstrap-server", seed, "--entity-type", "topics", "--entity-name", "ha",
		"--alter", "--add-config", "min.insync.replicas=3")
	expect("broker 3 down, min.insync.replicas=3", map[string][]string{
		"--under-replicated-partitions": all, "--under-min-isr-partitions": all,
		"--at-min-isr-partitions": none, "--unavailable-partitions": none,
	})

	// Broker 3 back: it catches up and rejoins every ISR.
	c.Node(3).Restart()
	expect("all back", map[string][]string{
		"--under-replicated-partitions": none, "--under-min-isr-partitions": none,
		"--at-min-isr-partitions": all, "--unavailable-partitions": none,
	})
}
