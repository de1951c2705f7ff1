package controller

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it started: raft, transports, listeners,
// heartbeat and fetch loops.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
