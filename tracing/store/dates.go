package store

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Dates are indexed as epoch milliseconds, Elasticsearch's internal
// representation of the "date" type, so ranges, sorting and the sort values
// we return ("sort":[1732531200000]) match Elasticsearch.

// dateLayouts cover strict_date_optional_time: a date, optionally followed by
// a time with optional fraction and zone. Missing zones mean UTC.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02T15",
	"2006-01-02",
	"2006-01",
	"2006",
}

func parseDateString(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("failed to parse date field [%s] with format [strict_date_optional_time||epoch_millis]", s)
}

// looksLikeDate is Elasticsearch's dynamic date detection
// (strict_date_optional_time): only strings starting yyyy-MM-dd qualify, so
// numbers-in-strings and free text stay text.
func looksLikeDate(s string) bool {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	_, err := parseDateString(s)
	return err == nil
}

// dateValue converts a JSON value of a date field to epoch milliseconds
// under the field's format (default strict_date_optional_time||epoch_millis;
// epoch_second is honoured when it is the format).
func dateValue(v any, format string) (int64, error) {
	epochSeconds := strings.Contains(format, "epoch_second") && !strings.Contains(format, "epoch_millis")
	num := func(s string) (int64, bool) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		if epochSeconds {
			f *= 1000
		}
		return int64(f), true
	}
	switch x := v.(type) {
	case json.Number:
		if ms, ok := num(x.String()); ok {
			return ms, nil
		}
	case float64:
		if epochSeconds {
			x *= 1000
		}
		return int64(x), nil
	case string:
		if t, err := parseDateString(x); err == nil {
			return t.UnixMilli(), nil
		}
		if ms, ok := num(x); ok {
			return ms, nil
		}
		if format == "" {
			format = "strict_date_optional_time||epoch_millis"
		}
		return 0, fmt.Errorf("failed to parse date field [%s] with format [%s]", x, format)
	}
	return 0, fmt.Errorf("failed to parse date field [%v]", v)
}

// dateMath evaluates a range bound: an absolute date (anything dateValue
// accepts) or Elasticsearch date math "now-15m", "now/d", "2026-11-25||+1d/d".
// roundUp selects the end of the rounded unit, which Elasticsearch uses for
// lte/gt bounds.
func dateMath(v any, format string, now time.Time, roundUp bool) (int64, error) {
	s, ok := v.(string)
	if !ok {
		return dateValue(v, format)
	}
	var base time.Time
	var expr string
	switch {
	case strings.HasPrefix(s, "now"):
		base, expr = now.UTC(), s[3:]
	case strings.Contains(s, "||"):
		i := strings.Index(s, "||")
		ms, err := dateValue(s[:i], format)
		if err != nil {
			return 0, err
		}
		base, expr = time.UnixMilli(ms).UTC(), s[i+2:]
	default:
		return dateValue(s, format)
	}
	t := base
	for len(expr) > 0 {
		op := expr[0]
		expr = expr[1:]
		switch op {
		case '+', '-':
			j := 0
			for j < len(expr) && expr[j] >= '0' && expr[j] <= '9' {
				j++
			}
			n := 1
			if j > 0 {
				n, _ = strconv.Atoi(expr[:j])
			}
			if j >= len(expr) {
				return 0, fmt.Errorf("truncated date math [%s]", s)
			}
			unit := expr[j]
			expr = expr[j+1:]
			if op == '-' {
				n = -n
			}
			var err error
			if t, err = addUnit(t, n, unit); err != nil {
				return 0, fmt.Errorf("%v in [%s]", err, s)
			}
		case '/':
			if len(expr) == 0 {
				return 0, fmt.Errorf("truncated date math [%s]", s)
			}
			unit := expr[0]
			expr = expr[1:]
			start, err := roundDown(t, unit)
			if err != nil {
				return 0, fmt.Errorf("%v in [%s]", err, s)
			}
			t = start
			if roundUp {
				next, _ := addUnit(start, 1, unit)
				t = next.Add(-time.Millisecond)
			}
		default:
			return 0, fmt.Errorf("operator not supported for date math [%s]", s)
		}
	}
	return t.UnixMilli(), nil
}

func addUnit(t time.Time, n int, unit byte) (time.Time, error) {
	switch unit {
	case 'y':
		return t.AddDate(n, 0, 0), nil
	case 'M':
		return t.AddDate(0, n, 0), nil
	case 'w':
		return t.AddDate(0, 0, 7*n), nil
	case 'd':
		return t.AddDate(0, 0, n), nil
	case 'h', 'H':
		return t.Add(time.Duration(n) * time.Hour), nil
	case 'm':
		return t.Add(time.Duration(n) * time.Minute), nil
	case 's':
		return t.Add(time.Duration(n) * time.Second), nil
	}
	return t, fmt.Errorf("unit [%c] not supported for date math", unit)
}

func roundDown(t time.Time, unit byte) (time.Time, error) {
	y, mo, d := t.Date()
	switch unit {
	case 'y':
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), nil
	case 'M':
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC), nil
	case 'w':
		day := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
		off := (int(day.Weekday()) + 6) % 7 // ISO weeks start on Monday
		return day.AddDate(0, 0, -off), nil
	case 'd':
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC), nil
	case 'h', 'H':
		return t.Truncate(time.Hour), nil
	case 'm':
		return t.Truncate(time.Minute), nil
	case 's':
		return t.Truncate(time.Second), nil
	}
	return t, fmt.Errorf("unit [%c] not supported for date math", unit)
}
