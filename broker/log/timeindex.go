package log

import (
	"encoding/binary"
	"fmt"
)

// timeIndexEntrySize is one .timeindex entry: int64 timestamp, int32 relative offset.
const timeIndexEntrySize = 12

// timeIndex is a segment's .timeindex. Entries are (max timestamp so far,
// offset of the batch that reached it) with strictly increasing timestamps.
// Following Kafka's LogSegment, an entry is considered whenever an .index
// entry is written (every index.interval.bytes) and once more when the segment
// is sealed (roll or close), and it is only written when the segment's max
// timestamp grew since the last entry. The last entry therefore carries the
// segment's largest timestamp, which time-based retention uses after a restart.
type timeIndex struct {
	*entryFile
	base    int64
	lastTs  int64 // valid when n > 0
	lastRel int32
}

func openTimeIndex(path string, base int64) (*timeIndex, error) {
	e, err := openEntryFile(path, timeIndexEntrySize)
	if err != nil {
		return nil, err
	}
	return &timeIndex{entryFile: e, base: base, lastTs: -1}, nil
}

func encodeTimeEntry(dst []byte, ts int64, rel int32) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	return binary.BigEndian.AppendUint32(dst, uint32(rel))
}

// check is the sanity check for a segment that recovery skips (see
// offsetIndex.check): whole entries, first and last entry in order, relative
// offsets within the segment. It loads the last entry, which carries the
// segment's largest timestamp.
func (t *timeIndex) check(maxRel int64) error {
	if t.missing {
		return fmt.Errorf("time index %s is missing", t.path)
	}
	if t.n < 0 {
		return fmt.Errorf("time index %s: size is not a multiple of %d", t.path, timeIndexEntrySize)
	}
	if t.n == 0 {
		return nil
	}
	v := t.view()
	var a, b [timeIndexEntrySize]byte
	first, err := v.entry(0, a[:])
	if err != nil {
		return err
	}
	last, err := v.entry(t.n-1, b[:])
	if err != nil {
		return err
	}
	fTs, fRel := int64(binary.BigEndian.Uint64(first)), int64(int32(binary.BigEndian.Uint32(first[8:])))
	lTs, lRel := int64(binary.BigEndian.Uint64(last)), int64(int32(binary.BigEndian.Uint32(last[8:])))
	if fRel < 0 || lRel < fRel || lRel > maxRel || lTs < fTs || (t.n > 1 && lTs == fTs) {
		return fmt.Errorf("time index %s: entries (%d, %d) .. (%d, %d) out of order or past the segment", t.path, fTs, fRel, lTs, lRel)
	}
	t.lastTs, t.lastRel = lTs, int32(lRel)
	return nil
}

// lookupTimestamp returns the offset of the .timeindex floor entry for ts
// (the last entry whose timestamp <= ts) in a segment at base; ok=false when
// there is none and the scan must start at the segment's beginning.
func lookupTimestamp(v entriesView, base, ts int64) (offset int64, ok bool, err error) {
	i, err := v.floor(func(ent []byte) bool {
		return int64(binary.BigEndian.Uint64(ent)) <= ts
	})
	if err != nil || i < 0 {
		return 0, false, err
	}
	var scratch [timeIndexEntrySize]byte
	ent, err := v.entry(i, scratch[:])
	if err != nil {
		return 0, false, err
	}
	return base + int64(int32(binary.BigEndian.Uint32(ent[8:]))), true, nil
}

func (t *timeIndex) full(maxBytes int32) bool {
	return int64(t.n+1)*timeIndexEntrySize > int64(maxBytes)
}
