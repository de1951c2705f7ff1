package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// The segment log holds an index's documents: append-only files
// Dir/indices/<name>/seg-<n>.log of records
//
//	uint32 payload length | uint32 CRC-32C of payload | payload
//	payload: op byte | uvarint seq_no | uvarint version | uvarint len(id) | id | source
//
// A _bulk appends all its records with one write and one fsync before any
// item is acknowledged, so an acknowledged document survives a crash. A
// crash mid-write leaves a torn tail (a short or mismatching last record) in
// the newest segment; Open truncates it, logs it and counts it (none of it
// was acknowledged). When the active segment passes maxSegmentBytes it is
// sealed and a new one started; sealed segments are only read.

const (
	opIndex  byte = 1
	opDelete byte = 2

	recHeader = 8
	// maxSegmentBytes bounds a segment so a document's offset fits 32 bits
	// and a segment is a manageable unit for retention and rebuilds.
	maxSegmentBytesDefault = 256 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// segment is one log file. Reads use ReadAt (pread), which is safe beside
// the single appender.
type segment struct {
	id   uint32
	path string
	f    *os.File
	size int64 // bytes of complete records; the append position
}

type segLog struct {
	dir      string
	maxBytes int64

	mu   sync.RWMutex // guards segs (appended at roll; read by loaders)
	segs []*segment   // ascending id; the last is active
}

// record is one decoded log record; loc addresses its source.
type record struct {
	op      byte
	seqNo   int64
	version int64
	id      string
	source  []byte
	loc     uint64 // segment id << 32 | offset of the source in the file
}

func segName(id uint32) string { return fmt.Sprintf("seg-%010d.log", id) }

// tornTail describes a truncated tail found at open.
type tornTail struct {
	segment string
	bytes   int64
	reason  string
}

// openSegLog opens (or creates) the log in dir and replays every record in
// order through fn; flush is called after each segment (records are valid
// only until then). A damaged tail of the newest segment is truncated and
// reported; damage inside an older segment stops that segment's replay and
// is reported too, leaving the file as it is for inspection.
func openSegLog(dir string, maxBytes int64, fn func(*record) error, flush func() error) (*segLog, []tornTail, error) {
	if maxBytes <= 0 {
		maxBytes = maxSegmentBytesDefault
	}
	l := &segLog{dir: dir, maxBytes: maxBytes}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var ids []uint32
	for _, e := range entries {
		var id uint32
		if n, _ := fmt.Sscanf(e.Name(), "seg-%010d.log", &id); n == 1 && strings.HasSuffix(e.Name(), ".log") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var torn []tornTail
	for k, id := range ids {
		p := filepath.Join(dir, segName(id))
		f, err := os.OpenFile(p, os.O_RDWR, 0o644)
		if err != nil {
			l.close()
			return nil, nil, err
		}
		seg := &segment{id: id, path: p, f: f}
		l.segs = append(l.segs, seg)
		good, reason, err := replaySegment(seg, fn)
		if err == nil {
			err = flush()
		}
		if err != nil {
			l.close()
			return nil, nil, err
		}
		st, err := f.Stat()
		if err != nil {
			l.close()
			return nil, nil, err
		}
		seg.size = good
		if good < st.Size() {
			torn = append(torn, tornTail{segment: p, bytes: st.Size() - good, reason: reason})
			if k == len(ids)-1 {
				if err := f.Truncate(good); err != nil {
					l.close()
					return nil, nil, fmt.Errorf("truncate torn tail of %s: %w", p, err)
				}
				if err := f.Sync(); err != nil {
					l.close()
					return nil, nil, err
				}
			}
		}
	}
	if len(l.segs) == 0 {
		if err := l.newSegment(0); err != nil {
			return nil, nil, err
		}
	} else if last := l.segs[len(l.segs)-1]; last.size != lastSize(last) {
		// An older segment was damaged mid-file: never append after damage.
		if err := l.newSegment(last.id + 1); err != nil {
			l.close()
			return nil, nil, err
		}
	}
	return l, torn, nil
}

func lastSize(s *segment) int64 {
	st, err := s.f.Stat()
	if err != nil {
		return -1
	}
	return st.Size()
}

// replaySegment reads seg's records in order; it returns the length of the
// prefix of complete, checksummed records, and why it stopped early.
func replaySegment(seg *segment, fn func(*record) error) (int64, string, error) {
	st, err := seg.f.Stat()
	if err != nil {
		return 0, "", err
	}
	data := make([]byte, st.Size())
	if n, err := seg.f.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(data)) {
		return 0, "", err
	}
	var off int64
	for off < int64(len(data)) {
		rest := data[off:]
		if len(rest) < recHeader {
			return off, "short record header", nil
		}
		n := int64(binary.LittleEndian.Uint32(rest))
		sum := binary.LittleEndian.Uint32(rest[4:])
		if int64(len(rest)) < recHeader+n {
			return off, "short record", nil
		}
		payload := rest[recHeader : recHeader+n]
		if crc32.Checksum(payload, crcTable) != sum {
			return off, "checksum mismatch", nil
		}
		rec, ok := decodeRecord(payload)
		if !ok {
			return off, "malformed record", nil
		}
		rec.loc = uint64(seg.id)<<32 | uint64(off+recHeader+int64(len(payload)-len(rec.source)))
		if err := fn(rec); err != nil {
			return off, "", err
		}
		off += recHeader + n
	}
	return off, "", nil
}

func decodeRecord(p []byte) (*record, bool) {
	if len(p) < 1 {
		return nil, false
	}
	r := &record{op: p[0]}
	p = p[1:]
	seq, n := binary.Uvarint(p)
	if n <= 0 {
		return nil, false
	}
	p = p[n:]
	ver, n := binary.Uvarint(p)
	if n <= 0 {
		return nil, false
	}
	p = p[n:]
	idLen, n := binary.Uvarint(p)
	if n <= 0 || uint64(len(p)-n) < idLen {
		return nil, false
	}
	p = p[n:]
	r.seqNo, r.version, r.id, r.source = int64(seq), int64(ver), string(p[:idLen]), p[idLen:]
	if r.op != opIndex && r.op != opDelete {
		return nil, false
	}
	return r, true
}

// appendRecord encodes one record into buf and returns buf and the offset,
// within the encoded bytes, at which the source starts.
func appendRecord(buf []byte, op byte, seqNo, version int64, id string, src []byte) ([]byte, int) {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, op)
	buf = binary.AppendUvarint(buf, uint64(seqNo))
	buf = binary.AppendUvarint(buf, uint64(version))
	buf = binary.AppendUvarint(buf, uint64(len(id)))
	buf = append(buf, id...)
	srcAt := len(buf) - start
	buf = append(buf, src...)
	payload := buf[start+recHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, crcTable))
	return buf, srcAt
}

func (l *segLog) newSegment(id uint32) error {
	p := filepath.Join(l.dir, segName(id))
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		_ = f.Close()
		return err
	}
	l.mu.Lock()
	l.segs = append(l.segs, &segment{id: id, path: p, f: f})
	l.mu.Unlock()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// active returns the segment appends go to. Only the writer (under the
// index's write lock) changes it.
func (l *segLog) active() *segment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[len(l.segs)-1]
}

// write appends buf (whole records) to the active segment and syncs it. On
// failure the segment is cut back to its previous end so a later write
// does not follow a partial one. It returns the segment id and the offset
// at which buf starts. The caller serialises writes.
func (l *segLog) write(buf []byte) (uint32, int64, error) {
	seg := l.active()
	if seg.size > 0 && seg.size+int64(len(buf)) > l.maxBytes {
		if err := l.newSegment(seg.id + 1); err != nil {
			return 0, 0, fmt.Errorf("roll segment: %w", err)
		}
		seg = l.active()
	}
	if int64(len(buf)) > int64(^uint32(0))-seg.size {
		return 0, 0, errors.New("bulk too large for one segment")
	}
	at := seg.size
	if _, err := seg.f.WriteAt(buf, at); err != nil {
		_ = seg.f.Truncate(at)
		return 0, 0, fmt.Errorf("write %s: %w", seg.path, err)
	}
	if err := seg.f.Sync(); err != nil {
		_ = seg.f.Truncate(at)
		return 0, 0, fmt.Errorf("sync %s: %w", seg.path, err)
	}
	seg.size = at + int64(len(buf))
	return seg.id, at, nil
}

// read returns n bytes at loc.
func (l *segLog) read(loc uint64, n uint32) ([]byte, error) {
	id := uint32(loc >> 32)
	l.mu.RLock()
	var seg *segment
	if k, ok := slices.BinarySearchFunc(l.segs, id, func(s *segment, id uint32) int { return int(s.id) - int(id) }); ok {
		seg = l.segs[k]
	}
	l.mu.RUnlock()
	if seg == nil {
		return nil, fmt.Errorf("segment %d missing", id)
	}
	buf := make([]byte, n)
	if _, err := seg.f.ReadAt(buf, int64(uint32(loc))); err != nil {
		return nil, fmt.Errorf("read %s: %w", seg.path, err)
	}
	return buf, nil
}

func (l *segLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, s := range l.segs {
		if err := s.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// bytes is the log's size on disk.
func (l *segLog) bytes() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}
