package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

func (tp TopicPartition) String() string {
	return tp.Topic + "-" + strconv.Itoa(int(tp.Partition))
}

// Broker is one broker the cluster's metadata lists (a live broker, in
// Kafka's terms: a broker that is down is missing from this list).
type Broker struct {
	ID   int32  `json:"id"`
	Host string `json:"host"`
	Port int32  `json:"port"`
	Rack string `json:"rack,omitempty"`
}

// Addr is host:port.
func (b Broker) Addr() string { return b.Host + ":" + strconv.Itoa(int(b.Port)) }

// Partition is one partition's replica layout and offsets. Offsets that
// could not be listed are -1 and OffsetsErr says why.
type Partition struct {
	Topic       string  `json:"topic"`
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"` // -1: no leader (offline)
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Offline     []int32 `json:"offline_replicas,omitempty"`
	Start       int64   `json:"start_offset"`       // log start offset, -1 if unknown
	End         int64   `json:"end_offset"`         // high watermark, -1 if unknown
	LSO         int64   `json:"last_stable_offset"` // -1 unless collected for read_committed
	MetaErr     string  `json:"metadata_error,omitempty"`
	OffsetsErr  string  `json:"offsets_error,omitempty"`
}

// Topic is one topic with its partitions, indexed by partition number when
// the cluster reports them densely (it always does for a healthy topic).
type Topic struct {
	Name       string       `json:"name"`
	Internal   bool         `json:"internal"`
	MinISR     int          `json:"min_insync_replicas"` // 0 if the config could not be read
	Partitions []*Partition `json:"partitions"`
	Err        string       `json:"error,omitempty"`
}

// Member is one member of a group and what it was assigned.
type Member struct {
	ID         string           `json:"member_id"`
	InstanceID string           `json:"instance_id,omitempty"`
	ClientID   string           `json:"client_id"`
	Host       string           `json:"host"`
	Assigned   []TopicPartition `json:"assigned,omitempty"`
}

// Group is one group: its description and committed offsets.
type Group struct {
	Name         string   `json:"group"`
	State        string   `json:"state"`
	ProtocolType string   `json:"protocol_type"`
	Protocol     string   `json:"protocol"`
	Coordinator  int32    `json:"coordinator"`
	Members      []Member `json:"members"`
	// Committed holds the committed offset of each partition the group
	// has one for (topic -> partition -> offset); a partition the broker
	// answered -1 for is absent.
	Committed map[string]map[int32]int64 `json:"-"`
	Err       string                     `json:"error,omitempty"`
}

// CollectError is one part of a cycle that failed: which request, which
// broker (-1 if none could be chosen) and why.
type CollectError struct {
	Stage  string `json:"stage"`
	Broker int32  `json:"broker"`
	Err    string `json:"error"`
}

func (e CollectError) Error() string {
	if e.Broker >= 0 {
		return fmt.Sprintf("%s (broker %d): %s", e.Stage, e.Broker, e.Err)
	}
	return e.Stage + ": " + e.Err
}

// Snapshot is everything one collection cycle learned about the cluster.
// It is immutable once Collect returns.
type Snapshot struct {
	Time          time.Time         `json:"time"`
	Duration      time.Duration     `json:"-"`
	Cluster       string            `json:"cluster_id"`
	Controller    int32             `json:"controller"`
	Brokers       []Broker          `json:"brokers"`
	Topics        map[string]*Topic `json:"-"`
	Groups        map[string]*Group `json:"-"`
	ReadCommitted bool              `json:"read_committed"`
	// Errors lists the parts of the cycle that failed; a snapshot with
	// errors is partial: what failed is marked on the partitions and
	// groups it concerns.
	Errors []CollectError `json:"errors,omitempty"`
	// Unreachable lists broker ids that replicas name but the metadata
	// does not list (down), or that failed a request this cycle.
	Unreachable []int32 `json:"unreachable_brokers,omitempty"`
}

// Partition returns a partition, or nil.
func (s *Snapshot) Partition(topic string, p int32) *Partition {
	return s.Topics[topic].partition(p)
}

// partitionsOrNil is the topic's partitions, nil for a nil topic.
func (t *Topic) partitionsOrNil() []*Partition {
	if t == nil {
		return nil
	}
	return t.Partitions
}

// partition returns a partition of the topic, or nil (also on a nil topic).
func (t *Topic) partition(p int32) *Partition {
	if t == nil {
		return nil
	}
	if int(p) < len(t.Partitions) && p >= 0 && t.Partitions[p].Partition == p {
		return t.Partitions[p]
	}
	for _, pp := range t.Partitions {
		if pp.Partition == p {
			return pp
		}
	}
	return nil
}

// PartitionCount is the number of partitions of all topics.
func (s *Snapshot) PartitionCount() int {
	n := 0
	for _, t := range s.Topics {
		n += len(t.Partitions)
	}
	return n
}

// TopicNames returns the topic names, sorted.
func (s *Snapshot) TopicNames() []string {
	names := make([]string, 0, len(s.Topics))
	for n := range s.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// GroupNames returns the group names, sorted.
func (s *Snapshot) GroupNames() []string {
	names := make([]string, 0, len(s.Groups))
	for n := range s.Groups {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CollectOptions tune one collection.
type CollectOptions struct {
	// ReadCommitted also lists last stable offsets (ListOffsets with
	// isolation read_committed), against which lag is then measured.
	ReadCommitted bool
	// Groups restricts the groups collected; empty means every group the
	// brokers list.
	Groups []string
}

// ErrNoMetadata is returned when the cluster answered no metadata at all:
// nothing of the cluster is known this cycle.
var ErrNoMetadata = errors.New("no metadata from the cluster")

// Collect runs one collection cycle with franz-go: metadata (brokers,
// controller, topics, partitions, replicas, ISR, offline replicas), topic
// configs (min.insync.replicas), start and end offsets (and last stable
// offsets for read_committed), and groups with their members, assignments
// and committed offsets. Metadata, configs and groups go through kadm;
// offsets are one kmsg ListOffsets request per kind that kgo splits per
// partition leader (kadm's ListEndOffsets would reload the whole cluster's
// metadata before each kind).
//
// After the metadata request, the other requests run at once (start, end
// and last stable offsets, configs, and the groups' ListGroups ->
// DescribeGroups -> OffsetFetch chain); kgo splits each into at most one
// request per broker (ListOffsets to each leader, DescribeGroups and
// OffsetFetch v8 to each coordinator, many groups per request), so a cycle
// has at most five requests in flight per broker and never one per
// partition. ctx bounds the whole cycle.
//
// Collect returns an error only when no metadata could be read; a part
// that failed is recorded in Snapshot.Errors and marked where it applies.
func Collect(ctx context.Context, cl *kgo.Client, opt CollectOptions) (*Snapshot, error) {
	start := time.Now()
	adm := kadm.NewClient(cl)
	// A Metadata request for every topic, answered by the cluster (kgo
	// hijacks it to refresh its brokers, never from its cache, which could
	// show a dead cluster as alive and an old ISR as current). The
	// snapshot is built from the response itself: kadm's Metadata would
	// first copy 100,000 partitions into maps.
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(meta.ErrorCode)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoMetadata, err)
	}
	s, topics, unreachable := fromMetadata(meta, start)
	s.ReadCommitted = opt.ReadCommitted
	// The other requests get three quarters of the time left, so that a
	// broker that does not answer makes the cycle partial (naming it), not
	// failed: the rest of the cluster is still reported.
	full := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(d)*3/4))
		defer cancel()
	}

	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	fail := func(stage string, err error) {
		mu.Lock()
		defer mu.Unlock()
		var se *kadm.ShardErrors
		if errors.As(err, &se) {
			for _, e := range se.Errs {
				s.Errors = append(s.Errors, CollectError{Stage: stage, Broker: e.Broker.NodeID, Err: e.Err.Error()})
				if e.Broker.NodeID >= 0 {
					unreachable[e.Broker.NodeID] = true
				}
			}
			return
		}
		s.Errors = append(s.Errors, CollectError{Stage: stage, Broker: -1, Err: err.Error()})
	}
	listOffsets := func(stage string, timestamp int64, isolation int8, set func(*Partition, int64)) {
		defer wg.Done()
		errs := listOffsets(ctx, cl, s, timestamp, isolation, stage, set, &mu)
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs {
			s.Errors = append(s.Errors, e)
			unreachable[e.Broker] = true
		}
	}
	wg.Add(2)
	go listOffsets("list_start_offsets", -2, 0, func(p *Partition, o int64) { p.Start = o })
	go listOffsets("list_end_offsets", -1, 0, func(p *Partition, o int64) { p.End = o })
	if opt.ReadCommitted {
		wg.Add(1)
		go listOffsets("list_last_stable_offsets", -1, 1, func(p *Partition, o int64) { p.LSO = o })
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if len(topics) == 0 {
			return
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
		if err != nil {
			fail("describe_configs", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rc := range rcs {
			t := s.Topics[rc.Name]
			if t == nil || rc.Err != nil {
				continue
			}
			for _, c := range rc.Configs {
				if c.Key == "min.insync.replicas" && c.Value != nil {
					if n, err := strconv.Atoi(*c.Value); err == nil {
						t.MinISR = n
					}
				}
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		groups, errs := collectGroups(ctx, adm, opt.Groups)
		mu.Lock()
		s.Groups = groups
		mu.Unlock()
		for _, e := range errs {
			fail(e.stage, e.err)
		}
	}()
	wg.Wait()
	if ctx.Err() != nil && full.Err() == nil {
		s.Errors = append(s.Errors, CollectError{Stage: "timeout", Broker: -1, Err: "requests still unanswered were abandoned at 3/4 of the cycle timeout"})
	}

	for id := range unreachable {
		s.Unreachable = append(s.Unreachable, id)
	}
	slices.Sort(s.Unreachable)
	s.Duration = time.Since(start)
	return s, nil
}

// fromMetadata builds a snapshot's brokers, topics and partitions from a
// Metadata response; it also returns the topics that loaded (sorted) and
// the replica ids the metadata names but does not list as brokers.
func fromMetadata(meta *kmsg.MetadataResponse, at time.Time) (*Snapshot, []string, map[int32]bool) {
	s := &Snapshot{
		Time:       at,
		Controller: meta.ControllerID,
		Topics:     make(map[string]*Topic, len(meta.Topics)),
		Groups:     map[string]*Group{},
	}
	if meta.ClusterID != nil {
		s.Cluster = *meta.ClusterID
	}
	live := map[int32]bool{}
	for _, b := range meta.Brokers {
		rack := ""
		if b.Rack != nil {
			rack = *b.Rack
		}
		s.Brokers = append(s.Brokers, Broker{ID: b.NodeID, Host: b.Host, Port: b.Port, Rack: rack})
		live[b.NodeID] = true
	}
	sort.Slice(s.Brokers, func(i, j int) bool { return s.Brokers[i].ID < s.Brokers[j].ID })

	var topics []string
	unreachable := map[int32]bool{}
	for i := range meta.Topics {
		td := &meta.Topics[i]
		if td.Topic == nil {
			continue // an answer by topic id only; kobs asks by name
		}
		name := *td.Topic
		t := &Topic{Name: name, Internal: td.IsInternal}
		terr := kerr.ErrorForCode(td.ErrorCode)
		if terr != nil {
			t.Err = terr.Error()
			s.Errors = append(s.Errors, CollectError{Stage: "metadata", Broker: -1, Err: name + ": " + terr.Error()})
		}
		// One allocation for the topic's partitions, not one each.
		backing := make([]Partition, len(td.Partitions))
		ps := make([]*Partition, 0, len(td.Partitions))
		for j := range td.Partitions {
			pd := &td.Partitions[j]
			p := &backing[j]
			*p = Partition{
				Topic: name, Partition: pd.Partition, Leader: pd.Leader, LeaderEpoch: pd.LeaderEpoch,
				Replicas: pd.Replicas, ISR: pd.ISR, Offline: pd.OfflineReplicas,
				Start: -1, End: -1, LSO: -1,
			}
			if pd.ErrorCode != 0 {
				p.MetaErr = kerr.ErrorForCode(pd.ErrorCode).Error()
			}
			for _, r := range pd.Replicas {
				if !live[r] {
					unreachable[r] = true
				}
			}
			ps = append(ps, p)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].Partition < ps[j].Partition })
		t.Partitions = ps
		s.Topics[name] = t
		if terr == nil {
			topics = append(topics, name)
		}
	}
	sort.Strings(topics)
	return s, topics, unreachable
}

// listOffsets lists one kind of offset (timestamp -2 start, -1 end; with
// isolation 1 the end is the last stable offset) for every partition with
// a leader: one ListOffsets request per leader, built from the metadata
// the cycle just read and sent to each leader at once. (kadm's
// ListEndOffsets and kgo's own split would each look the metadata up
// again first.) A leader that moved since answers NOT_LEADER for its
// partitions, which are marked and read again next cycle.
func listOffsets(ctx context.Context, cl *kgo.Client, s *Snapshot, timestamp int64, isolation int8,
	stage string, set func(*Partition, int64), mu *sync.Mutex,
) []CollectError {
	byLeader := map[int32]*kmsg.ListOffsetsRequest{}
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		if t.Err != "" {
			continue
		}
		topicAt := map[int32]int{} // leader -> index of this topic in its request
		for _, p := range t.Partitions {
			if p.Leader < 0 {
				mu.Lock()
				p.OffsetsErr = stage + ": no leader"
				mu.Unlock()
				continue
			}
			req := byLeader[p.Leader]
			if req == nil {
				req = kmsg.NewPtrListOffsetsRequest()
				req.ReplicaID = -1
				req.IsolationLevel = isolation
				byLeader[p.Leader] = req
			}
			i, ok := topicAt[p.Leader]
			if !ok {
				rt := kmsg.NewListOffsetsRequestTopic()
				rt.Topic = name
				req.Topics = append(req.Topics, rt)
				i = len(req.Topics) - 1
				topicAt[p.Leader] = i
			}
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p.Partition
			rp.CurrentLeaderEpoch = -1
			rp.Timestamp = timestamp
			rp.MaxNumOffsets = 1
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		}
	}
	var (
		wg   sync.WaitGroup
		errs []CollectError
	)
	for leader, req := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kr, err := cl.Broker(int(leader)).Request(ctx, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, CollectError{Stage: stage, Broker: leader, Err: err.Error()})
				for _, rt := range req.Topics {
					t := s.Topics[rt.Topic]
					for _, rp := range rt.Partitions {
						if p := t.partition(rp.Partition); p != nil {
							p.OffsetsErr = fmt.Sprintf("%s: broker %d: %v", stage, leader, err)
						}
					}
				}
				return
			}
			for _, rt := range kr.(*kmsg.ListOffsetsResponse).Topics {
				t := s.Topics[rt.Topic]
				for _, rp := range rt.Partitions {
					p := t.partition(rp.Partition)
					if p == nil {
						continue
					}
					if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
						p.OffsetsErr = stage + ": " + err.Error()
						continue
					}
					set(p, rp.Offset)
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

type stageErr struct {
	stage string
	err   error
}

// collectGroups lists, describes and fetches the offsets of groups: one
// ListGroups per broker, one DescribeGroups and one OffsetFetch (v8, many
// groups at once) per coordinator.
func collectGroups(ctx context.Context, adm *kadm.Client, only []string) (map[string]*Group, []stageErr) {
	var errs []stageErr
	names := only
	if len(names) == 0 {
		listed, err := adm.ListGroups(ctx)
		if err != nil {
			errs = append(errs, stageErr{"list_groups", err})
		}
		names = listed.Groups()
	}
	out := make(map[string]*Group, len(names))
	if len(names) == 0 {
		return out, errs
	}
	described, err := adm.DescribeGroups(ctx, names...)
	if err != nil {
		errs = append(errs, stageErr{"describe_groups", err})
	}
	for _, name := range names {
		g := &Group{Name: name, Coordinator: -1, Committed: map[string]map[int32]int64{}}
		if d, ok := described[name]; ok {
			g.State, g.ProtocolType, g.Protocol = d.State, d.ProtocolType, d.Protocol
			g.Coordinator = d.Coordinator.NodeID
			if d.Err != nil {
				g.Err = "describe: " + d.Err.Error()
			}
			for _, m := range d.Members {
				mem := Member{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
				if m.InstanceID != nil {
					mem.InstanceID = *m.InstanceID
				}
				if ca, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range ca.Topics {
						for _, p := range t.Partitions {
							mem.Assigned = append(mem.Assigned, TopicPartition{t.Topic, p})
						}
					}
				}
				g.Members = append(g.Members, mem)
			}
		} else {
			g.Err = "describe: no answer"
		}
		out[name] = g
	}
	fetched := adm.FetchManyOffsets(ctx, names...)
	for name, g := range out {
		f, ok := fetched[name]
		if !ok {
			g.Err = joinErr(g.Err, "offset fetch: no answer")
			continue
		}
		if f.Err != nil {
			g.Err = joinErr(g.Err, "offset fetch: "+f.Err.Error())
			errs = append(errs, stageErr{"offset_fetch", fmt.Errorf("group %s: %w", name, f.Err)})
			continue
		}
		for topic, ps := range f.Fetched {
			for part, o := range ps {
				if o.Err != nil || o.At < 0 {
					continue
				}
				m := g.Committed[topic]
				if m == nil {
					m = map[int32]int64{}
					g.Committed[topic] = m
				}
				m[part] = o.At
			}
		}
	}
	return out, errs
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
