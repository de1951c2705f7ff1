package dashboards

import (
	"errors"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/elasticsearch"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The dashboards are written as small specs (this file's types) and turned
// into Grafana's JSON model with grafana-foundation-sdk. The spec is what
// the tests and the renderer walk; the SDK is what guarantees Grafana's
// schema. Build refuses a panel without a title, a unit or a description,
// so no dashboard can ship one.

// Datasource UIDs the dashboards refer to; the provisioning file creates
// datasources with exactly these UIDs.
const (
	PrometheusUID = "kobs-prometheus"
	TraceStoreUID = "kobs-tracestore"
)

// Kind is a panel's visualisation.
type Kind string

// Panel kinds, named as Grafana's panel plugins.
const (
	TimeSeries Kind = "timeseries"
	Stat       Kind = "stat"
	Table      Kind = "table"
)

// Spec is one dashboard.
type Spec struct {
	File        string // base name under generated/, without .json
	UID, Title  string
	Description string
	Tags        []string
	Vars        []Var
	Rows        []Row
}

// Var is a Prometheus query variable, filled by a label_values() query.
type Var struct {
	Name, Label string
	Query       string // label_values(metric{...}, label)
}

// Row groups panels under a title.
type Row struct {
	Title  string
	Panels []Panel
}

// Panel is one visualisation with its queries. W and H are Grafana grid
// units (24 columns; a row unit is 30 px).
type Panel struct {
	Kind        Kind
	Title       string
	Unit        string // Grafana unit id: short, percentunit, ms, s, Bps, ops, bytes ...
	Description string
	W, H        uint32
	Queries     []Query   // Prometheus
	ES          []ESQuery // Elasticsearch (trace store); a panel has one or the other
	// OnlyDuringFailure marks a panel whose queries return series only
	// while something is wrong (e.g. a missing ISR member); the live test
	// checks it during an induced failure, not in steady state.
	OnlyDuringFailure bool
}

// Query is one PromQL target.
type Query struct {
	Expr    string
	Legend  string
	Instant bool // tables and stats that show the current value
}

// ESQuery is one Elasticsearch target as Grafana's query editor stores it:
// a Lucene query string, bucket aggregations (outermost first) and metrics.
type ESQuery struct {
	Query   string
	Alias   string
	Buckets []ESBucket
	Metrics []ESMetric
}

// ESBucket is a bucket aggregation: date_histogram (Field is the time
// field, Interval "auto" or e.g. "1m") or terms (Size, ordered by count).
type ESBucket struct {
	Type     string // "date_histogram" or "terms"
	Field    string
	Interval string
	Size     int
}

// ESMetric is a metric aggregation: count, avg, max, sum, percentiles
// (Percents), or raw_data (Size documents).
type ESMetric struct {
	Type     string
	Field    string
	Percents []string
	Size     int
	// Missing is the value a sum takes for documents without Field
	// (Grafana's "missing" setting, Elasticsearch's "missing" parameter).
	Missing string
}

func promDS() common.DataSourceRef {
	t, u := "prometheus", PrometheusUID
	return common.DataSourceRef{Type: &t, Uid: &u}
}

func esDS() common.DataSourceRef {
	t, u := "elasticsearch", TraceStoreUID
	return common.DataSourceRef{Type: &t, Uid: &u}
}

// Build turns a spec into Grafana's dashboard model.
func Build(s Spec) (dashboard.Dashboard, error) {
	if err := s.validate(); err != nil {
		return dashboard.Dashboard{}, err
	}
	b := dashboard.NewDashboardBuilder(s.Title).
		Uid(s.UID).
		Description(s.Description).
		Tags(s.Tags).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser)
	for _, v := range s.Vars {
		b.WithVariable(dashboard.NewQueryVariableBuilder(v.Name).
			Label(v.Label).
			Datasource(promDS()).
			Query(dashboard.StringOrMap{String: cog.ToPtr(v.Query)}).
			Definition(v.Query).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*"))
	}
	var id uint32
	for _, r := range s.Rows {
		b.WithRow(dashboard.NewRowBuilder(r.Title))
		for _, p := range r.Panels {
			id++
			b.WithPanel(panelBuilder(p, id))
		}
	}
	d, err := b.Build()
	if err != nil {
		return d, fmt.Errorf("dashboard %s: %w", s.UID, err)
	}
	return d, nil
}

func (s Spec) validate() error {
	var errs []error
	if s.File == "" || s.UID == "" || s.Title == "" || s.Description == "" {
		errs = append(errs, fmt.Errorf("dashboard %q: file, uid, title and description are required", s.Title))
	}
	for _, r := range s.Rows {
		for _, p := range r.Panels {
			if p.Title == "" || p.Unit == "" || p.Description == "" {
				errs = append(errs, fmt.Errorf("dashboard %s, panel %q: title, unit and description are required", s.UID, p.Title))
			}
			if (len(p.Queries) == 0) == (len(p.ES) == 0) {
				errs = append(errs, fmt.Errorf("dashboard %s, panel %q: needs Prometheus or Elasticsearch queries (not both)", s.UID, p.Title))
			}
			if p.W == 0 || p.H == 0 || p.W > 24 {
				errs = append(errs, fmt.Errorf("dashboard %s, panel %q: bad size %dx%d", s.UID, p.Title, p.W, p.H))
			}
		}
	}
	return errors.Join(errs...)
}

// targets builds the panel's queries with refIds A, B, ...
func targets(p Panel) []cog.Builder[variants.Dataquery] {
	var out []cog.Builder[variants.Dataquery]
	for i, q := range p.Queries {
		t := prometheus.NewDataqueryBuilder().
			Datasource(promDS()).
			RefId(string(rune('A' + i))).
			Expr(q.Expr).
			LegendFormat(q.Legend)
		if q.Instant {
			t.Instant().Format(prometheus.PromQueryFormatTable)
		} else {
			t.Range()
		}
		out = append(out, t)
	}
	for i, q := range p.ES {
		t := elasticsearch.NewDataqueryBuilder().
			Datasource(esDS()).
			RefId(string(rune('A' + i))).
			Query(q.Query).
			TimeField(TraceTimeField).
			BucketAggs(esBuckets(q.Buckets)).
			Metrics(esMetrics(q.Metrics))
		if q.Alias != "" {
			t.Alias(q.Alias)
		}
		out = append(out, t)
	}
	return out
}

// TraceTimeField is the trace store's event time (Unix ms, mapped as date).
const TraceTimeField = "ts"

func esBuckets(bs []ESBucket) []elasticsearch.BucketAggregation {
	var out []elasticsearch.BucketAggregation
	for i, b := range bs {
		id := fmt.Sprint(i + 2) // Grafana's editor numbers bucket aggs after the first metric
		field := b.Field
		switch b.Type {
		case "date_histogram":
			interval, minDoc := b.Interval, "0"
			out = append(out, elasticsearch.BucketAggregation{DateHistogram: &elasticsearch.DateHistogram{
				Field: &field, Id: id, Type: elasticsearch.BucketAggregationTypeDateHistogram,
				Settings: &elasticsearch.ElasticsearchDateHistogramSettings{Interval: &interval, MinDocCount: &minDoc},
			}})
		case "terms":
			size, minDoc, orderBy, order := fmt.Sprint(b.Size), "1", "_count", elasticsearch.TermsOrderDesc
			out = append(out, elasticsearch.BucketAggregation{Terms: &elasticsearch.Terms{
				Field: &field, Id: id, Type: elasticsearch.BucketAggregationTypeTerms,
				Settings: &elasticsearch.ElasticsearchTermsSettings{Size: &size, MinDocCount: &minDoc, OrderBy: &orderBy, Order: &order},
			}})
		}
	}
	return out
}

func esMetrics(ms []ESMetric) []elasticsearch.MetricAggregation {
	var out []elasticsearch.MetricAggregation
	for i, m := range ms {
		id := fmt.Sprint(i + 1)
		if i > 0 {
			id = fmt.Sprint(i + 10) // keep metric ids apart from bucket ids
		}
		field := m.Field
		switch m.Type {
		case "count":
			out = append(out, elasticsearch.MetricAggregation{Count: &elasticsearch.Count{Type: elasticsearch.MetricAggregationTypeCount, Id: id}})
		case "percentiles":
			out = append(out, elasticsearch.MetricAggregation{Percentiles: &elasticsearch.Percentiles{
				Type: elasticsearch.MetricAggregationTypePercentiles, Field: &field, Id: id,
				Settings: &elasticsearch.ElasticsearchPercentilesSettings{Percents: m.Percents},
			}})
		case "max":
			out = append(out, elasticsearch.MetricAggregation{Max: &elasticsearch.Max{Type: elasticsearch.MetricAggregationTypeMax, Field: &field, Id: id}})
		case "avg":
			out = append(out, elasticsearch.MetricAggregation{Average: &elasticsearch.Average{Type: elasticsearch.MetricAggregationTypeAvg, Field: &field, Id: id}})
		case "sum":
			sum := &elasticsearch.Sum{Type: elasticsearch.MetricAggregationTypeSum, Field: &field, Id: id}
			if m.Missing != "" {
				missing := m.Missing
				sum.Settings = &elasticsearch.ElasticsearchSumSettings{Missing: &missing}
			}
			out = append(out, elasticsearch.MetricAggregation{Sum: sum})
		case "raw_data":
			size := fmt.Sprint(m.Size)
			out = append(out, elasticsearch.MetricAggregation{RawData: &elasticsearch.RawData{
				Type: elasticsearch.MetricAggregationTypeRawData, Id: id,
				Settings: &elasticsearch.ElasticsearchRawDataSettings{Size: &size},
			}})
		}
	}
	return out
}

func panelBuilder(p Panel, id uint32) cog.Builder[dashboard.Panel] {
	ds := promDS()
	if len(p.ES) > 0 {
		ds = esDS()
	}
	switch p.Kind {
	case Stat:
		return stat.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Description).Unit(p.Unit).
			Datasource(ds).Targets(targets(p)).Span(p.W).Height(p.H).
			GraphMode(common.BigValueGraphModeArea).ColorMode(common.BigValueColorModeValue).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
	case Table:
		return table.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Description).Unit(p.Unit).
			Datasource(ds).Targets(targets(p)).Span(p.W).Height(p.H).ShowHeader(true)
	default:
		return timeseries.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Description).Unit(p.Unit).
			Datasource(ds).Targets(targets(p)).Span(p.W).Height(p.H).
			LineWidth(1).FillOpacity(10).ShowPoints(common.VisibilityModeNever).
			Legend(common.NewVizLegendOptionsBuilder().
				DisplayMode(common.LegendDisplayModeTable).
				Placement(common.LegendPlacementBottom).
				ShowLegend(true).
				Calcs([]string{"lastNotNull", "max"})).
			Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	}
}
