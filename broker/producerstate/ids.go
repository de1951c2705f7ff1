package producerstate

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/kobs-dev/kobs/internal/fsutil"
)

// blockSize is how many producer ids are reserved per write of the id file,
// like the blocks a KRaft controller hands a broker (1000).
const blockSize = 1000

// IDs hands out producer ids that are never reused, even across unclean
// restarts: before an id from a new block is returned, the end of that block
// is persisted, and a restart continues after the persisted end (skipping
// what was left of the block, as Kafka skips a broker's unused block).
type IDs struct {
	path string
	mu   sync.Mutex
	next int64
	end  int64 // exclusive end of the reserved block
}

// OpenIDs reads (or starts) the id file at path.
func OpenIDs(path string) (*IDs, error) {
	ids := &IDs{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read producer id block: %w", err)
	default:
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: bad producer id block end %q", path, b)
		}
		ids.next, ids.end = n, n
	}
	return ids, nil
}

// Next returns a new producer id.
func (ids *IDs) Next() (int64, error) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if ids.next >= ids.end {
		end := ids.next + blockSize
		if err := fsutil.WriteFileAtomic(ids.path, []byte(strconv.FormatInt(end, 10)+"\n")); err != nil {
			return -1, fmt.Errorf("reserve producer ids: %w", err)
		}
		ids.end = end
	}
	id := ids.next
	ids.next++
	return id, nil
}
