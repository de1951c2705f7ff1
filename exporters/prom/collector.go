package prom

import (
	"fmt"
	"hash/maphash"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// Collector exports a telemetry.Reader with jmx_exporter's Kafka names, plus
// kobs's Yammer rate gauges for every meter and timer:
// <base>_oneminuterate, _fiveminuterate, _fifteenminuterate and _meanrate,
// where <base> is the name the Count rule produced without its _total/_count
// suffix (kafka_server_brokertopicmetrics_messagesin_oneminuterate{topic}).
//
// The metric set changes as topics come and go, so the collector is
// "unchecked" (Describe sends nothing). Consistency that a checked collector
// would get from its Descs is enforced here instead: each family has one help
// text and type, series are de-duplicated, and a bean whose rule output would
// carry duplicate or invalid label names is skipped rather than failing the
// whole scrape.
//
// Collect reads immutable snapshots through the Reader; it shares no lock
// with Meter.Mark or Histogram.Update. Its own mutex only serialises
// concurrent scrapes over the mapping cache.
type Collector struct {
	reader telemetry.Reader
	rules  []rule

	mu    sync.Mutex
	cache map[string]*beanMapping // canonical ObjectName -> outputs
	fam   map[string]family       // metric name -> help and type, first seen wins
	gen   uint64
}

var _ prometheus.Collector = (*Collector)(nil)

type family struct {
	help string
	typ  metricType
}

// beanMapping is what the rules made of one MBean's attributes. Rules depend
// only on the name and attribute, never the value, so it is computed once per
// bean and reused until the bean disappears.
type beanMapping struct {
	kind   telemetry.Kind
	nattrs int
	outs   []output
	gen    uint64
	// dynamic are string attributes of Kafka Metrics beans: only a rule
	// with a fixed value exports them, and its labels may use the value
	// (raft-metrics current-state), so they are matched on every scrape.
	dynamic []string
}

type output struct {
	attr   string
	desc   *prometheus.Desc
	vt     prometheus.ValueType
	labels []string // values, in the Desc's variable label order
	sig    uint64   // hash of name + sorted labels, for de-duplication across beans
}

// NewCollector returns a collector over r.
func NewCollector(r telemetry.Reader) *Collector {
	return &Collector{
		reader: r,
		rules:  kafkaRules,
		cache:  map[string]*beanMapping{},
		fam:    map[string]family{},
	}
}

// NewRegistry returns a Prometheus registry (not the global one) holding the
// kobs collector over r plus the Go runtime and process collectors.
func NewRegistry(r telemetry.Reader) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(r),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves g in the Prometheus text format. A collection error drops
// only the offending series (ContinueOnError), so one bad gauge never blanks
// a broker's whole /metrics.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Describe sends nothing: the collector is unchecked because its metric set is
// dynamic.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	seen := make(map[uint64]struct{}, len(c.cache)*2)
	c.reader.Each(func(n telemetry.ObjectName, s telemetry.Snapshot) {
		bm := c.cache[n.Canonical()]
		if bm == nil || bm.kind != s.Kind() || bm.nattrs != s.Len() {
			bm = c.mapBean(n, s)
			c.cache[n.Canonical()] = bm
		}
		bm.gen = c.gen
		for _, attr := range bm.dynamic {
			v, _ := s.Attr(attr)
			m, ok := apply(c.rules, matchString(n, attr, v.Str()))
			if !ok || m.value == nil {
				continue // jmx_exporter drops strings unless the rule gives a value
			}
			o, ok := c.newOutput(attr, m, fmt.Sprintf("Attribute exposed for management (%s)", beanAttr(typeAndName(n), attr)))
			if !ok {
				continue
			}
			if _, dup := seen[o.sig]; dup {
				continue
			}
			seen[o.sig] = struct{}{}
			if cm, err := prometheus.NewConstMetric(o.desc, o.vt, *m.value, o.labels...); err == nil {
				ch <- cm
			}
		}
		for _, o := range bm.outs {
			v, ok := s.Attr(o.attr)
			if !ok {
				continue
			}
			f, ok := v.Float64()
			if !ok {
				continue
			}
			if _, dup := seen[o.sig]; dup {
				continue
			}
			seen[o.sig] = struct{}{}
			m, err := prometheus.NewConstMetric(o.desc, o.vt, f, o.labels...)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(o.desc, err)
				continue
			}
			ch <- m
		}
	})
	// Forget beans that are gone (deleted topics), so the cache tracks the
	// registry instead of growing forever.
	for k, bm := range c.cache {
		if bm.gen != c.gen {
			delete(c.cache, k)
		}
	}
}

// sigSeed seeds series signatures; a 64-bit hash keeps the per-scrape
// de-duplication map cheap, and a collision (odds 2^-64 per pair) would only
// hide one series.
var sigSeed = maphash.MakeSeed()

// rateAttrs are the kobs extra gauges derived from every meter and timer.
var rateAttrs = []struct{ attr, suffix string }{
	{telemetry.AttrOneMinuteRate, "_oneminuterate"},
	{telemetry.AttrFiveMinuteRate, "_fiveminuterate"},
	{telemetry.AttrFifteenMinuteRate, "_fifteenminuterate"},
	{telemetry.AttrMeanRate, "_meanrate"},
}

// matchString is jmx_exporter's input for one simple attribute:
// "<domain><props><>Attr: value". The rules only look at a numeric value
// through patterns that end before it (Strimzi's "(.+):" rules), so numeric
// attributes are matched once per bean with a placeholder value and cached.
func matchString(n telemetry.ObjectName, attr, value string) string {
	return beanAttr(n, attr) + ": " + value
}

// beanAttr is "<domain><props><>Attr", the part of the match string that
// names the attribute.
func beanAttr(n telemetry.ObjectName, attr string) string {
	var b strings.Builder
	b.WriteString(n.Domain())
	b.WriteByte('<')
	for i := range n.NumProperties() {
		if i > 0 {
			b.WriteString(", ")
		}
		p := n.Property(i)
		b.WriteString(p.Key)
		b.WriteByte('=')
		b.WriteString(p.Value)
	}
	b.WriteString("><>")
	b.WriteString(attr)
	return b.String()
}

// mapBean applies the rules to every numeric attribute of bean n.
func (c *Collector) mapBean(n telemetry.ObjectName, s telemetry.Snapshot) *beanMapping {
	k := s.Kind()
	bm := &beanMapping{kind: k, nattrs: s.Len()}
	var countMatch *match
	for _, ai := range telemetry.DescribeSnapshot(s) {
		switch ai.Type {
		case "java.lang.String", "java.util.concurrent.TimeUnit":
			// jmx_exporter only exports numbers and booleans, and strings
			// whose rule sets a value.
			if k == telemetry.KindKafkaMetrics {
				bm.dynamic = append(bm.dynamic, ai.Name)
			}
			continue
		}
		ms := matchString(n, ai.Name, "0")
		m, ok := apply(c.rules, ms)
		if !ok {
			continue
		}
		if ai.Name == telemetry.AttrCount && (k == telemetry.KindMeter || k == telemetry.KindTimer) {
			mc := m
			countMatch = &mc
		}
		help := fmt.Sprintf("Attribute exposed for management (%s)", beanAttr(typeAndName(n), ai.Name))
		if o, ok := c.newOutput(ai.Name, m, help); ok {
			bm.outs = append(bm.outs, o)
		}
	}
	if countMatch != nil {
		base := strings.TrimSuffix(strings.TrimSuffix(countMatch.name, "_total"), "_count")
		for _, ra := range rateAttrs {
			rm := match{name: base + ra.suffix, typ: gauge, labels: countMatch.labels}
			help := fmt.Sprintf("kobs: Yammer %s of %s", ra.attr, typeAndName(n))
			if o, ok := c.newOutput(ra.attr, rm, help); ok {
				bm.outs = append(bm.outs, o)
			}
		}
	}
	return bm
}

// typeAndName strips tags, so a family's help text does not name one topic.
func typeAndName(n telemetry.ObjectName) telemetry.ObjectName {
	var props []telemetry.Property
	for i := range n.NumProperties() {
		if p := n.Property(i); p.Key == "type" || p.Key == "name" {
			props = append(props, p)
		}
	}
	if len(props) == 0 {
		return n
	}
	out, err := telemetry.NewObjectName(n.Domain(), props...)
	if err != nil {
		return n
	}
	return out
}

// newOutput builds the Desc for one rule result, keeping help and type
// consistent per family and rejecting label sets Prometheus would refuse.
func (c *Collector) newOutput(attr string, m match, help string) (output, bool) {
	if !model.LegacyValidation.IsValidMetricName(m.name) {
		return output{}, false
	}
	f, ok := c.fam[m.name]
	if !ok {
		f = family{help: help, typ: m.typ}
		c.fam[m.name] = f
	} else if f.typ != m.typ {
		// Same name, different type (only possible with odd bean names):
		// the first type seen owns the name.
		return output{}, false
	}
	names := make([]string, 0, len(m.labels)/2)
	values := make([]string, 0, len(m.labels)/2)
	for i := 0; i < len(m.labels); i += 2 {
		ln := m.labels[i]
		if !model.LegacyValidation.IsValidLabelName(ln) || slices.Contains(names, ln) {
			return output{}, false
		}
		names = append(names, ln)
		values = append(values, m.labels[i+1])
	}
	vt := prometheus.GaugeValue
	switch m.typ {
	case counter:
		vt = prometheus.CounterValue
	case untyped:
		vt = prometheus.UntypedValue
	}
	var sig strings.Builder
	sig.WriteString(m.name)
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	for _, i := range idx {
		sig.WriteByte(0xff)
		sig.WriteString(names[i])
		sig.WriteByte(0xfe)
		sig.WriteString(values[i])
	}
	return output{
		attr:   attr,
		desc:   prometheus.NewDesc(m.name, f.help, names, nil),
		vt:     vt,
		labels: values,
		sig:    maphash.String(sigSeed, sig.String()),
	}, true
}
