package testcluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kobs-dev/kobs/broker"
	"github.com/kobs-dev/kobs/exporters"
)

type cfg struct {
	dir   string
	props map[string]string
	log   io.Writer
	// controllers is DedicatedControllers' k (StartCluster only).
	controllers int
}

// Opt configures a test broker.
type Opt func(*cfg)

// Dir makes the broker keep its data in dir (to restart on the same data),
// overriding the default of a fresh t.TempDir().
func Dir(dir string) Opt { return func(c *cfg) { c.dir = dir } }

// Prop sets a server.properties key.
func Prop(key, value string) Opt { return func(c *cfg) { c.props[key] = value } }

// Logs sends the broker's log output to w instead of discarding it.
func Logs(w io.Writer) Opt { return func(c *cfg) { c.log = w } }

func newCfg(t testing.TB, opts []Opt) *cfg {
	c := &cfg{props: map[string]string{
		"node.id":                         "1",
		"listeners":                       "PLAINTEXT://127.0.0.1:0",
		"num.partitions":                  "1",
		"auto.create.topics.enable":       "true",
		"log.retention.check.interval.ms": "300000",
		"kobs.http.listener":              "127.0.0.1:0",
		// One broker (Start, StartProcess), as config/server.properties;
		// clusters use min(n, 3) (clusterOpts).
		"offsets.topic.replication.factor": "1",
	}}
	for _, o := range opts {
		o(c)
	}
	if c.dir == "" {
		c.dir = t.TempDir()
	}
	c.props["log.dirs"] = c.dir
	return c
}

func (c *cfg) properties() *broker.Properties {
	p := broker.NewProperties()
	for k, v := range c.props {
		p.Set(k, v)
	}
	return p
}

// Broker is an in-process kobs broker bound to a free loopback port.
type Broker struct {
	*broker.Broker
	Dir string
}

// Addr is the broker's bootstrap address.
func (b *Broker) Addr() string { return b.Addrs()[0] }

// Start runs a broker in this process and stops it when the test ends.
func Start(t testing.TB, opts ...Opt) *Broker {
	t.Helper()
	c := newCfg(t, opts)
	conf, err := broker.NewConfig(c.properties())
	if err != nil {
		t.Fatalf("testcluster: config: %v", err)
	}
	logger := slog.New(slog.DiscardHandler)
	if c.log != nil {
		logger = slog.New(slog.NewTextHandler(c.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := broker.New(conf, logger)
	if err != nil {
		t.Fatalf("testcluster: new broker: %v", err)
	}
	b.MountHTTP(exporters.NewHandler(b.Registry()))
	if err := b.Start(); err != nil {
		t.Fatalf("testcluster: start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &Broker{Broker: b, Dir: c.dir}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/kobs once per test process and returns its path. The
// binary lives at one path per module checkout
// (<tmp>/kobs-testcluster-<hash of the module root>/kobs), replaced
// atomically by each build, so test runs leave no directories behind and
// concurrent test binaries never see a half-written file (a process still
// running the previous build keeps its inode).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		sum := sha256.Sum256([]byte(root))
		dir := filepath.Join(os.TempDir(), "kobs-testcluster-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		tmp, err := os.CreateTemp(dir, "kobs-build-*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		cmd := exec.Command("go", "build", "-o", tmp.Name(), "./cmd/kobs")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp.Name())
			buildErr = fmt.Errorf("go build ./cmd/kobs: %v\n%s", err, out)
			return
		}
		binPath = filepath.Join(dir, "kobs")
		if err := os.Rename(tmp.Name(), binPath); err != nil {
			os.Remove(tmp.Name())
			buildErr = err
		}
	})
	if buildErr != nil {
		t.Fatalf("testcluster: %v", buildErr)
	}
	return binPath
}

// Process is a kobs broker running as its own process, for tests that kill
// it (kill -9) or restart it on the same data.
type Process struct {
	t    testing.TB
	c    *cfg
	port string
	// controller is the CONTROLLER listener (host:port) of a cluster
	// node, kept across restarts; empty for a single process and a
	// broker-only node.
	controller string
	// controllerOnly: process.roles=controller, no Kafka listener; ready
	// once the quorum has formed.
	controllerOnly bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	addr    string
	done    chan struct{}
	logs    *syncBuffer
	exitErr error // of the last process that ended
}

// StartProcess starts `kobs broker` on a free port with a config file, and
// kills it when the test ends. The port stays the same across Restart.
func StartProcess(t testing.TB, opts ...Opt) *Process {
	t.Helper()
	c := newCfg(t, opts)
	p := &Process{t: t, c: c, logs: &syncBuffer{}}
	p.start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("broker log:\n%s", p.Logs())
		}
	})
	return p
}

// Addr is the broker's bootstrap address ("" for a dedicated controller).
func (p *Process) Addr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.addr }

// Dir is the broker's log dir.
func (p *Process) Dir() string { return p.c.dir }

// Logs returns everything the broker process has logged so far.
func (p *Process) Logs() string { return p.logs.String() }

func (p *Process) start() {
	p.t.Helper()
	if err := p.startErr(); err != nil {
		p.t.Fatal(err)
	}
}

// errAddrInUse is a process that could not bind a port it was given: the
// port was taken between reservation and start.
var errAddrInUse = errors.New("address already in use")

// startErr starts the process and waits for its ready line.
func (p *Process) startErr() error {
	t := p.t
	t.Helper()
	bin := Binary(t)
	props := map[string]string{}
	for k, v := range p.c.props {
		props[k] = v
	}
	port := p.port
	if port == "" {
		port = "0"
	}
	listeners := "PLAINTEXT://127.0.0.1:" + port
	if p.controller != "" {
		listeners += ",CONTROLLER://" + p.controller
	}
	if p.controllerOnly {
		listeners = "CONTROLLER://" + p.controller
	}
	if p.port != "" || p.controller != "" {
		props["listeners"] = listeners
	}
	var sb strings.Builder
	for k, v := range props {
		fmt.Fprintf(&sb, "%s=%s\n", k, v)
	}
	confPath := filepath.Join(t.TempDir(), "server.properties")
	if err := os.WriteFile(confPath, []byte(sb.String()), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "broker", "--config", confPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = p.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kobs broker: %w", err)
	}
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.WriteString(line + "\n")
			if p.controllerOnly && strings.Contains(line, "kobs controller ready") {
				select {
				case ready <- "":
				default:
				}
			}
			if strings.Contains(line, "kobs broker ready") {
				for _, f := range strings.Fields(line) {
					if v, ok := strings.CutPrefix(f, "listeners="); ok {
						select {
						case ready <- strings.Split(v, ",")[0]:
						default:
						}
					}
				}
			}
		}
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
	select {
	case addr := <-ready:
		p.mu.Lock()
		p.cmd, p.addr, p.done = cmd, addr, done
		if addr != "" {
			p.port = addr[strings.LastIndexByte(addr, ':')+1:]
		}
		p.mu.Unlock()
		return nil
	case <-done:
		if strings.Contains(p.logs.String(), "address already in use") {
			return fmt.Errorf("%w:\n%s", errAddrInUse, p.logs.String())
		}
		return fmt.Errorf("kobs broker exited before ready:\n%s", p.logs.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("kobs broker not ready after 60s:\n%s", p.logs.String())
	}
}

// Kill sends SIGKILL (an unclean stop) and waits for the process to end.
func (p *Process) Kill() { p.signal(syscall.SIGKILL) }

// Stop sends SIGTERM (a clean stop) and waits for the process to end. A
// paused process is resumed so it can act on it.
func (p *Process) Stop() { p.signal(syscall.SIGTERM) }

// Pause stops the process with SIGSTOP: it holds its ports and state but
// answers nothing (a long GC pause or a frozen VM, to the others). It
// returns once every thread has stopped: kill(2) only queues the signal,
// and the process runs on until one of its threads is scheduled to take
// it (over 100 ms on a loaded machine), long enough to answer a request
// the test sends expecting silence.
func (p *Process) Pause() {
	p.t.Helper()
	p.send(syscall.SIGSTOP)
	pid := p.Pid()
	Eventually(p.t, 10*time.Second, func() error { return stopped(pid) })
}

// stopped says whether every thread of process pid is in job-control stop
// (state T in /proc/<pid>/task/<tid>/stat).
func stopped(pid int) error {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended
		}
		if err != nil {
			return err
		}
		// The state follows the command name, which is in parentheses
		// and may itself hold spaces or parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		fields := strings.Fields(string(stat[i+1:]))
		if i < 0 || len(fields) == 0 {
			return fmt.Errorf("%s/%s/stat: %q", dir, task.Name(), stat)
		}
		if fields[0] != "T" {
			return fmt.Errorf("thread %s of process %d in state %s, not stopped yet", task.Name(), pid, fields[0])
		}
	}
	return nil
}

// Resume continues a paused process (SIGCONT).
func (p *Process) Resume() { p.send(syscall.SIGCONT) }

// Pid is the running process's id, 0 when none runs.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Process) send(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		p.t.Fatalf("testcluster: %v to a broker that is not running", sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("testcluster: %v: %v", sig, err)
	}
}

func (p *Process) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused process must run to act on sig
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// ExitErr is how the last stopped process ended: nil for exit status 0.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Restart starts the broker again on the same data and port. The ports
// were free since the stop, so a short-lived socket (a client connection
// given one of them as its local port) may hold one for a moment: a
// start that finds a port in use is retried for a few seconds; one held
// for longer fails the test.
func (p *Process) Restart() {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.startErr()
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			p.t.Fatal(err)
		}
		why := ""
		for _, line := range strings.Split(err.Error(), "\n") {
			if strings.Contains(line, "address already in use") {
				why = line // the broker's own line, which names the port, is the last
			}
		}
		p.t.Logf("testcluster: restart retried: %s", why)
		time.Sleep(200 * time.Millisecond)
	}
}

// Eventually polls cond every 50ms until it returns nil or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met within %v: %v", timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) WriteString(str string) {
	s.mu.Lock()
	s.b.WriteString(str)
	s.mu.Unlock()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
