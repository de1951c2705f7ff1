package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// indexEntrySize is one .index entry: int32 relative offset, int32 position.
const indexEntrySize = 8

// entryFile is the storage shared by .index and .timeindex: fixed-size
// big-endian entries appended to a plain file.
//
// Unlike Kafka we do not preallocate the file to segment.index.bytes and mmap
// it; entries are appended with pwrite, so the file length is always
// entries*size and there is nothing to trim on roll or close. The active
// segment keeps a copy of its entries in memory (mem) because every fetch at
// the tail searches it; sealed segments drop the copy and binary-search the
// file with pread, so memory does not grow with retained data.
//
// Concurrency: n and mem change only with the Log's write lock and its
// reader lock held for writing. Readers search an entriesView snapshot that
// covers the first n entries only, so they never see a half-written entry.
type entryFile struct {
	f         *os.File
	path      string
	entrySize int
	n         int    // committed entries
	mem       []byte // n*entrySize bytes while the segment is active, else nil
	missing   bool   // the file did not exist when opened
}

func openEntryFile(path string, entrySize int) (*entryFile, error) {
	// A missing file cannot be told from an empty one after O_CREATE, and an
	// empty index is legal for a small segment, so note it first.
	_, statErr := os.Stat(path)
	missing := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat index %s: %w", path, err)
	}
	e := &entryFile{f: f, path: path, entrySize: entrySize, n: int(st.Size()) / entrySize, missing: missing}
	if st.Size()%int64(entrySize) != 0 {
		// Leave n at the whole entries; sanity checks flag the file for a rebuild.
		e.n = -1
	}
	return e, nil
}

// loadMem reads the whole file into memory (for the active segment).
func (e *entryFile) loadMem() error {
	if e.n < 0 {
		return fmt.Errorf("index %s: size is not a multiple of %d", e.path, e.entrySize)
	}
	buf := make([]byte, e.n*e.entrySize)
	if _, err := e.f.ReadAt(buf, 0); err != nil && err != io.EOF {
		return fmt.Errorf("read index %s: %w", e.path, err)
	}
	e.mem = buf
	return nil
}

// entriesView is a snapshot of an index's committed entries, taken under the
// Log's reader lock and used after it is released: appends only add entries
// past n (and grow mem by copy-on-append), so the first n stay valid.
type entriesView struct {
	f         *os.File
	path      string
	entrySize int
	n         int
	mem       []byte // nil: search the file
}

func (e *entryFile) view() entriesView {
	v := entriesView{f: e.f, path: e.path, entrySize: e.entrySize, n: max(e.n, 0)}
	if e.mem != nil {
		v.mem = e.mem[: v.n*e.entrySize : v.n*e.entrySize]
	}
	return v
}

// entry returns entry i, from memory or the file; scratch must hold entrySize bytes.
func (v entriesView) entry(i int, scratch []byte) ([]byte, error) {
	off := i * v.entrySize
	if v.mem != nil {
		return v.mem[off : off+v.entrySize], nil
	}
	if _, err := v.f.ReadAt(scratch[:v.entrySize], int64(off)); err != nil {
		return nil, fmt.Errorf("read index %s entry %d: %w", v.path, i, err)
	}
	return scratch[:v.entrySize], nil
}

// floor returns the largest i whose entry satisfies le (entries are sorted, so
// le is true for a prefix), or -1.
func (v entriesView) floor(le func(entry []byte) bool) (int, error) {
	var scratch [timeIndexEntrySize]byte
	var ferr error
	i := sort.Search(v.n, func(i int) bool {
		if ferr != nil {
			return true
		}
		ent, err := v.entry(i, scratch[:])
		if err != nil {
			ferr = err
			return true
		}
		return !le(ent)
	})
	return i - 1, ferr
}

// write appends already-encoded entries to the file at the committed end.
// Call commit (under the reader lock) afterwards to publish them.
func (e *entryFile) write(entries []byte) error {
	if len(entries) == 0 {
		return nil
	}
	if _, err := e.f.WriteAt(entries, int64(e.n*e.entrySize)); err != nil {
		return fmt.Errorf("write index %s: %w", e.path, err)
	}
	return nil
}

func (e *entryFile) commit(entries []byte) {
	if e.mem != nil {
		e.mem = append(e.mem, entries...)
	}
	e.n += len(entries) / e.entrySize
}

// reset replaces the file's content (recovery rebuilds).
func (e *entryFile) reset(entries []byte, keepMem bool) error {
	if err := e.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate index %s: %w", e.path, err)
	}
	e.n = 0
	e.mem = nil
	if keepMem {
		e.mem = make([]byte, 0, len(entries))
	}
	if err := e.write(entries); err != nil {
		return err
	}
	e.commit(entries)
	return nil
}

func (e *entryFile) sync() error {
	if err := e.f.Sync(); err != nil {
		return fmt.Errorf("fsync index %s: %w", e.path, err)
	}
	return nil
}

func (e *entryFile) close() error {
	if err := e.f.Close(); err != nil {
		return fmt.Errorf("close index %s: %w", e.path, err)
	}
	return nil
}

// offsetIndex is a segment's .index: relative offset -> byte position of a
// batch start. Following Kafka's LogSegment.append, an entry is added for a
// batch when index.interval.bytes or more were written since the previous
// entry; it records the batch's LAST offset and the batch's start position.
// A floor lookup for offset o therefore lands on a batch that ends at or
// before o, and scanning forward from there finds the batch containing o.
type offsetIndex struct {
	*entryFile
	base    int64
	lastRel int32 // relative offset of the last entry, valid when n > 0
}

func openOffsetIndex(path string, base int64) (*offsetIndex, error) {
	e, err := openEntryFile(path, indexEntrySize)
	if err != nil {
		return nil, err
	}
	return &offsetIndex{entryFile: e, base: base}, nil
}

func encodeIndexEntry(dst []byte, rel, pos int32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(rel))
	return binary.BigEndian.AppendUint32(dst, uint32(pos))
}

// check is the sanity check for a segment that recovery skips, in the
// spirit of Kafka's OffsetIndex.sanityCheck: whole entries, first and last
// entry in order and inside the log, and the last entry naming a real batch
// header (magic 2, last offset = base + relative offset). It costs three
// preads whatever the index size, so a restart does not read every index.
func (x *offsetIndex) check(seg *os.File, logSize int64) error {
	if x.missing {
		return fmt.Errorf("index %s is missing", x.path)
	}
	if x.n < 0 {
		return fmt.Errorf("index %s: size is not a multiple of %d", x.path, indexEntrySize)
	}
	if x.n == 0 {
		return nil
	}
	v := x.view()
	var a, b [indexEntrySize]byte
	first, err := v.entry(0, a[:])
	if err != nil {
		return err
	}
	last, err := v.entry(x.n-1, b[:])
	if err != nil {
		return err
	}
	fRel, fPos := int32(binary.BigEndian.Uint32(first)), int32(binary.BigEndian.Uint32(first[4:]))
	lRel, lPos := int32(binary.BigEndian.Uint32(last)), int32(binary.BigEndian.Uint32(last[4:]))
	if fRel < 0 || fPos < 0 || lRel < fRel || lPos < fPos || int64(lPos)+batchHeaderSize > logSize {
		return fmt.Errorf("index %s: entries %d -> %d .. %d -> %d out of order or past the log (%d bytes)", x.path, fRel, fPos, lRel, lPos, logSize)
	}
	var hdr [offLastOffsetDelta + 4]byte
	if _, err := seg.ReadAt(hdr[:], int64(lPos)); err != nil {
		return fmt.Errorf("index %s: read batch at %d: %w", x.path, lPos, err)
	}
	baseOff := int64(binary.BigEndian.Uint64(hdr[offBaseOffset:]))
	lastOff := baseOff + int64(int32(binary.BigEndian.Uint32(hdr[offLastOffsetDelta:])))
	if hdr[offMagic] != 2 || lastOff != x.base+int64(lRel) {
		return fmt.Errorf("index %s: last entry %d -> %d does not point at its batch", x.path, lRel, lPos)
	}
	x.lastRel = lRel
	return nil
}

// lookupPosition returns the position to start scanning for offset in a
// segment at base: the .index floor entry's position, or 0.
func lookupPosition(v entriesView, base, offset int64) (int64, error) {
	rel := offset - base
	i, err := v.floor(func(ent []byte) bool {
		return int64(int32(binary.BigEndian.Uint32(ent))) <= rel
	})
	if err != nil || i < 0 {
		return 0, err
	}
	var scratch [indexEntrySize]byte
	ent, err := v.entry(i, scratch[:])
	if err != nil {
		return 0, err
	}
	return int64(int32(binary.BigEndian.Uint32(ent[4:]))), nil
}

// full reports whether another entry would exceed segment.index.bytes (Kafka's
// roll-on-full-index rule, without preallocation).
func (x *offsetIndex) full(maxBytes int32) bool {
	return int64(x.n+1)*indexEntrySize > int64(maxBytes)
}
