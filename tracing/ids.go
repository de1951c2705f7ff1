package tracing

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
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

// newTimedID returns a message id that carries its send time: the first 7
// bytes are the Unix time in microseconds (big-endian, good until the year
// 4253), the other 9 random. The producer hook reads the send time back
// from the id at the acknowledgement instead of allocating per-record state
// to carry it, and ids sort by send time. The id doubles as the trace id of
// a message without an upstream trace; a time prefix in a W3C trace id is
// what AWS X-Ray's ids do too, and the random part is the right-most 9
// bytes, where W3C Trace Context level 2 puts the randomness.
func newTimedID(t time.Time) (id [16]byte) {
	binary.BigEndian.PutUint64(id[:8], uint64(t.UnixMicro())<<8) // 7 bytes of time, then 9 random
	binary.LittleEndian.PutUint64(id[8:], rand.Uint64())
	id[7] = byte(rand.Uint64())
	return id
}

// timedIDSpan is a span id for the one producer span of a trace whose id
// is the timed id: its last 8 random bytes, never all zero.
func timedIDSpan(id [16]byte) (s [8]byte) {
	copy(s[:], id[8:])
	s[7] |= 1
	return s
}

// timedIDTime reads the send time from the hex form of a newTimedID id.
func timedIDTime(hexID []byte) (time.Time, bool) {
	if len(hexID) != 32 {
		return time.Time{}, false
	}
	var us uint64
	for _, c := range hexID[:14] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return time.Time{}, false
		}
		us = us<<4 | uint64(v)
	}
	return time.UnixMicro(int64(us)), true
}

// traceIDOf returns the trace id (hex) of a traceparent header value, or
// nil when it is malformed. msgID short-cuts the check for the traceparent
// the hook minted from the message id.
func traceIDOf(tp, msgID []byte) []byte {
	if len(tp) < 55 {
		return nil
	}
	if t := tp[3:35]; string(t) == string(msgID) {
		return t
	}
	if _, _, ok := parseTraceparent(tp); !ok {
		return nil
	}
	return tp[3:35]
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
