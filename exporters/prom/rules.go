package prom

import (
	"regexp"
	"strings"
)

// The rules of Strimzi's kafka-metrics.yaml (strimzi/strimzi-kafka-operator
// 1.2.0, packaging/examples/metrics/kafka-metrics.yaml, the jmx_exporter
// configuration behind Strimzi's Grafana dashboards and Prometheus alerts,
// run by jmx_exporter 1.6.0), in file order, with lowercaseOutputName: true.
// Community dashboards and alerts are written against the names these rules
// produce, so kobs applies the very same regular expressions to the very
// same input string jmx_exporter builds for each attribute:
//
//	<domain><k1=v1, k2=v2, ...><>Attribute: value
//
// with properties in registration order (type, name, then tags) — which is why
// telemetry.ObjectName keeps Kafka's insertion order. A rule's pattern is
// wrapped as ^.*(?:pattern).*$ as jmx_exporter does; the first matching rule
// wins and attributes no rule matches are not exported.
//
// Templates use Go's ${n} syntax where the YAML file has $n (Go would read
// "$1_" as a group named "1_"). After Strimzi's rules come kobs's own
// (kobsRules), in the same convention, for beans Strimzi's file leaves out;
// they never change a name Strimzi's rules produce.
//
// Percentile rules are type GAUGE and there is no _sum: jmx_exporter's
// "Summary emulation" is a gauge family with a quantile label plus a separate
// <name>_count counter, and kobs reproduces exactly that, lint warnings
// included (see TestLintOnlyInheritedProblems). Names are emitted as the
// rules write them: jmx_exporter 1.x's client library would serve the
// _count counters as _count_total, which no Strimzi dashboard or alert queries.
type rule struct {
	re     *regexp.Regexp
	attrRe *regexp.Regexp // what the pattern requires right after "><>"; a cheap pre-filter
	needs  []string       // literal runs every match must contain; another pre-filter
	name   string
	typ    metricType
	labels [][2]string // label name template, value template; in YAML order
	// value, when set, is the rule's fixed sample value (jmx_exporter's
	// "value:"); only such rules export string attributes.
	value *float64
}

type metricType uint8

const (
	gauge metricType = iota
	counter
	untyped
)

func mustRule(pattern, name string, typ metricType, labels ...string) rule {
	r := rule{re: regexp.MustCompile(`^.*(?:` + pattern + `).*$`), name: name, typ: typ}
	if i := strings.LastIndex(pattern, "><>"); i >= 0 {
		r.attrRe = regexp.MustCompile(`^(?:` + pattern[i+3:] + `)`)
	}
	r.needs = literals(pattern)
	for i := 0; i < len(labels); i += 2 {
		r.labels = append(r.labels, [2]string{labels[i], labels[i+1]})
	}
	return r
}

func withValue(r rule, v float64) rule {
	r.value = &v
	return r
}

// strimziRules is Strimzi's kafka-metrics.yaml.
var strimziRules = []rule{
	// Special cases and very specific rules
	mustRule(`kafka.server<type=(.+), name=(.+), clientId=(.+), topic=(.+), partition=(.*)><>Value`,
		`kafka_server_${1}_${2}`, gauge, "clientId", "${3}", "topic", "${4}", "partition", "${5}"),
	mustRule(`kafka.server<type=(.+), name=(.+), clientId=(.+), brokerHost=(.+), brokerPort=(.+)><>Value`,
		`kafka_server_${1}_${2}`, gauge, "clientId", "${3}", "broker", "${4}:${5}"),
	mustRule(`kafka.server<type=(.+), cipher=(.+), protocol=(.+), listener=(.+), networkProcessor=(.+)><>connections`,
		`kafka_server_${1}_connections_tls_info`, gauge, "cipher", "${2}", "protocol", "${3}", "listener", "${4}", "networkProcessor", "${5}"),
	mustRule(`kafka.server<type=(.+), clientSoftwareName=(.+), clientSoftwareVersion=(.+), listener=(.+), networkProcessor=(.+)><>connections`,
		`kafka_server_${1}_connections_software`, gauge, "clientSoftwareName", "${2}", "clientSoftwareVersion", "${3}", "listener", "${4}", "networkProcessor", "${5}"),
	mustRule(`kafka.server<type=(.+), listener=(.+), networkProcessor=(.+)><>(.+-total):`,
		`kafka_server_${1}_${4}`, counter, "listener", "${2}", "networkProcessor", "${3}"),
	mustRule(`kafka.server<type=(.+), listener=(.+), networkProcessor=(.+)><>(.+):`,
		`kafka_server_${1}_${4}`, gauge, "listener", "${2}", "networkProcessor", "${3}"),
	mustRule(`kafka.server<type=(.+), listener=(.+), networkProcessor=(.+)><>(.+-total)`,
		`kafka_server_${1}_${4}`, counter, "listener", "${2}", "networkProcessor", "${3}"),
	mustRule(`kafka.server<type=(.+), listener=(.+), networkProcessor=(.+)><>(.+)`,
		`kafka_server_${1}_${4}`, gauge, "listener", "${2}", "networkProcessor", "${3}"),
	// Some percent metrics use MeanRate attribute
	// Ex) kafka.server<type=(KafkaRequestHandlerPool), name=(RequestHandlerAvgIdlePercent)><>MeanRate
	mustRule(`kafka.(\w+)<type=(.+), name=(.+)Percent\w*><>MeanRate`,
		`kafka_${1}_${2}_${3}_percent`, gauge),
	// Generic gauges for percents
	mustRule(`kafka.(\w+)<type=(.+), name=(.+)Percent\w*><>Value`,
		`kafka_${1}_${2}_${3}_percent`, gauge),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+)Percent\w*, (.+)=(.+)><>Value`,
		`kafka_${1}_${2}_${3}_percent`, gauge, "${4}", "${5}"),
	// Generic per-second counters with 0-2 key/value pairs
	mustRule(`kafka.(\w+)<type=(.+), name=(.+)PerSec\w*, (.+)=(.+), (.+)=(.+)><>Count`,
		`kafka_${1}_${2}_${3}_total`, counter, "${4}", "${5}", "${6}", "${7}"),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+)PerSec\w*, (.+)=(.+)><>Count`,
		`kafka_${1}_${2}_${3}_total`, counter, "${4}", "${5}"),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+)PerSec\w*><>Count`,
		`kafka_${1}_${2}_${3}_total`, counter),
	// Generic gauges with 0-2 key/value pairs
	mustRule(`kafka.(\w+)<type=(.+), name=(.+), (.+)=(.+), (.+)=(.+)><>Value`,
		`kafka_${1}_${2}_${3}`, gauge, "${4}", "${5}", "${6}", "${7}"),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+), (.+)=(.+)><>Value`,
		`kafka_${1}_${2}_${3}`, gauge, "${4}", "${5}"),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+)><>Value`,
		`kafka_${1}_${2}_${3}`, gauge),
	// Emulate Prometheus 'Summary' metrics for the exported 'Histogram's.
	// Note that these are missing the '_sum' metric!
	mustRule(`kafka.(\w+)<type=(.+), name=(.+), (.+)=(.+), (.+)=(.+)><>Count`,
		`kafka_${1}_${2}_${3}_count`, counter, "${4}", "${5}", "${6}", "${7}"),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+), (.+)=(.*), (.+)=(.+)><>(\d+)thPercentile`,
		`kafka_${1}_${2}_${3}`, gauge, "${4}", "${5}", "${6}", "${7}", "quantile", "0.${8}"),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+), (.+)=(.+)><>Count`,
		`kafka_${1}_${2}_${3}_count`, counter, "${4}", "${5}"),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+), (.+)=(.*)><>(\d+)thPercentile`,
		`kafka_${1}_${2}_${3}`, gauge, "${4}", "${5}", "quantile", "0.${6}"),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+)><>Count`,
		`kafka_${1}_${2}_${3}_count`, counter),
	mustRule(`kafka.(\w+)<type=(.+), name=(.+)><>(\d+)thPercentile`,
		`kafka_${1}_${2}_${3}`, gauge, "quantile", "0.${4}"),
	// KRaft overall related metrics
	// distinguish between always increasing COUNTER (total and max) and variable GAUGE (all others) metrics
	mustRule(`kafka.server<type=raft-metrics><>(.+-total|.+-max):`,
		`kafka_server_raftmetrics_${1}`, counter),
	withValue(mustRule(`kafka.server<type=raft-metrics><>(current-state): (.+)`,
		`kafka_server_raftmetrics_${1}`, untyped, "${1}", "${2}"), 1),
	mustRule(`kafka.server<type=raft-metrics><>(.+):`,
		`kafka_server_raftmetrics_${1}`, gauge),
	// KRaft "low level" channels related metrics
	// distinguish between always increasing COUNTER (total and max) and variable GAUGE (all others) metrics
	mustRule(`kafka.server<type=raft-channel-metrics><>(.+-total|.+-max):`,
		`kafka_server_raftchannelmetrics_${1}`, counter),
	mustRule(`kafka.server<type=raft-channel-metrics><>(.+):`,
		`kafka_server_raftchannelmetrics_${1}`, gauge),
	// Broker metrics related to fetching metadata topic records in KRaft mode
	mustRule(`kafka.server<type=broker-metadata-metrics><>(.+):`,
		`kafka_server_brokermetadatametrics_${1}`, gauge),
}

// kobsRules follow Strimzi's for beans its file drops. Strimzi's generic
// rules need a one-word domain (kafka.(\w+)), so the group coordinator's
// kafka.coordinator.group beans fall through; this is jmx_exporter
// kafka-2_0_0.yml's rule for them.
var kobsRules = []rule{
	mustRule(`kafka.coordinator.(\w+)<type=(.+), name=(.+)><>Value`,
		`kafka_coordinator_${1}_${2}_${3}`, gauge),
}

// kafkaRules is what the collector applies: Strimzi's rules, then kobs's.
var kafkaRules = append(append([]rule(nil), strimziRules...), kobsRules...)

// match is the outcome of applying the rules to one attribute.
type match struct {
	name   string
	typ    metricType
	labels []string // alternating name, value
	value  *float64 // the rule's fixed value, if any
}

// apply runs the rules in order on jmx_exporter's match string and returns the
// first match, with the name sanitised and lowercased and label names
// sanitised (values are used as matched, as jmx_exporter does).
func apply(rules []rule, s string) (match, bool) {
	// Running a dozen backtracking regexps per attribute is what makes a cold
	// scrape slow, and most rules fail on the attribute name alone. When the
	// input has exactly one "><>" (always, unless a quoted tag value holds
	// one), the text after it is the attribute, and a rule whose pattern ends
	// in "><>X" can only match if the attribute starts with X.
	attr, filter := "", strings.Count(s, "><>") == 1
	if filter {
		attr = s[strings.Index(s, "><>")+3:]
	}
	for _, r := range rules {
		if filter && r.attrRe != nil && !r.attrRe.MatchString(attr) {
			continue
		}
		if !containsAll(s, r.needs) {
			continue
		}
		m := r.re.FindStringSubmatchIndex(s)
		if m == nil {
			continue
		}
		name := strings.ToLower(safeName(string(r.re.ExpandString(nil, r.name, s, m))))
		out := match{name: name, typ: r.typ, value: r.value}
		for _, l := range r.labels {
			ln := safeName(string(r.re.ExpandString(nil, l[0], s, m)))
			lv := string(r.re.ExpandString(nil, l[1], s, m))
			out.labels = append(out.labels, ln, lv)
		}
		return out, true
	}
	return match{}, false
}

// safeName is jmx_exporter's JmxCollector.safeName: every character outside
// [a-zA-Z0-9:_] becomes '_', runs of '_' collapse to one, and a leading digit
// gets a '_' prefix.
func safeName(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 1)
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		b.WriteByte('_')
	}
	prevUnderscore := false
	for _, c := range s {
		legal := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_'
		if !legal || c == '_' {
			if prevUnderscore {
				continue
			}
			b.WriteByte('_')
			prevUnderscore = true
			continue
		}
		b.WriteRune(c)
		prevUnderscore = false
	}
	return b.String()
}

// literals returns the literal runs of a rule pattern outside groups, escapes
// and optional characters. The kafka rules use no alternation, so each run
// must occur in any string the pattern matches: a necessary condition that is
// far cheaper to test than running the backtracking regexp.
func literals(pattern string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	quantifier := func(i int) bool { return i < len(pattern) && strings.IndexByte("*+?{", pattern[i]) >= 0 }
	for i := 0; i < len(pattern); {
		switch c := pattern[i]; {
		case c == '|':
			return nil // alternation: no literal is mandatory
		case c == '(' || c == '[':
			flush()
			depth, open, close := 0, c, byte(')')
			if c == '[' {
				close = ']'
			}
			for ; i < len(pattern); i++ {
				if pattern[i] == '\\' {
					i++
					continue
				}
				if pattern[i] == open {
					depth++
				} else if pattern[i] == close {
					if depth--; depth == 0 {
						break
					}
				}
			}
			i++
			for quantifier(i) {
				i++
			}
		case c == '\\' || c == '.' || c == '^' || c == '$':
			flush()
			if c == '\\' {
				i++
			}
			i++
			for quantifier(i) {
				i++
			}
		case quantifier(i + 1):
			// An optional or repeated literal character is not mandatory as written.
			flush()
			i += 2
		default:
			cur.WriteByte(c)
			i++
		}
	}
	flush()
	return out
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
