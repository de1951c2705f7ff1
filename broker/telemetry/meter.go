package telemetry

import (
	"math"
	"sync/atomic"
	"time"

	metrics "github.com/rcrowley/go-metrics"
)

// TickInterval is the period of the EWMA clock, fixed by Yammer's math (the
// alphas below assume it).
const TickInterval = 5 * time.Second

// Yammer/go-metrics EWMA alphas for 1, 5 and 15 minute windows ticked every 5 s.
var (
	alpha1  = 1 - math.Exp(-5.0/60.0/1)
	alpha5  = 1 - math.Exp(-5.0/60.0/5)
	alpha15 = 1 - math.Exp(-5.0/60.0/15)
)

// Meter counts events and reports their rate the way a Yammer 2.2 Meter does:
// Count, a mean rate since creation and 1/5/15-minute EWMAs ticked every 5 s.
//
// Mark is a single atomic add. The EWMAs (go-metrics StandardEWMA) are not
// fed on the hot path: at each tick the registry hands them the delta of
// Count since the previous tick, which is the same arithmetic as Yammer's
// per-EWMA "uncounted" adders but costs one atomic per Mark instead of four.
type Meter struct {
	count     atomic.Int64
	eventType string
	rateUnit  time.Duration
	now       func() time.Time
	start     time.Time

	// Owned by the registry's tick (serialised by Registry.tickMu).
	lastTick      int64
	m1, m5, m15   metrics.EWMA
	rateUnitLabel string
}

func newMeter(eventType string, rateUnit time.Duration, now func() time.Time) *Meter {
	return &Meter{
		eventType:     eventType,
		rateUnit:      rateUnit,
		rateUnitLabel: timeUnitName(rateUnit),
		now:           now,
		start:         now(),
		m1:            metrics.NewEWMA(alpha1),
		m5:            metrics.NewEWMA(alpha5),
		m15:           metrics.NewEWMA(alpha15),
	}
}

// Mark records n events.
func (m *Meter) Mark(n int64) { m.count.Add(n) }

// Count returns the number of events marked since creation.
func (m *Meter) Count() int64 { return m.count.Load() }

// tick feeds the events since the previous tick to the EWMAs and advances them.
// Callers serialise ticks.
func (m *Meter) tick() {
	c := m.count.Load()
	delta := c - m.lastTick
	m.lastTick = c
	for _, e := range [...]metrics.EWMA{m.m1, m.m5, m.m15} {
		e.Update(delta)
		e.Tick()
	}
}

// perUnit converts a per-second rate to the meter's rate unit.
func (m *Meter) perUnit(perSecond float64) float64 {
	return perSecond * m.rateUnit.Seconds()
}

// meanRate is Yammer's count / time since creation, in the rate unit.
func (m *Meter) meanRate(count int64) float64 {
	if count == 0 {
		return 0
	}
	elapsed := m.now().Sub(m.start)
	if elapsed <= 0 {
		return 0
	}
	return float64(count) / float64(elapsed) * float64(m.rateUnit)
}

// Rates returns MeanRate, OneMinuteRate, FiveMinuteRate and FifteenMinuteRate
// in the meter's rate unit.
func (m *Meter) Rates() (mean, m1, m5, m15 float64) {
	return m.meanRate(m.count.Load()), m.perUnit(m.m1.Rate()), m.perUnit(m.m5.Rate()), m.perUnit(m.m15.Rate())
}

func (m *Meter) appendAttrs(attrs []Attribute) []Attribute {
	c := m.count.Load()
	return append(attrs,
		Attribute{AttrCount, Int64Value(c)},
		Attribute{AttrEventType, StringValue(m.eventType)},
		Attribute{AttrRateUnit, StringValue(m.rateUnitLabel)},
		Attribute{AttrMeanRate, Float64Value(m.meanRate(c))},
		Attribute{AttrOneMinuteRate, Float64Value(m.perUnit(m.m1.Rate()))},
		Attribute{AttrFiveMinuteRate, Float64Value(m.perUnit(m.m5.Rate()))},
		Attribute{AttrFifteenMinuteRate, Float64Value(m.perUnit(m.m15.Rate()))},
	)
}

func (m *Meter) snapshot() (Snapshot, bool) {
	return Snapshot{kind: KindMeter, attrs: m.appendAttrs(make([]Attribute, 0, len(meterInfo)))}, true
}

func (m *Meter) kind() Kind { return KindMeter }

// timeUnitName is the java.util.concurrent.TimeUnit constant for d, which is
// how Jolokia serialises Yammer's RateUnit/LatencyUnit.
func timeUnitName(d time.Duration) string {
	switch d {
	case time.Nanosecond:
		return "NANOSECONDS"
	case time.Microsecond:
		return "MICROSECONDS"
	case time.Millisecond:
		return "MILLISECONDS"
	case time.Second:
		return "SECONDS"
	case time.Minute:
		return "MINUTES"
	case time.Hour:
		return "HOURS"
	case 24 * time.Hour:
		return "DAYS"
	}
	return ""
}
