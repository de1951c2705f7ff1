package promtest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// AlertmanagerBinary is where Debian (prometheus-alertmanager) installs
// Alertmanager.
const AlertmanagerBinary = "/usr/bin/prometheus-alertmanager"

// require skips or fails (KOBS_REQUIRE_PROMETHEUS) when a binary is missing.
func require(t testing.TB, bin string) {
	t.Helper()
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("KOBS_REQUIRE_PROMETHEUS") != "" {
			t.Fatalf("KOBS_REQUIRE_PROMETHEUS is set but %s is missing (make deps installs it): %v", bin, err)
		}
		t.Skipf("%s not installed", bin)
	}
}

// StartConfig runs Prometheus with a given prometheus.yml and extra files
// beside it (rule files, by the names the config uses), on a free loopback
// port, returns once it is ready and stops it when the test ends.
func StartConfig(t testing.TB, config string, files map[string][]byte) *Server {
	t.Helper()
	require(t, Binary)
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, "prometheus", dir, Binary, func(addr string) []string {
		return []string{"--config.file=" + cfgPath,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr,
			"--log.level=warn"}
	})
	return &Server{Addr: addr}
}

// StartAlertmanager runs Alertmanager with the given config on a free
// loopback port (clustering off) and stops it when the test ends. It
// returns the host:port of its API once it is ready.
func StartAlertmanager(t testing.TB, config string) string {
	t.Helper()
	require(t, AlertmanagerBinary)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return serve(t, "alertmanager", dir, AlertmanagerBinary, func(addr string) []string {
		return []string{"--config.file=" + cfgPath,
			"--storage.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr,
			"--cluster.listen-address=",
			"--log.level=warn"}
	})
}

// serve runs a server process on a free loopback port (args gets the
// host:port) until the test ends, and returns that address once the server
// answers GET /-/ready with 200. The port is found by binding :0 and
// releasing it, so another process can take it before the server binds it:
// the server then exits at once ("address already in use") and serve
// starts it again on another port.
func serve(t testing.TB, name, dir, bin string, args func(addr string) []string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, attempt))
		exited := run(t, name, logPath, bin, args(addr)...)
		err := waitReady(addr, exited)
		if err == nil {
			return addr
		}
		b, _ := os.ReadFile(logPath)
		if attempt < 5 && errors.Is(err, errExited) && strings.Contains(string(b), "address already in use") {
			t.Logf("%s: %s was taken before it bound it; again on another port", name, addr)
			continue
		}
		t.Fatalf("%s on %s: %v; log:\n%s", name, addr, err, b)
	}
}

var errExited = errors.New("exited before it was ready")

// waitReady polls GET /-/ready (Prometheus and Alertmanager both serve it)
// until it answers 200, the process exits or a minute passes.
func waitReady(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(time.Minute)
	hc := &http.Client{Timeout: 5 * time.Second}
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errExited
		default:
		}
		resp, err := hc.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// And the process still runs: one that lost the port to
				// another process exits at once, so a 200 from a live one
				// is, in practice, its own.
				select {
				case <-exited:
					return errExited
				default:
					return nil
				}
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			return errExited
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready within a minute (last: %s)", last)
}

// run starts a server process logging into logPath and kills it at
// cleanup, printing its log if the test failed. The channel is closed when
// the process exits.
func run(t testing.TB, name, logPath, bin string, args ...string) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return exited
}
