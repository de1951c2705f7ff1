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
	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/broker/producerstate"
	"github.com/kobs-dev/kobs/broker/replica"
	"github.com/kobs-dev/kobs/broker/telemetry"
	"github.com/kobs-dev/kobs/broker/wire"
)

// Broker is one kobs broker: partition logs under log.dirs served over the
// Kafka protocol.
//
// State lives in three places, none of them a lock the produce or fetch
// path takes: the current metadata image (pub: topics, partitions, leaders,
// ISR, configs; one atomic load), the replica manager (replicas: the
// partitions this broker holds, each with its own append lock), and, until
// the controller quorum owns it, the local topic store below, from which
// the broker publishes its images.
type Broker struct {
	cfg       *Config
	log       *slog.Logger
	clusterID string
	srv       *wire.Server

	lns        []net.Listener
	httpLn     net.Listener
	httpH      http.Handler
	advertised []Listener // with real ports once bound

	pub      *metadata.Publisher
	replicas *replica.Manager
	// external: images come from outside (WithExternalMetadata), not from
	// the local topic store.
	external       bool
	alterPartition replica.AlterPartitionFunc

	// mu serialises changes to the local topic store (create, delete,
	// alter configs, add partitions) and the images published from it.
	// Only admin paths take it; it may be held across disk work.
	mu     sync.Mutex
	topics map[string]*topic

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

// Option changes how New builds a broker.
type Option func(*Broker)

// WithExternalMetadata makes the broker serve the images someone else
// publishes on Metadata() (the controller quorum, or a test driving several
// brokers) instead of its local topic store, and send ISR changes to
// alter. Admin requests that change topics are then refused until a
// controller takes them.
func WithExternalMetadata(alter replica.AlterPartitionFunc) Option {
	return func(b *Broker) { b.external, b.alterPartition = true, alter }
}

// New opens the broker's log dirs, recovering every partition log, but does
// not listen yet (Start does).
func New(cfg *Config, logger *slog.Logger, opts ...Option) (*Broker, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{
		cfg:    cfg,
		log:    logger,
		topics: map[string]*topic{},
		closed: make(chan struct{}),
	}
	for _, o := range opts {
		o(b)
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
	b.advertised = slices.Clone(cfg.AdvertisedListeners)
	b.pub = metadata.NewPublisher(metadata.Empty(clusterID))
	b.replicas = replica.NewManager(replica.ManagerConfig{
		NodeID:    cfg.NodeID,
		LogDirs:   cfg.LogDirs,
		LogConfig: cfg.logConfig,
		MinISR:    cfg.minISR,
		OnFlush:   b.metrics.flushed,
		OnAdd:     b.metrics.addPartition,
		OnRemove:  b.metrics.removePartition,
		Logger:    logger,

		AlterPartition: b.alterPartition,
		OnISRChange:    b.metrics.isrChanged,
		LagTimeMax:     cfg.ReplicaLagTimeMax,
		FetchMaxBytes:  cfg.ReplicaFetchMaxBytes,
		FetchWaitMax:   cfg.ReplicaFetchWaitMax,
		FetchMinBytes:  cfg.ReplicaFetchMinBytes,
		FetchBackoff:   cfg.ReplicaFetchBackoff,
		NumFetchers:    cfg.NumReplicaFetchers,
		Listener:       cfg.InterBrokerListener,
	})
	b.pub.Subscribe(b.replicas.OnImage)
	b.pub.Subscribe(b.onImage)
	if err := b.loadTopics(); err != nil {
		b.closeLogs()
		return nil, err
	}
	return b, nil
}

// loadTopics restores topics from the metadata file, opens every
// partition directory found in the log dirs and publishes the first image.
// With external metadata it only opens the partitions found: the first
// image published from outside says what they are.
func (b *Broker) loadTopics() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.external {
		_, err := b.replicas.Load(func(name string) bool { return validateTopicName(name) == nil },
			func(string) map[string]string { return nil })
		return err
	}
	recs, err := readTopicsFile(b.cfg.LogDirs[0])
	if err != nil {
		return err
	}
	for _, r := range recs {
		id, err := metadata.ParseTopicID(r.ID)
		if err != nil {
			return fmt.Errorf("topic %s: %w", r.Name, err)
		}
		t := &topic{name: r.Name, id: id, configs: r.Configs, internal: isInternalTopic(r.Name), partitions: r.Partitions}
		if t.configs == nil {
			t.configs = map[string]string{}
		}
		b.topics[t.name] = t
	}
	found, err := b.replicas.Load(func(name string) bool { return validateTopicName(name) == nil },
		func(name string) map[string]string {
			if t := b.topics[name]; t != nil {
				return t.configs
			}
			return nil
		})
	if err != nil {
		return err
	}
	for _, f := range found {
		t := b.topics[f.Topic]
		if t == nil {
			// A partition directory without a topic record: keep the
			// data and rebuild the topic from partition.metadata.
			id := f.TopicID
			if id == (TopicID{}) {
				id = metadata.NewTopicID()
			}
			b.log.Warn("partition directory has no topic metadata; restoring topic", "topic", f.Topic, "partition", f.Index)
			t = &topic{name: f.Topic, id: id, configs: map[string]string{}, internal: isInternalTopic(f.Topic)}
			b.topics[f.Topic] = t
		}
		t.partitions = max(t.partitions, f.Index+1)
	}
	// Partitions recorded but missing on disk (a wiped directory) start
	// empty, as a new replica would.
	for _, t := range b.topics {
		b.metrics.addTopic(t.name)
		for i := range t.partitions {
			if _, err := b.replicas.Create(t.name, t.id, i, t.configs); err != nil {
				return err
			}
		}
	}
	if err := b.persistTopics(); err != nil {
		return err
	}
	b.publishLocked()
	return nil
}

func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

// publishLocked publishes an image of the local topic store: this broker
// is the only one, leads every partition at leader epoch 0 and is the
// controller. Callers hold b.mu, which keeps images in store order.
func (b *Broker) publishLocked() {
	if b.external {
		return
	}
	self := b.cfg.NodeID
	img := metadata.Empty(b.clusterID)
	prev := b.pub.Load()
	img.Offset = prev.Offset + 1
	img.ControllerID = self
	me := &metadata.Broker{ID: self}
	for _, l := range b.advertised {
		me.Endpoints = append(me.Endpoints, metadata.Endpoint{Listener: l.Name, Host: l.Host, Port: l.Port})
	}
	img.Brokers[self] = me
	for _, t := range b.topics {
		mt := &metadata.Topic{Name: t.name, ID: t.id, Internal: t.internal, Configs: maps.Clone(t.configs)}
		for range t.partitions {
			mt.Partitions = append(mt.Partitions, metadata.Partition{
				Leader: self, Replicas: []int32{self}, ISR: []int32{self},
			})
		}
		img.Topics[t.name] = mt
		img.ByID[t.id] = mt
	}
	b.pub.Publish(img)
}

// onImage drops the BrokerTopicMetrics of topics the image no longer has,
// as Kafka does when a topic is deleted.
func (b *Broker) onImage(prev, next *metadata.Image) {
	if prev == nil || next.Offset == 0 {
		return
	}
	for name := range prev.Topics {
		if next.Topics[name] == nil {
			b.metrics.removeTopic(name)
		}
	}
}

// persistTopics writes the topics file; callers hold b.mu.
func (b *Broker) persistTopics() error {
	recs := make([]topicRecord, 0, len(b.topics))
	for _, t := range b.topics {
		recs = append(recs, topicRecord{Name: t.name, ID: t.id.String(), Partitions: t.partitions, Configs: t.configs})
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	return writeTopicsFile(b.cfg.LogDirs[0], recs)
}

// Metadata is the broker's metadata publisher: the current image and its
// listeners.
func (b *Broker) Metadata() *metadata.Publisher { return b.pub }

// Replicas is the broker's replica manager.
func (b *Broker) Replicas() *replica.Manager { return b.replicas }

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
	// The image carries this broker's endpoints with the bound ports.
	b.mu.Lock()
	b.publishLocked()
	b.mu.Unlock()
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
	b.replicas.Start()
	b.startBackground()
	return nil
}

// MountHTTP sets the handler served on kobs.http.listener; call it before
// Start. The broker does not know what it serves: cmd/kobs mounts the
// exporters (Jolokia, Prometheus) over Registry().
func (b *Broker) MountHTTP(h http.Handler) { b.httpH = h }

// startHTTP serves the mounted handler on kobs.http.listener ("" = off).
func (b *Broker) startHTTP() error {
	if b.cfg.HTTPListener == "" {
		return nil
	}
	if b.httpH == nil {
		return fmt.Errorf("kobs.http.listener %s is set but no telemetry handler was mounted (Broker.MountHTTP)", b.cfg.HTTPListener)
	}
	ln, err := net.Listen("tcp", b.cfg.HTTPListener)
	if err != nil {
		return fmt.Errorf("listen kobs.http.listener %s: %w", b.cfg.HTTPListener, err)
	}
	b.httpLn = ln
	b.http = &http.Server{Handler: b.httpH, ReadHeaderTimeout: 10 * time.Second}
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

// eachPartition calls fn for every partition this broker holds.
func (b *Broker) eachPartition(fn func(*replica.Partition)) {
	for _, p := range b.replicas.All() {
		fn(p)
	}
}

func (b *Broker) enforceRetention() {
	b.eachPartition(func(p *replica.Partition) {
		n, err := p.Log().EnforceRetention()
		switch {
		case errors.Is(err, klog.ErrClosed):
		case err != nil:
			b.log.Error("retention failed", "topic", p.Topic, "partition", p.Index, "err", err)
		case n > 0:
			b.log.Info("deleted segments past retention", "topic", p.Topic, "partition", p.Index,
				"segments", n, "log_start_offset", p.Log().LogStartOffset())
		}
	})
}

// expireProducers forgets idempotent producers whose last batch is older
// than producer.id.expiration.ms, as Kafka does, so the state of producers
// that are gone does not grow forever. A forgotten producer that comes back
// is accepted at any sequence (see broker/producerstate).
func (b *Broker) expireProducers() {
	before := time.Now().Add(-b.cfg.ProducerIDExpiration).UnixMilli()
	b.eachPartition(func(p *replica.Partition) {
		if n := p.ExpireProducers(before); n > 0 {
			b.log.Info("expired idle producer ids", "topic", p.Topic, "partition", p.Index, "producers", n)
		}
	})
}

func (b *Broker) flushDue() {
	b.eachPartition(func(p *replica.Partition) {
		if err := p.Log().MaybeFlush(); err != nil && !errors.Is(err, klog.ErrClosed) {
			b.log.Error("flush failed", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	})
}

// writeCheckpoints writes Kafka's recovery-point and log-start-offset
// checkpoint files in each log dir.
func (b *Broker) writeCheckpoints() error {
	recovery := map[string]map[klog.TopicPartition]int64{}
	logStart := map[string]map[klog.TopicPartition]int64{}
	hw := map[string]map[klog.TopicPartition]int64{}
	for _, d := range b.cfg.LogDirs {
		recovery[d], logStart[d], hw[d] = map[klog.TopicPartition]int64{}, map[klog.TopicPartition]int64{}, map[klog.TopicPartition]int64{}
	}
	var errs []error
	b.eachPartition(func(p *replica.Partition) {
		errs = append(errs, p.WriteProducerSnapshot())
		tp := klog.TopicPartition{Topic: p.Topic, Partition: p.Index}
		recovery[p.LogDir][tp] = p.Log().RecoveryPoint()
		logStart[p.LogDir][tp] = p.Log().LogStartOffset()
		hw[p.LogDir][tp] = p.HighWatermark()
	})
	for _, d := range b.cfg.LogDirs {
		errs = append(errs,
			klog.WriteCheckpoint(filepath.Join(d, "recovery-point-offset-checkpoint"), recovery[d]),
			klog.WriteCheckpoint(filepath.Join(d, "log-start-offset-checkpoint"), logStart[d]),
			// Kafka's high watermark checkpoint: what was committed
			// survives a restart (a follower does not serve records the
			// ISR never had).
			klog.WriteCheckpoint(filepath.Join(d, replica.HWCheckpointFile), hw[d]))
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

func (b *Broker) closeLogs() error { return b.replicas.Close() }

// lookup returns the topic from the current image (nil if unknown) and
// this broker's replica of the partition (nil if the index is out of range
// or this broker holds no replica of it).
func (b *Broker) lookup(topicName string, idx int32) (*metadata.Topic, *replica.Partition) {
	t := b.pub.Load().Topic(topicName)
	if t == nil {
		return nil, nil
	}
	if idx < 0 || int(idx) >= len(t.Partitions) {
		return t, nil
	}
	return t, b.replicas.Partition(topicName, idx)
}

// createTopic creates a topic with n partitions and config overrides,
// already validated by the caller: the partitions' directories are created
// and opened first, then the topic is recorded and published, so produce
// and fetch (which read only the image and the replica manager) never wait
// for the disk work.
func (b *Broker) createTopic(name string, n int32, configs map[string]string) (*metadata.Topic, error) {
	if b.external {
		return nil, errNoController
	}
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
	t := &topic{name: name, id: metadata.NewTopicID(), configs: configs, internal: isInternalTopic(name), partitions: n}
	for i := int32(0); i < n; i++ {
		if _, err := b.replicas.Create(name, t.id, i, configs); err != nil {
			for j := int32(0); j < i; j++ {
				_ = b.replicas.Delete(name, j)
			}
			return nil, err
		}
	}
	b.topics[name] = t
	b.metrics.addTopic(name)
	if err := b.persistTopics(); err != nil {
		delete(b.topics, name)
		for j := int32(0); j < n; j++ {
			_ = b.replicas.Delete(name, j)
		}
		return nil, err
	}
	b.publishLocked()
	b.log.Info("created topic", "topic", name, "partitions", n, "topic_id", t.id.String())
	return b.pub.Load().Topic(name), nil
}

// checkCollision is Kafka's '.'/'_' collision rule; callers hold b.mu.
func (b *Broker) checkCollision(name string) error {
	c := collisionName(name)
	for other := range b.topics {
		if collisionName(other) == c {
			return fmt.Errorf("%w: topic %q collides with existing topic %q", errInvalidTopic, name, other)
		}
	}
	return nil
}

// deleteTopic removes a topic from the store and publishes the image
// without it; the replica manager then deletes its partitions' files and
// wakes fetches parked on them.
func (b *Broker) deleteTopic(name string) error {
	if b.external {
		return errNoController
	}
	b.mu.Lock()
	t := b.topics[name]
	if t == nil {
		b.mu.Unlock()
		return nil
	}
	delete(b.topics, name)
	b.metrics.removeTopic(name)
	err := b.persistTopics()
	b.publishLocked()
	b.mu.Unlock()
	if b.groups != nil {
		b.groups.TopicDeleted(name)
	}
	b.log.Info("deleted topic", "topic", name, "topic_id", t.id.String())
	return err
}

var (
	errTopicExists  = errors.New("topic already exists")
	errInvalidTopic = errors.New("invalid topic")
	errNoController = errors.New("topic changes go through the controller, which this broker does not run")
)
