package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// BenchmarkBurrowAnchor runs Burrow 1.2.1 and the agent side by side on
// one kobs broker (its own process) holding KOBS_ANCHOR_TOPICS topics of
// 100 partitions (default 30: 3,000 partitions; a broker takes at most
// kobs.max.partitions.per.broker, 3,333 here), one record each, and
// KOBS_ANCHOR_GROUPS groups (default 20) committed at offset 0 on 5
// topics each (500 partitions, lag 1 each). Burrow reads the broker's
// offsets every 10 s (offset-refresh) and the commits from
// __consumer_offsets; the agent collects every 10 s. Once both report
// every group's total lag right, it measures over KOBS_ANCHOR_WINDOW
// (default 60s) the CPU time of Burrow, of the agent and of the broker,
// then the time Burrow takes to evaluate every group (one /lag request
// per group, its evaluator cache expired) against the agent's evaluation
// phase. Run with -benchtime 1x: it measures one window whatever b.N is.
//
//	go test -run '^$' -bench BurrowAnchor -benchtime 1x ./agent/
func BenchmarkBurrowAnchor(b *testing.B) {
	needTool(b, burrowBin, "burrow")
	needTool(b, zookeeperJar, "zookeeper")
	topics, groups := anchorEnv(b, "KOBS_ANCHOR_TOPICS", 30), anchorEnv(b, "KOBS_ANCHOR_GROUPS", 20)
	window := 60 * time.Second
	if v := os.Getenv("KOBS_ANCHOR_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		window = d
	}
	const parts, perGroup = 100, 5
	ctx := context.Background()
	br := testcluster.StartProcess(b)
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("anchor-%03d", i)
	}
	for i := 0; i < len(names); i += 20 {
		resp, err := adm.CreateTopics(ctx, parts, 1, nil, names[i:min(i+20, len(names))]...)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range resp.Sorted() {
			// A retried request finds the topics it created the first time.
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				b.Fatal(r.Topic, r.Err)
			}
		}
	}
	for _, name := range names {
		for p := int32(0); p < parts; p++ {
			cl.Produce(ctx, &kgo.Record{Topic: name, Partition: p, Value: []byte("x")}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	for g := 0; g < groups; g++ {
		var offs kadm.Offsets
		for k := 0; k < perGroup; k++ {
			for p := int32(0); p < parts; p++ {
				offs.Add(kadm.Offset{Topic: names[(g*perGroup+k)%topics], Partition: p, At: 0, LeaderEpoch: -1})
			}
		}
		if err := adm.CommitAllOffsets(ctx, fmt.Sprintf("anchor-g%02d", g), offs); err != nil {
			b.Fatal(err)
		}
	}
	wantLag := int64(perGroup * parts)

	zk := startZooKeeper(b)
	burrow, burrowCmd := startBurrow(b, zk, br.Addr(), 10)
	agentURL := "http://127.0.0.1:" + strconv.Itoa(freePort(b))
	agentCmd := exec.Command(testcluster.Binary(b), "agent", "--bootstrap-servers", br.Addr(),
		"--listen", strings.TrimPrefix(agentURL, "http://"), "--interval", "10s")
	startProcess(b, "agent", agentCmd)

	allRight := func() error {
		var list struct {
			Groups []struct {
				Group    string `json:"group"`
				TotalLag int64  `json:"total_lag"`
			} `json:"groups"`
		}
		if _, err := getJSON(agentURL+"/v1/groups", &list); err != nil {
			return err
		}
		agentLag := map[string]int64{}
		for _, g := range list.Groups {
			agentLag[g.Group] = g.TotalLag
		}
		for g := 0; g < groups; g++ {
			name := fmt.Sprintf("anchor-g%02d", g)
			var v struct {
				Status struct {
					TotalLag int64 `json:"totallag"`
				} `json:"status"`
			}
			if _, err := getJSON(burrow+"/v3/kafka/kobs/consumer/"+name+"/lag", &v); err != nil {
				return err
			}
			if v.Status.TotalLag != wantLag || agentLag[name] != wantLag {
				return fmt.Errorf("%s: total lag %d, Burrow %d, agent %d", name, wantLag, v.Status.TotalLag, agentLag[name])
			}
		}
		return nil
	}
	waitFor(b, 10*time.Minute, "Burrow and the agent report every group's lag", allRight)

	cpu := func(pid int) float64 {
		b.Helper()
		v, err := procCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	b.ResetTimer()
	b0, a0, k0 := cpu(burrowCmd.Process.Pid), cpu(agentCmd.Process.Pid), cpu(br.Pid())
	time.Sleep(window)
	b1, a1, k1 := cpu(burrowCmd.Process.Pid), cpu(agentCmd.Process.Pid), cpu(br.Pid())
	per10s := func(d float64) float64 { return d / window.Seconds() * 10 }

	// Burrow evaluates a group when asked (its cache expires after 1 s).
	time.Sleep(1100 * time.Millisecond)
	start := time.Now()
	if err := allRight(); err != nil {
		b.Fatal(err)
	}
	burrowEval := time.Since(start)
	var h struct {
		CycleSeconds float64            `json:"cycle_seconds"`
		Phases       map[string]float64 `json:"cycle_phases_seconds"`
	}
	if _, err := getJSON(agentURL+"/v1/health", &h); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(per10s(b1-b0), "burrow-cpu-s/10s")
	b.ReportMetric(per10s(a1-a0), "agent-cpu-s/10s")
	b.ReportMetric(per10s(k1-k0), "broker-cpu-s/10s")
	b.ReportMetric(burrowEval.Seconds(), "burrow-eval-all-groups-s")
	b.ReportMetric(h.Phases["evaluate"], "agent-evaluate-s")
	b.ReportMetric(h.CycleSeconds, "agent-cycle-s")
	b.Logf("%d partitions, %d groups of %d partitions: Burrow and the agent both report total lag %d per group", topics*parts, groups, perGroup*parts, wantLag)
}

func anchorEnv(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// procCPU is a process's user+system CPU seconds (USER_HZ 100).
func procCPU(pid int) (float64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil
}
