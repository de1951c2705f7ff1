package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testServer is a Store served over real HTTP on a free loopback port.
type testServer struct {
	*Store
	URL  string
	stop func()
}

// startStore opens a store in dir and serves it; Close runs at cleanup unless
// the test calls shutdown itself (restart tests).
func startStore(t testing.TB, cfg Config) *testServer {
	t.Helper()
	s, err := Open(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	ts := &testServer{Store: s, URL: "http://" + ln.Addr().String()}
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
		_ = s.Close()
	}
	t.Cleanup(ts.stop)
	return ts
}

// do sends a request and decodes the JSON answer into a generic value.
func (ts *testServer) do(t testing.TB, method, path string, body any) (int, map[string]any) {
	t.Helper()
	status, raw := ts.raw(t, method, path, body)
	if len(bytes.TrimSpace(raw)) == 0 {
		return status, nil
	}
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), "body: %s", raw)
	return status, out
}

func (ts *testServer) raw(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	status, raw, err := ts.rawErr(method, path, body)
	require.NoError(t, err)
	return status, raw
}

// rawErr is raw for goroutines the test starts: it returns what went wrong
// instead of failing the test (FailNow must run on the test goroutine).
func (ts *testServer) rawErr(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// shape replaces every leaf of a decoded JSON value by its JSON type, so two
// documents can be compared structurally (same keys, same nesting, same
// types) while values such as uuids and timings differ.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = shape(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = shape(e)
		}
		return out
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func mustJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &m))
	return m
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			require.NoError(t, errors.Join(errors.New("condition not met in time"), err))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
