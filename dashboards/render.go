package dashboards

import (
	"context"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Renderer draws dashboards with live data into PNG images: each panel at
// its place on Grafana's 24-column grid, with its title, its unit on the
// axis and values, and a legend. It is the static snapshot for incident
// reports and the way to look at the dashboards without a Grafana server.
type Renderer struct {
	Prom PromClient
	ES   *ESClient // nil: Elasticsearch panels say "no trace store"
	// From and To bound the time range; Step is the query resolution
	// (default: range/240, at least ScrapeInterval).
	From, To time.Time
	Step     time.Duration
	// ScrapeInterval is Prometheus's scrape interval, for $__rate_interval
	// (max(step + scrape, 4 * scrape), as Grafana computes it). Default 15s.
	ScrapeInterval time.Duration
	// Vars fixes variable values (regexes); unset variables are "All" (.*).
	Vars map[string]string
}

// Grid geometry in pixels: Grafana's 24 columns over 1440 px and 30 px per
// grid row.
const (
	colPx    = 60.0
	rowPx    = 30.0
	headerPx = 44.0
	gridCols = 24
)

// PanelResult is what a panel's queries returned while rendering.
type PanelResult struct {
	Panel  string
	Series int   // series (or table rows) drawn
	Err    error // a query that failed
}

// RenderAll renders every dashboard into dir/<file>.png and reports each
// panel's result.
func (r *Renderer) RenderAll(ctx context.Context, dir string) (map[string][]PanelResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := map[string][]PanelResult{}
	for _, s := range All() {
		f, err := os.Create(filepath.Join(dir, s.File+".png"))
		if err != nil {
			return nil, err
		}
		res, err := r.Render(ctx, s, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.File, err)
		}
		out[s.File] = res
	}
	return out, nil
}

// placed is a panel or row header with its grid position.
type placed struct {
	row        string // row header text (a row, not a panel)
	panel      Panel
	x, y, w, h uint32
}

// layout reproduces grafana-foundation-sdk's placement (DashboardBuilder
// WithRow/WithPanel): rows take a full-width line, panels flow left to
// right and wrap at 24 columns.
func layout(s Spec) ([]placed, uint32) {
	var out []placed
	var x, y, lastH uint32
	for _, row := range s.Rows {
		y += lastH
		out = append(out, placed{row: row.Title, x: 0, y: y, w: gridCols, h: 1})
		y++
		x, lastH = 0, 0
		for _, p := range row.Panels {
			out = append(out, placed{panel: p, x: x, y: y, w: p.W, h: p.H})
			x += p.W
			lastH = max(lastH, p.H)
			if x >= gridCols {
				x, y, lastH = 0, y+lastH, 0
			}
		}
	}
	return out, y + lastH
}

// Render draws one dashboard as PNG into w.
func (r *Renderer) Render(ctx context.Context, s Spec, w io.Writer) ([]PanelResult, error) {
	r.defaults()
	cells, rows := layout(s)
	width := vg.Length(gridCols * colPx)
	height := vg.Length(headerPx + float64(rows)*rowPx)
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(72), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)

	title := fmt.Sprintf("%s   %s – %s UTC", s.Title, r.From.UTC().Format("2006-01-02 15:04:05"), r.To.UTC().Format("15:04:05"))
	if vars := r.varsLine(s); vars != "" {
		title += "   " + vars
	}
	dc.FillText(textStyle(16, color.Black, draw.XLeft, draw.YCenter), vg.Point{X: 8, Y: height - headerPx/2}, title)

	var results []PanelResult
	for _, c := range cells {
		top := height - vg.Length(headerPx+float64(c.y)*rowPx)
		rect := draw.Crop(dc, vg.Length(float64(c.x)*colPx)+3, -(width - vg.Length(float64(c.x+c.w)*colPx) + 3), 0, 0)
		rect.Rectangle.Max.Y = top - 3
		rect.Rectangle.Min.Y = top - vg.Length(float64(c.h)*rowPx) + 3
		if c.row != "" {
			rect.FillText(textStyle(13, color.Gray{Y: 60}, draw.XLeft, draw.YCenter), vg.Point{X: rect.Min.X + 2, Y: (rect.Min.Y + rect.Max.Y) / 2}, "▾ "+c.row)
			continue
		}
		res := r.drawPanel(ctx, rect, c.panel)
		results = append(results, res)
	}
	png := vgimg.PngCanvas{Canvas: img}
	if _, err := png.WriteTo(w); err != nil {
		return nil, err
	}
	return results, nil
}

func (r *Renderer) defaults() {
	if r.To.IsZero() {
		r.To = time.Now()
	}
	if r.From.IsZero() {
		r.From = r.To.Add(-time.Hour)
	}
	if r.ScrapeInterval == 0 {
		r.ScrapeInterval = 15 * time.Second
	}
	if r.Step == 0 {
		r.Step = max(r.To.Sub(r.From)/240, r.ScrapeInterval)
	}
}

func (r *Renderer) varsLine(s Spec) string {
	var parts []string
	for _, v := range s.Vars {
		val := r.Vars[v.Name]
		if val == "" {
			val = "All"
		}
		parts = append(parts, v.Label+": "+val)
	}
	return strings.Join(parts, "  ")
}

// RateInterval is Grafana's $__rate_interval for this renderer.
func (r *Renderer) RateInterval() string {
	d := max(r.Step+r.ScrapeInterval, 4*r.ScrapeInterval)
	return fmt.Sprintf("%ds", int(math.Ceil(d.Seconds())))
}

// Expr substitutes the dashboard variables in a panel query as Grafana does.
func (r *Renderer) Expr(expr string) string {
	expr = strings.NewReplacer("$__rate_interval", r.RateInterval(), "$__interval", fmt.Sprintf("%ds", int(r.Step.Seconds()))).Replace(expr)
	for _, name := range varNames(expr) {
		val := r.Vars[name]
		if val == "" {
			val = ".*"
		}
		expr = strings.ReplaceAll(expr, "$"+name, val)
	}
	return expr
}

func varNames(expr string) []string {
	var out []string
	for i := 0; i < len(expr); i++ {
		if expr[i] != '$' {
			continue
		}
		j := i + 1
		for j < len(expr) && (expr[j] == '_' || expr[j] >= 'a' && expr[j] <= 'z' || expr[j] >= 'A' && expr[j] <= 'Z' || expr[j] >= '0' && expr[j] <= '9') {
			j++
		}
		if j > i+1 {
			out = append(out, expr[i+1:j])
		}
	}
	// Longest first, so $topic does not eat $topics.
	sort.Slice(out, func(a, b int) bool { return len(out[a]) > len(out[b]) })
	return out
}

// namedSeries is a series with its legend name.
type namedSeries struct {
	name string
	s    Series
}

// PanelData runs a panel's queries and returns the legend-named series.
func (r *Renderer) PanelData(ctx context.Context, p Panel) ([]namedSeries, [][]string, []string, error) {
	r.defaults()
	if len(p.ES) > 0 {
		if r.ES == nil {
			return nil, nil, nil, fmt.Errorf("no trace store URL (--es)")
		}
		res, errs, err := r.ES.Search(ctx, p.ES, r.From, r.To)
		if err != nil {
			return nil, nil, nil, err
		}
		var out []namedSeries
		var rows [][]string
		var cols []string
		for i, rr := range res {
			if errs[i] != nil {
				return nil, nil, nil, errs[i]
			}
			for _, s := range rr.Series {
				out = append(out, namedSeries{name: esLegend(s.Labels), s: s})
			}
			rows, cols = append(rows, rr.Rows...), rr.Columns
		}
		return out, rows, cols, nil
	}
	var out []namedSeries
	for _, q := range p.Queries {
		expr := r.Expr(q.Expr)
		var ss []Series
		var err error
		if q.Instant || p.Kind == Table {
			ss, err = r.Prom.Query(ctx, expr, r.To)
		} else {
			ss, err = r.Prom.QueryRange(ctx, expr, r.From, r.To, r.Step)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		for _, s := range ss {
			out = append(out, namedSeries{name: Legend(q.Legend, s.Labels), s: s})
		}
	}
	if p.Kind == Table {
		rows, cols := tableRows(p, out)
		return out, rows, cols, nil
	}
	return out, nil, nil, nil
}

func esLegend(l map[string]string) string {
	var parts []string
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, l[k])
	}
	return strings.Join(parts, " ")
}

// tableRows joins instant query results on their label sets: one row per
// label set, one value column per query (named by its legend).
func tableRows(p Panel, ss []namedSeries) ([][]string, []string) {
	labelKeys := map[string]bool{}
	for _, s := range ss {
		for k := range s.s.Labels {
			if k != "__name__" && k != "job" {
				labelKeys[k] = true
			}
		}
	}
	var keys []string
	for k := range labelKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cols := append([]string{}, keys...)
	valueCol := map[string]int{}
	for _, q := range p.Queries {
		if _, ok := valueCol[q.Legend]; !ok {
			valueCol[q.Legend] = len(cols)
			cols = append(cols, q.Legend)
		}
	}
	rowsByKey := map[string][]string{}
	var order []string
	for _, s := range ss {
		var id []string
		for _, k := range keys {
			id = append(id, s.s.Labels[k])
		}
		key := strings.Join(id, "\x00")
		row, ok := rowsByKey[key]
		if !ok {
			row = make([]string, len(cols))
			copy(row, id)
			rowsByKey[key] = row
			order = append(order, key)
		}
		if n := len(s.s.Values); n > 0 {
			// the legend of an instant query is its column name
			for _, q := range p.Queries {
				if s.name == Legend(q.Legend, s.s.Labels) {
					row[valueCol[q.Legend]] = FormatValue(s.s.Values[n-1], p.Unit)
					break
				}
			}
		}
	}
	var rows [][]string
	for _, k := range order {
		rows = append(rows, rowsByKey[k])
	}
	// Label columns in natural order: topic, then partition 2 before 10.
	sort.SliceStable(rows, func(a, b int) bool {
		for j := range keys {
			if rows[a][j] == rows[b][j] {
				continue
			}
			x, errx := strconv.ParseFloat(rows[a][j], 64)
			y, erry := strconv.ParseFloat(rows[b][j], 64)
			if errx == nil && erry == nil {
				return x < y
			}
			return rows[a][j] < rows[b][j]
		}
		return false
	})
	return rows, cols
}

var (
	frameColor = color.Gray{Y: 200}
	titleColor = color.Gray{Y: 30}
	mutedColor = color.Gray{Y: 120}
)

func textStyle(size vg.Length, c color.Color, xa text.XAlignment, ya text.YAlignment) draw.TextStyle {
	return draw.TextStyle{
		Color:   c,
		Font:    font.From(font.Font{Typeface: "Liberation", Variant: "Sans"}, size),
		XAlign:  xa,
		YAlign:  ya,
		Handler: plot.DefaultTextHandler,
	}
}

func (r *Renderer) drawPanel(ctx context.Context, c draw.Canvas, p Panel) PanelResult {
	res := PanelResult{Panel: p.Title}
	// Frame and title bar.
	c.StrokeLines(draw.LineStyle{Color: frameColor, Width: 1}, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Min.Y},
	})
	c.FillText(textStyle(12, titleColor, draw.XLeft, draw.YTop), vg.Point{X: c.Min.X + 6, Y: c.Max.Y - 5}, p.Title)
	body := draw.Crop(c, 4, -4, 4, -22)

	data, rows, cols, err := r.PanelData(ctx, p)
	if err != nil {
		res.Err = err
		noData(body, "query failed: "+truncate(err.Error(), 120))
		return res
	}
	switch p.Kind {
	case Stat:
		res.Series = len(data)
		drawStat(body, p, data)
	case Table:
		res.Series = len(rows)
		drawTable(body, cols, rows)
	default:
		res.Series = len(data)
		drawTimeSeries(body, p, data, r.From, r.To)
	}
	return res
}

func noData(c draw.Canvas, msg string) {
	c.FillText(textStyle(12, mutedColor, draw.XCenter, draw.YCenter), c.Center(), msg)
}

func drawStat(c draw.Canvas, p Panel, data []namedSeries) {
	if len(data) == 0 {
		noData(c, "No data")
		return
	}
	// One big value per series, side by side (Grafana's auto layout).
	n := len(data)
	w := (c.Max.X - c.Min.X) / vg.Length(n)
	for i, d := range data {
		x := c.Min.X + w*vg.Length(i) + w/2
		v := math.NaN()
		if k := len(d.s.Values); k > 0 {
			v = d.s.Values[k-1]
		}
		size := vg.Length(math.Min(28, float64(c.Max.Y-c.Min.Y)*0.45))
		c.FillText(textStyle(size, color.RGBA{R: 30, G: 120, B: 60, A: 255}, draw.XCenter, draw.YCenter), vg.Point{X: x, Y: (c.Min.Y+c.Max.Y)/2 + 6}, FormatValue(v, p.Unit))
		c.FillText(textStyle(9, mutedColor, draw.XCenter, draw.YBottom), vg.Point{X: x, Y: c.Min.Y + 1}, truncate(d.name, 40))
	}
}

func drawTable(c draw.Canvas, cols []string, rows [][]string) {
	if len(rows) == 0 {
		noData(c, "No data")
		return
	}
	lineH := vg.Length(13)
	colW := (c.Max.X - c.Min.X) / vg.Length(max(len(cols), 1))
	y := c.Max.Y - 2
	for j, col := range cols {
		c.FillText(textStyle(10, titleColor, draw.XLeft, draw.YTop), vg.Point{X: c.Min.X + colW*vg.Length(j) + 2, Y: y}, truncate(col, 28))
	}
	y -= lineH
	c.StrokeLine2(draw.LineStyle{Color: frameColor, Width: 1}, c.Min.X, y+1, c.Max.X, y+1)
	for i, row := range rows {
		if y-lineH < c.Min.Y {
			c.FillText(textStyle(9, mutedColor, draw.XLeft, draw.YTop), vg.Point{X: c.Min.X + 2, Y: y}, fmt.Sprintf("… %d more rows", len(rows)-i))
			break
		}
		for j, v := range row {
			c.FillText(textStyle(9, color.Black, draw.XLeft, draw.YTop), vg.Point{X: c.Min.X + colW*vg.Length(j) + 2, Y: y - 1}, truncate(v, 30))
		}
		y -= lineH
	}
}

func drawTimeSeries(c draw.Canvas, p Panel, data []namedSeries, from, to time.Time) {
	pl := plot.New()
	pl.BackgroundColor = color.Transparent
	pl.X.Min, pl.X.Max = float64(from.Unix()), float64(to.Unix())
	format := "15:04"
	if to.Sub(from) < 10*time.Minute {
		format = "15:04:05"
	}
	pl.X.Tick.Marker = plot.TimeTicks{Format: format}
	pl.Y.Tick.Marker = unitTicks{unit: p.Unit}
	small := font.From(font.Font{Typeface: "Liberation", Variant: "Sans"}, 8)
	pl.X.Tick.Label.Font, pl.Y.Tick.Label.Font = small, small
	pl.Legend.TextStyle.Font = small
	pl.Legend.Top, pl.Legend.Left = true, true
	pl.Legend.ThumbnailWidth = 10
	pl.Add(plotter.NewGrid())
	if len(data) == 0 {
		pl.Y.Min, pl.Y.Max = 0, 1
		pl.Draw(c)
		noData(c, "No data")
		return
	}
	sort.SliceStable(data, func(i, j int) bool { return data[i].name < data[j].name })
	minY, maxY := math.Inf(1), math.Inf(-1)
	for i, d := range data {
		xys := make(plotter.XYs, 0, len(d.s.Values))
		for k, v := range d.s.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: d.s.Times[k], Y: v})
			minY, maxY = math.Min(minY, v), math.Max(maxY, v)
		}
		if len(xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			continue
		}
		line.Color = palette[i%len(palette)]
		line.Width = 1.2
		pl.Add(line)
		if i < 8 {
			pl.Legend.Add(truncate(d.name, 48), line)
		} else if i == 8 {
			pl.Legend.Add(fmt.Sprintf("… %d more series", len(data)-8))
		}
	}
	if minY > maxY {
		minY, maxY = 0, 1
	}
	if minY == maxY {
		minY, maxY = minY-1, maxY+1
		if minY < 0 && maxY-1 >= 0 {
			minY = 0
		}
	}
	pl.Y.Min, pl.Y.Max = math.Min(minY, 0), maxY+(maxY-math.Min(minY, 0))*0.35 // head room for the legend
	pl.Draw(c)
}

var palette = []color.Color{
	color.RGBA{R: 115, G: 191, B: 105, A: 255}, color.RGBA{R: 242, G: 204, B: 12, A: 255},
	color.RGBA{R: 87, G: 148, B: 242, A: 255}, color.RGBA{R: 255, G: 120, B: 10, A: 255},
	color.RGBA{R: 242, G: 73, B: 92, A: 255}, color.RGBA{R: 184, G: 119, B: 217, A: 255},
	color.RGBA{R: 112, G: 219, B: 237, A: 255}, color.RGBA{R: 150, G: 115, B: 85, A: 255},
}

// unitTicks labels the Y axis in the panel's unit.
type unitTicks struct{ unit string }

func (u unitTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = FormatValue(ticks[i].Value, u.unit)
		}
	}
	return ticks
}

// FormatValue formats a value in a Grafana unit: short (SI suffixes),
// percentunit (×100 %), ms, s, µs, bytes, Bps, reqps, ops, none.
func FormatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	switch unit {
	case "percentunit":
		return trimFloat(v*100) + "%"
	case "ms":
		if math.Abs(v) >= 1000 {
			return trimFloat(v/1000) + " s"
		}
		return trimFloat(v) + " ms"
	case "µs":
		if math.Abs(v) >= 1000 {
			return FormatValue(v/1000, "ms")
		}
		return trimFloat(v) + " µs"
	case "s":
		return trimFloat(v) + " s"
	case "bytes":
		return si(v, 1024, []string{" B", " KiB", " MiB", " GiB", " TiB"})
	case "Bps":
		return si(v, 1000, []string{" B/s", " kB/s", " MB/s", " GB/s", " TB/s"})
	case "reqps":
		return si(v, 1000, []string{" req/s", "k req/s", "M req/s"})
	case "ops":
		return si(v, 1000, []string{" ops/s", "k ops/s", "M ops/s"})
	case "none":
		return trimFloat(v)
	case "dateTimeAsIso": // Unix milliseconds
		return time.UnixMilli(int64(v)).UTC().Format("2006-01-02 15:04:05")
	default:
		return si(v, 1000, []string{"", "K", "M", "B", "T"})
	}
}

func si(v, base float64, suffixes []string) string {
	i := 0
	for math.Abs(v) >= base && i < len(suffixes)-1 {
		v /= base
		i++
	}
	return trimFloat(v) + suffixes[i]
}

func trimFloat(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
	default:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
	}
}
