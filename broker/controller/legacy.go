package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/kobs-dev/kobs/broker/metadata"
)

// LegacyTopicsFile is the single-node topic store of kobs before the
// metadata quorum, in the first log dir.
const LegacyTopicsFile = "kobs-topics.json"

// ReadLegacyTopics reads a single-node data dir's kobs-topics.json and
// returns its topics as specs for Bootstrap: same names, topic ids,
// partition counts and config overrides, every partition on nodeID (the
// only broker that held them). A missing file is no topics.
func ReadLegacyTopics(logDir string, nodeID int32) ([]TopicSpec, error) {
	path := filepath.Join(logDir, LegacyTopicsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var doc struct {
		Version int `json:"version"`
		Topics  []struct {
			Name       string            `json:"name"`
			ID         string            `json:"id"`
			Partitions int32             `json:"partitions"`
			Configs    map[string]string `json:"configs"`
		} `json:"topics"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("%s: unknown version %d", path, doc.Version)
	}
	var out []TopicSpec
	for _, t := range doc.Topics {
		id, err := metadata.ParseTopicID(t.ID)
		if err != nil {
			return nil, fmt.Errorf("%s: topic %s: %w", path, t.Name, err)
		}
		if t.Partitions < 1 {
			return nil, fmt.Errorf("%s: topic %s has %d partitions", path, t.Name, t.Partitions)
		}
		spec := TopicSpec{Name: t.Name, ID: id, Configs: t.Configs, Internal: t.Name == "__consumer_offsets" || t.Name == "__transaction_state"}
		for range t.Partitions {
			spec.Assignment = append(spec.Assignment, []int32{nodeID})
		}
		out = append(out, spec)
	}
	slices.SortFunc(out, func(a, b TopicSpec) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}
