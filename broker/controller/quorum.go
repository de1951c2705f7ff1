package controller

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// ReplicaInfo is one quorum member's progress, as DescribeQuorum reports
// it. Times are Unix milliseconds, -1 when unknown.
type ReplicaInfo struct {
	ID                    int32 `json:"id"`
	LogEndOffset          int64 `json:"logEndOffset"`
	LastFetchTimestamp    int64 `json:"lastFetchTimestamp"`
	LastCaughtUpTimestamp int64 `json:"lastCaughtUpTimestamp"`
}

// QuorumInfo describes the metadata quorum as the active controller sees
// it: voters report their raft log end with every heartbeat, broker-only
// nodes (observers) the metadata offset they applied.
type QuorumInfo struct {
	LeaderID      int32         `json:"leaderId"`
	LeaderEpoch   int32         `json:"leaderEpoch"`
	HighWatermark int64         `json:"highWatermark"`
	Voters        []ReplicaInfo `json:"voters"`
	Observers     []ReplicaInfo `json:"observers"`
}

const opDescribeQuorum = "describeQuorum"

// Quorum describes the quorum; it asks the active controller.
func (c *Controller) Quorum(ctx context.Context) (QuorumInfo, error) {
	ctx, cancel := callCtx(ctx)
	defer cancel()
	res, err := c.submit(ctx, &command{Op: opDescribeQuorum})
	if err != nil {
		return QuorumInfo{}, err
	}
	return *res.Quorum, nil
}

// describeQuorum runs on the active controller.
func (c *Controller) describeQuorum() *QuorumInfo {
	stats := c.raft.Stats()
	term, _ := strconv.ParseInt(stats["term"], 10, 64)
	commit, _ := strconv.ParseInt(stats["commit_index"], 10, 64)
	q := &QuorumInfo{LeaderID: c.cfg.NodeID, LeaderEpoch: int32(term), HighWatermark: commit}
	now := time.Now()
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			return -1
		}
		return t.UnixMilli()
	}
	leo := int64(c.raft.LastIndex())
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	for _, id := range sortedIDs(c.cfg.Voters) {
		r := ReplicaInfo{ID: id, LogEndOffset: -1, LastFetchTimestamp: -1, LastCaughtUpTimestamp: -1}
		if id == c.cfg.NodeID {
			r.LogEndOffset, r.LastFetchTimestamp, r.LastCaughtUpTimestamp = leo, ms(now), ms(now)
		} else if p, ok := c.voterLEO[id]; ok {
			r.LogEndOffset, r.LastFetchTimestamp = int64(p.LEO), ms(p.Seen)
			if int64(p.LEO) >= commit {
				r.LastCaughtUpTimestamp = ms(p.Seen)
			}
		}
		q.Voters = append(q.Voters, r)
	}
	img := c.fsm.state().img
	for _, id := range img.BrokerIDs() {
		if _, voter := c.cfg.Voters[id]; voter {
			continue
		}
		r := ReplicaInfo{ID: id, LogEndOffset: -1, LastFetchTimestamp: -1, LastCaughtUpTimestamp: -1}
		if s := c.sessions[id]; s != nil && s.offset > 0 {
			r.LogEndOffset, r.LastFetchTimestamp = s.offset, ms(s.lastSeen)
			if s.offset >= img.Offset {
				r.LastCaughtUpTimestamp = ms(s.lastSeen)
			}
		}
		q.Observers = append(q.Observers, r)
	}
	return q
}

func sortedIDs[V any](m map[int32]V) []int32 {
	ids := make([]int32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// RaftMetrics are the values of Kafka's kafka.server:type=raft-metrics
// bean (KafkaRaftMetrics), for this node.
type RaftMetrics struct {
	CurrentState      string  // leader, candidate, voted, follower, unattached, observer
	CurrentLeader     int64   // -1 unknown
	CurrentVote       int64   // -1 none
	CurrentEpoch      int64   // raft term
	LogEndEpoch       int64   // term of the last log entry
	HighWatermark     int64   // -1 unknown
	LogEndOffset      int64   // raft last index (observers: applied offset)
	CommitLatencyAvg  float64 // ms, active controller's appends, 2 x 30 s window
	CommitLatencyMax  float64 // ms
	AppendRecordsRate float64 // records/s appended by this node as leader
	FetchRecordsRate  float64 // records/s applied from a leader
}

// RaftMetrics returns this node's raft-metrics values.
func (c *Controller) RaftMetrics() RaftMetrics {
	now := time.Now()
	c.m.mu.Lock()
	rm := RaftMetrics{CommitLatencyAvg: c.m.commitLatency.avg(now), CommitLatencyMax: c.m.commitLatency.maxOf(now), AppendRecordsRate: c.m.appended.rate(now),
		FetchRecordsRate: c.m.fetched.rate(now)}
	c.m.mu.Unlock()
	rm.CurrentLeader = int64(c.leaderID())
	rm.CurrentVote = -1
	if c.raft == nil {
		rm.CurrentState = "observer"
		off := c.fsm.state().img.Offset
		rm.LogEndOffset, rm.HighWatermark = off, off
		rm.CurrentEpoch = int64(c.fsm.state().controllerEpoch)
		return rm
	}
	stats := c.raft.Stats()
	rm.CurrentEpoch, _ = strconv.ParseInt(stats["term"], 10, 64)
	rm.HighWatermark, _ = strconv.ParseInt(stats["commit_index"], 10, 64)
	rm.LogEndOffset = int64(c.raft.LastIndex())
	rm.LogEndEpoch, _ = strconv.ParseInt(stats["last_log_term"], 10, 64)
	voteTerm, _ := c.store.GetUint64([]byte("LastVoteTerm"))
	if voteTerm == uint64(rm.CurrentEpoch) {
		if cand, err := c.store.Get([]byte("LastVoteCand")); err == nil {
			rm.CurrentVote = c.voterID(string(cand))
		}
	}
	switch c.raft.State() {
	case raft.Leader:
		rm.CurrentState, rm.CurrentVote = "leader", int64(c.cfg.NodeID)
	case raft.Candidate:
		rm.CurrentState, rm.CurrentVote = "candidate", int64(c.cfg.NodeID)
	default:
		switch {
		case rm.CurrentLeader >= 0:
			rm.CurrentState = "follower"
		case rm.CurrentVote >= 0:
			rm.CurrentState = "voted"
		default:
			rm.CurrentState = "unattached"
		}
	}
	return rm
}

// voterID maps what raft stored as a vote (a server id, or an address in
// older formats) to a node id, -1 if unknown.
func (c *Controller) voterID(s string) int64 {
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		return n
	}
	for id, addr := range c.cfg.Voters {
		if addr == s {
			return int64(id)
		}
	}
	return -1
}

// ListenerName is the controller listener's name.
func (c *Controller) ListenerName() string { return c.cfg.ListenerName }

// VoterIDs are the voters' node ids in order.
func (c *Controller) VoterIDs() []int32 { return sortedIDs(c.cfg.Voters) }

// VoterAddr is a voter's controller address (host:port).
func (c *Controller) VoterAddr(id int32) string { return c.cfg.Voters[id] }
