package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/internal/fsutil"
)

// This file owns what a broker persists about itself outside the partition
// logs and the metadata quorum: the per-log-dir meta.properties (Kafka's
// KRaft format). Topic metadata lives in the metadata log
// (broker/controller); a pre-quorum kobs-topics.json is imported from there
// once.

const (
	metaPropertiesFile = "meta.properties"
)

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
