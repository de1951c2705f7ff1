// Command agentbench measures one `kobs agent` collection cycle over a large
// cluster: it starts franz-go's kfake in this process with --topics x
// --partitions partitions, writes --records records to every partition,
// commits offsets for --groups groups (each on --group-topics topics, so
// lag is non-zero), then runs the agent binary as a child process and
// reads its cycle time (kobs_agent_cycle_seconds) and memory (VmHWM, the
// peak resident set, from /proc) after --cycles cycles. The agent runs in
// its own process so that its RSS is its own; kfake's CPU time is this
// process's, nearly all of it answering the agent.
//
// Each cycle prints its wall time, the agent's and kfake's CPU time over
// the interval and the cycle's phases (/v1/health cycle_phases_seconds).
// With --instant-cluster, kfake answers each request of the agent from a
// cache after its first sighting, so the cycles after the first measure
// the agent's own work (and the wire) without kfake's: the server's share
// of a cycle is the difference between the two modes.
//
//	agentbench --kobs bin/kobs --topics 1000 --partitions 100 --groups 100
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

func run() error {
	kobs := flag.String("kobs", "bin/kobs", "kobs binary")
	topics := flag.Int("topics", 1000, "topics")
	partitions := flag.Int("partitions", 100, "partitions per topic")
	records := flag.Int("records", 3, "records written to every partition")
	groups := flag.Int("groups", 100, "groups")
	groupTopics := flag.Int("group-topics", 10, "topics each group commits to (all their partitions)")
	cycles := flag.Int("cycles", 5, "cycles to measure")
	interval := flag.Duration("interval", 5*time.Second, "agent --interval")
	brokers := flag.Int("brokers", 3, "kfake brokers")
	instant := flag.Bool("instant-cluster", false, "kfake answers each of the agent's read requests from a cache filled the first time it sees it, so the cycles after the first measure the agent (and the wire), not kfake")
	advancing := flag.Bool("advancing", false, "with --instant-cluster: every end offset answered grows by one per cycle, as in a cluster being written to, so the agent's offset history fills (--cycles 62 fills the default 60 points)")
	flag.Parse()

	names := make([]string, *topics)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%04d", i)
	}
	start := time.Now()
	c, err := kfake.NewCluster(kfake.NumBrokers(*brokers), kfake.SeedTopics(int32(*partitions), names...))
	if err != nil {
		return err
	}
	defer c.Close()
	seeds := c.ListenAddrs()
	fmt.Printf("kfake: %d brokers, %d topics x %d partitions = %d partitions (%v)\n",
		*brokers, *topics, *partitions, *topics**partitions, time.Since(start).Round(time.Millisecond))

	ctx := context.Background()
	if err := populate(ctx, seeds, names, int32(*partitions), *records, *groups, *groupTopics); err != nil {
		return err
	}
	fmt.Printf("populated: %d records per partition, %d groups x %d partitions committed (%v)\n",
		*records, *groups, *groupTopics**partitions, time.Since(start).Round(time.Millisecond))

	if *instant {
		stop, err := cacheAnswers(c, seeds, *advancing)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Println("instant cluster: the agent's requests are answered from a cache after their first sighting")
	}
	return measure(*kobs, seeds, *interval, *cycles)
}

// cacheAnswers makes kfake answer the agent's read requests (Metadata,
// ListOffsets, DescribeConfigs, ListGroups, DescribeGroups, OffsetFetch)
// from a cache: the first time a request is seen on a broker, kfake
// answers it as usual and a client of the bench sends the same request to
// the same broker to fill the cache; from then on the cached answer goes
// back at once. The cluster does not change during the measurement, so
// the answers are the ones kfake would compute; what is left of a cycle's
// wall time is the agent's own work and the wire.
func cacheAnswers(c *kfake.Cluster, seeds []string, advancing bool) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		answers = map[string]kmsg.Response{} // nil: being fetched
		clients = map[[2]int16]*kgo.Client{}
		cycle   int64 // whole-cluster Metadata requests seen: one a cycle
	)
	// client returns a client that sends key at exactly version (kgo
	// sends the highest both sides support): the cached answer must be
	// encoded at the version the agent asked with.
	client := func(key, version int16) (*kgo.Client, error) {
		mu.Lock()
		defer mu.Unlock()
		if cl := clients[[2]int16{key, version}]; cl != nil {
			return cl, nil
		}
		vs := kversion.Stable()
		vs.SetMaxKeyVersion(key, version)
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MaxVersions(vs))
		if err != nil {
			return nil, err
		}
		clients[[2]int16{key, version}] = cl
		return cl, nil
	}
	for _, key := range []kmsg.Key{kmsg.Metadata, kmsg.ListOffsets, kmsg.DescribeConfigs, kmsg.ListGroups, kmsg.DescribeGroups, kmsg.OffsetFetch} {
		c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			node := c.CurrentNode()
			// The fingerprint is of the request with its lists sorted:
			// the agent may list the same groups or topics in another
			// order from one cycle to the next.
			same := kmsg.RequestForKey(req.Key())
			same.SetVersion(req.GetVersion())
			if err := same.ReadFrom(req.AppendTo(nil)); err != nil {
				return nil, err, true
			}
			canonical(same)
			at := node // Metadata and topic configs are answered alike by any broker
			if k := kmsg.Key(req.Key()); k == kmsg.Metadata || k == kmsg.DescribeConfigs {
				at = -1
			}
			fp := fmt.Sprintf("%d/%d/%d/%x", at, req.Key(), req.GetVersion(), same.AppendTo(nil))
			mu.Lock()
			resp, seen := answers[fp]
			if !seen {
				answers[fp] = nil
			}
			mu.Unlock()
			if m, ok := req.(*kmsg.MetadataRequest); ok && m.Topics == nil {
				mu.Lock()
				cycle++
				mu.Unlock()
			}
			if resp != nil {
				if lo, ok := resp.(*kmsg.ListOffsetsResponse); ok && advancing && isEndOffsets(req) {
					mu.Lock()
					n := cycle
					mu.Unlock()
					return advanced(lo, n), nil, true
				}
				return resp, nil, true
			}
			if !seen {
				// Ask kfake the same from the bench's client; that request
				// finds the fingerprint pending and is answered by kfake.
				// same is a copy: kfake goes on answering req itself.
				go func() {
					cl, err := client(req.Key(), req.GetVersion())
					var r kmsg.Response
					if err == nil {
						r, err = cl.Broker(int(node)).Request(ctx, same)
					}
					if err == nil && r.GetVersion() != req.GetVersion() {
						err = fmt.Errorf("answered at v%d, asked at v%d", r.GetVersion(), req.GetVersion())
					}
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						delete(answers, fp)
						return
					}
					answers[fp] = r
				}()
			}
			return nil, nil, false
		})
	}
	return func() {
		cancel()
		mu.Lock()
		defer mu.Unlock()
		for _, cl := range clients {
			cl.Close()
		}
	}, nil
}

// populate writes records to every partition and commits, for each group,
// an offset one short of the end on its topics' partitions.
func populate(ctx context.Context, seeds []string, names []string, parts int32, records, groups, groupTopics int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(1<<20), kgo.DisableIdempotentWrite())
	if err != nil {
		return err
	}
	defer cl.Close()
	errs := make(chan error, 1)
	for _, t := range names {
		for p := int32(0); p < parts; p++ {
			for i := 0; i < records; i++ {
				cl.Produce(ctx, &kgo.Record{Topic: t, Partition: p, Value: []byte("x")}, func(_ *kgo.Record, err error) {
					if err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				})
			}
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	select {
	case err := <-errs:
		return fmt.Errorf("produce: %w", err)
	default:
	}
	adm := kadm.NewClient(cl)
	for g := 0; g < groups; g++ {
		var os kadm.Offsets
		for i := 0; i < groupTopics; i++ {
			t := names[(g*groupTopics+i)%len(names)]
			for p := int32(0); p < parts; p++ {
				os.Add(kadm.Offset{Topic: t, Partition: p, At: int64(records - 1), LeaderEpoch: -1})
			}
		}
		if err := adm.CommitAllOffsets(ctx, fmt.Sprintf("group-%03d", g), os); err != nil {
			return fmt.Errorf("commit group %d: %w", g, err)
		}
	}
	return nil
}

func measure(kobs string, seeds []string, interval time.Duration, cycles int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	listen := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(kobs, "agent", "--bootstrap-servers", strings.Join(seeds, ","),
		"--listen", listen, "--interval", interval.String(), "--timeout", (interval * 4 / 5).String())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	// Poll the small /v1/health answer, not /metrics: a scrape of 100,000
	// partitions is measured once, at the end, on its own.
	var samples, cpus, kfakeCPUs, evals []float64
	var lastSuccess time.Time
	cpu0, _ := cpuSeconds(cmd.Process.Pid)
	self0, _ := cpuSeconds(os.Getpid())
	deadline := time.Now().Add(time.Duration(cycles+3) * interval * 3)
	for len(samples) < cycles && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		var h struct {
			Up           bool               `json:"up"`
			LastSuccess  time.Time          `json:"last_success"`
			CycleSeconds float64            `json:"cycle_seconds"`
			Phases       map[string]float64 `json:"cycle_phases_seconds"`
			FailedCycles int                `json:"failed_cycles"`
			Partial      bool               `json:"partial"`
			LastError    string             `json:"last_error"`
			Errors       []struct {
				Stage  string `json:"stage"`
				Broker int32  `json:"broker"`
				Err    string `json:"error"`
			} `json:"errors"`
		}
		resp, err := http.Get("http://" + listen + "/v1/health")
		if err != nil {
			continue
		}
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if h.FailedCycles > 0 {
			return fmt.Errorf("agent cycle failed: %s", h.LastError)
		}
		if !h.Up || h.LastSuccess.Equal(lastSuccess) {
			continue
		}
		lastSuccess = h.LastSuccess
		cpu1, err := cpuSeconds(cmd.Process.Pid)
		if err != nil {
			return err
		}
		self1, err := cpuSeconds(os.Getpid())
		if err != nil {
			return err
		}
		samples = append(samples, h.CycleSeconds)
		cpus = append(cpus, cpu1-cpu0)
		kfakeCPUs = append(kfakeCPUs, self1-self0)
		evals = append(evals, h.Phases["evaluate"])
		cpu0, self0 = cpu1, self1
		fmt.Printf("cycle %d: %.3f s wall, %.3f s agent CPU, %.3f s kfake CPU (partial %v); phases:%s\n",
			len(samples), h.CycleSeconds, cpus[len(cpus)-1], kfakeCPUs[len(kfakeCPUs)-1], h.Partial, phaseList(h.Phases))
		for _, e := range h.Errors {
			fmt.Printf("  partial: %s (broker %d): %s\n", e.Stage, e.Broker, e.Err)
		}
	}
	if len(samples) < cycles {
		return errors.New("agent did not complete enough cycles")
	}
	hwm, _, err := memory(cmd.Process.Pid)
	if err != nil {
		return err
	}
	scrapeStart := time.Now()
	m, err := scrape("http://" + listen + "/metrics")
	if err != nil {
		return err
	}
	scrapeTook := time.Since(scrapeStart)
	hwmScrape, _, err := memory(cmd.Process.Pid)
	if err != nil {
		return err
	}
	// The first cycle also dials every broker and the machine is shared:
	// the median of the others is the figure.
	steady := append([]float64(nil), samples[1:]...)
	sort.Float64s(steady)
	fmt.Printf("scrape: %d series, %d partitions, %d groups in %v\n", int(m["series"]), int(m["partitions"]), int(m["groups"]), scrapeTook.Round(time.Millisecond))
	// One line, key=value, for scripts/bench-agent.sh to take medians of
	// medians over interleaved runs.
	fmt.Printf("RESULT wall=%.3f wall_min=%.3f wall_max=%.3f agent_cpu=%.3f kfake_cpu=%.3f evaluate=%.3f first=%.3f rss_mb=%d rss_after_scrape_mb=%d cycles=%d\n",
		median(samples[1:]), steady[0], steady[len(steady)-1], median(cpus[1:]), median(kfakeCPUs[1:]), median(evals[1:]),
		samples[0], hwm>>10, hwmScrape>>10, len(steady))
	return nil
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// phaseList prints a cycle's phases in the order they start.
func phaseList(phases map[string]float64) string {
	var b strings.Builder
	for _, name := range []string{"metadata", "list_start_offsets", "list_end_offsets", "list_last_stable_offsets",
		"describe_configs", "list_groups", "describe_groups", "offset_fetch", "evaluate"} {
		if d, ok := phases[name]; ok {
			fmt.Fprintf(&b, " %s %.3f", name, d)
		}
	}
	return b.String()
}

// isEndOffsets: a ListOffsets request for end offsets (timestamp -1).
func isEndOffsets(req kmsg.Request) bool {
	r := req.(*kmsg.ListOffsetsRequest)
	return len(r.Topics) > 0 && len(r.Topics[0].Partitions) > 0 && r.Topics[0].Partitions[0].Timestamp == -1
}

// advanced copies an end-offsets answer with every offset n higher.
func advanced(resp *kmsg.ListOffsetsResponse, n int64) *kmsg.ListOffsetsResponse {
	out := *resp
	out.Topics = make([]kmsg.ListOffsetsResponseTopic, len(resp.Topics))
	for i, t := range resp.Topics {
		out.Topics[i] = t
		out.Topics[i].Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			p.Offset += n
			out.Topics[i].Partitions[j] = p
		}
	}
	return &out
}

// canonical sorts the lists of a request whose order does not matter.
func canonical(req kmsg.Request) {
	switch r := req.(type) {
	case *kmsg.OffsetFetchRequest:
		sort.Slice(r.Groups, func(i, j int) bool { return r.Groups[i].Group < r.Groups[j].Group })
	case *kmsg.DescribeGroupsRequest:
		sort.Strings(r.Groups)
	case *kmsg.DescribeConfigsRequest:
		sort.Slice(r.Resources, func(i, j int) bool { return r.Resources[i].ResourceName < r.Resources[j].ResourceName })
	case *kmsg.ListOffsetsRequest:
		sort.Slice(r.Topics, func(i, j int) bool { return r.Topics[i].Topic < r.Topics[j].Topic })
		for _, t := range r.Topics {
			sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Partition < t.Partitions[j].Partition })
		}
	case *kmsg.MetadataRequest:
		sort.Slice(r.Topics, func(i, j int) bool {
			a, b := r.Topics[i].Topic, r.Topics[j].Topic
			return a != nil && (b == nil || *a < *b)
		})
	}
}

// cpuSeconds is a process's user+system CPU time.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command: utime and stime are the
	// 14th and 15th fields of the whole line.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// memory reads VmHWM and VmRSS (kB) of a process.
func memory(pid int) (hwm, rss int64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss, sc.Err()
}

// scrape reads the agent's unlabelled metrics, plus the number of
// partitions (kafka_topic_partition_leader series) and groups
// (kafka_consumergroup_members series) and all series.
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	r := bufio.NewReaderSize(resp.Body, 1<<20)
	for {
		line, err := r.ReadString('\n')
		if len(line) > 0 && line[0] != '#' {
			name, val, ok := strings.Cut(strings.TrimSpace(line), " ")
			if ok {
				f, _ := strconv.ParseFloat(val, 64)
				switch {
				case strings.HasPrefix(name, "kafka_topic_partition_leader{"):
					out["partitions"]++
				case strings.HasPrefix(name, "kafka_consumergroup_members{"):
					out["groups"]++
				}
				out["series"]++
				switch {
				case !strings.Contains(name, "{"):
					out[name] = f
				}
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
