package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kobs-dev/kobs/broker/group"
	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/producerstate"
	"github.com/kobs-dev/kobs/broker/telemetry"
	"github.com/kobs-dev/kobs/broker/wire"
	"github.com/kobs-dev/kobs/exporters"
)

// Broker is one kobs broker: partition logs under log.dirs served over the
// Kafka protocol.
type Broker struct {
	cfg       *Config
	log       *slog.Logger
	clusterID string
	srv       *wire.Server

	lns        []net.Listener
	httpLn     net.Listener
	advertised []Listener // with real ports once bound

	mu       sync.RWMutex // guards topics, byID, and each topic's partitions/configs
	topics   map[string]*topic
	byID     map[TopicID]*topic
	metaLock sync.Mutex // serialises writes of the topics file

	producerIDs *producerstate.IDs

	groups *group.Coordinator // set by Start (startGroups)

	// reg holds the broker's Kafka MBeans; metrics is nil when telemetry
	// is off (kobs.telemetry.enable=false).
	reg     *telemetry.Registry
	metrics *metrics
	http    *http.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

// New opens the broker's log dirs, recovering every partition log, but does
// not listen yet (Start does).
func New(cfg *Config, logger *slog.Logger) (*Broker, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{
		cfg:    cfg,
		log:    logger,
		topics: map[string]*topic{},
		byID:   map[TopicID]*topic{},
		closed: make(chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	clusterID := cfg.ClusterID
	for _, dir := range cfg.LogDirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("log.dirs: %w", err)
		}
		id, err := ensureMetaProperties(dir, cfg.NodeID, clusterID)
		if err != nil {
			return nil, err
		}
		clusterID = id
	}
	b.clusterID = clusterID
	ids, err := producerstate.OpenIDs(filepath.Join(cfg.LogDirs[0], "kobs-producer-ids"))
	if err != nil {
		return nil, err
	}
	b.producerIDs = ids
	b.reg = telemetry.New()
	if cfg.TelemetryEnable {
		b.metrics = newMetrics(b.reg, cfg.NumIOThreads)
	}
	if err := b.loadTopics(); err != nil {
		b.closeLogs()
		return nil, err
	}
	for _, t := range b.topics {
		b.registerTopicMetrics(t, 0)
	}
	return b, nil
}

// loadTopics restores topics from the metadata file and opens every
// partition directory found in the log dirs.
func (b *Broker) loadTopics() error {
	recs, err := readTopicsFile(b.cfg.LogDirs[0])
	if err != nil {
		return err
	}
	for _, r := range recs {
		id, err := parseTopicID(r.ID)
		if err != nil {
			return fmt.Errorf("topic %s: %w", r.Name, err)
		}
		t := &topic{name: r.Name, id: id, configs: r.Configs, internal: isInternalTopic(r.Name),
			partitions: make([]*partition, r.Partitions)}
		if t.configs == nil {
			t.configs = map[string]string{}
		}
		b.topics[t.name] = t
		b.byID[id] = t
	}
	recovery, logStart := map[klog.TopicPartition]int64{}, map[klog.TopicPartition]int64{}
	for _, dir := range b.cfg.LogDirs {
		for _, f := range []struct {
			name string
			into map[klog.TopicPartition]int64
		}{{"recovery-point-offset-checkpoint", recovery}, {"log-start-offset-checkpoint", logStart}} {
			m, err := klog.ReadCheckpoint(filepath.Join(dir, f.name))
			if err != nil {
				return err
			}
			maps.Copy(f.into, m)
		}
	}
	for _, dir := range b.cfg.LogDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("read log dir: %w", err)
		}
		for _, e := range ents {
			name, idx, ok := parsePartitionDir(e.Name())
			if !e.IsDir() || !ok || validateTopicName(name) != nil {
				continue
			}
			pdir := filepath.Join(dir, e.Name())
			t := b.topics[name]
			if t == nil {
				// A partition directory without a topic record: keep the
				// data and rebuild the topic from partition.metadata.
				id, err := readPartitionMetadata(pdir)
				if err != nil {
					id = newTopicID()
				}
				b.log.Warn("partition directory has no topic metadata; restoring topic", "dir", pdir, "topic", name)
				t = &topic{name: name, id: id, configs: map[string]string{}, internal: isInternalTopic(name)}
				b.topics[name] = t
				b.byID[id] = t
			}
			for int32(len(t.partitions)) <= idx {
				t.partitions = append(t.partitions, nil)
			}
			if t.partitions[idx] != nil {
				return fmt.Errorf("partition %s-%d found in two log dirs", name, idx)
			}
			tp := klog.TopicPartition{Topic: name, Partition: idx}
			l, err := klog.Open(pdir, b.cfg.logConfig(t.configs), klog.OpenOptions{
				LogStartOffset: logStart[tp],
				RecoveryPoint:  recovery[tp],
				Logger:         b.log.With("topic", name, "partition", idx),
				OnFlush:        b.metrics.flushed,
			})
			if err != nil {
				return fmt.Errorf("open partition %s-%d: %w", name, idx, err)
			}
			if t.partitions[idx], err = newPartition(name, idx, dir, l); err != nil {
				l.Close()
				return err
			}
		}
	}
	// Partitions recorded but missing on disk (a wiped directory) start
	// empty, as a new replica would.
	for _, t := range b.topics {
		for i, p := range t.partitions {
			if p != nil {
				continue
			}
			np, err := b.openPartition(t, int32(i))
			if err != nil {
				return err
			}
			t.partitions[i] = np
		}
	}
	return b.persistTopics()
}

func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

// openPartition creates the directory of a new partition in the log dir
// holding the fewest partitions, as Kafka places new replicas.
func (b *Broker) openPartition(t *topic, idx int32) (*partition, error) {
	counts := map[string]int{}
	for _, ot := range b.topics {
		for _, p := range ot.partitions {
			if p != nil {
				counts[p.logDir]++
			}
		}
	}
	dir := b.cfg.LogDirs[0]
	for _, d := range b.cfg.LogDirs[1:] {
		if counts[d] < counts[dir] {
			dir = d
		}
	}
	pdir := filepath.Join(dir, fmt.Sprintf("%s-%d", t.name, idx))
	l, err := klog.Open(pdir, b.cfg.logConfig(t.configs), klog.OpenOptions{
		Logger:  b.log.With("topic", t.name, "partition", idx),
		OnFlush: b.metrics.flushed,
	})
	if err != nil {
		return nil, fmt.Errorf("create partition %s-%d: %w", t.name, idx, err)
	}
	if err := writePartitionMetadata(pdir, t.id); err != nil {
		l.Close()
		return nil, err
	}
	p, err := newPartition(t.name, idx, dir, l)
	if err != nil {
		l.Close()
		return nil, err
	}
	return p, nil
}

// persistTopics writes the topics file; callers hold b.mu (read or write).
func (b *Broker) persistTopics() error {
	b.metaLock.Lock()
	defer b.metaLock.Unlock()
	recs := make([]topicRecord, 0, len(b.topics))
	for _, t := range b.topics {
		recs = append(recs, topicRecord{Name: t.name, ID: t.id.String(), Partitions: int32(len(t.partitions)), Configs: t.configs})
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	return writeTopicsFile(b.cfg.LogDirs[0], recs)
}

// registerTopicMetrics registers a topic's BrokerTopicMetrics (once) and
// the Log/Partition gauges of its partitions from index from on. Callers
// hold b.mu or run before serving.
func (b *Broker) registerTopicMetrics(t *topic, from int) {
	if t.metrics == nil {
		t.metrics = b.metrics.addTopic(t.name)
	}
	for _, p := range t.partitions[from:] {
		b.metrics.addPartition(b, p)
	}
}

// Registry is the broker's telemetry registry (Kafka's MBeans).
func (b *Broker) Registry() *telemetry.Registry { return b.reg }

// HTTPAddr is the bound address of the telemetry HTTP listener, or "" if
// it is disabled.
func (b *Broker) HTTPAddr() string {
	if b.httpLn == nil {
		return ""
	}
	return b.httpLn.Addr().String()
}

// Start binds the listeners and starts serving and the background tasks.
func (b *Broker) Start() error {
	if err := b.startGroups(); err != nil {
		return err
	}
	wcfg := wire.Config{
		Versions:        apiVersions(),
		MaxRequestBytes: b.cfg.SocketRequestMaxBytes,
		Handlers:        b.cfg.NumIOThreads,
		QueueSize:       b.cfg.QueuedMaxRequests,
		NetworkThreads:  b.cfg.NumNetworkThreads,
		Logger:          b.log,

		MaxConnections:        b.cfg.MaxConnections,
		MaxConnectionsPerIP:   b.cfg.MaxConnectionsPerIP,
		IdleTimeout:           b.cfg.ConnectionsMaxIdle,
		QueuedMaxRequestBytes: b.cfg.QueuedMaxRequestBytes,
		ReadTimeout:           b.cfg.RequestReadTimeout,
		WriteTimeout:          b.cfg.ResponseWriteTimeout,
	}
	if b.metrics != nil {
		wcfg.Observe, wcfg.OnIdle = b.metrics.observe, b.metrics.idle
	}
	b.srv = wire.NewServer(wcfg, b)
	b.metrics.registerBrokerGauges(b)
	b.advertised = slices.Clone(b.cfg.AdvertisedListeners)
	for _, l := range b.cfg.Listeners {
		ln, err := net.Listen("tcp", l.Addr())
		if err != nil {
			b.srv.Close()
			for _, o := range b.lns {
				o.Close()
			}
			return fmt.Errorf("listen %s: %w", l, err)
		}
		b.lns = append(b.lns, ln)
		// Port 0 (tests) is advertised as the port we actually got.
		port := int32(ln.Addr().(*net.TCPAddr).Port)
		for i := range b.advertised {
			if b.advertised[i].Name == l.Name && b.advertised[i].Port == 0 {
				b.advertised[i].Port = port
			}
		}
		b.srv.Serve(l.Name, ln)
	}
	b.registerWireMetrics()
	b.registerOSMetrics()
	if err := b.startHTTP(); err != nil {
		b.srv.Close()
		for _, o := range b.lns {
			o.Close()
		}
		return err
	}
	b.reg.Start(b.ctx)
	b.startBackground()
	return nil
}

// startHTTP serves /jolokia and /metrics on kobs.http.listener ("" = off).
func (b *Broker) startHTTP() error {
	if b.cfg.HTTPListener == "" {
		return nil
	}
	ln, err := net.Listen("tcp", b.cfg.HTTPListener)
	if err != nil {
		return fmt.Errorf("listen kobs.http.listener %s: %w", b.cfg.HTTPListener, err)
	}
	b.httpLn = ln
	b.http = &http.Server{Handler: exporters.NewHandler(b.reg, b.jolokiaOptions()...), ReadHeaderTimeout: 10 * time.Second}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("telemetry http server failed", "err", err)
		}
	}()
	return nil
}

// Addrs returns the bound address of each listener, in listeners order.
func (b *Broker) Addrs() []string {
	out := make([]string, len(b.lns))
	for i, ln := range b.lns {
		out[i] = ln.Addr().String()
	}
	return out
}

// ClusterID is the cluster id from meta.properties.
func (b *Broker) ClusterID() string { return b.clusterID }

// NodeID is node.id.
func (b *Broker) NodeID() int32 { return b.cfg.NodeID }

// Done is closed once Close has finished.
func (b *Broker) Done() <-chan struct{} { return b.closed }

func (b *Broker) startBackground() {
	every := func(d time.Duration, what string, fn func()) {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-b.ctx.Done():
					return
				case <-t.C:
					fn()
				}
			}
		}()
		b.log.Debug("background task scheduled", "task", what, "every", d)
	}
	every(b.cfg.RetentionCheckInterval, "retention", b.enforceRetention)
	every(b.cfg.FlushSchedulerInterval, "flush", b.flushDue)
	every(b.cfg.ProducerIDExpirationCheck, "producer-expiry", b.expireProducers)
	b.startCleaner()
	every(b.cfg.CheckpointInterval, "checkpoint", func() {
		if err := b.writeCheckpoints(); err != nil {
			b.log.Error("checkpoint write failed", "err", err)
		}
	})
}

// eachPartition calls fn for every partition, outside b.mu so slow disk
// work never blocks metadata requests.
func (b *Broker) eachPartition(fn func(*partition)) {
	b.mu.RLock()
	var ps []*partition
	for _, t := range b.topics {
		ps = append(ps, t.partitions...)
	}
	b.mu.RUnlock()
	for _, p := range ps {
		fn(p)
	}
}

func (b *Broker) enforceRetention() {
	b.eachPartition(func(p *partition) {
		n, err := p.log.EnforceRetention()
		switch {
		case errors.Is(err, klog.ErrClosed):
		case err != nil:
			b.log.Error("retention failed", "topic", p.topic, "partition", p.index, "err", err)
		case n > 0:
			b.log.Info("deleted segments past retention", "topic", p.topic, "partition", p.index,
				"segments", n, "log_start_offset", p.log.LogStartOffset())
		}
	})
}

// expireProducers forgets idempotent producers whose last batch is older
// than producer.id.expiration.ms, as Kafka does, so the state of producers
// that are gone does not grow forever. A forgotten producer that comes back
// is accepted at any sequence (see broker/producerstate).
func (b *Broker) expireProducers() {
	before := time.Now().Add(-b.cfg.ProducerIDExpiration).UnixMilli()
	b.eachPartition(func(p *partition) {
		p.appendMu.Lock()
		n := p.producers.ExpireBefore(before)
		p.appendMu.Unlock()
		if n > 0 {
			b.log.Info("expired idle producer ids", "topic", p.topic, "partition", p.index, "producers", n)
		}
	})
}

func (b *Broker) flushDue() {
	b.eachPartition(func(p *partition) {
		if err := p.log.MaybeFlush(); err != nil && !errors.Is(err, klog.ErrClosed) {
			b.log.Error("flush failed", "topic", p.topic, "partition", p.index, "err", err)
		}
	})
}

// writeCheckpoints writes Kafka's recovery-point and log-start-offset
// checkpoint files in each log dir.
func (b *Broker) writeCheckpoints() error {
	recovery := map[string]map[klog.TopicPartition]int64{}
	logStart := map[string]map[klog.TopicPartition]int64{}
	for _, d := range b.cfg.LogDirs {
		recovery[d], logStart[d] = map[klog.TopicPartition]int64{}, map[klog.TopicPartition]int64{}
	}
	var errs []error
	b.eachPartition(func(p *partition) {
		errs = append(errs, p.writeProducerSnapshot())
		tp := klog.TopicPartition{Topic: p.topic, Partition: p.index}
		recovery[p.logDir][tp] = p.log.RecoveryPoint()
		logStart[p.logDir][tp] = p.log.LogStartOffset()
	})
	for _, d := range b.cfg.LogDirs {
		errs = append(errs,
			klog.WriteCheckpoint(filepath.Join(d, "recovery-point-offset-checkpoint"), recovery[d]),
			klog.WriteCheckpoint(filepath.Join(d, "log-start-offset-checkpoint"), logStart[d]))
	}
	return errors.Join(errs...)
}

// Close stops serving, flushes and closes every log and writes the
// checkpoints, so the next start needs no recovery scan.
func (b *Broker) Close() error {
	var err error
	b.once.Do(func() {
		b.cancel()
		if b.srv != nil {
			b.srv.Close()
		}
		if b.http != nil {
			_ = b.http.Close()
		}
		b.reg.Stop()
		b.wg.Wait()
		b.stopGroups()
		err = errors.Join(b.writeCheckpoints(), b.closeLogs())
		close(b.closed)
	})
	return err
}

func (b *Broker) closeLogs() error {
	var errs []error
	b.eachPartition(func(p *partition) {
		if p != nil {
			errs = append(errs, p.log.Close())
		}
	})
	return errors.Join(errs...)
}

// lookup returns the partition or nil; the topic and whether it exists.
func (b *Broker) lookup(topicName string, idx int32) (*topic, *partition) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topics[topicName]
	if t == nil {
		return nil, nil
	}
	if idx < 0 || int(idx) >= len(t.partitions) {
		return t, nil
	}
	return t, t.partitions[idx]
}

// createTopic creates a topic with n partitions and config overrides,
// already validated by the caller.
func (b *Broker) createTopic(name string, n int32, configs map[string]string) (*topic, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.topics[name]; ok {
		return nil, errTopicExists
	}
	if err := b.checkCollision(name); err != nil {
		return nil, err
	}
	if configs == nil {
		configs = map[string]string{}
	}
	t := &topic{name: name, id: newTopicID(), configs: configs, internal: isInternalTopic(name)}
	for i := int32(0); i < n; i++ {
		p, err := b.openPartition(t, i)
		if err != nil {
			for _, op := range t.partitions {
				_ = op.log.Delete()
			}
			return nil, err
		}
		t.partitions = append(t.partitions, p)
	}
	b.topics[name] = t
	b.byID[t.id] = t
	b.registerTopicMetrics(t, 0)
	if err := b.persistTopics(); err != nil {
		return nil, err
	}
	b.log.Info("created topic", "topic", name, "partitions", n, "topic_id", t.id.String())
	return t, nil
}

func (b *Broker) checkCollision(name string) error {
	c := collisionName(name)
	for other := range b.topics {
		if collisionName(other) == c {
			return fmt.Errorf("%w: topic %q collides with existing topic %q", errInvalidTopic, name, other)
		}
	}
	return nil
}

func (b *Broker) deleteTopic(t *topic) error {
	b.mu.Lock()
	delete(b.topics, t.name)
	delete(b.byID, t.id)
	b.metrics.removeTopic(t.name)
	parts := t.partitions
	err := b.persistTopics()
	b.mu.Unlock()
	for _, p := range parts {
		p.notifyAppend() // parked fetches re-read and see the topic gone
		err = errors.Join(err, p.log.Delete())
	}
	if b.groups != nil {
		b.groups.TopicDeleted(t.name)
	}
	b.log.Info("deleted topic", "topic", t.name, "topic_id", t.id.String())
	return err
}

var (
	errTopicExists  = errors.New("topic already exists")
	errInvalidTopic = errors.New("invalid topic")
)
