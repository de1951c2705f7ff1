package log

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// spec describes a test batch: one record per timestamp.
type spec struct {
	ts        []int64
	valueSize int
	codec     kgo.CompressionCodec // zero value = none
	producer  int64                // producer id, -1 default
}

// tsRange returns n timestamps start, start+step, ...
func tsRange(start, step int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = start + int64(i)*step
	}
	return out
}

// makeBatch encodes a valid v2 batch with kmsg, compressing the records
// section with kgo's compressor when sp.codec asks for it. The base offset is
// 0; the log assigns the real one.
func makeBatch(tb testing.TB, sp spec) []byte {
	tb.Helper()
	require.NotEmpty(tb, sp.ts)
	first, maxTs := sp.ts[0], sp.ts[0]
	for _, ts := range sp.ts {
		first, maxTs = min(first, ts), max(maxTs, ts)
	}
	var recs []byte
	for i, ts := range sp.ts {
		val := bytes.Repeat([]byte{byte('a' + i%26)}, sp.valueSize)
		r := kmsg.Record{
			TimestampDelta64: ts - first,
			OffsetDelta:      int32(i),
			Key:              []byte{byte(i)},
			Value:            val,
			Headers:          []kmsg.Header{{Key: "h", Value: []byte("v")}},
		}
		body := r.AppendTo(nil)
		r.Length = int32(len(body) - 1) // the zero Length took one varint byte
		recs = r.AppendTo(recs)
	}
	var attrs int16
	if sp.codec != (kgo.CompressionCodec{}) {
		c, err := kgo.DefaultCompressor(sp.codec)
		require.NoError(tb, err)
		var buf bytes.Buffer
		out, codec := c.Compress(&buf, recs)
		require.NotEqual(tb, kgo.CodecNone, codec, "compressor fell back to none")
		recs = append([]byte(nil), out...)
		attrs = int16(codec)
	}
	pid := sp.producer
	if pid == 0 {
		pid = -1
	}
	rb := kmsg.RecordBatch{
		Length:          int32(batchHeaderSize - logOverhead + len(recs)),
		Magic:           2,
		Attributes:      attrs,
		LastOffsetDelta: int32(len(sp.ts) - 1),
		FirstTimestamp:  first,
		MaxTimestamp:    maxTs,
		ProducerID:      pid,
		ProducerEpoch:   -1,
		FirstSequence:   -1,
		NumRecords:      int32(len(sp.ts)),
		Records:         recs,
	}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[offCRC:], crc32.Checksum(raw[offAttributes:], crcTable))
	return raw
}

// mustBatches validates raw as a produce payload.
func mustBatches(tb testing.TB, raw []byte) []Batch {
	tb.Helper()
	bs, err := ValidateBatches(raw, 0)
	require.NoError(tb, err)
	return bs
}

// appendSpec validates and appends one batch, returning the result.
func appendSpec(tb testing.TB, l *Log, sp spec) AppendResult {
	tb.Helper()
	res, err := l.Append(mustBatches(tb, makeBatch(tb, sp)))
	require.NoError(tb, err)
	return res
}

// splitStored parses Read output into batches; Read returns whole batches
// only, so anything left over is a bug. Stored batches of compressed data
// are not walked by ValidateBatches, so this also re-checks every CRC.
func splitStored(tb testing.TB, data []byte) []Batch {
	tb.Helper()
	if len(data) == 0 {
		return nil
	}
	bs, err := ValidateBatches(data, 0)
	require.NoError(tb, err)
	return bs
}

// testConfig is a small-segment config with an injectable clock.
func testConfig(clk *clock) Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 256
	if clk != nil {
		cfg.Now = clk.Now
	}
	return cfg
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Ms() int64 { return c.Now().UnixMilli() }

// openLog opens a log in a fresh temp dir and closes it at cleanup.
func openLog(tb testing.TB, cfg Config) (*Log, string) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "topic-0")
	l, err := Open(dir, cfg, OpenOptions{})
	require.NoError(tb, err)
	tb.Cleanup(func() { l.Close() })
	return l, dir
}

// reopen opens dir again and registers the close.
func reopen(tb testing.TB, dir string, cfg Config, opts OpenOptions) *Log {
	tb.Helper()
	l, err := Open(dir, cfg, opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { l.Close() })
	return l
}

// crash closes l like a process that died after its last write: files are
// closed but there is no clean-shutdown marker and nothing is flushed.
func crash(tb testing.TB, l *Log) {
	tb.Helper()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	for _, s := range l.segs {
		require.NoError(tb, s.close())
	}
}

// segFiles lists the .log files in dir in order.
func segFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+logSuffix))
	require.NoError(tb, err)
	return m
}

// logBuffer captures slog output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func fileSize(tb testing.TB, p string) int64 {
	tb.Helper()
	st, err := os.Stat(p)
	require.NoError(tb, err)
	return st.Size()
}

func readFileSize(p string) (int64, error) {
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func osTruncate(p string, n int64) error { return os.Truncate(p, n) }
