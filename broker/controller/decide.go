package controller

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// This file is the controller's decision logic. It runs only on the active
// controller, one operation at a time, against the current state; it emits
// records, which the log then applies on every node. The planner applies
// each record it emits to a scratch copy at once, so the decisions of one
// operation see each other (a fence followed by an election in one batch).

// TopicSpec is a topic to create.
type TopicSpec struct {
	Name string `json:"name"`
	// Partitions and ReplicationFactor; -1 means the configured default
	// (num.partitions, default.replication.factor). Ignored when
	// Assignment is given.
	Partitions        int32 `json:"partitions"`
	ReplicationFactor int16 `json:"replicationFactor"`
	// Assignment is a manual replica assignment: one broker list per
	// partition, preferred leader first.
	Assignment [][]int32         `json:"assignment,omitempty"`
	Configs    map[string]string `json:"configs,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	// ID keeps an existing topic id (migration); zero means a new one.
	ID metadata.TopicID `json:"id,omitempty"`
}

// AlterPartitionRequest is a partition leader's ISR change, checked against
// the partition's current leader epoch and partition epoch.
type AlterPartitionRequest struct {
	Topic          string  `json:"topic"`
	Partition      int32   `json:"partition"`
	LeaderID       int32   `json:"leaderId"`
	BrokerEpoch    int64   `json:"brokerEpoch"` // -1: not checked
	LeaderEpoch    int32   `json:"leaderEpoch"`
	PartitionEpoch int32   `json:"partitionEpoch"`
	NewISR         []int32 `json:"newIsr"`
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s-%d", tp.Topic, tp.Partition) }

// ElectionType is ElectLeaders' election type, as in Kafka (0 preferred,
// 1 unclean).
type ElectionType int8

const (
	ElectPreferred ElectionType = 0
	ElectUnclean   ElectionType = 1
)

// Reassignment moves a partition to Replicas; nil Replicas cancels the
// reassignment in progress.
type Reassignment struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas"`
}

type planner struct {
	b       *builder
	c       *Config
	recs    []record
	err     error // a record that did not apply: a bug, fails the operation
	elected int   // leader changes made (LeaderElectionRateAndTimeMs)
	unclean int   // of which unclean (UncleanLeaderElectionsPerSec)
}

func newPlanner(st *state, c *Config) *planner { return &planner{b: newBuilder(st), c: c} }

func (p *planner) img() *metadata.Image { return p.b.img }

func (p *planner) emit(r record) {
	if err := p.b.apply(0, &r); err != nil && p.err == nil {
		p.err = err
	}
	p.recs = append(p.recs, r)
}

// liveBrokers are the unfenced brokers in id order.
func (p *planner) liveBrokers() []int32 {
	var ids []int32
	for _, id := range p.img().BrokerIDs() {
		if p.img().Live(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// setPartition writes np as partition idx of t, bumping the partition
// epoch, and the leader epoch when the leader changed.
func (p *planner) setPartition(t *metadata.Topic, idx int32, old *metadata.Partition, np metadata.Partition) {
	if old != nil {
		np.PartitionEpoch = old.PartitionEpoch + 1
		np.LeaderEpoch = old.LeaderEpoch
		if np.Leader != old.Leader {
			np.LeaderEpoch = old.LeaderEpoch + 1
			if np.Leader != metadata.NoLeader {
				p.elected++
			}
		}
	}
	p.emit(record{Partition: partitionRecordOf(t.ID, idx, &np)})
}

func (p *planner) uncleanEnabled(t *metadata.Topic) bool {
	if v, ok := t.Configs["unclean.leader.election.enable"]; ok {
		return v == "true"
	}
	return p.c.UncleanLeaderElection
}

// chooseLeader picks a leader for a partition in replica order: the first
// live ISR member (target replicas before ones being removed), else, when
// unclean election is allowed, the first live replica (unclean; the ISR
// becomes just that replica). ok is false when there is no candidate.
func (p *planner) chooseLeader(part *metadata.Partition, isr []int32, uncleanOK bool) (leader int32, newISR []int32, unclean, ok bool) {
	order := make([]int32, 0, len(part.Replicas))
	for _, r := range part.Replicas {
		if !slices.Contains(part.RemovingReplicas, r) {
			order = append(order, r)
		}
	}
	order = append(order, part.RemovingReplicas...)
	for _, r := range order {
		if slices.Contains(isr, r) && p.img().Live(r) {
			return r, isr, false, true
		}
	}
	if uncleanOK {
		for _, r := range order {
			if p.img().Live(r) {
				return r, []int32{r}, true, true
			}
		}
	}
	return metadata.NoLeader, isr, false, false
}

func validateTopicName(name string) error {
	switch {
	case name == "":
		return errorf(ErrInvalidTopic, "topic name is empty")
	case name == "." || name == "..":
		return errorf(ErrInvalidTopic, "topic name cannot be %q", name)
	case len(name) > 249:
		return errorf(ErrInvalidTopic, "topic name is longer than 249 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errorf(ErrInvalidTopic, "topic name %q contains a character other than ASCII alphanumerics, '.', '_' and '-'", name)
		}
	}
	return nil
}

// placeReplicas is Kafka's rack-unaware assignment (AdminUtils
// assignReplicasToBrokers): partition p's first replica is broker
// (start+p) mod n, followers follow at a shift that grows every n
// partitions, so leaders and followers both spread evenly. start and the
// initial shift are random unless the caller fixes start (CreatePartitions
// continues from the topic's first partition).
func placeReplicas(brokers []int32, partitions int32, rf int, start, firstPartition int32) [][]int32 {
	n := int32(len(brokers))
	if start < 0 {
		start = rand.Int32N(n)
	}
	shift := rand.Int32N(n)
	out := make([][]int32, 0, partitions)
	for i := int32(0); i < partitions; i++ {
		pid := firstPartition + i
		if pid > 0 && pid%n == 0 {
			shift++
		}
		first := (pid + start) % n
		reps := []int32{brokers[first]}
		for j := int32(0); j < int32(rf)-1; j++ {
			reps = append(reps, brokers[(first+1+(shift+j)%(n-1))%n])
		}
		out = append(out, reps)
	}
	return out
}

// validateAssignment checks a manual assignment: same length for every
// partition, no broker twice, every broker registered.
func (p *planner) validateAssignment(assign [][]int32, rf int) error {
	for i, reps := range assign {
		if len(reps) == 0 {
			return errorf(ErrInvalidReplicaAssignment, "partition %d has no replicas", i)
		}
		if rf > 0 && len(reps) != rf {
			return errorf(ErrInvalidReplicaAssignment, "partition %d has %d replicas, others have %d", i, len(reps), rf)
		}
		seen := map[int32]bool{}
		for _, r := range reps {
			if seen[r] {
				return errorf(ErrInvalidReplicaAssignment, "partition %d lists broker %d twice", i, r)
			}
			seen[r] = true
			if p.img().Brokers[r] == nil {
				return errorf(ErrInvalidReplicaAssignment, "partition %d: broker %d is not registered", i, r)
			}
		}
	}
	return nil
}

// newPartition is a fresh partition on reps: the ISR is the live
// replicas, the leader the first of them.
func (p *planner) newPartition(reps []int32, idx int) (metadata.Partition, error) {
	np := metadata.Partition{Leader: metadata.NoLeader, Replicas: slices.Clone(reps)}
	for _, r := range reps {
		if p.img().Live(r) {
			np.ISR = append(np.ISR, r)
		}
	}
	if len(np.ISR) == 0 {
		return np, errorf(ErrInvalidReplicaAssignment, "all brokers of partition %d are fenced", idx)
	}
	np.Leader = np.ISR[0]
	return np, nil
}

func (p *planner) resolveCount(spec *TopicSpec) (int32, int, error) {
	parts, rf := spec.Partitions, int(spec.ReplicationFactor)
	if parts == -1 || parts == 0 && spec.Assignment == nil {
		parts = p.c.DefaultPartitions
	}
	if rf == -1 || rf == 0 && spec.Assignment == nil {
		rf = int(p.c.DefaultReplicationFactor)
	}
	if spec.Assignment != nil {
		return int32(len(spec.Assignment)), len(spec.Assignment[0]), nil
	}
	if parts < 1 {
		return 0, 0, errorf(ErrInvalidPartitions, "number of partitions %d is below 1", parts)
	}
	if rf < 1 {
		return 0, 0, errorf(ErrInvalidReplicationFactor, "replication factor %d is below 1", rf)
	}
	if live := len(p.liveBrokers()); rf > live {
		return 0, 0, errorf(ErrInvalidReplicationFactor, "replication factor %d is larger than the %d available (unfenced) brokers", rf, live)
	}
	return parts, rf, nil
}

func (p *planner) createTopic(spec TopicSpec) error {
	if err := validateTopicName(spec.Name); err != nil {
		return err
	}
	if p.img().Topics[spec.Name] != nil {
		return errorf(ErrTopicExists, "topic %q already exists", spec.Name)
	}
	collide := strings.ReplaceAll(spec.Name, ".", "_")
	for n := range p.img().Topics {
		if strings.ReplaceAll(n, ".", "_") == collide {
			return errorf(ErrInvalidTopic, "topic %q collides with existing topic %q ('.' and '_' collide in metric names)", spec.Name, n)
		}
	}
	if len(spec.Assignment) > 0 {
		if err := p.validateAssignment(spec.Assignment, len(spec.Assignment[0])); err != nil {
			return err
		}
	} else {
		spec.Assignment = nil
	}
	parts, rf, err := p.resolveCount(&spec)
	if err != nil {
		return err
	}
	assign := spec.Assignment
	if assign == nil {
		assign = placeReplicas(p.withRoom(p.liveBrokers(), rf), parts, rf, -1, 0)
	}
	if err := p.checkPartitionLimit(assign); err != nil {
		return err
	}
	newParts := make([]metadata.Partition, len(assign))
	for i, reps := range assign {
		if newParts[i], err = p.newPartition(reps, i); err != nil {
			return err
		}
	}
	id := spec.ID
	if id == (metadata.TopicID{}) {
		id = metadata.NewTopicID()
	}
	if p.img().ByID[id] != nil {
		return errorf(ErrTopicExists, "topic id %s already exists", id)
	}
	p.emit(record{Topic: &topicRecord{Name: spec.Name, ID: id.String(), Internal: spec.Internal}})
	for i := range newParts {
		p.emit(record{Partition: partitionRecordOf(id, int32(i), &newParts[i])})
	}
	for _, k := range sortedKeys(spec.Configs) {
		v := spec.Configs[k]
		p.emit(record{Config: &configRecord{TopicID: id.String(), Name: k, Value: &v}})
	}
	return nil
}

// replicasHeld counts the partition replicas each broker holds, the
// operation's own earlier records included.
func (p *planner) replicasHeld() map[int32]int {
	held := map[int32]int{}
	for _, t := range p.img().Topics {
		for i := range t.Partitions {
			for _, r := range t.Partitions[i].Replicas {
				held[r]++
			}
		}
	}
	return held
}

// withRoom narrows brokers to those below kobs.max.partitions.per.broker
// when enough of them remain for rf replicas, so that placement does not
// pick a full broker while others have room.
func (p *planner) withRoom(brokers []int32, rf int) []int32 {
	limit := p.c.MaxPartitionsPerBroker
	if limit <= 0 {
		return brokers
	}
	held := p.replicasHeld()
	var room []int32
	for _, id := range brokers {
		if held[id] < limit {
			room = append(room, id)
		}
	}
	if len(room) < rf {
		return brokers
	}
	return room
}

// checkPartitionLimit refuses new replicas (one broker list per new
// partition) that would take a broker past kobs.max.partitions.per.broker.
// The active controller decides one operation at a time against the state
// its earlier decisions built, so two creations racing through different
// brokers cannot pass the limit together, and internal topics
// (__consumer_offsets, created on a group's first FindCoordinator) count
// as any other.
func (p *planner) checkPartitionLimit(assign [][]int32) error {
	limit := p.c.MaxPartitionsPerBroker
	if limit <= 0 {
		return nil
	}
	add := map[int32]int{}
	for _, reps := range assign {
		for _, r := range reps {
			add[r]++
		}
	}
	held := p.replicasHeld()
	for _, id := range slices.Sorted(maps.Keys(add)) {
		if held[id]+add[id] > limit {
			return errorf(ErrPolicyViolation, "kobs.max.partitions.per.broker=%d: broker %d holds %d partition replicas, %d more do not fit",
				limit, id, held[id], add[id])
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (p *planner) deleteTopic(name string) error {
	t := p.img().Topics[name]
	if t == nil {
		return errorf(ErrUnknownTopicOrPartition, "topic %q does not exist", name)
	}
	p.emit(record{RemoveTopic: &removeTopicRecord{TopicID: t.ID.String()}})
	return nil
}

func (p *planner) createPartitions(topic string, count int32, assign [][]int32) error {
	t := p.img().Topics[topic]
	if t == nil {
		return errorf(ErrUnknownTopicOrPartition, "topic %q does not exist", topic)
	}
	cur := int32(len(t.Partitions))
	switch {
	case count == cur:
		return errorf(ErrInvalidPartitions, "topic %q already has %d partitions", topic, cur)
	case count < cur:
		return errorf(ErrInvalidPartitions, "topic %q currently has %d partitions, %d would not be an increase", topic, cur, count)
	}
	rf := 1
	if cur > 0 {
		// The target size, also while partition 0 is being reassigned.
		rf = len(t.Partitions[0].Replicas) - len(t.Partitions[0].RemovingReplicas)
	}
	if assign != nil {
		if int32(len(assign)) != count-cur {
			return errorf(ErrInvalidReplicaAssignment, "%d assignments given for %d new partitions", len(assign), count-cur)
		}
		if err := p.validateAssignment(assign, rf); err != nil {
			return err
		}
	} else {
		live := p.liveBrokers()
		if rf > len(live) {
			return errorf(ErrInvalidReplicationFactor, "replication factor %d is larger than the %d available (unfenced) brokers", rf, len(live))
		}
		start := int32(-1)
		if cur > 0 {
			if i := slices.Index(live, t.Partitions[0].Replicas[0]); i >= 0 {
				start = int32(i)
			}
		}
		assign = placeReplicas(live, count-cur, rf, start, cur)
	}
	if err := p.checkPartitionLimit(assign); err != nil {
		return err
	}
	for i, reps := range assign {
		np, err := p.newPartition(reps, int(cur)+i)
		if err != nil {
			return err
		}
		p.emit(record{Partition: partitionRecordOf(t.ID, cur+int32(i), &np)})
	}
	return nil
}

func (p *planner) alterConfigs(topic string, changes map[string]*string, replace bool) error {
	t := p.img().Topics[topic]
	if t == nil {
		return errorf(ErrUnknownTopicOrPartition, "topic %q does not exist", topic)
	}
	if replace {
		for _, k := range sortedKeys(t.Configs) {
			if _, kept := changes[k]; !kept {
				p.emit(record{Config: &configRecord{TopicID: t.ID.String(), Name: k}})
			}
		}
	}
	for _, k := range sortedKeys(changes) {
		v := changes[k]
		if old, ok := t.Configs[k]; v != nil && ok && old == *v || v == nil && !ok {
			continue
		}
		p.emit(record{Config: &configRecord{TopicID: t.ID.String(), Name: k, Value: v}})
	}
	if _, ok := changes["unclean.leader.election.enable"]; ok || replace {
		// Enabling unclean election gives offline partitions a leader
		// now, as Kafka does on that config change.
		p.electOffline(topic)
	}
	return nil
}

func (p *planner) partition(topic string, idx int32) (*metadata.Topic, *metadata.Partition, error) {
	t := p.img().Topics[topic]
	if t == nil || idx < 0 || int(idx) >= len(t.Partitions) {
		return nil, nil, errorf(ErrUnknownTopicOrPartition, "partition %s-%d does not exist", topic, idx)
	}
	return t, &t.Partitions[idx], nil
}

// alterPartition applies a leader's ISR change, following Kafka's
// ReplicationControlManager checks: the sender must be the current leader
// with the current leader epoch and partition epoch, the new ISR must hold
// the leader and only live assigned replicas. A change that completes a
// reassignment also finishes it.
func (p *planner) alterPartition(req AlterPartitionRequest) (metadata.Partition, error) {
	t, cur, err := p.partition(req.Topic, req.Partition)
	if err != nil {
		return metadata.Partition{}, err
	}
	if b := p.img().Brokers[req.LeaderID]; b == nil {
		return *cur, errorf(ErrBrokerIDNotRegistered, "broker %d is not registered", req.LeaderID)
	} else if req.BrokerEpoch >= 0 && b.Epoch != req.BrokerEpoch {
		return *cur, errorf(ErrStaleBrokerEpoch, "broker %d epoch %d, registered epoch is %d", req.LeaderID, req.BrokerEpoch, b.Epoch)
	}
	switch {
	case req.LeaderEpoch < cur.LeaderEpoch:
		return *cur, errorf(ErrFencedLeaderEpoch, "%s-%d: leader epoch %d is older than %d", req.Topic, req.Partition, req.LeaderEpoch, cur.LeaderEpoch)
	case req.LeaderEpoch > cur.LeaderEpoch:
		return *cur, errorf(ErrUnknownLeaderEpoch, "%s-%d: leader epoch %d is newer than %d", req.Topic, req.Partition, req.LeaderEpoch, cur.LeaderEpoch)
	case req.LeaderID != cur.Leader:
		return *cur, errorf(ErrNotLeaderOrFollower, "%s-%d: broker %d is not the leader (%d is)", req.Topic, req.Partition, req.LeaderID, cur.Leader)
	case req.PartitionEpoch != cur.PartitionEpoch:
		return *cur, errorf(ErrInvalidUpdateVersion, "%s-%d: partition epoch %d, current is %d", req.Topic, req.Partition, req.PartitionEpoch, cur.PartitionEpoch)
	}
	isr := slices.Clone(req.NewISR)
	slices.Sort(isr)
	if len(slices.Compact(slices.Clone(isr))) != len(isr) {
		return *cur, errorf(ErrInvalidRequest, "%s-%d: new ISR %v lists a replica twice", req.Topic, req.Partition, req.NewISR)
	}
	if !slices.Contains(req.NewISR, req.LeaderID) {
		return *cur, errorf(ErrInvalidRequest, "%s-%d: new ISR %v does not contain the leader %d", req.Topic, req.Partition, req.NewISR, req.LeaderID)
	}
	for _, r := range req.NewISR {
		if !cur.HasReplica(r) {
			return *cur, errorf(ErrInvalidRequest, "%s-%d: new ISR member %d is not a replica", req.Topic, req.Partition, r)
		}
		if !cur.InISR(r) && !p.img().Live(r) {
			return *cur, errorf(ErrIneligibleReplica, "%s-%d: new ISR member %d is fenced", req.Topic, req.Partition, r)
		}
	}
	if slices.Equal(req.NewISR, cur.ISR) {
		return *cur, nil
	}
	np := *cur
	np.ISR = slices.Clone(req.NewISR)
	np = p.maybeCompleteReassignment(t, np)
	p.setPartition(t, req.Partition, cur, np)
	_, after, _ := p.partition(req.Topic, req.Partition)
	return *after, nil
}

// maybeCompleteReassignment finishes a reassignment once every target
// replica is in the ISR: the removed replicas leave the replica set and the
// ISR, and the leader moves if it was one of them.
func (p *planner) maybeCompleteReassignment(t *metadata.Topic, np metadata.Partition) metadata.Partition {
	if len(np.AddingReplicas) == 0 && len(np.RemovingReplicas) == 0 {
		return np
	}
	target := without(np.Replicas, np.RemovingReplicas)
	for _, r := range target {
		if !slices.Contains(np.ISR, r) {
			return np
		}
	}
	np.Replicas = target
	np.ISR = intersect(np.ISR, target)
	np.AddingReplicas, np.RemovingReplicas = nil, nil
	if !slices.Contains(target, np.Leader) || !p.img().Live(np.Leader) {
		np.Leader, np.ISR, _, _ = p.chooseLeader(&np, np.ISR, false)
	}
	return np
}

func without(a, drop []int32) []int32 {
	var out []int32
	for _, x := range a {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

func intersect(a, keep []int32) []int32 {
	var out []int32
	for _, x := range a {
		if slices.Contains(keep, x) {
			out = append(out, x)
		}
	}
	return out
}

// fenceBroker fences broker id (missed heartbeats or a controlled
// shutdown): it leaves every ISR where the ISR stays non-empty, and every
// partition it leads gets a new leader from the remaining live ISR (or, if
// the topic allows it, an unclean one); without a candidate the partition
// goes offline, keeping the fenced broker as its last ISR member so that
// the replica that has all acknowledged data is the one elected when it
// comes back.
func (p *planner) fenceBroker(id int32) {
	b := p.img().Brokers[id]
	if b == nil || b.Fenced {
		return
	}
	p.emit(record{Fence: &fenceRecord{ID: id, Epoch: b.Epoch, Fenced: true}})
	for _, name := range p.img().TopicNames() {
		t := p.img().Topics[name]
		for i := range t.Partitions {
			cur := &t.Partitions[i]
			if !cur.InISR(id) && cur.Leader != id {
				continue
			}
			np := *cur
			if len(np.ISR) > 1 {
				np.ISR = without(np.ISR, []int32{id})
			}
			if np.Leader == id {
				var ok bool
				np.Leader, np.ISR, _, ok = p.chooseLeader(&np, np.ISR, false)
				if !ok && p.uncleanEnabled(t) {
					var unclean bool
					np.Leader, np.ISR, unclean, _ = p.chooseLeader(&np, np.ISR, true)
					if unclean {
						p.unclean++
					}
				}
			}
			p.setPartition(t, int32(i), cur, np)
			t = p.img().Topics[name]
		}
	}
}

// unfenceBroker unfences broker id and gives offline partitions it can
// lead a leader again.
func (p *planner) unfenceBroker(id int32) {
	b := p.img().Brokers[id]
	if b == nil || !b.Fenced {
		return
	}
	p.emit(record{Fence: &fenceRecord{ID: id, Epoch: b.Epoch, Fenced: false}})
	p.electOffline("")
}

// electOffline elects leaders for every offline partition that has a
// candidate: a live ISR member, or any live replica where unclean election
// is enabled; of one topic, or of all when topic is "".
func (p *planner) electOffline(topic string) {
	for _, name := range p.img().TopicNames() {
		if topic != "" && name != topic {
			continue
		}
		t := p.img().Topics[name]
		for i := range t.Partitions {
			cur := &t.Partitions[i]
			if !cur.Offline() {
				continue
			}
			leader, isr, unclean, ok := p.chooseLeader(cur, cur.ISR, p.uncleanEnabled(t))
			if !ok {
				continue
			}
			np := *cur
			np.Leader, np.ISR = leader, isr
			if unclean {
				p.unclean++
			}
			p.setPartition(t, int32(i), cur, np)
			t = p.img().Topics[name]
		}
	}
}

// electLeader runs an ElectLeaders election for one partition.
func (p *planner) electLeader(tp TopicPartition, typ ElectionType) error {
	t, cur, err := p.partition(tp.Topic, tp.Partition)
	if err != nil {
		return err
	}
	np := *cur
	switch typ {
	case ElectPreferred:
		pref := cur.Replicas[0]
		if cur.Leader == pref {
			return errorf(ErrElectionNotNeeded, "%s: leader %d is the preferred replica", tp, pref)
		}
		if !p.img().Live(pref) || !cur.InISR(pref) {
			return errorf(ErrPreferredLeaderNotAvailable, "%s: preferred replica %d is fenced or not in the ISR %v", tp, pref, cur.ISR)
		}
		np.Leader = pref
	case ElectUnclean:
		if !cur.Offline() {
			return errorf(ErrElectionNotNeeded, "%s: partition has leader %d", tp, cur.Leader)
		}
		leader, isr, unclean, ok := p.chooseLeader(cur, cur.ISR, true)
		if !ok {
			return errorf(ErrEligibleLeadersNotAvailable, "%s: no replica of %v is live", tp, cur.Replicas)
		}
		np.Leader, np.ISR = leader, isr
		if unclean {
			p.unclean++
		}
	default:
		return errorf(ErrInvalidRequest, "unknown election type %d", typ)
	}
	p.setPartition(t, tp.Partition, cur, np)
	return nil
}

// imbalanced lists partitions whose leader is not the preferred replica
// while the preferred replica could lead (live and in the ISR).
func (p *planner) imbalanced() []TopicPartition {
	var out []TopicPartition
	for _, name := range p.img().TopicNames() {
		t := p.img().Topics[name]
		for i := range t.Partitions {
			part := &t.Partitions[i]
			pref := part.Replicas[0]
			if part.Leader != pref && p.img().Live(pref) && part.InISR(pref) {
				out = append(out, TopicPartition{name, int32(i)})
			}
		}
	}
	return out
}

// reassign starts, replaces or (target nil) cancels a reassignment, with
// Kafka's (KIP-455) bookkeeping: during the move the replica set is target
// plus the replicas being removed; adding = target - original, removing =
// original - target; it completes when every target replica is in the ISR.
func (p *planner) reassign(tp TopicPartition, target []int32) error {
	t, cur, err := p.partition(tp.Topic, tp.Partition)
	if err != nil {
		return err
	}
	orig := without(cur.Replicas, cur.AddingReplicas)
	np := *cur
	if target == nil {
		if len(cur.AddingReplicas) == 0 && len(cur.RemovingReplicas) == 0 {
			return errorf(ErrNoReassignmentInProgress, "%s: no reassignment in progress", tp)
		}
		np.Replicas = orig
		np.ISR = intersect(cur.ISR, orig)
		np.AddingReplicas, np.RemovingReplicas = nil, nil
		if len(np.ISR) == 0 {
			// Every ISR member was an adding replica: as Kafka's
			// PartitionReassignmentRevert, the first original replica
			// becomes the ISR, an unclean choice, counted as one.
			np.ISR = []int32{orig[0]}
			p.unclean++
		}
		if !slices.Contains(np.ISR, np.Leader) || !p.img().Live(np.Leader) {
			np.Leader, np.ISR, _, _ = p.chooseLeader(&np, np.ISR, false)
		}
		p.setPartition(t, tp.Partition, cur, np)
		return nil
	}
	if err := p.validateAssignment([][]int32{target}, 0); err != nil {
		return err
	}
	adding := without(target, orig)
	removing := without(orig, target)
	np.Replicas = append(slices.Clone(target), removing...)
	np.AddingReplicas, np.RemovingReplicas = adding, removing
	if len(adding) == 0 && len(removing) == 0 {
		np.AddingReplicas, np.RemovingReplicas = nil, nil
		if slices.Equal(np.Replicas, cur.Replicas) && len(cur.AddingReplicas) == 0 && len(cur.RemovingReplicas) == 0 {
			return nil // already there
		}
	}
	np = p.maybeCompleteReassignment(t, np)
	if np.Offline() {
		np.Leader, np.ISR, _, _ = p.chooseLeader(&np, np.ISR, false)
	}
	p.setPartition(t, tp.Partition, cur, np)
	return nil
}
