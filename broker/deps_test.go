package broker_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBrokerImportsNoConsumers keeps data flowing one way: the broker
// never imports the packages that read it (exporters, agent, tracing,
// audit); cmd/kobs mounts the exporters over Broker.Registry.
func TestBrokerImportsNoConsumers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/kobs-dev/kobs/broker").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/exporters", "/agent", "/tracing", "/audit"} {
			if strings.HasPrefix(dep, "github.com/kobs-dev/kobs"+banned) {
				t.Errorf("broker imports %s", dep)
			}
		}
	}
}
