package producerstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/kobs-dev/kobs/internal/fsutil"
)

// SnapshotFile is the name of a partition's producer state snapshot, kept in
// the partition directory. Kafka writes binary <offset>.snapshot files; kobs
// keeps one JSON file with the offset it covers, which serves the same
// purpose: on start only the log after that offset is re-scanned.
const SnapshotFile = "producer-state.json"

type snapshot struct {
	Version   int        `json:"version"`
	Offset    int64      `json:"offset"` // state covers every batch below this offset
	Producers []Producer `json:"producers"`
}

// WriteSnapshot stores the state as of offset (the log end offset when it
// was taken) in path, atomically.
func (s *Partition) WriteSnapshot(path string, offset int64) error {
	ps := s.Producers()
	sort.Slice(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
	b, err := json.Marshal(snapshot{Version: 1, Offset: offset, Producers: ps})
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, b); err != nil {
		return fmt.Errorf("write producer snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot reads a snapshot and returns the state and the offset from
// which the log must be replayed. A missing or unreadable snapshot yields an
// empty state and offset -1 (replay from the log start).
func LoadSnapshot(path string) (*Partition, int64, error) {
	s := NewPartition()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, -1, nil
	}
	if err != nil {
		return s, -1, fmt.Errorf("read producer snapshot: %w", err)
	}
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil || snap.Version != 1 {
		return s, -1, fmt.Errorf("%s: unreadable producer snapshot", path)
	}
	for i := range snap.Producers {
		p := snap.Producers[i]
		s.producers[p.ID] = &p
	}
	return s, snap.Offset, nil
}

// TruncateAfter drops remembered batches at or after offset, for a log that
// turned out shorter than the snapshot (a torn tail removed by recovery).
func (s *Partition) TruncateAfter(offset int64) {
	for id, p := range s.producers {
		kept := p.Batches[:0]
		for _, b := range p.Batches {
			if b.LastOffset < offset {
				kept = append(kept, b)
			}
		}
		p.Batches = kept
		if len(p.Batches) == 0 {
			delete(s.producers, id)
		}
	}
}
