package agent_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/agent"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// TestClusterDownIsStale kills the broker process: the next cycle fails,
// kobs_agent_up goes to 0 and every cluster metric is withheld, the API
// says stale with the data's age; after a restart, up 1 and fresh again.
func TestClusterDownIsStale(t *testing.T) {
	b := testcluster.StartProcess(t)
	const every = 500 * time.Millisecond
	a := startAgent(t, agent.Config{Brokers: []string{b.Addr()}, Interval: every})

	fresh := func() error {
		m, err := scrape(a.URL)
		if err != nil {
			return err
		}
		if m["kobs_agent_up"] != 1 || m["kafka_brokers"] != 1 {
			return fmt.Errorf("up %v, kafka_brokers %v", m["kobs_agent_up"], m["kafka_brokers"])
		}
		var h agent.Health
		code, err := getJSON(a.URL+"/v1/health", &h)
		if err != nil {
			return err
		}
		if code != 200 || h.Stale || !h.Up {
			return fmt.Errorf("health %d %+v", code, h)
		}
		return nil
	}
	waitFor(t, 20*time.Second, "up with a live broker", fresh)

	b.Kill()
	killed := time.Now()
	waitFor(t, 20*time.Second, "down after the kill", func() error {
		m, err := scrape(a.URL)
		if err != nil {
			return err
		}
		if m["kobs_agent_up"] != 0 {
			return fmt.Errorf("kobs_agent_up = %v", m["kobs_agent_up"])
		}
		if _, ok := m["kafka_brokers"]; ok {
			return fmt.Errorf("kafka_brokers still exported while down")
		}
		if m[key("kobs_agent_errors_total", "stage", "cycle")] < 1 {
			return fmt.Errorf("no failed cycle counted")
		}
		return nil
	})
	// The first cycle after the kill fails within its timeout (4/5 of the
	// interval): up is 0 at most one interval plus one timeout later, plus
	// slack for a loaded machine (850-890 ms were seen).
	took := time.Since(killed)
	t.Logf("kobs_agent_up 0 %v after the kill (interval %v)", took, every)
	require.Less(t, took, every+every*4/5+3*time.Second)

	var h agent.Health
	code, err := getJSON(a.URL+"/v1/health", &h)
	require.NoError(t, err)
	require.Equal(t, 503, code)
	require.True(t, h.Stale)
	require.False(t, h.Up)
	require.NotEmpty(t, h.LastError)
	require.Greater(t, h.AgeSeconds, 0.0)
	var groups struct {
		Stale      bool    `json:"stale"`
		AgeSeconds float64 `json:"age_seconds"`
	}
	code, err = getJSON(a.URL+"/v1/groups", &groups)
	require.NoError(t, err)
	require.Equal(t, 200, code)
	require.True(t, groups.Stale, "the API must say stale")
	require.Greater(t, groups.AgeSeconds, 0.0)

	b.Restart()
	waitFor(t, 30*time.Second, "up again after the restart", fresh)
}
