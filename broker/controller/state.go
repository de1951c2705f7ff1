package controller

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// state is what the metadata log has built so far: the published image plus
// the few facts a broker never reads. A state is immutable; apply returns
// the next one.
type state struct {
	img             *metadata.Image
	controllerEpoch uint64
	migrated        bool
	// incarnations are the per-process ids brokers registered with, to tell
	// a restart of the same node (new incarnation, old one silent) from two
	// live processes claiming one node.id.
	incarnations map[int32]string
}

func emptyState(clusterID string) *state {
	return &state{img: metadata.Empty(clusterID), incarnations: map[int32]string{}}
}

// builder makes the next image from the previous one: the top-level maps
// are copied once per entry, a topic only when a record changes it.
type builder struct {
	st    state
	img   *metadata.Image
	owned map[string]bool
}

func newBuilder(prev *state) *builder {
	img := *prev.img
	img.Brokers = maps.Clone(prev.img.Brokers)
	img.Topics = maps.Clone(prev.img.Topics)
	img.ByID = maps.Clone(prev.img.ByID)
	b := &builder{st: *prev, img: &img, owned: map[string]bool{}}
	b.st.img = &img
	return b
}

// topic returns a private copy of the topic with id, or nil.
func (b *builder) topic(idStr string) (*metadata.Topic, error) {
	id, err := metadata.ParseTopicID(idStr)
	if err != nil {
		return nil, err
	}
	t := b.img.ByID[id]
	if t == nil {
		return nil, fmt.Errorf("unknown topic id %s", idStr)
	}
	if !b.owned[t.Name] {
		c := *t
		c.Partitions = slices.Clone(t.Partitions)
		b.img.Topics[t.Name], b.img.ByID[t.ID] = &c, &c
		b.owned[t.Name] = true
		t = &c
	}
	return t, nil
}

// applyRecords applies one log entry's records at raft index index. A
// record that does not fit the state (which only a bug can produce, since
// the leader derived it from this very state) is skipped and reported; the
// rest of the entry still applies, so every node stays identical.
func (s *state) applyRecords(index uint64, recs []record) (*state, []error) {
	b := newBuilder(s)
	var errs []error
	for i := range recs {
		if err := b.apply(index, &recs[i]); err != nil {
			errs = append(errs, fmt.Errorf("metadata record %d of entry %d: %w", i, index, err))
		}
	}
	b.img.Offset = int64(index)
	return &b.st, errs
}

func (b *builder) apply(index uint64, r *record) error {
	switch {
	case r.Broker != nil:
		br := r.Broker
		b.img.Brokers[br.ID] = &metadata.Broker{ID: br.ID, Epoch: int64(index), Rack: br.Rack,
			Endpoints: slices.Clone(br.Endpoints), Fenced: true}
		if b.st.incarnations[br.ID] != br.Incarnation {
			b.st.incarnations = maps.Clone(b.st.incarnations)
			b.st.incarnations[br.ID] = br.Incarnation
		}
	case r.Fence != nil:
		old := b.img.Brokers[r.Fence.ID]
		if old == nil || old.Epoch != r.Fence.Epoch {
			return fmt.Errorf("fence: broker %d epoch %d is not registered", r.Fence.ID, r.Fence.Epoch)
		}
		c := *old
		c.Fenced = r.Fence.Fenced
		b.img.Brokers[c.ID] = &c
	case r.Topic != nil:
		id, err := metadata.ParseTopicID(r.Topic.ID)
		if err != nil {
			return err
		}
		if b.img.Topics[r.Topic.Name] != nil || b.img.ByID[id] != nil {
			return fmt.Errorf("topic %s (%s) exists", r.Topic.Name, r.Topic.ID)
		}
		t := &metadata.Topic{Name: r.Topic.Name, ID: id, Internal: r.Topic.Internal, Configs: map[string]string{}}
		b.img.Topics[t.Name], b.img.ByID[id] = t, t
		b.owned[t.Name] = true
	case r.Partition != nil:
		pr := r.Partition
		t, err := b.topic(pr.TopicID)
		if err != nil {
			return err
		}
		p := metadata.Partition{Leader: pr.Leader, LeaderEpoch: pr.LeaderEpoch, PartitionEpoch: pr.PartitionEpoch,
			Replicas: slices.Clone(pr.Replicas), ISR: slices.Clone(pr.ISR),
			AddingReplicas: slices.Clone(pr.Adding), RemovingReplicas: slices.Clone(pr.Removing)}
		switch {
		case int(pr.Partition) == len(t.Partitions):
			t.Partitions = append(t.Partitions, p)
		case pr.Partition >= 0 && int(pr.Partition) < len(t.Partitions):
			t.Partitions[pr.Partition] = p
		default:
			return fmt.Errorf("partition %s-%d: topic has %d partitions", t.Name, pr.Partition, len(t.Partitions))
		}
	case r.Config != nil:
		t, err := b.topic(r.Config.TopicID)
		if err != nil {
			return err
		}
		t.Configs = maps.Clone(t.Configs)
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		if r.Config.Value == nil {
			delete(t.Configs, r.Config.Name)
		} else {
			t.Configs[r.Config.Name] = *r.Config.Value
		}
	case r.RemoveTopic != nil:
		id, err := metadata.ParseTopicID(r.RemoveTopic.TopicID)
		if err != nil {
			return err
		}
		t := b.img.ByID[id]
		if t == nil {
			return fmt.Errorf("remove: unknown topic id %s", r.RemoveTopic.TopicID)
		}
		delete(b.img.Topics, t.Name)
		delete(b.img.ByID, id)
		delete(b.owned, t.Name)
	case r.Controller != nil:
		b.img.ControllerID = r.Controller.ID
		b.st.controllerEpoch = r.Controller.Epoch
	case r.Migrated != nil:
		b.st.migrated = true
	default:
		return fmt.Errorf("empty record")
	}
	return nil
}

// snapshotDoc is the snapshot format: the whole state as JSON.
type snapshotDoc struct {
	Version         int                `json:"version"`
	ClusterID       string             `json:"clusterId"`
	Offset          int64              `json:"offset"`
	ControllerID    int32              `json:"controllerId"`
	ControllerEpoch uint64             `json:"controllerEpoch"`
	Migrated        bool               `json:"migrated"`
	Brokers         []*metadata.Broker `json:"brokers"`
	Incarnations    map[int32]string   `json:"incarnations"`
	Topics          []snapshotTopic    `json:"topics"`
}

type snapshotTopic struct {
	Name       string               `json:"name"`
	ID         string               `json:"id"`
	Internal   bool                 `json:"internal,omitempty"`
	Configs    map[string]string    `json:"configs,omitempty"`
	Partitions []metadata.Partition `json:"partitions"`
}

func (s *state) encode(w io.Writer) error {
	doc := snapshotDoc{Version: 1, ClusterID: s.img.ClusterID, Offset: s.img.Offset, ControllerID: s.img.ControllerID,
		ControllerEpoch: s.controllerEpoch, Migrated: s.migrated, Incarnations: s.incarnations}
	for _, id := range s.img.BrokerIDs() {
		doc.Brokers = append(doc.Brokers, s.img.Brokers[id])
	}
	for _, n := range s.img.TopicNames() {
		t := s.img.Topics[n]
		doc.Topics = append(doc.Topics, snapshotTopic{Name: t.Name, ID: t.ID.String(), Internal: t.Internal, Configs: t.Configs, Partitions: t.Partitions})
	}
	return json.NewEncoder(w).Encode(&doc)
}

func decodeState(r io.Reader) (*state, error) {
	var doc snapshotDoc
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("metadata snapshot: %w", err)
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("metadata snapshot: unknown version %d", doc.Version)
	}
	s := emptyState(doc.ClusterID)
	s.img.Offset, s.img.ControllerID = doc.Offset, doc.ControllerID
	s.controllerEpoch, s.migrated = doc.ControllerEpoch, doc.Migrated
	if doc.Incarnations != nil {
		s.incarnations = doc.Incarnations
	}
	for _, b := range doc.Brokers {
		s.img.Brokers[b.ID] = b
	}
	for _, st := range doc.Topics {
		id, err := metadata.ParseTopicID(st.ID)
		if err != nil {
			return nil, fmt.Errorf("metadata snapshot: topic %s: %w", st.Name, err)
		}
		cfg := st.Configs
		if cfg == nil {
			cfg = map[string]string{}
		}
		t := &metadata.Topic{Name: st.Name, ID: id, Internal: st.Internal, Configs: cfg, Partitions: st.Partitions}
		s.img.Topics[t.Name], s.img.ByID[id] = t, t
	}
	return s, nil
}
