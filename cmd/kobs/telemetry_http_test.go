package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kobs-dev/kobs/broker"
)

// TestTelemetryHandlerHealthAndJolokiaKeys runs a broker with the handler
// cmd/kobs mounts: /v1/health reports the Kafka listener, and the
// kobs.jolokia.* keys reach the Jolokia agent.
func TestTelemetryHandlerHealthAndJolokiaKeys(t *testing.T) {
	props := broker.NewProperties()
	for k, v := range map[string]string{
		"node.id": "1", "listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": t.TempDir(),
		"kobs.http.listener": "127.0.0.1:0", "kobs.jolokia.protocol": "1",
	} {
		props.Set(k, v)
	}
	cfg, err := broker.NewConfig(props)
	require.NoError(t, err)
	b, err := broker.New(cfg, nil)
	require.NoError(t, err)
	b.MountHTTP(telemetryHandler(b, cfg))
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	base := "http://" + b.HTTPAddr()

	resp, err := http.Get(base + "/v1/health")
	require.NoError(t, err)
	var h struct {
		Serving   bool
		Listeners []broker.ListenerHealth
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, h.Serving)
	require.Len(t, h.Listeners, 1)
	require.Equal(t, "PLAINTEXT", h.Listeners[0].Name)
	require.True(t, h.Listeners[0].Serving)

	resp, err = http.Get(base + "/jolokia/version")
	require.NoError(t, err)
	var v struct{ Value map[string]any }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	resp.Body.Close()
	require.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"), "kobs.jolokia.protocol=1")
	require.Equal(t, "1.7.2", v.Value["agent"])

	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestTelemetryHandlerPprofOptIn: /debug/pprof/ is served only with
// kobs.http.pprof.enable=true.
func TestTelemetryHandlerPprofOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		props := broker.NewProperties()
		for k, v := range map[string]string{
			"node.id": "1", "listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": t.TempDir(),
			"kobs.http.listener": "127.0.0.1:0", "kobs.http.pprof.enable": strconv.FormatBool(on),
		} {
			props.Set(k, v)
		}
		cfg, err := broker.NewConfig(props)
		require.NoError(t, err)
		b, err := broker.New(cfg, nil)
		require.NoError(t, err)
		b.MountHTTP(telemetryHandler(b, cfg))
		require.NoError(t, b.Start())
		resp, err := http.Get("http://" + b.HTTPAddr() + "/debug/pprof/goroutine?debug=1")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, b.Close())
		if on {
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Contains(t, string(body), "goroutine profile:")
		} else {
			require.NotContains(t, string(body), "goroutine profile:", "pprof served without kobs.http.pprof.enable")
		}
	}
}
