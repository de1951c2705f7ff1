package jolokia

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// javaDouble is a float64 that marshals like Java's Double.toString, which
// is what Jolokia (json-simple) writes: 0.0 rather than 0, 1.0E-4 rather
// than 0.0001, and null for NaN and infinities. Keeping longs and doubles
// distinguishable matters to clients that type their fields.
type javaDouble float64

func (d javaDouble) MarshalJSON() ([]byte, error) {
	return []byte(formatJavaDouble(float64(d))), nil
}

func formatJavaDouble(f float64) string {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "null"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	// Computerized scientific notation: d.dddE[-]n.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

// jsonValue converts a telemetry value to what Jolokia would serialise.
func jsonValue(v telemetry.Value) any {
	switch v.Kind() {
	case telemetry.ValueInt64:
		return v.Int64()
	case telemetry.ValueFloat64:
		f, _ := v.Float64()
		return javaDouble(f)
	}
	return v.Str()
}

// MarshalJSON writes the response with Jolokia's keys: request, value,
// status, timestamp on success; request, status, error_type, error,
// stacktrace on failure (no timestamp), plus ".error" and error_type_jmx for
// Jolokia 2.
func (r Response) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	field := func(k string, v any) error {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := marshal(v)
		if err != nil {
			return err
		}
		b.Write(vb)
		return nil
	}
	if r.Request != nil {
		if err := field("request", r.Request); err != nil {
			return nil, err
		}
	}
	if r.ErrorType == "" {
		if err := field("value", r.Value); err != nil {
			return nil, err
		}
		_ = field("status", r.Status)
		_ = field("timestamp", r.Timestamp)
	} else {
		if r.Marker {
			_ = field(".error", true)
		}
		_ = field("status", r.Status)
		_ = field("error_type", r.ErrorType)
		_ = field("error", r.Error)
		if r.ErrorTypeJMX != "" {
			_ = field("error_type_jmx", r.ErrorTypeJMX)
		}
		if r.HasStack {
			_ = field("stacktrace", r.Stacktrace)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping: json-simple writes "<" and
// ">" as they are, and ObjectName-like strings contain them.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
