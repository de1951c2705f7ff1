package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
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
	// Phases is how long each part of the cycle took, by stage name
	// (metadata, list_start_offsets, list_end_offsets,
	// list_last_stable_offsets, describe_configs, list_groups,
	// describe_groups, offset_fetch; the agent adds evaluate): a request's
	// phase runs from sending it to its answer decoded and applied, so a
	// slow cluster and a slow agent can be told apart. After metadata the
	// requests run at once, so the phases overlap.
	Phases map[string]time.Duration `json:"-"`
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
// and committed offsets. Groups go through kadm; metadata, configs and
// offsets are kmsg requests built for what the agent reads (see
// fetchMetadata, describeMinISR, listOffsets).
//
// The groups' ListGroups -> DescribeGroups -> OffsetFetch chain starts
// with the metadata request; after the metadata, the other requests run at
// once (start, end and last stable offsets, configs). DescribeGroups and
// OffsetFetch go to each coordinator, many groups per request (see
// fetchOffsets); ListOffsets to each leader in batches of listOffsetsBatch
// partitions; DescribeConfigs to any broker. A cycle never sends a request
// per partition or per group. ctx bounds the whole cycle.
//
// Collect returns an error only when no metadata could be read; a part
// that failed is recorded in Snapshot.Errors and marked where it applies.
func Collect(ctx context.Context, cl *kgo.Client, opt CollectOptions) (*Snapshot, error) {
	start := time.Now()
	adm := kadm.NewClient(cl)
	// The requests after metadata get three quarters of the cycle's time,
	// so that a broker that does not answer makes the cycle partial
	// (naming it), not failed: the rest of the cluster is still reported.
	full := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(d.Sub(start)*3/4))
		defer cancel()
	}
	// Groups need no metadata: ListGroups -> DescribeGroups ->
	// OffsetFetch runs beside the Metadata request, so the cluster
	// answers one while the agent decodes the other.
	groupsCtx, cancelGroups := context.WithCancel(ctx)
	defer cancelGroups()
	var (
		groups      map[string]*Group
		groupErrs   []stageErr
		groupPhases = map[string]time.Duration{}
		groupsDone  = make(chan struct{})
	)
	go func() {
		defer close(groupsDone)
		groups, groupErrs = collectGroups(groupsCtx, cl, adm, opt.Groups, func(stage string, since time.Time) {
			groupPhases[stage] = time.Since(since)
		})
	}()

	meta, err := fetchMetadata(full, cl)
	if err != nil {
		cancelGroups()
		<-groupsDone
		return nil, fmt.Errorf("%w: %v", ErrNoMetadata, err)
	}
	s, topics, unreachable := fromMetadata(meta, start)
	s.ReadCommitted = opt.ReadCommitted
	s.Phases["metadata"] = time.Since(start)

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
		began := time.Now()
		errs := listOffsets(ctx, cl, s, timestamp, isolation, stage, set, &mu)
		mu.Lock()
		defer mu.Unlock()
		s.Phases[stage] = time.Since(began)
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
	if len(topics) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			errs := describeMinISR(ctx, cl, s, topics, &mu)
			mu.Lock()
			defer mu.Unlock()
			s.Phases["describe_configs"] = time.Since(began)
			for _, e := range errs {
				s.Errors = append(s.Errors, e)
				if e.Broker >= 0 {
					unreachable[e.Broker] = true
				}
			}
		}()
	}
	<-groupsDone
	mu.Lock() // the offsets and configs requests are still writing s
	if groups != nil {
		s.Groups = groups
	}
	for stage, d := range groupPhases {
		s.Phases[stage] = d
	}
	mu.Unlock()
	for _, e := range groupErrs {
		fail(e.stage, e.err)
	}
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

// metadataTurn spreads the whole-cluster Metadata requests over the brokers.
var metadataTurn atomic.Uint32

// fetchMetadata reads the metadata of every topic, answered by the cluster,
// never from kgo's cache (which could show a dead cluster as alive and an
// old ISR as current). First a Metadata request for no topic goes through
// the client, which takes it to refresh its brokers (the requests that
// follow go to brokers by id); then the Metadata request for every topic
// goes straight to one of the brokers that answer lists, trying the next
// on failure. Through the client, kgo would also keep its own copy of
// every partition (50 MB at 100,000 partitions), which the agent never
// reads: the snapshot is built from the response itself.
func fetchMetadata(ctx context.Context, cl *kgo.Client) (*kmsg.MetadataResponse, error) {
	brokersOnly := kmsg.NewPtrMetadataRequest()
	brokersOnly.Topics = []kmsg.MetadataRequestTopic{}
	live, err := brokersOnly.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(live.ErrorCode)
	}
	if err != nil {
		return nil, err
	}
	if len(live.Brokers) == 0 {
		return nil, errors.New("the cluster lists no broker")
	}
	turn := int(metadataTurn.Add(1))
	req := kmsg.NewPtrMetadataRequest() // nil Topics: every topic
	var errs []error
	for i := range live.Brokers {
		id := live.Brokers[(turn+i)%len(live.Brokers)].NodeID
		kr, err := cl.Broker(int(id)).Request(ctx, req)
		if err == nil {
			meta := kr.(*kmsg.MetadataResponse)
			if err = kerr.ErrorForCode(meta.ErrorCode); err == nil {
				return meta, nil
			}
		}
		errs = append(errs, fmt.Errorf("broker %d: %w", id, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
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
		Phases:     map[string]time.Duration{},
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

// listOffsetsBatch bounds the partitions of one ListOffsets request. A
// leader of 33,000 partitions gets seven requests instead of one: they are
// sent at once (pipelined on the connection), so the agent decodes and
// applies one answer while the broker computes the next, and the broker
// is never held on one huge request.
var listOffsetsBatch = 5000

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
	type leaderReqs struct {
		reqs    []*kmsg.ListOffsetsRequest
		n       int // partitions in the last request
		topicAt int // index of the current topic in the last request, -1 if none
	}
	byLeader := map[int32]*leaderReqs{}
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		if t.Err != "" {
			continue
		}
		for _, lr := range byLeader {
			lr.topicAt = -1
		}
		for _, p := range t.Partitions {
			if p.Leader < 0 {
				mu.Lock()
				p.OffsetsErr = stage + ": no leader"
				mu.Unlock()
				continue
			}
			lr := byLeader[p.Leader]
			if lr == nil {
				lr = &leaderReqs{}
				byLeader[p.Leader] = lr
			}
			if len(lr.reqs) == 0 || lr.n == listOffsetsBatch {
				req := kmsg.NewPtrListOffsetsRequest()
				req.ReplicaID = -1
				req.IsolationLevel = isolation
				lr.reqs = append(lr.reqs, req)
				lr.n, lr.topicAt = 0, -1
			}
			req := lr.reqs[len(lr.reqs)-1]
			if lr.topicAt < 0 {
				rt := kmsg.NewListOffsetsRequestTopic()
				rt.Topic = name
				req.Topics = append(req.Topics, rt)
				lr.topicAt = len(req.Topics) - 1
			}
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p.Partition
			rp.CurrentLeaderEpoch = -1
			rp.Timestamp = timestamp
			rp.MaxNumOffsets = 1
			req.Topics[lr.topicAt].Partitions = append(req.Topics[lr.topicAt].Partitions, rp)
			lr.n++
		}
	}
	var (
		wg     sync.WaitGroup
		errs   []CollectError
		failed = map[int32]bool{}
	)
	for leader, lr := range byLeader {
		for _, req := range lr.reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				kr, err := cl.Broker(int(leader)).Request(ctx, req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if !failed[leader] { // one error per broker, not per request
						failed[leader] = true
						errs = append(errs, CollectError{Stage: stage, Broker: leader, Err: err.Error()})
					}
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
	}
	wg.Wait()
	return errs
}

// describeMinISR reads the topics' min.insync.replicas: one
// DescribeConfigs request naming only that key (kgo sends topic resources
// to any broker), so the answer is one entry per topic instead of every
// config with its synonyms. A topic whose config could not be read keeps
// MinISR 0 (unknown: never classified under or at min ISR) and is counted
// in one error per error kind.
func describeMinISR(ctx context.Context, cl *kgo.Client, s *Snapshot, topics []string, mu *sync.Mutex) []CollectError {
	const stage = "describe_configs"
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Resources = make([]kmsg.DescribeConfigsRequestResource, 0, len(topics))
	for _, name := range topics {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType = kmsg.ConfigResourceTypeTopic
		rr.ResourceName = name
		rr.ConfigNames = []string{"min.insync.replicas"}
		req.Resources = append(req.Resources, rr)
	}
	var errs []CollectError
	failed := map[string][]string{} // error -> topics
	for _, shard := range cl.RequestSharded(ctx, req) {
		broker := int32(-1)
		if shard.Meta.NodeID >= 0 {
			broker = shard.Meta.NodeID
		}
		if shard.Err != nil {
			errs = append(errs, CollectError{Stage: stage, Broker: broker, Err: shard.Err.Error()})
			continue
		}
		mu.Lock()
		for _, r := range shard.Resp.(*kmsg.DescribeConfigsResponse).Resources {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				failed[err.Error()] = append(failed[err.Error()], r.ResourceName)
				continue
			}
			t := s.Topics[r.ResourceName]
			if t == nil {
				continue
			}
			for _, c := range r.Configs {
				if c.Name == "min.insync.replicas" && c.Value != nil {
					if n, err := strconv.Atoi(*c.Value); err == nil {
						t.MinISR = n
					}
				}
			}
		}
		mu.Unlock()
	}
	for msg, names := range failed {
		slices.Sort(names)
		errs = append(errs, CollectError{Stage: stage, Broker: -1,
			Err: fmt.Sprintf("%d topics (first %s): %s", len(names), names[0], msg)})
	}
	return errs
}

type stageErr struct {
	stage string
	err   error
}

// collectGroups lists, describes and fetches the offsets of groups: one
// ListGroups per broker, one DescribeGroups and one OffsetFetch (v8, many
// groups at once) per coordinator.
func collectGroups(ctx context.Context, cl *kgo.Client, adm *kadm.Client, only []string, phase func(string, time.Time)) (map[string]*Group, []stageErr) {
	var errs []stageErr
	names := only
	if len(names) == 0 {
		began := time.Now()
		listed, err := adm.ListGroups(ctx)
		phase("list_groups", began)
		if err != nil {
			errs = append(errs, stageErr{"list_groups", err})
		}
		names = listed.Groups()
	}
	out := make(map[string]*Group, len(names))
	if len(names) == 0 {
		return out, errs
	}
	began := time.Now()
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
	phase("describe_groups", began)
	began = time.Now()
	errs = append(errs, fetchOffsets(ctx, cl, adm, out)...)
	phase("offset_fetch", began)
	return out, errs
}

// fetchOffsets reads the committed offsets of the groups: one OffsetFetch
// (v8 or v9: many groups, topics by name) to each coordinator that
// DescribeGroups named, sent to it directly. Through kadm, kgo would look
// up the metadata of every topic in the answers (and keep it) to map
// names to topic ids the agent never uses. A group whose coordinator is
// unknown or moved, or whose coordinator could not answer, is fetched
// again through kadm, which finds the coordinator itself.
func fetchOffsets(ctx context.Context, cl *kgo.Client, adm *kadm.Client, groups map[string]*Group) []stageErr {
	byCoordinator := map[int32][]string{}
	var again []string
	for name, g := range groups {
		if g.Coordinator >= 0 {
			byCoordinator[g.Coordinator] = append(byCoordinator[g.Coordinator], name)
		} else {
			again = append(again, name)
		}
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []stageErr
	)
	for coordinator, names := range byCoordinator {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := kmsg.NewPtrOffsetFetchRequest()
			slices.Sort(names) // the same request every cycle, easier to follow on the wire
			for _, name := range names {
				rg := kmsg.NewOffsetFetchRequestGroup()
				rg.Group = name // no topics: every topic the group committed to
				req.Groups = append(req.Groups, rg)
			}
			kr, err := cl.Broker(int(coordinator)).Request(ctx, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || kr.GetVersion() < 8 {
				again = append(again, names...)
				return
			}
			answered := make(map[string]bool, len(names))
			for i := range kr.(*kmsg.OffsetFetchResponse).Groups {
				rg := &kr.(*kmsg.OffsetFetchResponse).Groups[i]
				g := groups[rg.Group]
				if g == nil {
					continue
				}
				if err := kerr.ErrorForCode(rg.ErrorCode); err != nil {
					if kerr.IsRetriable(err) { // NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, ...
						continue
					}
					answered[rg.Group] = true
					g.Err = joinErr(g.Err, "offset fetch: "+err.Error())
					errs = append(errs, stageErr{"offset_fetch", fmt.Errorf("group %s: %w", rg.Group, err)})
					continue
				}
				answered[rg.Group] = true
				for _, t := range rg.Topics {
					for _, p := range t.Partitions {
						if p.ErrorCode != 0 || p.Offset < 0 {
							continue
						}
						m := g.Committed[t.Topic]
						if m == nil {
							m = make(map[int32]int64, len(t.Partitions))
							g.Committed[t.Topic] = m
						}
						m[p.Partition] = p.Offset
					}
				}
			}
			for _, name := range names {
				if !answered[name] {
					again = append(again, name)
				}
			}
		}()
	}
	wg.Wait()
	if len(again) == 0 {
		return errs
	}
	fetched := adm.FetchManyOffsets(ctx, again...)
	for _, name := range again {
		g := groups[name]
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
	return errs
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
