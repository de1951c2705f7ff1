package telemetry

import "slices"

// AttributeInfo describes one JMX attribute the way MBeanAttributeInfo does,
// for the Jolokia list operation.
type AttributeInfo struct {
	Name string
	Type string // JMX open type name: "long", "double", "java.lang.String", ...
	Desc string
	RW   bool // always false: Yammer attributes are read-only
}

// attrDesc is the description the JDK's StandardMBean introspector gives every
// attribute of an MBean interface, which is what Yammer's beans use.
const attrDesc = "Attribute exposed for management"

// MBeanDescription is the description StandardMBean gives an MBean.
const MBeanDescription = "Information on the management interface of the MBean"

// Attribute names, as Yammer 2.2's JmxReporter MBean interfaces declare them.
const (
	AttrValue             = "Value"
	AttrCount             = "Count"
	AttrEventType         = "EventType"
	AttrRateUnit          = "RateUnit"
	AttrMeanRate          = "MeanRate"
	AttrOneMinuteRate     = "OneMinuteRate"
	AttrFiveMinuteRate    = "FiveMinuteRate"
	AttrFifteenMinuteRate = "FifteenMinuteRate"
	AttrMin               = "Min"
	AttrMax               = "Max"
	AttrMean              = "Mean"
	AttrStdDev            = "StdDev"
	Attr50thPercentile    = "50thPercentile"
	Attr75thPercentile    = "75thPercentile"
	Attr95thPercentile    = "95thPercentile"
	Attr98thPercentile    = "98thPercentile"
	Attr99thPercentile    = "99thPercentile"
	Attr999thPercentile   = "999thPercentile"
	AttrLatencyUnit       = "LatencyUnit"
)

const (
	typeLong     = "long"
	typeDouble   = "double"
	typeString   = "java.lang.String"
	typeTimeUnit = "java.util.concurrent.TimeUnit"
	typeObject   = "java.lang.Object"
)

func info(name, typ string) AttributeInfo {
	return AttributeInfo{Name: name, Type: typ, Desc: attrDesc}
}

var (
	meterInfo = []AttributeInfo{
		info(AttrCount, typeLong),
		info(AttrEventType, typeString),
		info(AttrRateUnit, typeTimeUnit),
		info(AttrMeanRate, typeDouble),
		info(AttrOneMinuteRate, typeDouble),
		info(AttrFiveMinuteRate, typeDouble),
		info(AttrFifteenMinuteRate, typeDouble),
	}
	// Yammer 2.2's HistogramMBean returns min/max as double, not long.
	histogramInfo = []AttributeInfo{
		info(AttrCount, typeLong),
		info(AttrMin, typeDouble),
		info(AttrMax, typeDouble),
		info(AttrMean, typeDouble),
		info(AttrStdDev, typeDouble),
		info(Attr50thPercentile, typeDouble),
		info(Attr75thPercentile, typeDouble),
		info(Attr95thPercentile, typeDouble),
		info(Attr98thPercentile, typeDouble),
		info(Attr99thPercentile, typeDouble),
		info(Attr999thPercentile, typeDouble),
	}
	timerInfo = append(append(slices.Clone(meterInfo), histogramInfo[1:]...),
		info(AttrLatencyUnit, typeTimeUnit))
	gaugeInfo = []AttributeInfo{info(AttrValue, typeObject)}
)

// Describe returns the attributes an MBean of kind k exposes, in declaration
// order. The slice is a copy.
func Describe(k Kind) []AttributeInfo {
	switch k {
	case KindGauge:
		return slices.Clone(gaugeInfo)
	case KindMeter:
		return slices.Clone(meterInfo)
	case KindHistogram:
		return slices.Clone(histogramInfo)
	case KindTimer:
		return slices.Clone(timerInfo)
	}
	return nil
}
