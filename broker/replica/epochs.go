package replica

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/kobs-dev/kobs/internal/fsutil"
)

// EpochCheckpointFile is Kafka's per-partition leader epoch file.
const EpochCheckpointFile = "leader-epoch-checkpoint"

// epochEntry says that leader epoch Epoch wrote its first record at
// StartOffset.
type epochEntry struct {
	Epoch       int32
	StartOffset int64
}

// epochCache is Kafka's LeaderEpochFileCache: the start offset of every
// leader epoch in the log, oldest first, persisted in
// leader-epoch-checkpoint ("0\n<n>\n<epoch> <offset>\n..."). It answers
// OffsetForLeaderEpoch, which is how a follower finds where its log
// diverged from a new leader's (book ch. 8.1.4).
type epochCache struct {
	path string

	mu      sync.Mutex // leaf
	entries []epochEntry
}

func loadEpochCache(dir string) (*epochCache, error) {
	c := &epochCache{path: filepath.Join(dir, EpochCheckpointFile)}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "0" {
		return nil, fmt.Errorf("%s: not a version 0 checkpoint", c.path)
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err != nil || n != len(lines)-2 {
		return nil, fmt.Errorf("%s: bad entry count %q", c.path, lines[1])
	}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s: bad line %q", c.path, l)
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: bad line %q", c.path, l)
		}
		c.entries = append(c.entries, epochEntry{int32(e), o})
	}
	return c, nil
}

func (c *epochCache) writeLocked() error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "0\n%d\n", len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&sb, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return fsutil.WriteFileAtomic(c.path, []byte(sb.String()))
}

// assign records that epoch starts at offset, if it is newer than the
// latest epoch known (Kafka's LeaderEpochFileCache.assign). It reports
// whether the cache changed.
func (c *epochCache) assign(epoch int32, offset int64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.entries); n > 0 {
		last := c.entries[n-1]
		if epoch <= last.Epoch {
			return false, nil
		}
		if offset < last.StartOffset {
			return false, fmt.Errorf("leader epoch %d starting at %d is below epoch %d's start %d", epoch, offset, last.Epoch, last.StartOffset)
		}
	}
	c.entries = append(c.entries, epochEntry{epoch, offset})
	return true, c.writeLocked()
}

// latest is the newest epoch, -1 if none.
func (c *epochCache) latest() int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].Epoch
}

// endOffsetFor is Kafka's endOffsetFor: the largest epoch <= requested
// and the offset where it ended (the start of the next epoch, or leo for
// the latest). (-1, -1) when requested is older than every epoch known.
func (c *epochCache) endOffsetFor(requested int32, leo int64) (int32, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) == 0 || requested < c.entries[0].Epoch {
		return -1, -1
	}
	for i := len(c.entries) - 1; i >= 0; i-- {
		if c.entries[i].Epoch <= requested {
			if i == len(c.entries)-1 {
				return c.entries[i].Epoch, leo
			}
			return c.entries[i].Epoch, c.entries[i+1].StartOffset
		}
	}
	return -1, -1
}

// truncateFromEnd drops epochs starting at or after offset (the log was
// truncated to offset).
func (c *epochCache) truncateFromEnd(offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.entries)
	for n > 0 && c.entries[n-1].StartOffset >= offset {
		n--
	}
	if n == len(c.entries) {
		return nil
	}
	c.entries = c.entries[:n]
	return c.writeLocked()
}

// truncateFromStart forgets epochs wholly before offset (the log start
// moved), keeping the one that covers offset, starting at offset.
func (c *epochCache) truncateFromStart(offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for i+1 < len(c.entries) && c.entries[i+1].StartOffset <= offset {
		i++
	}
	if i == 0 && (len(c.entries) == 0 || c.entries[0].StartOffset >= offset) {
		return nil
	}
	c.entries = c.entries[i:]
	c.entries[0].StartOffset = offset
	return c.writeLocked()
}
