package controller

import (
	"fmt"
	"testing"
	"time"
)

// A crashed active controller that is also a broker (combined roles): the
// new controller runs that broker's session from its last raft contact
// with the old leader, not from its own election, so the dead broker is
// fenced a session timeout after it went silent instead of a session
// timeout after the election. The surviving brokers get a full session.
func TestDeadControllerSessionRunsFromLastRaftContact(t *testing.T) {
	cl := newCluster(t, 3, nil)
	cl.waitLive(1, 2, 3)
	old, err := cl.active()
	if err != nil {
		t.Fatal(err)
	}
	oldID := old.cfg.NodeID
	cl.hardStop(oldID)
	stopped := time.Now()
	var next *node
	eventually(t, 15*time.Second, func() error {
		n, err := cl.active()
		if err != nil {
			return err
		}
		next = n
		return nil
	})
	next.ctl.hbMu.Lock()
	s := next.ctl.sessions[oldID]
	var lastSeen time.Time
	if s != nil {
		lastSeen = s.lastSeen
	}
	next.ctl.hbMu.Unlock()
	if s == nil || lastSeen.After(stopped) {
		t.Fatalf("session of the dead controller's broker %d runs from %v, after it stopped (%v): a full session from the election",
			oldID, lastSeen, stopped)
	}
	eventually(t, 10*time.Second, func() error {
		if b := next.pub.Load().Brokers[oldID]; b == nil || !b.Fenced {
			return fmt.Errorf("broker %d not fenced", oldID)
		}
		for id := range cl.nodes {
			if !next.pub.Load().Live(id) {
				return fmt.Errorf("surviving broker %d not live", id)
			}
		}
		return nil
	})
}
