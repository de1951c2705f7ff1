package audit

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the reconciler's state at scrape time on its own
// registry: totals are persisted, so the counters stay monotonic across
// restarts; gauges cover the closed buckets within the retention window.
type collector struct{ r *Reconciler }

var (
	descRecords    = prometheus.NewDesc("kobs_audit_records_total", "Records counted per topic and tier: producer and consumer from audit hooks, broker from offsets at bucket boundaries, committed from each group's committed offsets (groups with or without hooks); group is empty for producer and broker.", []string{"topic", "tier", "group"}, nil)
	descMissing    = prometheus.NewDesc("kobs_audit_missing_records", "Records of closed buckets in the retention window that the group did not consume (including those deleted by retention before it got there).", []string{"topic", "group"}, nil)
	descDuplicates = prometheus.NewDesc("kobs_audit_duplicate_records", "Records of closed buckets in the retention window that the group consumed more than once (audited groups only).", []string{"topic", "group"}, nil)
	descRatio      = prometheus.NewDesc("kobs_audit_completeness_ratio", "Consumed over expected records of closed buckets in the retention window (1 when none were expected).", []string{"topic", "group"}, nil)
	descUncertain  = prometheus.NewDesc("kobs_audit_uncertain_buckets", "Closed buckets in the retention window whose counts are incomplete (an audited client died between flushes, flushes were lost, or no tier counted them).", []string{"topic"}, nil)
	descOOW        = prometheus.NewDesc("kobs_audit_out_of_window_records_total", "Records whose timestamps were too far from the clock to bucket (clock skew), by client id (producer) or group (consumer).", []string{"topic", "tier", "client"}, nil)
	descSkipped    = prometheus.NewDesc("kobs_audit_skipped_records_total", "Audit-topic records not applied: corrupt, foreign, resent (a flush already applied), bucket_width_mismatch (counts moved out of window).", []string{"reason"}, nil)
	descInstances  = prometheus.NewDesc("kobs_audit_instances", "Audited client instances known, by tier and state (alive, closed, dead).", []string{"tier", "state"}, nil)
	descSamples    = prometheus.NewDesc("kobs_audit_offset_samples_total", "Offset samples taken (ListOffsets, committed offsets).", nil, nil)
	descSampleErrs = prometheus.NewDesc("kobs_audit_offset_sample_errors_total", "Offset samples that were incomplete.", nil, nil)
	descLast       = prometheus.NewDesc("kobs_audit_last_sample_timestamp_seconds", "When offsets were last sampled.", nil, nil)
	descStateErrs  = prometheus.NewDesc("kobs_audit_state_write_errors_total", "Failed writes of the state file.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecords, descMissing, descDuplicates, descRatio, descUncertain, descOOW, descSkipped, descInstances, descSamples, descSampleErrs, descLast, descStateErrs} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.c.st.Totals {
		l := strings.SplitN(k, "\x00", 3)
		ch <- prometheus.MustNewConstMetric(descRecords, prometheus.CounterValue, float64(v), l...)
	}
	for k, v := range r.c.st.OOW {
		l := strings.SplitN(k, "\x00", 3)
		ch <- prometheus.MustNewConstMetric(descOOW, prometheus.CounterValue, float64(v), l...)
	}
	for t, groups := range r.c.agg {
		for g, a := range groups {
			ch <- prometheus.MustNewConstMetric(descMissing, prometheus.GaugeValue, float64(a.Missing), t, g)
			ch <- prometheus.MustNewConstMetric(descDuplicates, prometheus.GaugeValue, float64(a.Duplicates), t, g)
			ratio := 1.0
			if a.Expected > 0 {
				ratio = float64(a.Reached) / float64(a.Expected)
			}
			ch <- prometheus.MustNewConstMetric(descRatio, prometheus.GaugeValue, ratio, t, g)
		}
	}
	for t := range r.c.st.Topics {
		ch <- prometheus.MustNewConstMetric(descUncertain, prometheus.GaugeValue, float64(r.c.uncertain[t]), t)
	}
	for _, reason := range []string{"corrupt", "foreign", "resent", "bucket_width_mismatch"} {
		ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(r.c.st.Skipped[reason]), reason)
	}
	inst := map[[2]string]int{}
	for _, in := range r.c.st.Instances {
		inst[[2]string{string(in.Tier), in.state()}]++
	}
	for k, n := range inst {
		ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	ch <- prometheus.MustNewConstMetric(descSamples, prometheus.CounterValue, float64(r.samples))
	ch <- prometheus.MustNewConstMetric(descSampleErrs, prometheus.CounterValue, float64(r.sampleErrs))
	if !r.lastSample.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, float64(r.lastSample.UnixNano())/1e9)
	}
	ch <- prometheus.MustNewConstMetric(descStateErrs, prometheus.CounterValue, float64(r.stateErrors))
}
