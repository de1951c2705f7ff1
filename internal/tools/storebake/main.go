// Command storebake is the trace-store engine bake-off on the full path:
// trace events go over loopback HTTP as Elasticsearch _bulk requests (the
// shipper's shape: 5,000 events per request, two connections), are decoded,
// indexed and made durable before the answer, and then the journey queries
// run over HTTP: by message id, by key (newest 10 of a topic), by
// topic/partition/offset, and a topic page (newest 50 events of a topic in
// the last hour). It reports ingest events/s (wall clock) and the CPU time
// the process spent per event (user+sys, which a busy shared machine
// disturbs much less than the wall clock), bytes on disk per event, and
// p50/p99 per query shape.
//
// Engines:
//
//	store   the product: tracing/store behind its Elasticsearch API (bleve
//	        until the segment-log engine replaced it; build this tool from
//	        an older commit to measure bleve)
//	pebble  documents and secondary-index keys in one pebble LSM, one
//	        synced batch per _bulk
//	seglog  an append-only log of the raw documents (one fsync per
//	        _bulk) with in-memory indexes of the open segment (see seglog.go
//	        for what a finished design would add)
//
// It is a measurement tool, not product code; docs/trace-store.md holds the
// results. Usage:
//
//	go run ./internal/tools/storebake -engine pebble -events 500000
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/kobs-dev/kobs/tracing"
)

// engine is one store under test, serving POST /_bulk and the queries.
type engine interface {
	handler() http.Handler
	// query returns the request for one query; each engine speaks its own
	// query language (store: the Elasticsearch DSL).
	query(q benchQuery) (method, path string, body []byte)
	// settle makes the data durable and compacted, for the disk figure;
	// it returns how long that took (compaction debt counts as ingest).
	settle() (time.Duration, error)
	close() error
}

type benchQuery struct {
	kind      string // msg, key, offset, page
	msgID     string
	topic     string
	key       string
	partition int32
	offset    int64
	from, to  int64
}

var topics = []string{"orders", "payments", "audit"}

// event is the i-th synthetic event: message i/3 produced once and consumed
// by two groups, on 3 topics x 6 partitions, one event per millisecond.
func event(i int, base time.Time) tracing.Event {
	m := i / 3
	e := tracing.Event{MsgID: fmt.Sprintf("%032x", m*7919+1), TraceID: fmt.Sprintf("%032x", m*104729+1), SpanID: fmt.Sprintf("%016x", i+1),
		Topic: topics[m%3], Partition: int32(m % 6), Offset: int64(m / 6),
		Key: fmt.Sprintf("customer-%d", m%5000), Size: 1024, ClientID: "bench", Host: "bench-host",
		TS: base.Add(time.Duration(i) * time.Millisecond).UnixMilli()}
	switch i % 3 {
	case 0:
		e.Type, e.SendTS, e.RecordTS, e.LatencyUS = tracing.TypeProduce, e.TS-2, e.TS-1, 2000
	default:
		e.Type, e.Group, e.Member, e.RecordTS, e.E2EUS = tracing.TypeConsume, fmt.Sprintf("group-%d", i%3), "member-1", e.TS-5, 5000
	}
	return e
}

func bulkBody(first, n int, base time.Time) []byte {
	var buf bytes.Buffer
	for i := first; i < first+n; i++ {
		e := event(i, base)
		raw := e.Marshal()
		fmt.Fprintf(&buf, `{"index":{"_index":%q,"_id":%q}}`+"\n", tracing.IndexName(tracing.IndexPrefix, e.TS), tracing.DocID(&e, raw))
		buf.Write(raw)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func diskBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func main() {
	var (
		engineName = flag.String("engine", "store", "store, pebble or seglog")
		events     = flag.Int("events", 200000, "events to ingest")
		perBulk    = flag.Int("bulk", 5000, "events per _bulk request")
		conns      = flag.Int("conns", 2, "concurrent _bulk connections")
		queries    = flag.Int("queries", 200, "queries per shape")
		dir        = flag.String("dir", "", "data directory (default: a temporary one, removed at exit)")
		cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of the ingest to this file (and of the reopen to FILE.reopen)")
		reopen     = flag.Bool("reopen", false, "close and reopen the store at the end, timing the reopen (the store rebuilds its in-memory index from the log)")
	)
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "storebake-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	open := func() (engine, error) {
		switch *engineName {
		case "store":
			return openStore(*dir)
		case "pebble":
			return openPebble(*dir)
		case "seglog":
			return openSeglog(*dir)
		}
		return nil, fmt.Errorf("unknown engine %q", *engineName)
	}
	eng, err := open()
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: eng.handler()}
	go func() { _ = srv.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns}}

	// Bodies are rendered before the clock starts (the generator is not
	// part of the store's cost), into a file rather than memory: at 10M
	// events they would take 4.5 GB of heap beside the store's.
	base := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	bodyFile, err := os.CreateTemp("", "storebake-bodies-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(bodyFile.Name())
	type span struct{ off, n int64 }
	var bodies []span
	var off int64
	for i := 0; i < *events; i += *perBulk {
		b := bulkBody(i, min(*perBulk, *events-i), base)
		if _, err := bodyFile.Write(b); err != nil {
			log.Fatal(err)
		}
		bodies = append(bodies, span{off, int64(len(b))})
		off += int64(len(b))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
	}
	cpu0, wall0 := cpuTime(), time.Now()
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, *conns)
	for range *conns {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(bodies) {
					return
				}
				req, err := http.NewRequest(http.MethodPost, url+"/_bulk", io.NewSectionReader(bodyFile, bodies[i].off, bodies[i].n))
				if err != nil {
					errs <- err
					return
				}
				req.ContentLength = bodies[i].n
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Contains(raw[:min(80, len(raw))], []byte(`"errors":false`)) {
					errs <- fmt.Errorf("bulk: %d %.300s", resp.StatusCode, raw)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		log.Fatal(err)
	}
	ingestWall, ingestCPU := time.Since(wall0), cpuTime()-cpu0
	pprof.StopCPUProfile()
	settleCPU0 := cpuTime()
	settle, err := eng.settle()
	if err != nil {
		log.Fatal(err)
	}
	settleCPU := cpuTime() - settleCPU0
	disk := diskBytes(*dir)
	n := float64(*events)
	fmt.Printf("engine=%s events=%d bulk=%d conns=%d\n", *engineName, *events, *perBulk, *conns)
	fmt.Printf("ingest: %.0f events/s wall (%.1fs), %.1f CPU-us/event (%.0f events/s per core); settle (flush+compaction) %.1fs, %.1f CPU-us/event; counting it: %.0f events/s wall\n",
		n/ingestWall.Seconds(), ingestWall.Seconds(), float64(ingestCPU.Microseconds())/n, n/ingestCPU.Seconds(),
		settle.Seconds(), float64(settleCPU.Microseconds())/n, n/(ingestWall+settle).Seconds())
	fmt.Printf("disk: %d bytes, %.0f bytes/event\n", disk, float64(disk)/n)

	msgs := *events / 3
	end := event(*events-1, base).TS
	for _, kind := range []string{"msg", "key", "offset", "page"} {
		var lat []time.Duration
		for i := range *queries {
			m := (i * 7919) % msgs
			e := event(3*m, base)
			q := benchQuery{kind: kind, msgID: e.MsgID, topic: e.Topic, key: e.Key, partition: e.Partition, offset: e.Offset}
			want := 0
			switch kind {
			case "msg":
				want = 3
			case "offset":
				want = 3
			case "key":
				want = -1
			case "page":
				q.topic = topics[i%3]
				q.from, q.to = end-time.Hour.Milliseconds(), end
				want = 50
			}
			method, path, body := eng.query(q)
			start := time.Now()
			req, _ := http.NewRequest(method, url+path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				log.Fatal(err)
			}
			var r struct {
				Hits struct {
					Hits []json.RawMessage `json:"hits"`
				} `json:"hits"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			lat = append(lat, time.Since(start))
			if derr != nil || resp.StatusCode != 200 {
				log.Fatalf("query %s: %d %v", kind, resp.StatusCode, derr)
			}
			if got := len(r.Hits.Hits); (want > 0 && got != want) || (want < 0 && got == 0) {
				log.Fatalf("query %+v: %d hits, want %d", q, got, want)
			}
		}
		slices.Sort(lat)
		fmt.Printf("query %-6s p50 %6.2f ms  p99 %6.2f ms\n", kind, ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*99/100)]))
	}
	_ = srv.Close()
	fmt.Printf("memory: %s\n", heapInUse(n))
	if err := eng.close(); err != nil {
		log.Fatal(err)
	}
	if *reopen {
		eng = nil
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile + ".reopen")
			if err != nil {
				log.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				log.Fatal(err)
			}
		}
		start, cpu := time.Now(), cpuTime()
		eng, err := open()
		pprof.StopCPUProfile()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("reopen: %.1fs wall, %.1fs CPU; memory after it: %s\n", time.Since(start).Seconds(), (cpuTime() - cpu).Seconds(), heapInUse(n))
		if err := eng.close(); err != nil {
			log.Fatal(err)
		}
	}
}

// heapInUse reports the Go heap in use after a collection, per event.
func heapInUse(events float64) string {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("Go heap in use %d MB, %.0f bytes/event", ms.HeapInuse>>20, float64(ms.HeapInuse)/events)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeHits answers a query in the shape of Elasticsearch's hits, so the
// driver reads every engine's answer the same way.
func writeHits(w http.ResponseWriter, docs [][]byte) {
	var buf bytes.Buffer
	buf.WriteString(`{"hits":{"hits":[`)
	for i, d := range docs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"_source":`)
		buf.Write(d)
		buf.WriteByte('}')
	}
	buf.WriteString(`]}}`)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

// queryValues parses the /q query string the custom engines answer.
func queryValues(r *http.Request) benchQuery {
	v := r.URL.Query()
	p, _ := strconv.Atoi(v.Get("partition"))
	o, _ := strconv.ParseInt(v.Get("offset"), 10, 64)
	from, _ := strconv.ParseInt(v.Get("from"), 10, 64)
	to, _ := strconv.ParseInt(v.Get("to"), 10, 64)
	return benchQuery{kind: v.Get("kind"), msgID: v.Get("msg_id"), topic: v.Get("topic"), key: v.Get("key"),
		partition: int32(p), offset: o, from: from, to: to}
}

func customQuery(q benchQuery) (string, string, []byte) {
	return http.MethodGet, fmt.Sprintf("/q?kind=%s&msg_id=%s&topic=%s&key=%s&partition=%d&offset=%d&from=%d&to=%d",
		q.kind, q.msgID, q.topic, q.key, q.partition, q.offset, q.from, q.to), nil
}
