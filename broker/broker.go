package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kobs-dev/kobs/broker/controller"
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
// State lives in two places, neither of them a lock the produce or fetch
// path takes: the current metadata image (pub: brokers, topics, partitions,
// leaders, ISR, configs; one atomic load), which the controller quorum
// (broker/controller) publishes as it applies the metadata log, and the
// replica manager (replicas: the partitions this broker holds, each with
// its own append lock), which follows the images. Topic changes (create,
// delete, partitions, configs) go to the controller and come back as
// images.
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
	// hwCheckpointMu orders the high watermark checkpoint writes of its
	// own schedule and of the full checkpoint (an older snapshot must not
	// be renamed over a newer one). Only checkpoint writers take it.
	hwCheckpointMu sync.Mutex
	startCtx       context.Context // WithStartContext
	cleanerStats   cleanerStats
	// ctl is this node's part of the metadata quorum; nil with external
	// metadata (WithExternalMetadata: tests publish the images).
	ctl            *controller.Controller
	external       bool
	alterPartition replica.AlterPartitionFunc
	// legacy are the topics of a pre-quorum kobs-topics.json, imported
	// into the metadata log once the quorum is up (Start).
	legacy []controller.TopicSpec

	producerIDs *producerstate.IDs

	// maxPartitions is kobs.max.partitions.per.broker, derived from the
	// file descriptor limit when not set (limits.go).
	maxPartitions int

	groups *group.Coordinator // set by Start (startGroups)
	// offsetsRFWarned is when (Unix ns) the last "too few brokers for
	// offsets.topic.replication.factor" warning was logged.
	offsetsRFWarned atomic.Int64

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

// WithExternalMetadata makes the broker run no controller: it serves the
// images someone else publishes on Metadata() (a test driving several
// brokers) and sends ISR changes to alter. Requests that change topics are
// refused (NOT_CONTROLLER).
func WithExternalMetadata(alter replica.AlterPartitionFunc) Option {
	return func(b *Broker) { b.external, b.alterPartition = true, alter }
}

// WithStartContext bounds the waits of New that depend on other nodes
// (asking controller.quorum.bootstrap.servers for the voters): cancelling
// ctx, e.g. on SIGTERM, makes New return at once with an error.
func WithStartContext(ctx context.Context) Option {
	return func(b *Broker) { b.startCtx = ctx }
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
		closed: make(chan struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	nofile := raiseFileLimit(logger)
	b.maxPartitions = cfg.MaxPartitionsPerBroker
	if b.maxPartitions < 0 {
		b.maxPartitions = derivedMaxPartitions(nofile)
	}
	logger.Info("partition limit", "kobs.max.partitions.per.broker", b.maxPartitions, "derived", cfg.MaxPartitionsPerBroker < 0)
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
	if err := checkLogsFitFileLimit(cfg.LogDirs, b.maxPartitions, cfg.MaxPartitionsPerBroker < 0, nofile, logger); err != nil {
		return nil, err
	}
	ids, err := producerstate.OpenIDs(filepath.Join(cfg.LogDirs[0], "kobs-producer-ids"))
	if err != nil {
		return nil, err
	}
	b.producerIDs = ids
	b.reg = telemetry.New()
	if cfg.TelemetryEnable && cfg.ProcessRoles.Broker {
		b.metrics = newMetrics(b.reg, cfg.NumIOThreads)
	}
	b.advertised = slices.Clone(cfg.AdvertisedListeners)
	b.pub = metadata.NewPublisher(metadata.Empty(clusterID))
	if !b.external {
		// The controller tags its lines component=controller itself.
		ccfg := cfg.ControllerConfig(b.reg, logger)
		ccfg.ClusterID = clusterID
		ccfg.MaxPartitionsPerBroker = b.maxPartitions
		ccfg.Start = b.startCtx
		if len(ccfg.Voters) == 1 {
			// One voter elects itself: no need to wait out raft's
			// default one-second timeouts at every start.
			ccfg.RaftHeartbeatTimeout, ccfg.RaftElectionTimeout = 100*time.Millisecond, 100*time.Millisecond
		}
		ctl, err := controller.New(ccfg, b.pub)
		if err != nil {
			return nil, err
		}
		b.ctl = ctl
		isr := &isrBatcher{send: ctl.AlterPartitions, ctx: b.ctx, timeout: 30 * time.Second}
		b.alterPartition = func(ctx context.Context, r replica.AlterPartitionRequest) (metadata.Partition, error) {
			return isr.alter(ctx, controller.AlterPartitionRequest{Topic: r.Topic, Partition: r.Partition,
				LeaderID: r.LeaderID, BrokerEpoch: ctl.BrokerEpoch(), LeaderEpoch: r.LeaderEpoch,
				PartitionEpoch: r.PartitionEpoch, NewISR: r.NewISR})
		}
		if !cfg.ProcessRoles.Broker {
			// process.roles=controller: the metadata quorum and
			// telemetry only (Start), no Kafka listener, no replicas.
			return b, nil
		}
		if b.legacy, err = controller.ReadLegacyTopics(cfg.LogDirs[0], cfg.NodeID); err != nil {
			return nil, err
		}
	}
	b.replicas = replica.NewManager(replica.ManagerConfig{
		NodeID:    cfg.NodeID,
		LogDirs:   cfg.LogDirs,
		LogConfig: cfg.logConfig,
		MinISR:    cfg.minISR,
		OnFlush:   b.metrics.flushed,
		OnAdd:     b.metrics.addPartition,
		OnRemove:  b.metrics.removePartition,
		Logger:    logger,

		AlterPartition:    b.alterPartition,
		IsrEligible:       func(id int32) bool { return b.pub.Load().Live(id) },
		OnISRChange:       b.metrics.isrChanged,
		OnISRChangeFailed: b.metrics.isrChangeFailed,
		LagTimeMax:        cfg.ReplicaLagTimeMax,
		FetchMaxBytes:     cfg.ReplicaFetchMaxBytes,
		FetchWaitMax:      cfg.ReplicaFetchWaitMax,
		FetchMinBytes:     cfg.ReplicaFetchMinBytes,
		FetchBackoff:      cfg.ReplicaFetchBackoff,
		NumFetchers:       cfg.NumReplicaFetchers,
		Listener:          cfg.InterBrokerListener,

		OnPartitionHold: b.metrics.partitionHeld,
		OnTruncate:      b.metrics.truncated,
	})
	b.pub.Subscribe(b.replicas.OnImage)
	b.pub.Subscribe(b.onImage)
	if err := b.loadTopics(); err != nil {
		b.closeLogs()
		return nil, err
	}
	return b, nil
}

// loadTopics opens every partition directory found in the log dirs. What
// they are (leader, follower, or stray) is for the first images to say;
// nothing is deleted unless an image removes a replica it had named.
func (b *Broker) loadTopics() error {
	_, err := b.replicas.Load(func(name string) bool { return validateTopicName(name) == nil },
		func(name string) map[string]string {
			for _, s := range b.legacy {
				if s.Name == name {
					return s.Configs
				}
			}
			return nil
		})
	return err
}

func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
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
// A controller-only node (process.roles=controller) starts its part of
// the metadata quorum and the telemetry listener only.
func (b *Broker) Start() error {
	if b.replicas == nil {
		return b.startControllerOnly()
	}
	wcfg := wire.Config{
		Versions:        apiVersions(),
		MaxRequestBytes: b.cfg.SocketRequestMaxBytes,
		Decoders:        bodyDecoders,
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
	if err := b.startController(); err != nil {
		b.srv.Close()
		for _, o := range b.lns {
			o.Close()
		}
		return err
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
	if err := b.startGroups(); err != nil {
		b.Close()
		return err
	}
	b.reg.Start(b.ctx)
	b.replicas.Start()
	b.startBackground()
	return nil
}

// startControllerOnly runs a process.roles=controller node as Kafka runs
// one: a voter of the metadata quorum on its CONTROLLER listener, without
// the data plane. It registers no broker (so Metadata never lists it), and
// its telemetry carries the KafkaController and raft-metrics beans, and
// the disk beans (LogDirectoryOffline: the metadata log's dir full).
func (b *Broker) startControllerOnly() error {
	if err := b.ctl.Start(metadata.Broker{ID: b.cfg.NodeID}); err != nil {
		return err
	}
	b.registerOSMetrics()
	if err := b.startHTTP(); err != nil {
		_ = b.ctl.Close()
		return err
	}
	b.reg.Start(b.ctx)
	return nil
}

// readyTimeout bounds how long Start waits for a one-voter quorum to
// register this broker.
const readyTimeout = time.Minute

// startController joins the metadata quorum and registers this broker
// with its bound endpoints. A node that is the only voter waits until the
// controller has unfenced it (it caught up with the metadata log), so a
// single broker serves with its metadata from the first request; with
// several voters the others may still be starting (Kafka's brokers start
// one by one too), so Start returns and clients get empty metadata and
// retry until the quorum has formed. A pre-quorum kobs-topics.json is
// imported once the broker is registered.
func (b *Broker) startController() error {
	if b.ctl == nil {
		return nil
	}
	self := metadata.Broker{ID: b.cfg.NodeID}
	for _, l := range b.advertised {
		self.Endpoints = append(self.Endpoints, metadata.Endpoint{Listener: l.Name, Host: l.Host, Port: l.Port})
	}
	if err := b.ctl.Start(self); err != nil {
		return err
	}
	if len(b.cfg.ControllerQuorumVoters) > 1 || !b.cfg.ProcessRoles.Controller {
		// Other voters (or, broker-only, all of them) may still be
		// starting: wait for them in the background.
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			select {
			case <-b.ctl.Ready():
				b.log.Info("registered with the metadata quorum", "node.id", b.cfg.NodeID)
				if err := b.bootstrapLegacy(); err != nil {
					b.log.Error("importing the single-node topic metadata failed", "err", err)
				}
			case <-b.ctx.Done():
			}
		}()
		return nil
	}
	t := time.NewTimer(readyTimeout)
	defer t.Stop()
	select {
	case <-b.ctl.Ready():
	case err := <-b.ctl.Fatal():
		return err
	case <-t.C:
		return fmt.Errorf("controller.quorum.voters: not registered with the metadata quorum after %v", readyTimeout)
	}
	return b.bootstrapLegacy()
}

// bootstrapLegacy imports a pre-quorum kobs-topics.json into the metadata
// log (once per cluster; later calls change nothing).
func (b *Broker) bootstrapLegacy() error {
	if len(b.legacy) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := b.ctl.Bootstrap(ctx, b.legacy); err != nil {
		return fmt.Errorf("import %s into the metadata log: %w", controller.LegacyTopicsFile, err)
	}
	b.log.Info("imported single-node topic metadata into the metadata quorum", "topics", len(b.legacy), "file", controller.LegacyTopicsFile)
	return nil
}

// Ready is closed once the metadata quorum has registered and unfenced
// this broker (at once without a controller).
func (b *Broker) Ready() <-chan struct{} {
	if b.ctl == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return b.ctl.Ready()
}

// Fatal delivers an error that should stop this node (another live
// process registered its node.id); nil without a controller.
func (b *Broker) Fatal() <-chan error {
	if b.ctl == nil {
		return nil
	}
	return b.ctl.Fatal()
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
	// The high watermark has its own, shorter interval, as in Kafka: a
	// restarted follower serves nothing past what it last checkpointed
	// until its leader tells it more.
	every(b.cfg.HWCheckpointInterval, "high-watermark-checkpoint", func() {
		if err := b.writeHWCheckpoints(); err != nil {
			b.log.Error("high watermark checkpoint write failed", "err", err)
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

// writeCheckpoints writes Kafka's recovery-point, log-start-offset and
// high watermark checkpoint files in each log dir, and the producer
// snapshots.
func (b *Broker) writeCheckpoints() error {
	recovery := map[string]map[klog.TopicPartition]int64{}
	logStart := map[string]map[klog.TopicPartition]int64{}
	for _, d := range b.cfg.LogDirs {
		recovery[d], logStart[d] = map[klog.TopicPartition]int64{}, map[klog.TopicPartition]int64{}
	}
	var errs []error
	b.eachPartition(func(p *replica.Partition) {
		errs = append(errs, p.WriteProducerSnapshot())
		tp := klog.TopicPartition{Topic: p.Topic, Partition: p.Index}
		recovery[p.LogDir][tp] = p.Log().RecoveryPoint()
		logStart[p.LogDir][tp] = p.Log().LogStartOffset()
	})
	for _, d := range b.cfg.LogDirs {
		errs = append(errs,
			klog.WriteCheckpoint(filepath.Join(d, "recovery-point-offset-checkpoint"), recovery[d]),
			klog.WriteCheckpoint(filepath.Join(d, "log-start-offset-checkpoint"), logStart[d]))
	}
	errs = append(errs, b.writeHWCheckpoints())
	return errors.Join(errs...)
}

// writeHWCheckpoints writes Kafka's high watermark checkpoint
// (replication-offset-checkpoint) in each log dir: what was committed
// survives a restart (a follower does not serve records the ISR never had).
func (b *Broker) writeHWCheckpoints() error {
	b.hwCheckpointMu.Lock()
	defer b.hwCheckpointMu.Unlock()
	hw := map[string]map[klog.TopicPartition]int64{}
	for _, d := range b.cfg.LogDirs {
		hw[d] = map[klog.TopicPartition]int64{}
	}
	b.eachPartition(func(p *replica.Partition) {
		hw[p.LogDir][klog.TopicPartition{Topic: p.Topic, Partition: p.Index}] = p.HighWatermark()
	})
	var errs []error
	for _, d := range b.cfg.LogDirs {
		errs = append(errs, klog.WriteCheckpoint(filepath.Join(d, replica.HWCheckpointFile), hw[d]))
	}
	return errors.Join(errs...)
}

// Close stops serving, flushes and closes every log and writes the
// checkpoints, so the next start needs no recovery scan.
func (b *Broker) Close() error {
	var err error
	b.once.Do(func() {
		b.cancel()
		if b.ctl != nil {
			// Controlled shutdown first, as Kafka: the controller moves
			// this broker's leaderships away and takes it out of the ISRs
			// while its logs are still served.
			err = b.ctl.Close()
		}
		if b.srv != nil {
			b.srv.Close()
		}
		if b.http != nil {
			_ = b.http.Close()
		}
		b.reg.Stop()
		b.wg.Wait()
		if b.replicas == nil { // controller-only: no logs
			close(b.closed)
			return
		}
		b.stopGroups()
		err = errors.Join(err, b.writeCheckpoints(), b.closeLogs())
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
