package controller

import (
	"fmt"
	"testing"
	"time"
)

// Heartbeats that change nothing are answered from the active
// controller's memory: neither a decision queue held longer than a session
// (a burst of AlterPartition commits) nor a forwarded write waiting on the
// shared controller connection may stop them, or brokers are fenced for
// the controller's slowness.
func TestHeartbeatsNotBlockedByBusyController(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	act, err := cl.active()
	if err != nil {
		t.Fatal(err)
	}
	addr := cl.voters[act.cfg.NodeID]
	// Block decisions on the active controller and the write connection
	// every other node forwards to it on.
	act.ctl.opMu.Lock()
	var held []*rpcClient
	for id, n := range cl.nodes {
		if id != act.cfg.NodeID {
			c := n.ctl.client(addr)
			c.mu.Lock()
			held = append(held, c)
		}
	}
	release := func() {
		for _, c := range held {
			c.mu.Unlock()
		}
		held = nil
		act.ctl.opMu.Unlock()
	}
	defer func() {
		if held != nil {
			release()
		}
	}()
	// Stay blocked for longer than a session; every broker's heartbeats
	// must keep arriving meanwhile.
	blocked := time.Now()
	eventually(t, 3*act.cfg.SessionTimeout, func() error {
		if time.Since(blocked) < act.cfg.SessionTimeout+act.cfg.HeartbeatInterval {
			return fmt.Errorf("blocked for %v only", time.Since(blocked))
		}
		return nil
	})
	act.ctl.hbMu.Lock()
	var stale []string
	for _, id := range []int32{1, 2, 3} {
		s := act.ctl.sessions[id]
		switch {
		case s == nil:
			stale = append(stale, fmt.Sprintf("broker %d: no session", id))
		// Blocked heartbeats would be a whole block (over a session)
		// old; half a session leaves room for a heartbeat that timed
		// out on a loaded machine (each waits one interval) and the
		// retry after it, which is not what this test is about.
		case time.Since(s.lastSeen) > act.cfg.SessionTimeout/2:
			stale = append(stale, fmt.Sprintf("broker %d: last heartbeat %v ago", id, time.Since(s.lastSeen).Round(time.Millisecond)))
		}
	}
	act.ctl.hbMu.Unlock()
	release()
	if stale != nil {
		t.Fatalf("heartbeats stopped while the controller was busy: %v", stale)
	}
	if n := act.ctl.m.timedOutHeartbeats.Load(); n != 0 {
		t.Fatalf("%d brokers fenced for missed heartbeats", n)
	}
}
