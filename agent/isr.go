package agent

import (
	"slices"
	"sort"
	"time"
)

// Condition is one way a partition's replication can be failing.
type Condition string

// The failing-ISR conditions, named as Kafka's ReplicaManager and
// kafka-topics.sh name them.
const (
	// UnderReplicated: fewer replicas in sync than assigned.
	UnderReplicated Condition = "under_replicated"
	// UnderMinISR: fewer replicas in sync than min.insync.replicas, so
	// acks=all produce is refused.
	UnderMinISR Condition = "under_min_isr"
	// AtMinISR: exactly min.insync.replicas in sync: one more loss and
	// acks=all produce stops.
	AtMinISR Condition = "at_min_isr"
	// Offline: no leader, the partition can be neither read nor written.
	Offline Condition = "offline"
	// NotPreferredLeader: the leader is not the first replica.
	NotPreferredLeader Condition = "leader_not_preferred"
)

// FailingPartition is a partition with at least one failing condition.
type FailingPartition struct {
	Topic      string      `json:"topic"`
	Partition  int32       `json:"partition"`
	Leader     int32       `json:"leader"`
	Replicas   []int32     `json:"replicas"`
	ISR        []int32     `json:"isr"`
	MinISR     int         `json:"min_insync_replicas"`
	Conditions []Condition `json:"conditions"`
	// Missing lists the replicas not in the ISR: the brokers to look at.
	Missing []int32 `json:"missing_from_isr,omitempty"`
	// OfflineReplicas lists the replicas on brokers that are down: the
	// cluster's offline replicas, and replicas the live brokers do not
	// include. An offline partition keeps its last leader in the ISR
	// (Kafka never empties an ISR), so only this names every broker it
	// waits for.
	OfflineReplicas []int32 `json:"offline_replicas,omitempty"`
	// Since is when the agent first saw the partition failing (any of its
	// current conditions) without a break; zero from a one-shot classify.
	Since time.Time `json:"since"`
}

// Has reports whether the partition has condition c.
func (f *FailingPartition) Has(c Condition) bool { return slices.Contains(f.Conditions, c) }

// Classify returns the failing partitions of a snapshot, sorted by topic
// and partition. A partition whose topic's min.insync.replicas is unknown
// (0) is never classified under or at min ISR.
func Classify(s *Snapshot) []FailingPartition {
	var out []FailingPartition
	live := make(map[int32]bool, len(s.Brokers))
	for _, b := range s.Brokers {
		live[b.ID] = true
	}
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		for _, p := range t.Partitions {
			if f, ok := ClassifyPartition(p, t.MinISR, live); ok {
				out = append(out, f)
			}
		}
	}
	return out
}

// ClassifyPartition classifies one partition given its topic's
// min.insync.replicas (0 when unknown) and the live broker ids (nil: not
// known). A partition is offline when it has no leader or, as
// kafka-topics.sh --unavailable-partitions has it, its leader is not live.
func ClassifyPartition(p *Partition, minISR int, live map[int32]bool) (FailingPartition, bool) {
	f := FailingPartition{
		Topic: p.Topic, Partition: p.Partition, Leader: p.Leader,
		Replicas: p.Replicas, ISR: p.ISR, MinISR: minISR,
	}
	for _, r := range p.Replicas {
		if !slices.Contains(p.ISR, r) {
			f.Missing = append(f.Missing, r)
		}
		if slices.Contains(p.Offline, r) || live != nil && !live[r] {
			f.OfflineReplicas = append(f.OfflineReplicas, r)
		}
	}
	if p.Leader < 0 || (live != nil && !live[p.Leader]) {
		f.Conditions = append(f.Conditions, Offline)
	}
	if len(p.ISR) < len(p.Replicas) {
		f.Conditions = append(f.Conditions, UnderReplicated)
	}
	if minISR > 0 {
		switch {
		case len(p.ISR) < minISR || p.Leader < 0:
			// kafka-topics.sh --under-min-isr-partitions also lists a
			// partition without a leader (TopicCommand.isUnderMinIsr).
			f.Conditions = append(f.Conditions, UnderMinISR)
		case len(p.ISR) == minISR:
			// As Kafka's Partition.isAtMinIsr. (Newer Kafka compares with
			// min(min.insync.replicas, replication factor); when that
			// differs, the ISR is already under min.insync.replicas.)
			f.Conditions = append(f.Conditions, AtMinISR)
		}
	}
	if p.Leader >= 0 && len(p.Replicas) > 0 && p.Leader != p.Replicas[0] {
		f.Conditions = append(f.Conditions, NotPreferredLeader)
	}
	return f, len(f.Conditions) > 0
}

// ByBroker maps each broker id to the partitions whose ISR it is missing
// from, sorted.
func ByBroker(failing []FailingPartition) map[int32][]TopicPartition {
	out := map[int32][]TopicPartition{}
	for _, f := range failing {
		for _, b := range f.Missing {
			out[b] = append(out[b], TopicPartition{f.Topic, f.Partition})
		}
	}
	for _, tps := range out {
		sort.Slice(tps, func(i, j int) bool {
			if tps[i].Topic != tps[j].Topic {
				return tps[i].Topic < tps[j].Topic
			}
			return tps[i].Partition < tps[j].Partition
		})
	}
	return out
}

// UnderReplicatedPartitions, UnderMinISRPartitions and
// UnavailablePartitions are the filters of kafka-topics.sh --describe
// --under-replicated-partitions, --under-min-isr-partitions and
// --unavailable-partitions.
func UnderReplicatedPartitions(failing []FailingPartition) []FailingPartition {
	return filter(failing, func(f *FailingPartition) bool { return f.Has(UnderReplicated) })
}

// UnderMinISRPartitions: see UnderReplicatedPartitions.
func UnderMinISRPartitions(failing []FailingPartition) []FailingPartition {
	return filter(failing, func(f *FailingPartition) bool { return f.Has(UnderMinISR) })
}

// UnavailablePartitions: see UnderReplicatedPartitions.
func UnavailablePartitions(failing []FailingPartition) []FailingPartition {
	return filter(failing, func(f *FailingPartition) bool { return f.Has(Offline) })
}

func filter(in []FailingPartition, keep func(*FailingPartition) bool) []FailingPartition {
	var out []FailingPartition
	for i := range in {
		if keep(&in[i]) {
			out = append(out, in[i])
		}
	}
	return out
}

// sinceTracker remembers when each partition started failing.
type sinceTracker struct{ first map[TopicPartition]time.Time }

// stamp sets Since on each failing partition and forgets partitions that
// recovered, so a partition that fails again starts a new period.
func (st *sinceTracker) stamp(failing []FailingPartition, now time.Time) {
	if st.first == nil {
		st.first = map[TopicPartition]time.Time{}
	}
	seen := make(map[TopicPartition]bool, len(failing))
	for i := range failing {
		tp := TopicPartition{failing[i].Topic, failing[i].Partition}
		seen[tp] = true
		t, ok := st.first[tp]
		if !ok {
			t = now
			st.first[tp] = t
		}
		failing[i].Since = t
	}
	for tp := range st.first {
		if !seen[tp] {
			delete(st.first, tp)
		}
	}
}
