package agent

import (
	"encoding/json"
	"math"
	"slices"
	"sort"
)

// PartitionLag is a group's position on one partition.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the group's committed offset, -1 if it has none.
	Committed int64 `json:"committed_offset"`
	// End is what lag is measured against: the high watermark, or the
	// last stable offset with read_committed; -1 if it could not be listed.
	End int64 `json:"log_end_offset"`
	// Lag is End - Committed (0 if the commit is ahead of a just-listed
	// end), -1 when there is no commit or no end offset.
	Lag int64 `json:"lag"`
	// LagSeconds is the estimated age of the oldest unconsumed record,
	// NaN when unknown; LagSecondsSource says how it was obtained.
	LagSeconds       float64 `json:"-"`
	LagSecondsSource string  `json:"lag_seconds_source,omitempty"`
	Status           Status  `json:"status"`
	// Complete is the share of the status window filled (Burrow's
	// "complete"): below 1 the trend rules (STOP, STALL, WARN) cannot fire.
	Complete float64 `json:"complete"`
	MemberID string  `json:"consumer_id,omitempty"`
	ClientID string  `json:"client_id,omitempty"`
	Host     string  `json:"host,omitempty"`
	Err      string  `json:"error,omitempty"`

	// owned: a member of the group is assigned the partition.
	owned bool
}

// NoCommit reports whether the group has no committed offset here.
func (p *PartitionLag) NoCommit() bool { return p.Committed < 0 }

// MarshalJSON writes lag_seconds as null when unknown (JSON has no NaN).
func (p PartitionLag) MarshalJSON() ([]byte, error) {
	type plain PartitionLag
	return json.Marshal(struct {
		plain
		LagSeconds *float64 `json:"lag_seconds"`
		NoCommit   bool     `json:"no_committed_offset,omitempty"`
	}{plain(p), finite(p.LagSeconds), p.Committed < 0})
}

func finite(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

// GroupLag is a group's lag over all partitions it commits to or is
// assigned, with sums per topic.
type GroupLag struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Protocol     string `json:"protocol"`
	Coordinator  int32  `json:"coordinator"`
	Members      int    `json:"members"`
	// NoMembers: nobody consumes; its lag only grows.
	NoMembers  bool           `json:"no_members"`
	Partitions []PartitionLag `json:"partitions"`
	// TopicLag sums the lag per topic over partitions with a commit (as
	// kafka_exporter's kafka_consumergroup_lag_sum); TopicOffset sums the
	// committed offsets likewise.
	TopicLag      map[string]int64 `json:"topic_lag"`
	TopicOffset   map[string]int64 `json:"topic_committed_offset"`
	TotalLag      int64            `json:"total_lag"`
	MaxLagSeconds float64          `json:"-"`
	Status        Status           `json:"status"`
	Err           string           `json:"error,omitempty"`
}

// MarshalJSON writes max_lag_seconds as null when unknown.
func (g GroupLag) MarshalJSON() ([]byte, error) {
	type plain GroupLag
	return json.Marshal(struct {
		plain
		MaxLagSeconds *float64 `json:"max_lag_seconds"`
	}{plain(g), finite(g.MaxLagSeconds)})
}

// Lags computes every group's offset lag from a snapshot alone: lag in
// seconds is NaN and statuses are empty (they need the agent's history,
// see Agent or Describe).
func Lags(s *Snapshot) map[string]*GroupLag {
	out := make(map[string]*GroupLag, len(s.Groups))
	for name, g := range s.Groups {
		out[name] = groupLag(s, g)
	}
	return out
}

// groupLag covers the partitions the group committed to, the partitions
// its members are assigned, and the other partitions of the topics it
// committed to (reported without a commit, as kafka_exporter does).
func groupLag(s *Snapshot, g *Group) *GroupLag {
	gl := &GroupLag{
		Group: g.Name, State: g.State, ProtocolType: g.ProtocolType, Protocol: g.Protocol,
		Coordinator: g.Coordinator, Members: len(g.Members), NoMembers: len(g.Members) == 0,
		TopicLag: map[string]int64{}, TopicOffset: map[string]int64{},
		MaxLagSeconds: math.NaN(), Err: g.Err,
	}
	owner := map[TopicPartition]*Member{}
	for i := range g.Members {
		for _, tp := range g.Members[i].Assigned {
			owner[tp] = &g.Members[i]
		}
	}
	// Walked topic by topic in order, partitions sorted within each: at
	// 100 groups of 1,000 partitions a set keyed by topic-partition and a
	// sort of the whole result cost more than the rest of the lag.
	owned := map[string][]int32{}
	for tp := range owner {
		owned[tp.Topic] = append(owned[tp.Topic], tp.Partition)
	}
	topics := make([]string, 0, len(g.Committed))
	for topic := range g.Committed {
		topics = append(topics, topic)
	}
	for topic := range owned {
		if _, ok := g.Committed[topic]; !ok {
			topics = append(topics, topic)
		}
	}
	sort.Strings(topics)
	n := 0
	for _, topic := range topics {
		n += max(len(g.Committed[topic]), len(s.Topics[topic].partitionsOrNil())) + len(owned[topic])
	}
	gl.Partitions = make([]PartitionLag, 0, n)
	var idx []int32
	for _, topic := range topics {
		committed := g.Committed[topic]
		t := s.Topics[topic]
		idx = idx[:0]
		if committed != nil && t != nil {
			for _, p := range t.Partitions {
				idx = append(idx, p.Partition)
			}
		}
		for p := range committed {
			idx = append(idx, p)
		}
		idx = append(idx, owned[topic]...)
		slices.Sort(idx)
		idx = slices.Compact(idx)
		for _, part := range idx {
			tp := TopicPartition{topic, part}
			pl := PartitionLag{Topic: topic, Partition: part, Committed: -1, End: -1, Lag: -1, LagSeconds: math.NaN()}
			if c, ok := committed[part]; ok {
				pl.Committed = c
			}
			if len(owner) > 0 {
				if m := owner[tp]; m != nil {
					pl.MemberID, pl.ClientID, pl.Host = m.ID, m.ClientID, m.Host
					pl.owned = true
				}
			}
			p := t.partition(part)
			switch {
			case p == nil:
				pl.Err = "partition not in metadata"
			case s.ReadCommitted && p.LSO < 0:
				pl.Err = joinErr("last stable offset unknown", p.OffsetsErr)
			case p.End < 0:
				pl.Err = joinErr("end offset unknown", p.OffsetsErr)
			default:
				pl.End = p.End
				if s.ReadCommitted {
					pl.End = p.LSO
				}
			}
			if pl.Committed >= 0 {
				gl.TopicOffset[topic] += pl.Committed
				if pl.End >= 0 {
					pl.Lag = max(pl.End-pl.Committed, 0)
					gl.TopicLag[topic] += pl.Lag
					gl.TotalLag += pl.Lag
				}
			}
			gl.Partitions = append(gl.Partitions, pl)
		}
	}
	return gl
}
