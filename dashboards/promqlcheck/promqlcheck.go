// Package promqlcheck collects every PromQL expression the generated
// dashboards and alert rules contain, parses it with Prometheus's own
// parser (promql/parser) and names the metrics it reads. Tests use it;
// the kobs binary does not, so the parser's dependencies stay out of it.
package promqlcheck

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Expr is one PromQL expression and where it comes from.
type Expr struct {
	Where  string // "kobs-topics.json: panel \"Bytes in\" A", "kobs-rules.yml: KobsBrokerDown"
	PromQL string // as written, Grafana variables included
	Kind   string // "panel", "variable" or "rule"
	Panel  string // panel title (panels only)
	// DuringFailure is set for panels that only have data during a failure.
	DuringFailure bool
}

// Dashboards reads every *.json dashboard in dir and returns the PromQL of
// each Prometheus target and each label_values variable (its selector).
func Dashboards(dir string) ([]Expr, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Expr
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d struct {
			Panels []struct {
				Type    string `json:"type"`
				Title   string `json:"title"`
				Targets []struct {
					Expr  *string `json:"expr"`
					RefID string  `json:"refId"`
				} `json:"targets"`
			} `json:"panels"`
			Templating struct {
				List []struct {
					Name  string `json:"name"`
					Query any    `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		base := filepath.Base(f)
		for _, p := range d.Panels {
			for _, t := range p.Targets {
				if t.Expr == nil {
					continue // an Elasticsearch target
				}
				out = append(out, Expr{Where: fmt.Sprintf("%s: panel %q %s", base, p.Title, t.RefID), PromQL: *t.Expr, Kind: "panel", Panel: p.Title})
			}
		}
		for _, v := range d.Templating.List {
			q, _ := v.Query.(string)
			sel, _, err := LabelValues(q)
			if err != nil {
				return nil, fmt.Errorf("%s: variable %s: %w", base, v.Name, err)
			}
			out = append(out, Expr{Where: fmt.Sprintf("%s: variable %s", base, v.Name), PromQL: sel, Kind: "variable"})
		}
	}
	return out, nil
}

var labelValuesRe = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// LabelValues splits Grafana's label_values(selector, label) variable query.
func LabelValues(q string) (selector, label string, err error) {
	m := labelValuesRe.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return "", "", fmt.Errorf("not a label_values(selector, label) query: %q", q)
	}
	return strings.TrimSpace(m[1]), m[2], nil
}

// Rules reads a Prometheus rule file and returns each rule's expression.
func Rules(file string) ([]Expr, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var rf struct {
		Groups []struct {
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []Expr
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			out = append(out, Expr{Where: fmt.Sprintf("%s: %s%s", filepath.Base(file), r.Alert, r.Record), PromQL: r.Expr, Kind: "rule"})
		}
	}
	return out, nil
}

// Substitute replaces Grafana's variables as Grafana would before sending a
// query: $__rate_interval and friends by a duration, every other $var by
// its value (".*" when the variable is "All", as the dashboards' allValue).
func Substitute(expr string, rateInterval string, vars map[string]string) string {
	r := strings.NewReplacer("$__rate_interval", rateInterval, "$__interval", rateInterval, "$__range", rateInterval)
	expr = r.Replace(expr)
	return varRe.ReplaceAllStringFunc(expr, func(v string) string {
		if val, ok := vars[v[1:]]; ok {
			return val
		}
		return ".*"
	})
}

var varRe = regexp.MustCompile(`\$[a-zA-Z_][a-zA-Z0-9_]*`)

// Parse parses an expression (Grafana variables substituted) with
// Prometheus's parser.
func Parse(expr string) (parser.Expr, error) {
	return parser.NewParser(parser.Options{}).ParseExpr(Substitute(expr, "5m", nil))
}

// MetricNames parses expr and returns the metric names its selectors read,
// sorted. A selector without a metric name is an error: every query must
// say what it reads.
func MetricNames(expr string) ([]string, error) {
	e, err := Parse(expr)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s has no metric name", vs)
			return nil
		}
		set[name] = true
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Synthetic are the series Prometheus makes itself rather than scrapes.
var Synthetic = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true, "ALERTS": true, "ALERTS_FOR_STATE": true}
