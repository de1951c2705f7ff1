package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kobs-dev/kobs/broker/controller"
	"github.com/kobs-dev/kobs/broker/telemetry"
)

// Listener is one entry of listeners / advertised.listeners:
// NAME://host:port.
type Listener struct {
	Name string
	Host string
	Port int32
}

func (l Listener) String() string {
	return l.Name + "://" + net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
}

// Addr is host:port for net.Listen.
func (l Listener) Addr() string { return net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port))) }

// Config is a broker's configuration, read from Kafka's server.properties
// keys. Topic-level defaults (log.retention.ms and friends) are kept by their
// topic config name in TopicDefaults so the per-topic resolution has one
// source of truth.
type Config struct {
	NodeID                   int32
	Listeners                []Listener
	AdvertisedListeners      []Listener
	LogDirs                  []string
	NumPartitions            int32
	DefaultReplicationFactor int16
	AutoCreateTopics         bool
	DeleteTopicEnable        bool
	SocketRequestMaxBytes    int32
	MessageMaxBytes          int32
	NumIOThreads             int
	QueuedMaxRequests        int
	RetentionCheckInterval   time.Duration
	LogCleanerEnable         bool          // log.cleaner.enable
	LogCleanerBackoff        time.Duration // log.cleaner.backoff.ms: cleaner sleep when nothing was dirty
	FlushSchedulerInterval   time.Duration
	CheckpointInterval       time.Duration
	HWCheckpointInterval     time.Duration // replica.high.watermark.checkpoint.interval.ms
	NumNetworkThreads        int
	ClusterID                string
	HTTPListener             string
	TelemetryEnable          bool
	// kobs.http.pprof.enable: Go's net/http/pprof under /debug/pprof/ on
	// kobs.http.listener (off by default: profiles expose internals).
	PprofEnable bool

	// Group coordinator (broker/group).
	OffsetsTopicNumPartitions  int32         // offsets.topic.num.partitions
	OffsetsTopicSegmentBytes   int32         // offsets.topic.segment.bytes
	OffsetsRetention           time.Duration // offsets.retention.minutes
	OffsetsCommitTimeout       time.Duration // offsets.commit.timeout.ms
	ProducerIDExpiration       time.Duration // producer.id.expiration.ms
	ProducerIDExpirationCheck  time.Duration // producer.id.expiration.check.interval.ms
	GroupInitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms
	GroupMinSessionTimeout     time.Duration // group.min.session.timeout.ms
	GroupMaxSessionTimeout     time.Duration // group.max.session.timeout.ms

	// Replication (broker/replica).
	ReplicaLagTimeMax    time.Duration // replica.lag.time.max.ms
	ReplicaFetchMaxBytes int32         // replica.fetch.max.bytes
	ReplicaFetchWaitMax  time.Duration // replica.fetch.wait.max.ms
	ReplicaFetchMinBytes int32         // replica.fetch.min.bytes
	ReplicaFetchBackoff  time.Duration // replica.fetch.backoff.ms
	NumReplicaFetchers   int           // num.replica.fetchers
	InterBrokerListener  string        // inter.broker.listener.name (default: the first listener)
	// OffsetsTopicReplicationFactor is offsets.topic.replication.factor:
	// __consumer_offsets is created with it once that many brokers are live.
	OffsetsTopicReplicationFactor int16
	// Metadata quorum (broker/controller). ControllerListeners are the
	// entries of listeners named by controller.listener.names: the
	// controller binds them (raft and the controller RPC), so they are not
	// in Listeners.
	ProcessRoles                 controller.Roles
	ControllerQuorumVoters       map[int32]string // controller.quorum.voters
	ControllerQuorumBootstrap    []string         // controller.quorum.bootstrap.servers (broker-only nodes learn the voters there)
	ControllerListenerNames      []string         // controller.listener.names
	ControllerListeners          []Listener
	ControllerNetListener        net.Listener  // optional, pre-bound (embedders, tests; never from properties)
	BrokerSessionTimeout         time.Duration // broker.session.timeout.ms
	BrokerHeartbeatInterval      time.Duration // broker.heartbeat.interval.ms
	UncleanLeaderElection        bool          // unclean.leader.election.enable
	AutoLeaderRebalance          bool          // auto.leader.rebalance.enable
	LeaderImbalanceCheckInterval time.Duration // leader.imbalance.check.interval.seconds
	// Connection limits (broker/wire): Kafka's keys, plus kobs's read and
	// write timeouts that Kafka's selector does not need (it never blocks
	// on one client) but a goroutine per connection does.
	MaxConnections        int           // max.connections (0: none)
	MaxConnectionsPerIP   int           // max.connections.per.ip (0: none)
	ConnectionsMaxIdle    time.Duration // connections.max.idle.ms
	QueuedMaxRequestBytes int64         // queued.max.request.bytes (-1: none)
	RequestReadTimeout    time.Duration // kobs.request.read.timeout.ms
	ResponseWriteTimeout  time.Duration // kobs.response.write.timeout.ms

	// Jolokia endpoint (exporters/jolokia): the agent line it answers as
	// and the agent-wide limits (Jolokia's maxDepth, maxCollectionSize,
	// maxObjects; kobs's cap on one HTTP answer).
	JolokiaProtocol          int // kobs.jolokia.protocol: 2 or 1
	JolokiaMaxDepth          int // kobs.jolokia.max.depth
	JolokiaMaxCollectionSize int // kobs.jolokia.max.collection.size
	JolokiaMaxObjects        int // kobs.jolokia.max.objects
	JolokiaMaxResponseBytes  int // kobs.jolokia.max.response.bytes

	// Request limits: what one client may make the broker hold or create.
	FetchMaxBytes int32 // fetch.max.bytes: cap on every Fetch response (first batch excepted, KIP-74)
	// kobs.max.partitions.per.broker: partition replicas a broker may hold
	// (-1: derived from RLIMIT_NOFILE at start, see limits.go).
	MaxPartitionsPerBroker int
	// kobs.max.auto.created.topics.per.request: topics one Metadata
	// request may auto-create; the rest get THROTTLING_QUOTA_EXCEEDED.
	MaxAutoCreatedTopicsPerRequest int

	// TopicDefaults holds server.properties values for topic configs, keyed
	// by the topic config name (log.retention.ms -> retention.ms).
	TopicDefaults map[string]string

	// Props are the properties as given (file plus overrides), kept for
	// DescribeConfigs on the broker resource.
	Props *Properties

	// Warnings collects non-fatal findings (unknown keys, ignored
	// settings) for the caller to log.
	Warnings []string
}

// brokerKeys lists the server.properties keys kobs reads, with Kafka's
// defaults. A key missing here (and not a topic-config synonym) is warned
// about as unknown.
var brokerKeys = map[string]string{
	"node.id":                                       "",
	"offsets.topic.num.partitions":                  "50",
	"offsets.topic.segment.bytes":                   "104857600",
	"offsets.retention.minutes":                     "10080",
	"offsets.commit.timeout.ms":                     "5000",
	"group.initial.rebalance.delay.ms":              "3000",
	"group.min.session.timeout.ms":                  "6000",
	"group.max.session.timeout.ms":                  "1800000",
	"broker.id":                                     "",
	"listeners":                                     "PLAINTEXT://127.0.0.1:9092",
	"advertised.listeners":                          "",
	"log.dirs":                                      "",
	"log.dir":                                       "/tmp/kafka-logs",
	"num.partitions":                                "1",
	"default.replication.factor":                    "1",
	"auto.create.topics.enable":                     "true",
	"delete.topic.enable":                           "true",
	"socket.request.max.bytes":                      "104857600",
	"num.io.threads":                                "8",
	"queued.max.requests":                           "500",
	"log.retention.check.interval.ms":               "300000",
	"log.cleaner.enable":                            "true",
	"log.cleaner.backoff.ms":                        "15000",
	"log.flush.scheduler.interval.ms":               "1000",
	"log.flush.offset.checkpoint.interval.ms":       "60000",
	"replica.high.watermark.checkpoint.interval.ms": "5000",
	"log.retention.minutes":                         "",
	"log.retention.hours":                           "168",
	"log.roll.hours":                                "168",
	"cluster.id":                                    "",
	"kobs.http.listener":                            "127.0.0.1:8778",
	"kobs.telemetry.enable":                         "true",
	"kobs.http.pprof.enable":                        "false",
	"producer.id.expiration.ms":                     "86400000",
	"producer.id.expiration.check.interval.ms":      "600000",
	"num.network.threads":                           "3",
	// Replication.
	"replica.lag.time.max.ms":          "30000",
	"replica.fetch.max.bytes":          "1048576",
	"replica.fetch.wait.max.ms":        "500",
	"replica.fetch.min.bytes":          "1",
	"replica.fetch.backoff.ms":         "1000",
	"num.replica.fetchers":             "1",
	"inter.broker.listener.name":       "",
	"offsets.topic.replication.factor": "3",
	// Metadata quorum (broker/controller). Empty process.roles and
	// controller.quorum.voters mean a single node: both roles, one voter on
	// an ephemeral loopback port.
	"process.roles":                           "",
	"controller.quorum.voters":                "",
	"controller.quorum.bootstrap.servers":     "",
	"controller.listener.names":               "CONTROLLER",
	"broker.session.timeout.ms":               "9000",
	"broker.heartbeat.interval.ms":            "2000",
	"unclean.leader.election.enable":          "false",
	"auto.leader.rebalance.enable":            "true",
	"leader.imbalance.check.interval.seconds": "300",

	// Connection limits.
	"max.connections":                "2147483647",
	"max.connections.per.ip":         "2147483647",
	"connections.max.idle.ms":        "600000",
	"queued.max.request.bytes":       "-1",
	"kobs.request.read.timeout.ms":   "30000",
	"kobs.response.write.timeout.ms": "30000",

	// Jolokia endpoint.
	"kobs.jolokia.protocol":            "2",
	"kobs.jolokia.max.depth":           "15",
	"kobs.jolokia.max.collection.size": "0",
	"kobs.jolokia.max.objects":         "0",
	"kobs.jolokia.max.response.bytes":  "16777216",

	// Request limits.
	"fetch.max.bytes":                          "57671680",
	"kobs.max.partitions.per.broker":           "-1",
	"kobs.max.auto.created.topics.per.request": "100",
}

// acceptedKeys are real Kafka keys that kobs accepts without acting on them
// yet (or that have no meaning for it); they are not warned about.
var acceptedKeys = map[string]bool{
	"socket.send.buffer.bytes":                 true,
	"socket.receive.buffer.bytes":              true,
	"num.recovery.threads.per.data.dir":        true,
	"transaction.state.log.replication.factor": true,
	"transaction.state.log.min.isr":            true,
	"listener.security.protocol.map":           true,
	"log.cleaner.threads":                      true,
}

// LoadConfig reads server.properties at path, applies overrides
// ("key=value", as kafka-server-start.sh --override) and validates.
func LoadConfig(path string, overrides []string) (*Config, error) {
	props := NewProperties()
	if path != "" {
		p, err := LoadProperties(path)
		if err != nil {
			return nil, err
		}
		props = p
	}
	for _, o := range overrides {
		k, v, ok := strings.Cut(o, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("override %q: want key=value", o)
		}
		props.Set(strings.TrimSpace(k), v)
	}
	return NewConfig(props)
}

// NewConfig builds and validates a Config from properties. Every error names
// the offending key.
func NewConfig(props *Properties) (*Config, error) {
	c := &Config{TopicDefaults: map[string]string{}, Props: props}
	get := func(key string) string {
		if v, ok := props.Get(key); ok {
			return strings.TrimSpace(v)
		}
		return brokerKeys[key]
	}
	var errs []error
	fail := func(key string, err error) { errs = append(errs, fmt.Errorf("%s: %w", key, err)) }
	parseInt := func(key string, lo, hi int64) int64 {
		s := get(key)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fail(key, fmt.Errorf("%q is not an integer", s))
			return 0
		}
		if v < lo || v > hi {
			fail(key, fmt.Errorf("value %d out of range [%d, %d]", v, lo, hi))
		}
		return v
	}
	parseBool := func(key string) bool {
		s := get(key)
		if err := isBool(s); err != nil {
			fail(key, err)
		}
		return s == "true"
	}
	has := func(key string) bool { _, ok := props.Get(key); return ok }

	// node.id (KRaft) and broker.id (ZooKeeper era) name the same thing.
	switch {
	case has("node.id") && has("broker.id") && get("node.id") != get("broker.id"):
		fail("node.id", fmt.Errorf("%s differs from broker.id %s", get("node.id"), get("broker.id")))
	case has("node.id"):
		c.NodeID = int32(parseInt("node.id", 0, 1<<31-1))
	case has("broker.id"):
		c.NodeID = int32(parseInt("broker.id", 0, 1<<31-1))
	default:
		fail("node.id", errors.New("required (or broker.id)"))
	}

	var err error
	if c.Listeners, err = parseListeners(get("listeners")); err != nil {
		fail("listeners", err)
	}
	if adv := get("advertised.listeners"); adv != "" {
		if c.AdvertisedListeners, err = parseListeners(adv); err != nil {
			fail("advertised.listeners", err)
		}
	} else {
		c.AdvertisedListeners = advertiseDefaults(c.Listeners)
	}
	if len(c.Listeners) > 0 && len(c.AdvertisedListeners) > 0 && c.AdvertisedListeners[0].Name != c.Listeners[0].Name {
		fail("advertised.listeners", fmt.Errorf("first listener %s has no matching entry in listeners", c.AdvertisedListeners[0].Name))
	}

	dirs := get("log.dirs")
	if dirs == "" {
		dirs = get("log.dir")
	}
	for _, d := range strings.Split(dirs, ",") {
		if d = strings.TrimSpace(d); d != "" {
			c.LogDirs = append(c.LogDirs, d)
		}
	}
	if len(c.LogDirs) == 0 {
		fail("log.dirs", errors.New("no directory given"))
	}

	c.NumPartitions = int32(parseInt("num.partitions", 1, 1<<31-1))
	c.DefaultReplicationFactor = int16(parseInt("default.replication.factor", 1, 1<<15-1))
	c.AutoCreateTopics = parseBool("auto.create.topics.enable")
	c.DeleteTopicEnable = parseBool("delete.topic.enable")
	c.SocketRequestMaxBytes = int32(parseInt("socket.request.max.bytes", 1, 1<<31-1))
	c.NumIOThreads = int(parseInt("num.io.threads", 1, 1024))
	c.QueuedMaxRequests = int(parseInt("queued.max.requests", 1, 1<<20))
	c.RetentionCheckInterval = time.Duration(parseInt("log.retention.check.interval.ms", 1, maxLong/int64(time.Millisecond))) * time.Millisecond
	c.LogCleanerEnable = parseBool("log.cleaner.enable")
	c.LogCleanerBackoff = time.Duration(parseInt("log.cleaner.backoff.ms", 0, maxLong/int64(time.Millisecond))) * time.Millisecond
	c.FlushSchedulerInterval = time.Duration(parseInt("log.flush.scheduler.interval.ms", 1, maxLong/int64(time.Millisecond))) * time.Millisecond
	c.CheckpointInterval = time.Duration(parseInt("log.flush.offset.checkpoint.interval.ms", 1, maxLong/int64(time.Millisecond))) * time.Millisecond
	c.HWCheckpointInterval = time.Duration(parseInt("replica.high.watermark.checkpoint.interval.ms", 1, maxLong/int64(time.Millisecond))) * time.Millisecond
	c.ClusterID = get("cluster.id")
	c.HTTPListener = get("kobs.http.listener")
	c.TelemetryEnable = parseBool("kobs.telemetry.enable")
	c.PprofEnable = parseBool("kobs.http.pprof.enable")
	c.NumNetworkThreads = int(parseInt("num.network.threads", 1, 1024))

	c.OffsetsTopicNumPartitions = int32(parseInt("offsets.topic.num.partitions", 1, 1<<31-1))
	// The log's smallest segment (one batch header), where Kafka says 1.
	c.OffsetsTopicSegmentBytes = int32(parseInt("offsets.topic.segment.bytes", 14, 1<<31-1))
	c.OffsetsRetention = time.Duration(parseInt("offsets.retention.minutes", 1, 1<<31-1)) * time.Minute
	c.OffsetsCommitTimeout = time.Duration(parseInt("offsets.commit.timeout.ms", 1, 1<<31-1)) * time.Millisecond
	c.ProducerIDExpiration = time.Duration(parseInt("producer.id.expiration.ms", 1, 1<<31-1)) * time.Millisecond
	c.ProducerIDExpirationCheck = time.Duration(parseInt("producer.id.expiration.check.interval.ms", 1, 1<<31-1)) * time.Millisecond
	c.GroupInitialRebalanceDelay = time.Duration(parseInt("group.initial.rebalance.delay.ms", 0, 1<<31-1)) * time.Millisecond
	c.GroupMinSessionTimeout = time.Duration(parseInt("group.min.session.timeout.ms", 0, 1<<31-1)) * time.Millisecond
	c.GroupMaxSessionTimeout = time.Duration(parseInt("group.max.session.timeout.ms", 0, 1<<31-1)) * time.Millisecond
	c.ReplicaLagTimeMax = time.Duration(parseInt("replica.lag.time.max.ms", 1, 1<<31-1)) * time.Millisecond
	c.ReplicaFetchMaxBytes = int32(parseInt("replica.fetch.max.bytes", 0, 1<<31-1))
	c.ReplicaFetchWaitMax = time.Duration(parseInt("replica.fetch.wait.max.ms", 0, 1<<31-1)) * time.Millisecond
	c.ReplicaFetchMinBytes = int32(parseInt("replica.fetch.min.bytes", 0, 1<<31-1))
	c.ReplicaFetchBackoff = time.Duration(parseInt("replica.fetch.backoff.ms", 0, 1<<31-1)) * time.Millisecond
	c.NumReplicaFetchers = int(parseInt("num.replica.fetchers", 1, 1024))
	c.OffsetsTopicReplicationFactor = int16(parseInt("offsets.topic.replication.factor", 1, 1<<15-1))
	if c.ReplicaFetchWaitMax >= c.ReplicaLagTimeMax {
		// Kafka's rule: a follower waiting that long would fall out of the ISR.
		fail("replica.fetch.wait.max.ms", fmt.Errorf("%v must be below replica.lag.time.max.ms %v", c.ReplicaFetchWaitMax, c.ReplicaLagTimeMax))
	}
	// Connection limits. Kafka's "no limit" is Int.MaxValue for the counts
	// and -1 for the pool and the idle time.
	noLimit := func(v int64) int {
		if v >= 1<<31-1 {
			return 0
		}
		return int(v)
	}
	c.MaxConnections = noLimit(parseInt("max.connections", 1, 1<<31-1))
	c.MaxConnectionsPerIP = noLimit(parseInt("max.connections.per.ip", 1, 1<<31-1))
	c.ConnectionsMaxIdle = max(0, time.Duration(parseInt("connections.max.idle.ms", -1, maxLong/int64(time.Millisecond)))*time.Millisecond)
	c.QueuedMaxRequestBytes = parseInt("queued.max.request.bytes", -1, maxLong)
	if c.QueuedMaxRequestBytes == 0 {
		fail("queued.max.request.bytes", errors.New("0 would block every request; use -1 for no limit"))
	}
	c.RequestReadTimeout = time.Duration(parseInt("kobs.request.read.timeout.ms", 0, 1<<31-1)) * time.Millisecond
	c.ResponseWriteTimeout = time.Duration(parseInt("kobs.response.write.timeout.ms", 0, 1<<31-1)) * time.Millisecond
	c.JolokiaProtocol = int(parseInt("kobs.jolokia.protocol", 1, 2))
	c.JolokiaMaxDepth = int(parseInt("kobs.jolokia.max.depth", 0, 1<<31-1))
	c.JolokiaMaxCollectionSize = int(parseInt("kobs.jolokia.max.collection.size", 0, 1<<31-1))
	c.JolokiaMaxObjects = int(parseInt("kobs.jolokia.max.objects", 0, 1<<31-1))
	c.JolokiaMaxResponseBytes = int(parseInt("kobs.jolokia.max.response.bytes", 4096, 1<<31-1))
	// Request limits (Kafka: fetch.max.bytes at least 1024).
	c.FetchMaxBytes = int32(parseInt("fetch.max.bytes", 1024, 1<<31-1))
	c.MaxPartitionsPerBroker = int(parseInt("kobs.max.partitions.per.broker", -1, 1<<31-1))
	c.MaxAutoCreatedTopicsPerRequest = int(parseInt("kobs.max.auto.created.topics.per.request", 0, 1<<31-1))

	if c.GroupMinSessionTimeout > c.GroupMaxSessionTimeout {
		fail("group.min.session.timeout.ms", fmt.Errorf("%v is above group.max.session.timeout.ms %v", c.GroupMinSessionTimeout, c.GroupMaxSessionTimeout))
	}

	c.parseQuorumConfig(get, has, parseInt, parseBool, fail)
	// After the controller listeners left Listeners.
	c.InterBrokerListener = get("inter.broker.listener.name")
	if c.InterBrokerListener == "" && len(c.Listeners) > 0 {
		c.InterBrokerListener = c.Listeners[0].Name
	}

	// Topic-config synonyms. Kafka gives the finest unit precedence:
	// log.retention.ms over .minutes over .hours, log.roll.ms over .hours.
	synonyms := map[string]*topicConfigDef{}
	for i := range topicConfigDefs {
		if d := &topicConfigDefs[i]; d.brokerKey != "" {
			synonyms[d.brokerKey] = d
		}
	}
	for _, key := range props.Keys() {
		def, ok := synonyms[key]
		if !ok {
			continue
		}
		v := get(key)
		if err := def.validate(v); err != nil {
			fail(key, err)
			continue
		}
		c.TopicDefaults[def.name] = v
	}
	if !has("log.retention.ms") {
		switch {
		case has("log.retention.minutes"):
			c.TopicDefaults["retention.ms"] = strconv.FormatInt(parseInt("log.retention.minutes", -1, maxLong/60000)*60000, 10)
		case has("log.retention.hours"):
			c.TopicDefaults["retention.ms"] = strconv.FormatInt(parseInt("log.retention.hours", -1, maxLong/3600000)*3600000, 10)
		}
		if v := c.TopicDefaults["retention.ms"]; strings.HasPrefix(v, "-") {
			c.TopicDefaults["retention.ms"] = "-1" // any negative unit value means unlimited
		}
	}
	if !has("log.roll.ms") && has("log.roll.hours") {
		c.TopicDefaults["segment.ms"] = strconv.FormatInt(parseInt("log.roll.hours", 1, maxLong/3600000)*3600000, 10)
	}
	c.MessageMaxBytes = 1048588
	if v, ok := c.TopicDefaults["max.message.bytes"]; ok {
		n, _ := strconv.ParseInt(v, 10, 32)
		c.MessageMaxBytes = int32(n)
	}

	for _, key := range props.Keys() {
		if _, ok := brokerKeys[key]; ok {
			continue
		}
		if _, ok := synonyms[key]; ok || acceptedKeys[key] || key == "log.retention.ms" || key == "log.roll.ms" {
			continue
		}
		if key == "zookeeper.connect" {
			c.Warnings = append(c.Warnings, "zookeeper.connect is ignored: kobs runs in KRaft mode only")
			continue
		}
		c.Warnings = append(c.Warnings, fmt.Sprintf("unknown config key %q ignored", key))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// parseQuorumConfig reads the metadata quorum keys (broker/controller)
// and takes the controller listeners out of Listeners. Misconfigurations
// are refused naming the key, as Kafka's KafkaConfig validation does.
func (c *Config) parseQuorumConfig(get func(string) string, has func(string) bool, parseInt func(string, int64, int64) int64,
	parseBool func(string) bool, fail func(string, error)) {
	ms := func(key string) time.Duration {
		return time.Duration(parseInt(key, 1, 1<<31-1)) * time.Millisecond
	}
	c.BrokerSessionTimeout = ms("broker.session.timeout.ms")
	c.BrokerHeartbeatInterval = ms("broker.heartbeat.interval.ms")
	if c.BrokerHeartbeatInterval >= c.BrokerSessionTimeout {
		fail("broker.heartbeat.interval.ms", fmt.Errorf("%v must be below broker.session.timeout.ms %v", c.BrokerHeartbeatInterval, c.BrokerSessionTimeout))
	}
	c.UncleanLeaderElection = parseBool("unclean.leader.election.enable")
	c.AutoLeaderRebalance = parseBool("auto.leader.rebalance.enable")
	c.LeaderImbalanceCheckInterval = time.Duration(parseInt("leader.imbalance.check.interval.seconds", 1, 1<<31-1)) * time.Second
	for _, n := range strings.Split(get("controller.listener.names"), ",") {
		if n = strings.ToUpper(strings.TrimSpace(n)); n != "" {
			c.ControllerListenerNames = append(c.ControllerListenerNames, n)
		}
	}
	var bootstrap []string
	for _, s := range strings.Split(get("controller.quorum.bootstrap.servers"), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			fail("controller.quorum.bootstrap.servers", fmt.Errorf("%q: want host:port", s))
			continue
		}
		bootstrap = append(bootstrap, s)
	}
	if !has("process.roles") && !has("controller.quorum.voters") && len(bootstrap) == 0 {
		// One node: a one-voter quorum on its CONTROLLER listener if it
		// has one, else on an ephemeral loopback port (the controller
		// accepts port 0 for a single voter only).
		c.ProcessRoles = controller.Roles{Broker: true, Controller: true}
		addr := "127.0.0.1:0"
		for _, l := range c.Listeners {
			if slices.Contains(c.ControllerListenerNames, l.Name) {
				addr = l.Addr()
				break
			}
		}
		c.ControllerQuorumVoters = map[int32]string{c.NodeID: addr}
	} else {
		var err error
		if c.ProcessRoles, err = controller.ParseRoles(get("process.roles")); err != nil {
			fail("process.roles", err)
		}
		c.ControllerQuorumVoters, c.ControllerQuorumBootstrap = c.quorumVoters(get("controller.quorum.voters"), bootstrap, fail)
	}
	// The controller listeners leave Listeners: the controller binds them.
	var kept []Listener
	for _, l := range c.Listeners {
		if slices.Contains(c.ControllerListenerNames, l.Name) {
			c.ControllerListeners = append(c.ControllerListeners, l)
		} else {
			kept = append(kept, l)
		}
	}
	if len(c.ControllerListeners) > 0 {
		c.Listeners = kept
		var adv []Listener
		for _, l := range c.AdvertisedListeners {
			if !slices.Contains(c.ControllerListenerNames, l.Name) {
				adv = append(adv, l)
			}
		}
		c.AdvertisedListeners = adv
	}
	addr, voter := c.ControllerQuorumVoters[c.NodeID]
	switch {
	case c.ProcessRoles.Controller && c.ControllerQuorumVoters != nil && !voter:
		fail("controller.quorum.voters", fmt.Errorf("node.id %d has process.roles=%s but is not one of the voters", c.NodeID, c.ProcessRoles))
	case !c.ProcessRoles.Controller && voter:
		fail("controller.quorum.voters", fmt.Errorf("node.id %d is a voter but process.roles=%s lacks controller", c.NodeID, c.ProcessRoles))
	case c.ProcessRoles.Controller && voter && len(c.ControllerListeners) > 0:
		_, port, _ := net.SplitHostPort(addr)
		if strconv.Itoa(int(c.ControllerListeners[0].Port)) != port && port != "0" {
			fail("controller.quorum.voters", fmt.Errorf("node.id %d's voter address %s and listener %s differ in port", c.NodeID, addr, c.ControllerListeners[0]))
		}
	case !c.ProcessRoles.Controller && len(c.ControllerListeners) > 0:
		fail("controller.listener.names", fmt.Errorf("listener %s is for controllers, but process.roles=%s", c.ControllerListeners[0].Name, c.ProcessRoles))
	}
	if c.ProcessRoles.Broker && len(c.Listeners) == 0 {
		fail("listeners", errors.New("no listener left for clients besides the controller listener"))
	}
	if !c.ProcessRoles.Broker && c.ProcessRoles.Controller {
		// As Kafka's KafkaConfig: a dedicated controller serves no client.
		switch {
		case len(c.ControllerListeners) == 0:
			fail("controller.listener.names", fmt.Errorf("must contain at least one value appearing in the 'listeners' configuration when running the KRaft controller role (listeners %v)", c.Listeners))
		case len(c.Listeners) > 0:
			fail("listeners", fmt.Errorf("must only contain KRaft controller listeners from controller.listener.names %v when process.roles=controller (found %s)", c.ControllerListenerNames, c.Listeners[0]))
		}
	}
	if (len(c.ControllerQuorumVoters) > 1 || !c.ProcessRoles.Controller) && c.ClusterID == "" {
		fail("cluster.id", errors.New("required when controller.quorum.voters names more than one voter or this node is broker-only: every node must name the same cluster"))
	}
}

// quorumVoters resolves controller.quorum.voters and
// controller.quorum.bootstrap.servers. kobs's quorum is static (raft's
// voters are fixed when the log is formed), so the bootstrap servers
// stand in for the voters in two cases only, Kafka 4's stock files: a
// broker-only node learns the voters from them when it starts, and a
// controller whose bootstrap servers name only its own controller
// listener is the single voter (Kafka's kafka-storage format
// --standalone). With controller.quorum.voters set they are not needed.
func (c *Config) quorumVoters(votersProp string, bootstrap []string, fail func(string, error)) (map[int32]string, []string) {
	if votersProp != "" || len(bootstrap) == 0 {
		voters, err := controller.ParseVoters(votersProp)
		if err != nil && votersProp == "" {
			err = errors.New("no voter given: as Kafka requires with process.roles, either controller.quorum.bootstrap.servers must contain the set of bootstrap controllers or controller.quorum.voters must contain a parseable set of controllers")
		}
		if err != nil {
			fail("controller.quorum.voters", err)
		}
		if len(bootstrap) > 0 {
			c.Warnings = append(c.Warnings, "controller.quorum.bootstrap.servers is not used: controller.quorum.voters names the voters")
		}
		return voters, nil
	}
	if !c.ProcessRoles.Controller {
		return nil, bootstrap
	}
	for _, l := range c.Listeners {
		if !slices.Contains(c.ControllerListenerNames, l.Name) || len(bootstrap) != 1 {
			continue
		}
		host, port, _ := net.SplitHostPort(bootstrap[0])
		if port == strconv.Itoa(int(l.Port)) && (l.Host == "" || l.Host == "0.0.0.0" || l.Host == "::" || l.Host == host) {
			return map[int32]string{c.NodeID: bootstrap[0]}, nil
		}
	}
	fail("controller.quorum.bootstrap.servers", fmt.Errorf("%v: a controller needs controller.quorum.voters (id@host:port,... naming every voter): kobs's metadata quorum is static (no KIP-853 dynamic voters), so bootstrap servers alone only make a single controller whose one bootstrap server is its own controller listener", bootstrap))
	return nil, nil
}

// ControllerConfig is the broker/controller configuration this broker
// config describes. The metadata log lives in <first log dir>/kobs-metadata.
func (c *Config) ControllerConfig(reg *telemetry.Registry, logger *slog.Logger) controller.Config {
	return controller.Config{
		NodeID: c.NodeID, Roles: c.ProcessRoles, Voters: c.ControllerQuorumVoters, BootstrapServers: c.ControllerQuorumBootstrap,
		DataDir: filepath.Join(c.LogDirs[0], "kobs-metadata"), ClusterID: c.ClusterID, ListenerName: firstOr(c.ControllerListenerNames, "CONTROLLER"),
		SessionTimeout: c.BrokerSessionTimeout, HeartbeatInterval: c.BrokerHeartbeatInterval,
		UncleanLeaderElection: c.UncleanLeaderElection, AutoLeaderRebalance: c.AutoLeaderRebalance,
		LeaderImbalanceCheckInterval: c.LeaderImbalanceCheckInterval,
		DefaultReplicationFactor:     c.DefaultReplicationFactor, DefaultPartitions: c.NumPartitions,
		Listener: c.ControllerNetListener, Logger: logger, Registry: reg,
	}
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// parseListeners parses "PLAINTEXT://host:port,NAME2://host:port".
func parseListeners(s string) ([]Listener, error) {
	var out []Listener
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, hostport, ok := strings.Cut(part, "://")
		if !ok {
			return nil, fmt.Errorf("%q: want NAME://host:port", part)
		}
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%q: bad port", part)
		}
		name = strings.ToUpper(name)
		switch name {
		case "SSL", "SASL_PLAINTEXT", "SASL_SSL":
			return nil, fmt.Errorf("%q: security protocol %s is not supported by kobs yet; use PLAINTEXT", part, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("listener name %s used twice", name)
		}
		seen[name] = true
		out = append(out, Listener{Name: name, Host: host, Port: int32(p)})
	}
	if len(out) == 0 {
		return nil, errors.New("no listener given")
	}
	return out, nil
}

// advertiseDefaults advertises what we listen on, replacing a wildcard host
// with this machine's name as Kafka does.
func advertiseDefaults(ls []Listener) []Listener {
	out := append([]Listener(nil), ls...)
	for i := range out {
		if out[i].Host == "" || out[i].Host == "0.0.0.0" || out[i].Host == "::" {
			if h, err := os.Hostname(); err == nil {
				out[i].Host = h
			}
		}
	}
	return out
}
