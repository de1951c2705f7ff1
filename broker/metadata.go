package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/internal/fsutil"
)

// This file owns what a single broker persists about itself and its topics
// outside the partition logs. Kafka keeps topic metadata in the KRaft
// metadata log; until kobs has its controller quorum, the broker keeps the
// same facts (topic ids, partition counts, config overrides) in one JSON file
// in the first log dir, written atomically. The per-log-dir meta.properties
// and per-partition partition.metadata files are Kafka's own formats.

const (
	metaPropertiesFile = "meta.properties"
	topicsFile         = "kobs-topics.json"
)

type topicRecord struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

type topicsDoc struct {
	Version int           `json:"version"`
	Topics  []topicRecord `json:"topics"`
}

func readTopicsFile(dir string) ([]topicRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, topicsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read topic metadata: %w", err)
	}
	var doc topicsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, topicsFile), err)
	}
	return doc.Topics, nil
}

func writeTopicsFile(dir string, recs []topicRecord) error {
	b, err := json.MarshalIndent(topicsDoc{Version: 1, Topics: recs}, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, topicsFile), b)
}

// ensureMetaProperties reads or creates the log dir's meta.properties
// (Kafka's KRaft format: version=1, cluster.id, node.id), refusing a dir
// that belongs to another node or cluster.
func ensureMetaProperties(dir string, nodeID int32, clusterID string) (string, error) {
	path := filepath.Join(dir, metaPropertiesFile)
	props, err := LoadProperties(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if clusterID == "" {
			id := metadata.NewTopicID() // same 16-byte random base64 form Kafka uses for cluster ids
			clusterID = id.String()
		}
		content := "#\n#kobs\nversion=1\nnode.id=" + strconv.Itoa(int(nodeID)) + "\ncluster.id=" + clusterID + "\n"
		return clusterID, fsutil.WriteFileAtomic(path, []byte(content))
	case err != nil:
		return "", err
	}
	if v, _ := props.Get("node.id"); v != strconv.Itoa(int(nodeID)) {
		return "", fmt.Errorf("%s: node.id %s does not match configured node.id %d", path, v, nodeID)
	}
	existing, _ := props.Get("cluster.id")
	if clusterID != "" && existing != clusterID {
		return "", fmt.Errorf("%s: cluster.id %s does not match configured cluster.id %s", path, existing, clusterID)
	}
	return existing, nil
}

// validateTopicName applies Kafka's Topic.validate rules.
func validateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name cannot be %q", name)
	case len(name) > 249:
		return fmt.Errorf("topic name is longer than 249 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q contains a character other than ASCII alphanumerics, '.', '_' and '-'", name)
		}
	}
	return nil
}

// collisionName maps '.' to '_': Kafka refuses topics that collide in
// metric names this way.
func collisionName(name string) string { return strings.ReplaceAll(name, ".", "_") }
