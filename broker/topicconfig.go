package broker

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	klog "github.com/kobs-dev/kobs/broker/log"
)

// configType is a Kafka ConfigDef type as DescribeConfigs v3+ reports it.
type configType int8

// Values of DescribeConfigsResponse ConfigType (KIP-569).
const (
	typeBoolean  configType = 1
	typeString   configType = 2
	typeInt      configType = 3
	typeShort    configType = 4
	typeLong     configType = 5
	typeDouble   configType = 6
	typeList     configType = 7
	typeClass    configType = 8
	typePassword configType = 9
)

// topicConfigDef describes one topic-level config: its Kafka name, the
// server.properties key that supplies the cluster-wide default (its
// "synonym" in DescribeConfigs), Kafka's built-in default and how to check
// a value.
type topicConfigDef struct {
	name       string
	brokerKey  string // "" when there is no broker-level synonym
	typ        configType
	defaultVal string
	validate   func(string) error
	doc        string
}

func intRange(lo, hi int64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		if v < lo || v > hi {
			return fmt.Errorf("value %d out of range [%d, %d]", v, lo, hi)
		}
		return nil
	}
}

func oneOf(vals ...string) func(string) error {
	return func(s string) error {
		for _, v := range vals {
			if s == v {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(vals, ", "))
	}
}

func listOf(vals ...string) func(string) error {
	one := oneOf(vals...)
	return func(s string) error {
		for _, part := range strings.Split(s, ",") {
			if err := one(strings.TrimSpace(part)); err != nil {
				return err
			}
		}
		return nil
	}
}

func isDouble(lo, hi float64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < lo || v > hi {
			return fmt.Errorf("%q is not a number in [%g, %g]", s, lo, hi)
		}
		return nil
	}
}

func isBool(s string) error {
	if s != "true" && s != "false" {
		return fmt.Errorf("%q is not true or false", s)
	}
	return nil
}

const maxLong = math.MaxInt64

// topicConfigDefs are the topic configs kobs knows, with Kafka's names and
// defaults (Kafka's LogConfig / TopicConfig). Those kobs stores but does not
// act on yet are still validated and reported, so tools that set them work.
var topicConfigDefs = []topicConfigDef{
	{"cleanup.policy", "log.cleanup.policy", typeList, "delete", listOf("delete", "compact"), "delete or compact old segments"},
	{"compression.type", "compression.type", typeString, "producer", oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"), "final compression; kobs stores batches as the producer compressed them"},
	{"delete.retention.ms", "log.cleaner.delete.retention.ms", typeLong, "86400000", intRange(0, maxLong), "how long tombstones are kept in compacted topics"},
	{"file.delete.delay.ms", "log.segment.delete.delay.ms", typeLong, "60000", intRange(0, maxLong), "delay before a deleted file is removed"},
	{"flush.messages", "log.flush.interval.messages", typeLong, strconv.FormatInt(maxLong, 10), intRange(1, maxLong), "fsync after this many records"},
	{"flush.ms", "log.flush.interval.ms", typeLong, strconv.FormatInt(maxLong, 10), intRange(0, maxLong), "fsync when unflushed data is this old"},
	{"index.interval.bytes", "log.index.interval.bytes", typeInt, "4096", intRange(0, math.MaxInt32), "bytes between offset index entries"},
	{"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", typeLong, strconv.FormatInt(maxLong, 10), intRange(1, maxLong), "maximum time a record stays uncompacted"},
	{"max.message.bytes", "message.max.bytes", typeInt, "1048588", intRange(0, math.MaxInt32), "largest record batch accepted"},
	{"message.timestamp.type", "log.message.timestamp.type", typeString, "CreateTime", oneOf("CreateTime", "LogAppendTime"), "CreateTime keeps the producer's timestamp, LogAppendTime stamps the broker's"},
	{"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", typeDouble, "0.5", isDouble(0, 1), "dirty share that triggers compaction"},
	{"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", typeLong, "0", intRange(0, maxLong), "minimum time a record stays uncompacted"},
	{"min.insync.replicas", "min.insync.replicas", typeInt, "1", intRange(1, math.MaxInt32), "replicas that must acknowledge acks=all"},
	{"preallocate", "log.preallocate", typeBoolean, "false", isBool, "preallocate segment files"},
	{"retention.bytes", "log.retention.bytes", typeLong, "-1", intRange(-1, maxLong), "partition size limit before old segments are deleted"},
	{"retention.ms", "log.retention.ms", typeLong, "604800000", intRange(-1, maxLong), "age limit before old segments are deleted"},
	{"segment.bytes", "log.segment.bytes", typeInt, "1073741824", intRange(14, math.MaxInt32), "segment size before a roll"},
	{"segment.index.bytes", "log.index.size.max.bytes", typeInt, "10485760", intRange(4, math.MaxInt32), "offset index size before a roll"},
	{"segment.jitter.ms", "log.roll.jitter.ms", typeLong, "0", intRange(0, maxLong), "random jitter subtracted from segment.ms"},
	{"segment.ms", "log.roll.ms", typeLong, "604800000", intRange(1, maxLong), "segment age before a roll"},
	{"unclean.leader.election.enable", "unclean.leader.election.enable", typeBoolean, "false", isBool, "allow out-of-sync replicas to become leader"},
}

var topicConfigByName = func() map[string]*topicConfigDef {
	m := make(map[string]*topicConfigDef, len(topicConfigDefs))
	for i := range topicConfigDefs {
		m[topicConfigDefs[i].name] = &topicConfigDefs[i]
	}
	return m
}()

// validateTopicConfigs checks a set of topic config overrides.
func validateTopicConfigs(m map[string]string) error {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		def, ok := topicConfigByName[k]
		if !ok {
			return fmt.Errorf("unknown topic config %q", k)
		}
		if err := def.validate(m[k]); err != nil {
			return fmt.Errorf("invalid value for %s: %w", k, err)
		}
	}
	return nil
}

// configSource mirrors DescribeConfigs ConfigSource.
type configSource int8

const (
	sourceTopic         configSource = 1 // DYNAMIC_TOPIC_CONFIG
	sourceStaticBroker  configSource = 4 // STATIC_BROKER_CONFIG
	sourceDefaultConfig configSource = 5 // DEFAULT_CONFIG
)

// resolvedConfig is one topic config's effective value and where it came from.
type resolvedConfig struct {
	def    *topicConfigDef
	value  string
	source configSource
}

// resolveTopicConfigs merges topic overrides over the broker's
// server.properties values over Kafka's defaults, in topicConfigDefs order.
func (c *Config) resolveTopicConfigs(overrides map[string]string) []resolvedConfig {
	out := make([]resolvedConfig, 0, len(topicConfigDefs))
	for i := range topicConfigDefs {
		def := &topicConfigDefs[i]
		r := resolvedConfig{def: def, value: def.defaultVal, source: sourceDefaultConfig}
		if v, ok := c.TopicDefaults[def.name]; ok {
			r.value, r.source = v, sourceStaticBroker
		}
		if v, ok := overrides[def.name]; ok {
			r.value, r.source = v, sourceTopic
		}
		out = append(out, r)
	}
	return out
}

// logConfig turns a topic's effective configs into the log's settings.
func (c *Config) logConfig(overrides map[string]string) klog.Config {
	lc := klog.DefaultConfig()
	for _, r := range c.resolveTopicConfigs(overrides) {
		n, _ := strconv.ParseInt(r.value, 10, 64) // validated on the way in
		switch r.def.name {
		case "segment.bytes":
			lc.SegmentBytes = n
		case "segment.ms":
			lc.SegmentMs = n
		case "segment.index.bytes":
			lc.SegmentIndexBytes = int32(n)
		case "index.interval.bytes":
			lc.IndexIntervalBytes = int32(n)
		case "retention.ms":
			lc.RetentionMs = n
		case "retention.bytes":
			lc.RetentionBytes = n
		case "flush.messages":
			lc.FlushMessages = n
		case "flush.ms":
			lc.FlushMs = n
		case "max.message.bytes":
			lc.MaxMessageBytes = int32(n)
		case "message.timestamp.type":
			lc.MessageTimestampType = r.value
		case "cleanup.policy":
			lc.Compact, lc.Delete = false, false
			for _, pol := range strings.Split(r.value, ",") {
				switch strings.TrimSpace(pol) {
				case "compact":
					lc.Compact = true
				case "delete":
					lc.Delete = true
				}
			}
		case "delete.retention.ms":
			lc.DeleteRetentionMs = n
		case "min.compaction.lag.ms":
			lc.MinCompactionLagMs = n
		case "max.compaction.lag.ms":
			lc.MaxCompactionLagMs = n
		case "min.cleanable.dirty.ratio":
			lc.MinCleanableDirtyRatio, _ = strconv.ParseFloat(r.value, 64)
		}
	}
	return lc
}

// minISR resolves a topic's min.insync.replicas (validated when set).
func (c *Config) minISR(overrides map[string]string) int {
	n, _ := strconv.Atoi(c.resolved(overrides, "min.insync.replicas"))
	return max(n, 1)
}
