package tracing

import (
	"encoding/hex"
	"hash/fnv"
	"math"
	"math/rand/v2"
)

// newID returns 16 random bytes; math/rand/v2's global source is
// per-thread ChaCha8 (no lock), and ids need uniqueness, not secrecy.
func newID() (id [16]byte) {
	a, b := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		id[i] = byte(a >> (8 * i))
		id[8+i] = byte(b >> (8 * i))
	}
	return id
}

func newSpanID() (id [8]byte) {
	a := rand.Uint64() | 1 // the all-zero span id is invalid in W3C trace context
	for i := range 8 {
		id[i] = byte(a >> (8 * i))
	}
	return id
}

// sampler decides per message id. Deterministic: the producer and every
// consumer of a message reach the same decision from the id alone.
type sampler struct{ threshold uint64 }

func newSampler(rate float64) sampler {
	switch {
	case rate >= 1:
		return sampler{math.MaxUint64}
	case rate <= 0:
		return sampler{0}
	}
	return sampler{uint64(rate * float64(math.MaxUint64))}
}

func (s sampler) sampled(msgID []byte) bool {
	switch s.threshold {
	case math.MaxUint64:
		return true
	case 0:
		return false
	}
	h := fnv.New64a()
	_, _ = h.Write(msgID)
	return h.Sum64() < s.threshold
}

// traceparent formats a W3C traceparent, version 00, sampled.
func traceparent(traceID [16]byte, spanID [8]byte) []byte {
	return appendTraceparent(make([]byte, 0, 55), traceID, spanID)
}

// appendTraceparent appends "00-<trace id>-<span id>-01" (55 bytes); the
// span id's hex is at [36:52] of what it appends.
func appendTraceparent(b []byte, traceID [16]byte, spanID [8]byte) []byte {
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, traceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, spanID[:])
	return append(b, "-01"...)
}

// parseTraceparent returns the trace and parent span ids (hex) of a W3C
// traceparent, or ok=false when it is malformed.
func parseTraceparent(v []byte) (traceID, spanID string, ok bool) {
	// version "-" 32 hex "-" 16 hex "-" 2 hex; later versions may append fields.
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", "", false
	}
	if string(v[:2]) == "ff" || !isHex(v[:2]) || !isHex(v[3:35]) || !isHex(v[36:52]) || !isHex(v[53:55]) {
		return "", "", false
	}
	t, s := string(v[3:35]), string(v[36:52])
	if t == "00000000000000000000000000000000" || s == "0000000000000000" {
		return "", "", false
	}
	return t, s, true
}

func isHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
