package promtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
// port, and stops it when the test ends.
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
	addr := freeAddr(t)
	run(t, "prometheus", dir, Binary,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	return &Server{Addr: addr}
}

// StartAlertmanager runs Alertmanager with the given config on a free
// loopback port (clustering off) and stops it when the test ends. It
// returns the host:port of its API.
func StartAlertmanager(t testing.TB, config string) string {
	t.Helper()
	require(t, AlertmanagerBinary)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	run(t, "alertmanager", dir, AlertmanagerBinary,
		"--config.file="+cfgPath,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn")
	return addr
}

// run starts a server process logging into dir and kills it at cleanup,
// printing its log if the test failed.
func run(t testing.TB, name, dir, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
}
