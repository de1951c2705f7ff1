package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

	// AlterPartition sends an ISR change to the controller and returns
	// the partition as the controller recorded it. Nil refuses every
	// change (one broker, no controller: the ISR never changes).
	AlterPartition AlterPartitionFunc
	// IsrEligible reports whether a broker may join an ISR now (Kafka's
	// Partition.isReplicaIsrEligible: registered and not fenced). A fenced
	// broker's last fetch, answered after the fence, must not make the
	// leader propose it: the controller would refuse (INELIGIBLE_REPLICA)
	// and the leader would not retry for this partition epoch. Nil: all.
	IsrEligible func(id int32) bool
	// OnISRChange is told about each ISR change the controller accepted
	// (IsrShrinksPerSec / IsrExpandsPerSec).
	OnISRChange func(expand bool)
	// OnISRChangeFailed is told about each ISR change the controller
	// refused or did not answer (FailedIsrUpdatesPerSec).
	OnISRChangeFailed func()
	// OnPartitionHold is told about each time a follower partition is held
	// out of its fetcher's requests (PartitionHolds).
	OnPartitionHold func()
	// OnTruncate is told, each time a follower truncates a divergent log
	// tail after a leader change, how many offsets it removed: records
	// the old leader appended and that no in-sync replica had (acks=1
	// writes acknowledged by a leader that then died are lost here).
	OnTruncate func(offsets int64)

	LagTimeMax    time.Duration // replica.lag.time.max.ms (default 30 s)
	FetchMaxBytes int32         // replica.fetch.max.bytes (default 1 MiB)
	FetchWaitMax  time.Duration // replica.fetch.wait.max.ms (default 500 ms)
	FetchMinBytes int32         // replica.fetch.min.bytes (default 1)
	FetchBackoff  time.Duration // replica.fetch.backoff.ms (default 1 s)
	NumFetchers   int           // num.replica.fetchers (default 1)
	// Listener is the listener name followers connect to leaders on
	// (inter.broker.listener.name).
	Listener string
}

// AlterPartitionRequest is a leader's ISR change, checked by the
// controller against the leader epoch and partition epoch it names.
type AlterPartitionRequest struct {
	Topic          string
	Partition      int32
	LeaderID       int32
	LeaderEpoch    int32
	PartitionEpoch int32
	NewISR         []int32
}

// AlterPartitionFunc is the controller's AlterPartition.
type AlterPartitionFunc func(ctx context.Context, req AlterPartitionRequest) (metadata.Partition, error)

// Manager holds this broker's partitions.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger

	mu    sync.RWMutex // guards parts; a leaf lock
	parts map[TopicPartition]*Partition

	fmu      sync.Mutex // guards fetchers and fetcherOf
	fetchers map[fetcherKey]*fetcher
	// fetcherOf is the fetcher each follower partition is assigned to.
	fetcherOf map[TopicPartition]*fetcher

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	img    atomic.Pointer[metadata.Image] // last image seen
	// heldPartitions counts follower partitions held out of fetches
	// after a partition error (fetcher.holdPartition).
	heldPartitions atomic.Int64
	// openErrs: TopicPartition -> error of assigned replicas that could
	// not be opened (OpenError), until one opens or leaves the image.
	openErrs sync.Map
}

// NewManager returns an empty manager; Load opens what the log dirs hold.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinISR == nil {
		cfg.MinISR = func(map[string]string) int { return 1 }
	}
	if cfg.LagTimeMax <= 0 {
		cfg.LagTimeMax = 30 * time.Second
	}
	if cfg.FetchMaxBytes <= 0 {
		cfg.FetchMaxBytes = 1 << 20
	}
	if cfg.FetchWaitMax <= 0 {
		cfg.FetchWaitMax = 500 * time.Millisecond
	}
	if cfg.FetchBackoff <= 0 {
		cfg.FetchBackoff = time.Second
	}
	if cfg.NumFetchers <= 0 {
		cfg.NumFetchers = 1
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, parts: map[TopicPartition]*Partition{},
		fetchers: map[fetcherKey]*fetcher{}, fetcherOf: map[TopicPartition]*fetcher{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Start runs the ISR lag check (every replica.lag.time.max.ms / 2, as
// Kafka's isr-expiration task).
func (m *Manager) Start() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(m.cfg.LagTimeMax / 2)
		defer t.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case now := <-t.C:
				for _, p := range m.All() {
					p.maybeShrinkISR(now)
				}
			}
		}
	}()
}

// alterISR sends an ISR change on its own goroutine (never under a lock):
// the controller's answer arrives as a new image, and, in case that image
// is late, is applied from the response when it is newer.
func (m *Manager) alterISR(p *Partition, st *State, isr []int32, expand bool) {
	if m.cfg.AlterPartition == nil {
		p.alterDone(st.PartitionEpoch)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
		defer cancel()
		np, err := m.cfg.AlterPartition(ctx, AlterPartitionRequest{Topic: p.Topic, Partition: p.Index,
			LeaderID: st.Self, LeaderEpoch: st.LeaderEpoch, PartitionEpoch: st.PartitionEpoch, NewISR: isr})
		if err != nil {
			m.log.Warn("AlterPartition failed; not retried for this partition epoch within replica.lag.time.max.ms",
				"topic", p.Topic, "partition", p.Index, "isr", st.ISR, "new_isr", isr, "partition_epoch", st.PartitionEpoch, "err", err)
			if m.cfg.OnISRChangeFailed != nil {
				m.cfg.OnISRChangeFailed()
			}
			p.alterDone(st.PartitionEpoch)
			return
		}
		if cur := p.State(); np.PartitionEpoch > cur.PartitionEpoch && np.LeaderEpoch == cur.LeaderEpoch {
			p.setState(stateFor(cur.Self, &np, cur.MinISR))
		}
		m.log.Info("ISR changed", "topic", p.Topic, "partition", p.Index, "isr", np.ISR, "partition_epoch", np.PartitionEpoch)
		if m.cfg.OnISRChange != nil {
			m.cfg.OnISRChange(expand)
		}
		p.alterDone(-1)
	}()
}

// PartitionHolds is how many times a follower partition was left out of
// its fetcher's requests after the leader answered it with a partition
// error (FENCED_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER, ...), while the
// fetcher kept fetching the others.
func (m *Manager) PartitionHolds() int64 { return m.heldPartitions.Load() }

// MaxLag is the largest follower lag in messages (ReplicaFetcherManager
// MaxLag, clientId=Replica).
func (m *Manager) MaxLag() int64 {
	var n int64
	for _, p := range m.All() {
		n = max(n, p.fetchLag.Load())
	}
	return n
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
	recovery, logStart, hw := map[TopicPartition]int64{}, map[TopicPartition]int64{}, map[TopicPartition]int64{}
	for _, dir := range m.cfg.LogDirs {
		for _, f := range []struct {
			name string
			into map[TopicPartition]int64
		}{{"recovery-point-offset-checkpoint", recovery}, {"log-start-offset-checkpoint", logStart},
			{HWCheckpointFile, hw}} {
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
			p.m = m
			p.hw.Store(min(hw[tp], l.LogEndOffset()))
			id, _ := ReadPartitionMetadata(pdir)
			p.TopicID = id
			if err := m.add(p); err != nil {
				l.Close()
				return nil, err
			}
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
	_, statErr := os.Lstat(pdir)
	fresh := errors.Is(statErr, os.ErrNotExist)
	// A partition this call created and could not open leaves nothing
	// behind: no half-made directory for the next start to trip over. The
	// usual cause is running out of file descriptors, and then os.RemoveAll
	// cannot open the directory to list it; so a fresh directory is made
	// and opened here, before the log takes its descriptors, and the
	// cleanup lists and unlinks through that handle (unlink and rmdir take
	// no descriptor).
	var dirf *os.File
	if fresh {
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return nil, fmt.Errorf("create partition %s-%d: %w", topic, idx, err)
		}
		f, err := os.Open(pdir)
		if err != nil {
			if rerr := os.Remove(pdir); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove %s: %w", pdir, rerr))
			}
			return nil, fmt.Errorf("create partition %s-%d: %w", topic, idx, err)
		}
		dirf = f
		defer dirf.Close()
	}
	undo := func(l *klog.Log, err error) (*Partition, error) {
		if l != nil {
			l.Close()
		}
		if fresh {
			if rerr := removeThrough(dirf, pdir); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove %s: %w", pdir, rerr))
			}
		}
		return nil, err
	}
	l, err := klog.Open(pdir, m.cfg.LogConfig(overrides), klog.OpenOptions{
		Logger:  m.log.With("topic", topic, "partition", idx),
		OnFlush: m.cfg.OnFlush,
	})
	if err != nil {
		return undo(nil, fmt.Errorf("create partition %s-%d: %w", topic, idx, err))
	}
	if err := WritePartitionMetadata(pdir, id); err != nil {
		return undo(l, err)
	}
	p, err := newPartition(topic, idx, dir, l)
	if err == nil {
		p.m, p.TopicID = m, id
		err = m.add(p)
	}
	if err != nil {
		return undo(l, err)
	}
	return p, nil
}

// OpenError is why the last attempt to open a replica the image assigns
// to this broker failed, or nil (opened, or never tried).
func (m *Manager) OpenError(topic string, idx int32) error {
	if err, ok := m.openErrs.Load(TopicPartition{Topic: topic, Partition: idx}); ok {
		return err.(error)
	}
	return nil
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
	m.unassignFetcher(p)
	p.becomeFollower(&State{Leader: metadata.NoLeader, LeaderEpoch: p.State().LeaderEpoch})
	p.NotifyAppend() // parked fetches re-read and see the partition gone
	return p.log.Delete()
}

// Close stops the fetchers and the ISR check, fails pending acks=all
// waits, and closes every log.
func (m *Manager) Close() error {
	m.cancel()
	m.stopFetchers()
	m.wg.Wait()
	for _, p := range m.All() {
		p.becomeFollower(&State{Leader: metadata.NoLeader, LeaderEpoch: p.State().LeaderEpoch})
	}
	var errs []error
	for _, p := range m.All() {
		errs = append(errs, p.log.Close())
	}
	return errors.Join(errs...)
}

// OnImage is the Manager's metadata.Listener: it opens partitions the
// image assigns to this broker that it does not hold yet, applies changed
// topic configs to the logs, makes this broker leader or follower of each
// as the image says (a new leader epoch starts a new epoch in the leader
// epoch cache; a follower is handed to the fetcher of its leader and
// truncates first), and deletes the replicas of partitions that are gone.
//
// The image a Publisher starts with (Offset 0) is not metadata yet: it
// changes nothing, so partitions loaded from disk survive until the first
// real image says what they are.
func (m *Manager) OnImage(prev, next *metadata.Image) {
	if next == nil || next.Offset == 0 {
		return
	}
	m.img.Store(next)
	self := m.cfg.NodeID
	now := time.Now()
	var follow []fetchAssignment // handed to the fetchers together, see assignFetchers
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
			if p != nil && p.TopicID != (metadata.TopicID{}) && p.TopicID != t.ID {
				if pt != nil && pt.ID == p.TopicID {
					// The topic was deleted and created again under the
					// same name between two images: the old data goes.
					if err := m.Delete(name, idx); err != nil {
						m.log.Error("deleting replica of a re-created topic left files behind", "topic", name, "partition", idx, "err", err)
					}
					p = nil
				} else {
					m.log.Error("partition directory belongs to another topic id; not serving it",
						"topic", name, "partition", idx, "dir_topic_id", p.TopicID.String(), "topic_id", t.ID.String())
					continue
				}
			}
			if p == nil {
				var err error
				if p, err = m.Create(name, t.ID, idx, t.Configs); err != nil {
					m.openErrs.Store(TopicPartition{Topic: name, Partition: idx}, err)
					m.log.Error("cannot open assigned replica", "topic", name, "partition", idx, "err", err)
					continue
				}
				m.openErrs.Delete(TopicPartition{Topic: name, Partition: idx})
			} else if configChanged && pt != nil {
				p.log.SetConfig(m.cfg.LogConfig(t.Configs))
			}
			st := stateFor(self, mp, minISR)
			p.setState(st)
			switch {
			case st.Leader == self:
				m.unassignFetcher(p)
				p.becomeLeader(st, now)
			case st.Leader == metadata.NoLeader:
				m.unassignFetcher(p)
				p.becomeFollower(st)
			default:
				p.becomeFollower(st)
				lb := next.Brokers[st.Leader]
				var ep metadata.Endpoint
				ok := false
				if lb != nil {
					ep, ok = lb.Endpoint(m.cfg.Listener)
				}
				if !ok {
					m.log.Warn("leader has no endpoint on the inter-broker listener", "topic", name, "partition", idx,
						"leader", st.Leader, "listener", m.cfg.Listener)
					m.unassignFetcher(p)
					continue
				}
				follow = append(follow, fetchAssignment{p, st.Leader, net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port)))})
			}
		}
	}
	m.assignFetchers(follow)
	for _, p := range m.All() {
		t := next.Topics[p.Topic]
		if t != nil && int(p.Index) < len(t.Partitions) && t.Partitions[p.Index].HasReplica(self) {
			continue
		}
		// Only a removal this manager saw happen deletes data: a
		// partition on disk that no image has named yet (a data dir
		// older than the metadata log, a replica whose topic is about
		// to be imported) is kept and reported.
		var pt *metadata.Topic
		if prev != nil {
			pt = prev.Topics[p.Topic]
		}
		if pt == nil || int(p.Index) >= len(pt.Partitions) || !pt.Partitions[p.Index].HasReplica(self) {
			if !p.strayLogged {
				p.strayLogged = true
				m.log.Warn("partition directory not in the metadata; kept", "topic", p.Topic, "partition", p.Index, "dir", p.log.Dir())
			}
			continue
		}
		if err := m.Delete(p.Topic, p.Index); err != nil {
			m.log.Error("deleting removed replica left files behind", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	}
	m.openErrs.Range(func(k, _ any) bool {
		tp := k.(TopicPartition)
		if t := next.Topics[tp.Topic]; t == nil || int(tp.Partition) >= len(t.Partitions) || !t.Partitions[tp.Partition].HasReplica(self) {
			m.openErrs.Delete(k)
		}
		return true
	})
}

// HWCheckpointFile is Kafka's per-log-dir high watermark checkpoint.
const HWCheckpointFile = "replication-offset-checkpoint"

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

// removeThrough removes dir, a flat directory Create made, listing it
// through the already open handle d so that no new descriptor is needed.
func removeThrough(d *os.File, dir string) error {
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
