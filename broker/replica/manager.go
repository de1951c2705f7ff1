package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/internal/fsutil"
)

// TopicPartition names a partition.
type TopicPartition = klog.TopicPartition

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	NodeID  int32
	LogDirs []string
	// LogConfig resolves a topic's log settings from its config overrides.
	LogConfig func(overrides map[string]string) klog.Config
	// MinISR resolves a topic's min.insync.replicas from its overrides.
	MinISR  func(overrides map[string]string) int
	OnFlush func(time.Duration)
	// OnAdd and OnRemove tell the broker (telemetry) about partitions that
	// come and go; they run outside the Manager's lock.
	OnAdd    func(*Partition)
	OnRemove func(*Partition)
	Logger   *slog.Logger
}

// Manager holds this broker's partitions.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger

	mu    sync.RWMutex // guards parts; a leaf lock
	parts map[TopicPartition]*Partition
}

// NewManager returns an empty manager; Load opens what the log dirs hold.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinISR == nil {
		cfg.MinISR = func(map[string]string) int { return 1 }
	}
	return &Manager{cfg: cfg, log: cfg.Logger, parts: map[TopicPartition]*Partition{}}
}

// Partition returns the partition or nil if this broker holds no replica
// of it.
func (m *Manager) Partition(topic string, idx int32) *Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.parts[TopicPartition{Topic: topic, Partition: idx}]
}

// All returns every partition, in no particular order.
func (m *Manager) All() []*Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Partition, 0, len(m.parts))
	for _, p := range m.parts {
		out = append(out, p)
	}
	return out
}

// Len is the number of partitions held.
func (m *Manager) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.parts)
}

func (m *Manager) add(p *Partition) error {
	tp := TopicPartition{Topic: p.Topic, Partition: p.Index}
	m.mu.Lock()
	if o := m.parts[tp]; o != nil {
		m.mu.Unlock()
		return fmt.Errorf("partition %s-%d found in two log dirs (%s and %s)", p.Topic, p.Index, o.LogDir, p.LogDir)
	}
	m.parts[tp] = p
	m.mu.Unlock()
	if m.cfg.OnAdd != nil {
		m.cfg.OnAdd(p)
	}
	return nil
}

// Found is a partition directory Load opened.
type Found struct {
	Topic string
	Index int32
	// TopicID is read from partition.metadata; zero when the file is
	// missing or unreadable.
	TopicID metadata.TopicID
}

// Load opens every partition directory in the log dirs, recovering its
// log, with the settings configs(topic) resolves to. Recovery points and
// log start offsets come from Kafka's checkpoint files in each dir.
func (m *Manager) Load(isTopicName func(string) bool, configs func(topic string) map[string]string) ([]Found, error) {
	recovery, logStart := map[TopicPartition]int64{}, map[TopicPartition]int64{}
	for _, dir := range m.cfg.LogDirs {
		for _, f := range []struct {
			name string
			into map[TopicPartition]int64
		}{{"recovery-point-offset-checkpoint", recovery}, {"log-start-offset-checkpoint", logStart}} {
			cp, err := klog.ReadCheckpoint(filepath.Join(dir, f.name))
			if err != nil {
				return nil, err
			}
			maps.Copy(f.into, cp)
		}
	}
	var found []Found
	for _, dir := range m.cfg.LogDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("read log dir: %w", err)
		}
		for _, e := range ents {
			name, idx, ok := ParsePartitionDir(e.Name())
			if !e.IsDir() || !ok || !isTopicName(name) {
				continue
			}
			pdir := filepath.Join(dir, e.Name())
			tp := TopicPartition{Topic: name, Partition: idx}
			l, err := klog.Open(pdir, m.cfg.LogConfig(configs(name)), klog.OpenOptions{
				LogStartOffset: logStart[tp],
				RecoveryPoint:  recovery[tp],
				Logger:         m.log.With("topic", name, "partition", idx),
				OnFlush:        m.cfg.OnFlush,
			})
			if err != nil {
				return nil, fmt.Errorf("open partition %s-%d: %w", name, idx, err)
			}
			p, err := newPartition(name, idx, dir, l)
			if err != nil {
				l.Close()
				return nil, err
			}
			if err := m.add(p); err != nil {
				l.Close()
				return nil, err
			}
			id, _ := ReadPartitionMetadata(pdir)
			found = append(found, Found{Topic: name, Index: idx, TopicID: id})
		}
	}
	return found, nil
}

// Create creates (or, if its directory exists, opens) a partition in the
// log dir holding the fewest partitions, as Kafka places new replicas, and
// adds it to the manager. Nothing serves it until an image names it.
func (m *Manager) Create(topic string, id metadata.TopicID, idx int32, overrides map[string]string) (*Partition, error) {
	if p := m.Partition(topic, idx); p != nil {
		return p, nil
	}
	counts := map[string]int{}
	for _, p := range m.All() {
		counts[p.LogDir]++
	}
	dir := m.cfg.LogDirs[0]
	for _, d := range m.cfg.LogDirs[1:] {
		if counts[d] < counts[dir] {
			dir = d
		}
	}
	pdir := filepath.Join(dir, fmt.Sprintf("%s-%d", topic, idx))
	l, err := klog.Open(pdir, m.cfg.LogConfig(overrides), klog.OpenOptions{
		Logger:  m.log.With("topic", topic, "partition", idx),
		OnFlush: m.cfg.OnFlush,
	})
	if err != nil {
		return nil, fmt.Errorf("create partition %s-%d: %w", topic, idx, err)
	}
	if err := WritePartitionMetadata(pdir, id); err != nil {
		l.Close()
		return nil, err
	}
	p, err := newPartition(topic, idx, dir, l)
	if err == nil {
		err = m.add(p)
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return p, nil
}

// Delete takes a partition out of the manager, wakes its parked fetches
// and deletes its files.
func (m *Manager) Delete(topic string, idx int32) error {
	tp := TopicPartition{Topic: topic, Partition: idx}
	m.mu.Lock()
	p := m.parts[tp]
	delete(m.parts, tp)
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	if m.cfg.OnRemove != nil {
		m.cfg.OnRemove(p)
	}
	p.NotifyAppend() // parked fetches re-read and see the partition gone
	return p.log.Delete()
}

// Close closes every log.
func (m *Manager) Close() error {
	var errs []error
	for _, p := range m.All() {
		errs = append(errs, p.log.Close())
	}
	return errors.Join(errs...)
}

// OnImage is the Manager's metadata.Listener: it sets every local
// partition's assignment from the image, applies changed topic configs to
// the logs, opens partitions the image assigns to this broker that it does
// not hold yet, and deletes the replicas of partitions that are gone.
func (m *Manager) OnImage(prev, next *metadata.Image) {
	self := m.cfg.NodeID
	for name, t := range next.Topics {
		var pt *metadata.Topic
		if prev != nil {
			pt = prev.Topics[name]
		}
		configChanged := pt == nil || !maps.Equal(pt.Configs, t.Configs)
		minISR := m.cfg.MinISR(t.Configs)
		for i := range t.Partitions {
			mp := &t.Partitions[i]
			idx := int32(i)
			if !mp.HasReplica(self) {
				continue
			}
			p := m.Partition(name, idx)
			if p == nil {
				var err error
				if p, err = m.Create(name, t.ID, idx, t.Configs); err != nil {
					m.log.Error("cannot open assigned replica", "topic", name, "partition", idx, "err", err)
					continue
				}
			} else if configChanged && pt != nil {
				p.log.SetConfig(m.cfg.LogConfig(t.Configs))
			}
			p.setState(stateFor(self, mp, minISR))
		}
	}
	for _, p := range m.All() {
		t := next.Topics[p.Topic]
		if t != nil && int(p.Index) < len(t.Partitions) && t.Partitions[p.Index].HasReplica(self) {
			continue
		}
		if err := m.Delete(p.Topic, p.Index); err != nil {
			m.log.Error("deleting removed replica left files behind", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	}
}

const partitionMetaFile = "partition.metadata"

// WritePartitionMetadata writes Kafka's partition.metadata file, which
// ties a partition directory to its topic id.
func WritePartitionMetadata(dir string, id metadata.TopicID) error {
	return fsutil.WriteFileAtomic(filepath.Join(dir, partitionMetaFile), []byte("version: 0\ntopic_id: "+id.String()+"\n"))
}

// ReadPartitionMetadata reads the topic id of a partition directory.
func ReadPartitionMetadata(dir string) (metadata.TopicID, error) {
	b, err := os.ReadFile(filepath.Join(dir, partitionMetaFile))
	if err != nil {
		return metadata.TopicID{}, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "topic_id: "); ok {
			return metadata.ParseTopicID(strings.TrimSpace(v))
		}
	}
	return metadata.TopicID{}, fmt.Errorf("%s: no topic_id", filepath.Join(dir, partitionMetaFile))
}

// ParsePartitionDir splits "<topic>-<partition>" at the last dash.
func ParsePartitionDir(name string) (string, int32, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, false
	}
	return name[:i], int32(p), true
}
