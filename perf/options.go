package perf

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// parseAcks maps Kafka's acks values to kgo's. It also reports whether the
// value means all in-sync replicas, because kgo only allows idempotent
// writes with acks=all.
func parseAcks(s string) (kgo.Acks, bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0":
		return kgo.NoAck(), false, nil
	case "1":
		return kgo.LeaderAck(), false, nil
	case "all", "-1", "":
		return kgo.AllISRAcks(), true, nil
	}
	return kgo.Acks{}, false, fmt.Errorf("acks %q: want 0, 1, all or -1", s)
}

// parseCompression maps Kafka's compression.type values to a kgo codec.
func parseCompression(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression type %q: want none, gzip, snappy, lz4 or zstd", s)
}
