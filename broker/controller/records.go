package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// A metadata log entry (one raft log entry) is a batch of records applied
// atomically: either all of a CreateTopics' topic and partition records
// land in the image or none do, as in Kafka's atomic record batches.
// Records carry complete state (a partition record is the whole partition,
// not a delta) so that applying one is a pure assignment and replaying the
// log after a snapshot yields exactly the image the leader saw.
//
// The encoding is one version byte followed by JSON: metadata changes are
// rare next to produce traffic, and a human can read a dumped entry.
const entryVersion byte = 1

// record is one metadata record; exactly one field is set.
type record struct {
	// Broker registers (or re-registers) a broker. It starts fenced; its
	// epoch becomes the raft index of the entry holding the record.
	Broker *brokerRecord `json:"broker,omitempty"`
	// Fence fences or unfences a broker of the given epoch.
	Fence *fenceRecord `json:"fence,omitempty"`
	// Topic creates a topic (its partitions follow as Partition records).
	Topic *topicRecord `json:"topic,omitempty"`
	// Partition sets one partition's whole state.
	Partition *partitionRecord `json:"partition,omitempty"`
	// Config sets (Value non-nil) or deletes a topic config override.
	Config *configRecord `json:"config,omitempty"`
	// RemoveTopic deletes a topic.
	RemoveTopic *removeTopicRecord `json:"removeTopic,omitempty"`
	// Controller marks a new active controller (written first by every new
	// raft leader, as Kafka's LeaderChangeMessage).
	Controller *controllerRecord `json:"controller,omitempty"`
	// Migrated marks that legacy single-node topic metadata was imported
	// (or that there was none to import): Bootstrap runs once per cluster.
	Migrated *migratedRecord `json:"migrated,omitempty"`
}

type brokerRecord struct {
	ID          int32               `json:"id"`
	Incarnation string              `json:"incarnation"`
	Rack        string              `json:"rack,omitempty"`
	Endpoints   []metadata.Endpoint `json:"endpoints"`
}

type fenceRecord struct {
	ID     int32 `json:"id"`
	Epoch  int64 `json:"epoch"`
	Fenced bool  `json:"fenced"`
}

type topicRecord struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Internal bool   `json:"internal,omitempty"`
}

type partitionRecord struct {
	TopicID        string  `json:"topicId"`
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leaderEpoch"`
	PartitionEpoch int32   `json:"partitionEpoch"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	Adding         []int32 `json:"adding,omitempty"`
	Removing       []int32 `json:"removing,omitempty"`
}

type configRecord struct {
	TopicID string  `json:"topicId"`
	Name    string  `json:"name"`
	Value   *string `json:"value"`
}

type removeTopicRecord struct {
	TopicID string `json:"topicId"`
}

type controllerRecord struct {
	ID    int32  `json:"id"`
	Epoch uint64 `json:"epoch"` // raft term
}

type migratedRecord struct {
	Topics int `json:"topics"`
}

type entry struct {
	// Time is when the active controller appended the entry (Unix ms):
	// broker-metadata-metrics last-applied-record-timestamp and lag.
	Time    int64    `json:"time"`
	Records []record `json:"records"`
}

func encodeEntry(recs []record) ([]byte, error) {
	b, err := json.Marshal(entry{Time: time.Now().UnixMilli(), Records: recs})
	if err != nil {
		return nil, err
	}
	return append([]byte{entryVersion}, b...), nil
}

func decodeEntry(b []byte) (*entry, error) {
	if len(b) == 0 || b[0] != entryVersion {
		return nil, errors.New("metadata log entry: unknown version")
	}
	var e entry
	if err := json.Unmarshal(b[1:], &e); err != nil {
		return nil, fmt.Errorf("metadata log entry: %w", err)
	}
	return &e, nil
}

func partitionRecordOf(id metadata.TopicID, idx int32, p *metadata.Partition) *partitionRecord {
	return &partitionRecord{TopicID: id.String(), Partition: idx, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
		PartitionEpoch: p.PartitionEpoch, Replicas: p.Replicas, ISR: p.ISR, Adding: p.AddingReplicas, Removing: p.RemovingReplicas}
}
