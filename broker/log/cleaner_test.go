package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kv is one record of a keyed test batch; nil Key or Value is null.
type kv struct {
	Key, Value []byte
	Ts         int64
}

// keyedBatch encodes a v2 batch of records with the given keys and values.
func keyedBatch(tb testing.TB, recs []kv, codec kgo.CompressionCodec, pid int64) []byte {
	tb.Helper()
	first, maxTs := recs[0].Ts, recs[0].Ts
	for _, r := range recs {
		first, maxTs = min(first, r.Ts), max(maxTs, r.Ts)
	}
	var body []byte
	for i, r := range recs {
		rec := kmsg.Record{TimestampDelta64: r.Ts - first, OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
		n := len(rec.AppendTo(nil))
		rec.Length = int32(n - 1)
		body = rec.AppendTo(body)
	}
	var attrs int16
	if codec != (kgo.CompressionCodec{}) {
		c, err := kgo.DefaultCompressor(codec)
		require.NoError(tb, err)
		var buf bytes.Buffer
		out, got := c.Compress(&buf, body)
		require.NotEqual(tb, kgo.CodecNone, got)
		body = append([]byte(nil), out...)
		attrs = int16(got)
	}
	epoch, seq := int16(-1), int32(-1)
	if pid >= 0 {
		epoch, seq = 0, 0
	}
	rb := kmsg.RecordBatch{
		Length: int32(batchHeaderSize - logOverhead + len(body)), Magic: 2, Attributes: attrs,
		LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: first, MaxTimestamp: maxTs,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(len(recs)), Records: body,
	}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[offCRC:], crc32.Checksum(raw[offAttributes:], crcTable))
	return raw
}

// readRec is one record read back from the log.
type readRec struct {
	Offset     int64
	Key, Value string
	Null       bool // tombstone
	Ts         int64
}

// readAll reads the whole log and decodes every record, checking that
// batches and offsets only go forward.
func readAll(tb testing.TB, l *Log) []readRec {
	tb.Helper()
	data, err := l.Read(l.LogStartOffset(), 1<<30, l.LogEndOffset(), true)
	require.NoError(tb, err)
	bs, err := SplitStored(data)
	require.NoError(tb, err)
	var out []readRec
	prevLast := int64(-1)
	for _, b := range bs {
		require.Greater(tb, b.BaseOffset, prevLast, "batches must not overlap")
		prevLast = b.LastOffset()
		recs, err := batchRecords(b.Raw, b)
		require.NoError(tb, err)
		require.NoError(tb, eachRecord(recs, b.NumRecords, func(r record) bool {
			off := b.BaseOffset + int64(r.offDelta)
			require.LessOrEqual(tb, off, b.LastOffset())
			if len(out) > 0 {
				require.Greater(tb, off, out[len(out)-1].Offset)
			}
			out = append(out, readRec{Offset: off, Key: string(r.key), Value: string(r.value), Null: r.value == nil, Ts: b.FirstTimestamp + r.tsDelta})
			return true
		}))
	}
	return out
}

func compactConfig(clk *clock) Config {
	cfg := testConfig(clk)
	cfg.Compact, cfg.Delete = true, false
	return cfg
}

// fillKeys appends rounds updates of nkeys keys, per batches of up to 5
// records, and returns offset -> (key, value) of everything written.
func fillKeys(tb testing.TB, l *Log, nkeys, rounds int, codec kgo.CompressionCodec, ts int64) map[int64]readRec {
	tb.Helper()
	written := map[int64]readRec{}
	var pending []kv
	flush := func() {
		if len(pending) == 0 {
			return
		}
		res, err := l.Append(mustBatches(tb, keyedBatch(tb, pending, codec, -1)))
		require.NoError(tb, err)
		for i, r := range pending {
			written[res.FirstOffset+int64(i)] = readRec{Offset: res.FirstOffset + int64(i), Key: string(r.Key), Value: string(r.Value)}
		}
		pending = pending[:0]
	}
	for round := range rounds {
		for k := range nkeys {
			pending = append(pending, kv{Key: fmt.Appendf(nil, "key-%03d", k), Value: fmt.Appendf(nil, "value-%03d-%05d-%s", k, round, strings.Repeat("x", 20)), Ts: ts})
			if len(pending) >= 1+(k+round)%5 {
				flush()
			}
		}
	}
	flush()
	return written
}

// checkCompacted asserts what compaction must guarantee: every record read
// is one that was written at that offset; below end no key appears twice and
// every key's record is its latest write below end, or a later write exists.
func checkCompacted(t *testing.T, got []readRec, written map[int64]readRec, end int64) {
	t.Helper()
	latest := map[string]int64{}
	for off, r := range written {
		if off > latest[r.Key] || latest[r.Key] == 0 {
			latest[r.Key] = max(latest[r.Key], off)
		}
	}
	seen := map[string]bool{}
	for _, r := range got {
		w, ok := written[r.Offset]
		require.True(t, ok, "offset %d was never written", r.Offset)
		require.Equal(t, w.Key, r.Key, "offset %d", r.Offset)
		require.Equal(t, w.Value, r.Value, "offset %d", r.Offset)
		if r.Offset < end {
			require.False(t, seen[r.Key], "key %s twice below the cleaned end %d", r.Key, end)
			seen[r.Key] = true
		}
	}
	// The latest value of every key is always there, wherever it lies.
	byOffset := map[int64]bool{}
	for _, r := range got {
		byOffset[r.Offset] = true
	}
	for k, off := range latest {
		require.True(t, byOffset[off], "latest record of %s at %d is missing", k, off)
	}
}

func TestCleanKeepsLatestPerKey(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"none", kgo.CompressionCodec{}}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()}, {"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			l, dir := openLog(t, compactConfig(clk))
			written := fillKeys(t, l, 20, 40, tc.codec, clk.Ms())
			require.Greater(t, l.NumSegments(), 4)
			before, segsBefore := l.Size(), l.NumSegments()
			st, err := l.Clean(CleanOptions{})
			require.NoError(t, err)
			require.True(t, st.Cleaned, "%+v", st)
			require.Greater(t, st.DirtyRatio, 0.5)
			require.Equal(t, l.active().base, st.EndOffset, "everything below the active segment is cleaned")
			require.Equal(t, st.EndOffset, l.CleanerCheckpoint())
			require.Less(t, l.Size(), before/2, "%+v", st)
			require.LessOrEqual(t, l.NumSegments(), segsBefore)
			got := readAll(t, l)
			checkCompacted(t, got, written, st.EndOffset)
			require.Equal(t, int64(20*40), l.LogEndOffset(), "offsets are preserved")

			// Restart: the cleaned segments load (indexes check out) and
			// read the same; fetching from any offset works.
			require.NoError(t, l.Close())
			l2 := reopen(t, dir, compactConfig(clk), OpenOptions{})
			require.Equal(t, got, readAll(t, l2))
			for off := int64(0); off < l2.LogEndOffset(); off += 7 {
				data, err := l2.Read(off, 1, l2.LogEndOffset(), true)
				require.NoError(t, err)
				bs, err := SplitStored(data)
				require.NoError(t, err)
				require.Len(t, bs, 1)
				require.GreaterOrEqual(t, bs[0].LastOffset(), off, "read at %d", off)
				if bs[0].NumRecords > 0 { // empty headers are uncompressed, as Kafka writes them
					require.Equal(t, tc.codec == (kgo.CompressionCodec{}), bs[0].Compression() == 0, "codec kept")
				}
			}
		})
	}
}

func TestCleanTombstonesAfterDeleteRetention(t *testing.T) {
	clk := newClock()
	cfg := compactConfig(clk)
	cfg.DeleteRetentionMs = 60_000
	l, _ := openLog(t, cfg)
	ts := clk.Ms()
	appendKV := func(recs ...kv) {
		_, err := l.Append(mustBatches(t, keyedBatch(t, recs, kgo.CompressionCodec{}, -1)))
		require.NoError(t, err)
	}
	appendKV(kv{Key: []byte("a"), Value: []byte("1"), Ts: ts}, kv{Key: []byte("b"), Value: []byte("1"), Ts: ts})
	appendKV(kv{Key: []byte("a"), Value: nil, Ts: ts}) // tombstone for a
	// Push everything so far out of the active segment.
	fillKeys(t, l, 5, 30, kgo.CompressionCodec{}, ts)
	_, err := l.Clean(CleanOptions{Force: true})
	require.NoError(t, err)
	got := readAll(t, l)
	require.Equal(t, readRec{Offset: 2, Key: "a", Null: true, Ts: ts}, got[1], "tombstone kept on its first clean")
	require.Equal(t, "b", got[0].Key)

	// Before the horizon a second clean keeps it.
	clk.Advance(59 * time.Second)
	_, err = l.Clean(CleanOptions{Force: true})
	require.NoError(t, err)
	got = readAll(t, l)
	require.True(t, got[1].Null && got[1].Key == "a", "%+v", got[1])
	require.Equal(t, ts, got[1].Ts, "the delete horizon must not change record timestamps")

	clk.Advance(2 * time.Second)
	st, err := l.Clean(CleanOptions{Force: true})
	require.NoError(t, err)
	require.Equal(t, int64(1), st.TombstonesRemoved)
	for _, r := range readAll(t, l) {
		require.NotEqual(t, "a", r.Key, "tombstone past delete.retention.ms must go")
	}
}

func TestCleanRespectsMinCompactionLag(t *testing.T) {
	clk := newClock()
	cfg := compactConfig(clk)
	cfg.MinCompactionLagMs = time.Hour.Milliseconds()
	l, _ := openLog(t, cfg)
	written := fillKeys(t, l, 10, 40, kgo.CompressionCodec{}, clk.Ms())
	size := l.Size()
	st, err := l.Clean(CleanOptions{Force: true})
	require.NoError(t, err)
	require.False(t, st.Cleaned, "records younger than min.compaction.lag.ms stay")
	require.Equal(t, size, l.Size())

	clk.Advance(2 * time.Hour)
	// New records, young again: only the old ones may be compacted.
	more := fillKeys(t, l, 10, 10, kgo.CompressionCodec{}, clk.Ms())
	for k, v := range more {
		written[k] = v
	}
	st, err = l.Clean(CleanOptions{Force: true})
	require.NoError(t, err)
	require.True(t, st.Cleaned)
	require.LessOrEqual(t, st.EndOffset, int64(400), "the young records are not cleaned")
	got := readAll(t, l)
	checkCompacted(t, got, written, st.EndOffset)
	young := 0
	for _, r := range got {
		if r.Offset >= 400 {
			young++
		}
	}
	require.Equal(t, 100, young, "every young record is still there")
}

func TestCleanDirtyRatioAndMaxLag(t *testing.T) {
	clk := newClock()
	cfg := compactConfig(clk)
	l, _ := openLog(t, cfg)
	fillKeys(t, l, 10, 60, kgo.CompressionCodec{}, clk.Ms())
	st, err := l.Clean(CleanOptions{})
	require.NoError(t, err)
	require.True(t, st.Cleaned)

	// A little new dirty data next to the compacted rest: the ratio is
	// below 0.99, so nothing happens...
	cfg.MinCleanableDirtyRatio = 0.99
	l.SetConfig(cfg)
	fillKeys(t, l, 10, 20, kgo.CompressionCodec{}, clk.Ms())
	size := l.Size()
	st, err = l.Clean(CleanOptions{})
	require.NoError(t, err)
	require.False(t, st.Cleaned, "%+v", st)
	require.Greater(t, st.DirtyRatio, 0.0)
	require.Less(t, st.DirtyRatio, 0.99)
	require.Equal(t, size, l.Size())

	// ... until the ratio is lowered below it,
	cfg.MinCleanableDirtyRatio = st.DirtyRatio - 0.01
	l.SetConfig(cfg)
	st, err = l.Clean(CleanOptions{})
	require.NoError(t, err)
	require.True(t, st.Cleaned)
	require.False(t, st.ForcedByMaxLag)

	// ... or max.compaction.lag.ms says the dirty data waited long enough.
	cfg.MinCleanableDirtyRatio = 0.99
	cfg.MaxCompactionLagMs = time.Minute.Milliseconds()
	l.SetConfig(cfg)
	fillKeys(t, l, 10, 20, kgo.CompressionCodec{}, clk.Ms())
	st, err = l.Clean(CleanOptions{})
	require.NoError(t, err)
	require.False(t, st.Cleaned, "dirty data is younger than max.compaction.lag.ms")
	clk.Advance(2 * time.Minute)
	st, err = l.Clean(CleanOptions{})
	require.NoError(t, err)
	require.True(t, st.Cleaned)
	require.True(t, st.ForcedByMaxLag)
}

func TestCleanGroupsSmallSegments(t *testing.T) {
	clk := newClock()
	l, _ := openLog(t, compactConfig(clk))
	written := fillKeys(t, l, 5, 200, kgo.CompressionCodec{}, clk.Ms())
	segs := l.NumSegments()
	require.Greater(t, segs, 10)
	st, err := l.Clean(CleanOptions{})
	require.NoError(t, err)
	// Each 4 KiB segment shrinks to 5 records; groups are built from the
	// original sizes, so the first pass merges nothing much...
	require.Equal(t, st.SegmentsBefore, segs-1)
	// ...but the next pass groups the small cleaned segments into one.
	st, err = l.Clean(CleanOptions{Force: true})
	require.NoError(t, err)
	require.Equal(t, 1, st.SegmentsAfter, "%+v", st)
	require.Equal(t, 2, l.NumSegments())
	checkCompacted(t, readAll(t, l), written, st.EndOffset)
}

func TestCleanKeepsProducersLastBatch(t *testing.T) {
	clk := newClock()
	l, _ := openLog(t, compactConfig(clk))
	ts := clk.Ms()
	// Producer 7's only batch is entirely superseded by later records of
	// another producer: it must stay as an empty batch.
	_, err := l.Append(mustBatches(t, keyedBatch(t, []kv{{Key: []byte("k"), Value: []byte("old"), Ts: ts}}, kgo.CompressionCodec{}, 7)))
	require.NoError(t, err)
	fillKeys(t, l, 3, 100, kgo.CompressionCodec{}, ts)
	_, err = l.Append(mustBatches(t, keyedBatch(t, []kv{{Key: []byte("k"), Value: []byte("new"), Ts: ts}}, kgo.CompressionCodec{}, -1)))
	require.NoError(t, err)
	fillKeys(t, l, 3, 100, kgo.CompressionCodec{}, ts) // roll the previous batch out of the active segment
	_, err = l.Clean(CleanOptions{Force: true})
	require.NoError(t, err)
	data, err := l.Read(0, 1<<20, l.LogEndOffset(), true)
	require.NoError(t, err)
	bs, err := SplitStored(data)
	require.NoError(t, err)
	require.Equal(t, int64(7), bs[0].ProducerID)
	require.Equal(t, int32(0), bs[0].NumRecords)
	require.Equal(t, int64(0), bs[0].LastOffset())
	require.Equal(t, int16(0), bs[0].ProducerEpoch)
	for _, r := range readAll(t, l) {
		require.NotEqual(t, "old", r.Value)
	}
}

func TestCleanCrashSafety(t *testing.T) {
	clk := newClock()
	cfg := compactConfig(clk)
	l, dir := openLog(t, cfg)
	written := fillKeys(t, l, 10, 60, kgo.CompressionCodec{}, clk.Ms())
	require.NoError(t, l.Close())

	// B is a copy of the uncleaned log; A gets cleaned into one segment.
	dirB := filepath.Join(t.TempDir(), "topic-0")
	copyDir(t, dir, dirB)
	big := cfg
	big.SegmentBytes = 1 << 20
	a := reopen(t, dir, big, OpenOptions{})
	st, err := a.Clean(CleanOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, st.SegmentsAfter)
	want := readAll(t, a)
	checkCompacted(t, want, written, st.EndOffset)
	cleaned, err := os.ReadFile(segmentPath(dir, 0, logSuffix))
	require.NoError(t, err)
	oldBases := segBases(t, dirB)
	require.Greater(t, len(oldBases), 3)

	t.Run("cleaned files are discarded", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "topic-0")
		copyDir(t, dirB, d)
		for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			require.NoError(t, os.WriteFile(segmentPath(d, 0, suf+cleanedSuffix), cleaned[:len(cleaned)/2], 0o644))
		}
		l := reopen(t, d, cfg, OpenOptions{})
		got := readAll(t, l)
		require.Len(t, got, len(written), "the uncleaned log is intact")
		requireNoSuffix(t, d, cleanedSuffix)
	})
	t.Run("swap before the old segments moved", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "topic-0")
		copyDir(t, dirB, d)
		require.NoError(t, os.WriteFile(segmentPath(d, 0, logSuffix+swapSuffix), cleaned, 0o644))
		require.NoError(t, os.WriteFile(segmentPath(d, 0, indexSuffix+swapSuffix), []byte("junk"), 0o644))
		l := reopen(t, d, cfg, OpenOptions{})
		require.Equal(t, want, readAll(t, l))
		require.Equal(t, 2, l.NumSegments())
		requireNoSuffix(t, d, swapSuffix)
	})
	t.Run("swap after some old segments moved to deleted", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "topic-0")
		copyDir(t, dirB, d)
		require.NoError(t, os.WriteFile(segmentPath(d, 0, logSuffix+swapSuffix), cleaned, 0o644))
		for _, b := range oldBases[:2] {
			require.NoError(t, os.Rename(segmentPath(d, b, logSuffix), segmentPath(d, b, logSuffix+deletedSuffix)))
		}
		l := reopen(t, d, cfg, OpenOptions{})
		require.Equal(t, want, readAll(t, l))
		requireNoSuffix(t, d, deletedSuffix)
	})
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(to, 0o755))
	ents, err := os.ReadDir(from)
	require.NoError(t, err)
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), data, 0o644))
	}
}

func segBases(t *testing.T, dir string) []int64 {
	t.Helper()
	var out []int64
	for _, p := range segFiles(t, dir) {
		b, ok := parseSegmentName(filepath.Base(p), logSuffix)
		require.True(t, ok)
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func requireNoSuffix(t *testing.T, dir, suffix string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		require.False(t, strings.HasSuffix(e.Name(), suffix), e.Name())
	}
}

// TestCleanWithConcurrentReaders runs appends, cleans and full reads at
// once (go test -race): every read must be whole batches with records that
// were written at those offsets, and fetches must never see an offset
// disappear from under them except by compaction.
func TestCleanWithConcurrentReaders(t *testing.T) {
	clk := newClock()
	cfg := compactConfig(clk)
	cfg.MinCleanableDirtyRatio = 0.01
	l, _ := openLog(t, cfg)
	var mu sync.Mutex
	written := map[int64]readRec{}
	add := func(m map[int64]readRec) {
		mu.Lock()
		defer mu.Unlock()
		for k, v := range m {
			written[k] = v
		}
	}
	add(fillKeys(t, l, 10, 30, kgo.CompressionCodec{}, clk.Ms()))
	// Readers check offsets below published only: written learns of a
	// record after its Append returns.
	var published atomic.Int64
	published.Store(l.LogEndOffset())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, cleans atomic.Int64
	errc := make(chan error, 8)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := readAndCheck(l, published.Load(), &mu, written); err != nil {
					errc <- err
					return
				}
				reads.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Clean(CleanOptions{}); err != nil {
				errc <- err
				return
			}
			cleans.Add(1)
		}
	}()
	for range 20 {
		add(fillKeys(t, l, 10, 5, kgo.Lz4Compression(), clk.Ms()))
		published.Store(l.LogEndOffset())
	}
	// The readers and the cleaner stop once each has completed a round
	// (they ran beside the appends above); a fixed pause could end before
	// one of them got a core on a loaded machine, and a Clean that
	// compacts takes a while.
	for deadline := time.Now().Add(30 * time.Second); reads.Load() == 0 || cleans.Load() == 0; {
		if time.Now().After(deadline) || len(errc) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	require.Positive(t, reads.Load())
	require.Positive(t, cleans.Load())
	checkCompacted(t, readAll(t, l), written, l.CleanerCheckpoint())
}

// readAndCheck reads the log from its start in 4 KiB fetches, as a consumer
// would, and checks every record against what was written.
func readAndCheck(l *Log, leo int64, mu *sync.Mutex, written map[int64]readRec) error {
	for off := l.LogStartOffset(); off < leo; {
		data, err := l.Read(off, 4096, leo, true)
		if err != nil {
			return err
		}
		bs, err := SplitStored(data)
		if err != nil {
			return err
		}
		if len(bs) == 0 {
			// Compaction may have emptied [off, leo); then the next batch
			// must start at or past leo.
			data, err := l.Read(off, 1, l.LogEndOffset(), true)
			if err != nil {
				return err
			}
			if next, err := SplitStored(data); err != nil || len(next) == 0 || next[0].BaseOffset < leo {
				return fmt.Errorf("empty read at %d below %d (next batches %v, err %v)", off, leo, len(next), err)
			}
			return nil
		}
		for _, b := range bs {
			recs, err := batchRecords(b.Raw, b)
			if err != nil {
				return err
			}
			var bad error
			err = eachRecord(recs, b.NumRecords, func(r record) bool {
				o := b.BaseOffset + int64(r.offDelta)
				mu.Lock()
				w, ok := written[o]
				mu.Unlock()
				if !ok || w.Key != string(r.key) || w.Value != string(r.value) {
					bad = fmt.Errorf("offset %d: read %q=%q, wrote %+v", o, r.key, r.value, w)
					return false
				}
				return true
			})
			if err = errors.Join(err, bad); err != nil {
				return err
			}
			if b.LastOffset() < off {
				return fmt.Errorf("read at %d returned batch ending at %d", off, b.LastOffset())
			}
			off = b.LastOffset() + 1
		}
	}
	return nil
}

func TestCompactOnlySkipsTimeAndSizeRetention(t *testing.T) {
	clk := newClock()
	cfg := compactConfig(clk)
	cfg.RetentionMs, cfg.RetentionBytes = 1, 1
	l, _ := openLog(t, cfg)
	fillKeys(t, l, 10, 30, kgo.CompressionCodec{}, clk.Ms())
	clk.Advance(time.Hour)
	segs := l.NumSegments()
	n, err := l.EnforceRetention()
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, segs, l.NumSegments())

	cfg.Delete = true // compact,delete
	l.SetConfig(cfg)
	n, err = l.EnforceRetention()
	require.NoError(t, err)
	require.Equal(t, segs-1, n)
}

func TestCheckKeys(t *testing.T) {
	for _, codec := range []kgo.CompressionCodec{{}, kgo.ZstdCompression()} {
		good := mustBatches(t, keyedBatch(t, []kv{{Key: []byte("k"), Value: []byte("v")}, {Key: []byte{}, Value: nil}}, codec, -1))
		require.NoError(t, CheckKeys(good[0]))
		bad := mustBatches(t, keyedBatch(t, []kv{{Key: []byte("k"), Value: []byte("v")}, {Key: nil, Value: []byte("v")}}, codec, -1))
		require.ErrorIs(t, CheckKeys(bad[0]), ErrMissingKey)
	}
}

func TestCleanNotCompactIsNoop(t *testing.T) {
	l, _ := openLog(t, testConfig(nil))
	fillKeys(t, l, 10, 30, kgo.CompressionCodec{}, 1)
	size := l.Size()
	st, err := l.Clean(CleanOptions{Force: true})
	require.NoError(t, err)
	require.False(t, st.Cleaned)
	require.Equal(t, size, l.Size())
}

// BenchmarkClean compacts a 16 MiB log of 1000 keys x 100 B values from
// scratch each iteration (copying the uncleaned files in is outside the
// timer). MB/s is over the bytes read.
//
//	go test -run '^$' -bench BenchmarkClean -benchtime 10x ./broker/log/
func BenchmarkClean(b *testing.B) {
	for _, tc := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"none", kgo.CompressionCodec{}}, {"lz4", kgo.Lz4Compression()}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.SegmentBytes = 1 << 20
			cfg.Compact = true
			src := filepath.Join(b.TempDir(), "src")
			l, err := Open(src, cfg, OpenOptions{})
			require.NoError(b, err)
			val := bytes.Repeat([]byte("v"), 100)
			var total int64
			for i := 0; total < 16<<20; i++ {
				recs := make([]kv, 10)
				for j := range recs {
					recs[j] = kv{Key: fmt.Appendf(nil, "key-%04d", (i*10+j)%1000), Value: val, Ts: 1}
				}
				res, err := l.Append(mustBatches(b, keyedBatch(b, recs, tc.codec, -1)))
				require.NoError(b, err)
				_ = res
				total = l.Size()
			}
			require.NoError(b, l.Close())
			b.ReportAllocs()
			var read int64
			for b.Loop() {
				b.StopTimer()
				d := filepath.Join(b.TempDir(), "topic-0")
				ents, err := os.ReadDir(src)
				require.NoError(b, err)
				require.NoError(b, os.MkdirAll(d, 0o755))
				for _, e := range ents {
					data, err := os.ReadFile(filepath.Join(src, e.Name()))
					require.NoError(b, err)
					require.NoError(b, os.WriteFile(filepath.Join(d, e.Name()), data, 0o644))
				}
				l, err := Open(d, cfg, OpenOptions{})
				require.NoError(b, err)
				b.StartTimer()
				st, err := l.Clean(CleanOptions{Force: true})
				if err != nil {
					b.Fatal(err)
				}
				read += st.BytesBefore
				b.StopTimer()
				l.Close()
				b.StartTimer()
			}
			b.SetBytes(read / int64(b.N))
		})
	}
}
