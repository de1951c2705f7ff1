package broker

import (
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// DescribeConfigs: v0-4
//
// Behavior:
//   - Topic resources list every topic config with its effective value and
//     source (DYNAMIC_TOPIC_CONFIG for overrides, STATIC_BROKER_CONFIG when
//     server.properties set the synonym, DEFAULT_CONFIG otherwise), and with
//     IncludeSynonyms the chain override -> broker key -> default.
//   - Broker resources (the resource name is our node id, or empty for
//     cluster defaults) list the server.properties keys kobs reads; they
//     are read-only until dynamic broker configs exist.
//   - Broker logger resources are INVALID_REQUEST; unknown topics
//     UNKNOWN_TOPIC_OR_PARTITION.
//
// Version notes: v1 sources and synonyms, v3 types and documentation, v4
// flexible.
func (b *Broker) handleDescribeConfigs(r *wire.Request) {
	req := r.Msg.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		want := func(name string) bool {
			if rr.ConfigNames == nil {
				return true
			}
			for _, n := range rr.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := b.pub.Load().Topic(rr.ResourceName)
			var overrides map[string]string
			if t != nil {
				overrides = t.Configs
			}
			if t == nil {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				sr.ErrorMessage = strp("topic " + rr.ResourceName + " does not exist")
				break
			}
			for _, rc := range b.cfg.resolveTopicConfigs(overrides) {
				if want(rc.def.name) {
					sr.Configs = append(sr.Configs, b.describeTopicConfig(req, rc, overrides))
				}
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.cfg.NodeID)) {
				sr.ErrorCode = kerr.InvalidRequest.Code
				sr.ErrorMessage = strp("unexpected broker id " + rr.ResourceName + ", expected " + strconv.Itoa(int(b.cfg.NodeID)))
				break
			}
			for _, c := range b.brokerConfigs() {
				if want(c.Name) {
					if req.Version < 1 {
						c.IsDefault = c.Source == kmsg.ConfigSourceDefaultConfig
					}
					sr.Configs = append(sr.Configs, c)
				}
			}
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
			sr.ErrorMessage = strp("unsupported resource type " + rr.ResourceType.String())
		}
		resp.Resources = append(resp.Resources, sr)
	}
	r.Respond(resp)
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (b *Broker) describeTopicConfig(req *kmsg.DescribeConfigsRequest, rc resolvedConfig, overrides map[string]string) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name, c.Value = rc.def.name, strp(rc.value)
	c.Source = kmsg.ConfigSource(rc.source)
	c.IsDefault = rc.source == sourceDefaultConfig
	c.ConfigType = kmsg.ConfigType(rc.def.typ)
	if req.IncludeDocumentation {
		c.Documentation = strp(rc.def.doc)
	}
	if req.IncludeSynonyms {
		syn := func(name, value string, src configSource) {
			s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			s.Name, s.Value, s.Source = name, strp(value), kmsg.ConfigSource(src)
			c.ConfigSynonyms = append(c.ConfigSynonyms, s)
		}
		if v, ok := overrides[rc.def.name]; ok {
			syn(rc.def.name, v, sourceTopic)
		}
		if v, ok := b.cfg.TopicDefaults[rc.def.name]; ok && rc.def.brokerKey != "" {
			syn(rc.def.brokerKey, v, sourceStaticBroker)
		}
		if rc.def.brokerKey != "" {
			syn(rc.def.brokerKey, rc.def.defaultVal, sourceDefaultConfig)
		}
	}
	return c
}

// brokerConfigs lists the broker's settings: the keys it reads, then the
// topic-default synonyms, sorted by name.
func (b *Broker) brokerConfigs() []kmsg.DescribeConfigsResponseResourceConfig {
	vals := map[string]string{
		"node.id":                                 strconv.Itoa(int(b.cfg.NodeID)),
		"broker.id":                               strconv.Itoa(int(b.cfg.NodeID)),
		"listeners":                               joinListeners(b.cfg.Listeners),
		"advertised.listeners":                    joinListeners(b.advertised),
		"log.dirs":                                strings.Join(b.cfg.LogDirs, ","),
		"num.partitions":                          strconv.Itoa(int(b.cfg.NumPartitions)),
		"default.replication.factor":              strconv.Itoa(int(b.cfg.DefaultReplicationFactor)),
		"auto.create.topics.enable":               strconv.FormatBool(b.cfg.AutoCreateTopics),
		"delete.topic.enable":                     strconv.FormatBool(b.cfg.DeleteTopicEnable),
		"socket.request.max.bytes":                strconv.Itoa(int(b.cfg.SocketRequestMaxBytes)),
		"num.io.threads":                          strconv.Itoa(b.cfg.NumIOThreads),
		"queued.max.requests":                     strconv.Itoa(b.cfg.QueuedMaxRequests),
		"log.retention.check.interval.ms":         strconv.FormatInt(b.cfg.RetentionCheckInterval.Milliseconds(), 10),
		"log.flush.scheduler.interval.ms":         strconv.FormatInt(b.cfg.FlushSchedulerInterval.Milliseconds(), 10),
		"log.flush.offset.checkpoint.interval.ms": strconv.FormatInt(b.cfg.CheckpointInterval.Milliseconds(), 10),
	}
	for _, rc := range b.cfg.resolveTopicConfigs(nil) {
		if rc.def.brokerKey != "" {
			vals[rc.def.brokerKey] = rc.value
		}
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]kmsg.DescribeConfigsResponseResourceConfig, 0, len(names))
	for _, n := range names {
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.Value, c.ReadOnly = n, strp(vals[n]), true
		c.Source = kmsg.ConfigSourceDefaultConfig
		if _, ok := b.cfg.Props.Get(n); ok {
			c.Source = kmsg.ConfigSourceStaticBrokerConfig
		}
		out = append(out, c)
	}
	return out
}

func joinListeners(ls []Listener) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.String()
	}
	return strings.Join(parts, ",")
}
