package log

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/kobs-dev/kobs/internal/fsutil"
)

// TopicPartition names a partition in a checkpoint file.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// checkpointVersion is the only version of Kafka's OffsetCheckpointFile.
const checkpointVersion = 0

// ReadCheckpoint parses a Kafka offset checkpoint file (recovery-point-offset-checkpoint,
// log-start-offset-checkpoint, replication-offset-checkpoint): a version line
// "0", a count line N, then N lines "topic partition offset". A missing file
// yields an empty map; anything malformed is an error, since guessing would
// silently lose or invent offsets.
func ReadCheckpoint(path string) (map[TopicPartition]int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[TopicPartition]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("read checkpoint %s: line %d: %s", path, line, fmt.Sprintf(format, args...))
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return strings.TrimSpace(sc.Text()), true
	}
	v, ok := next()
	if !ok {
		return nil, bad(1, "missing version")
	}
	if v != strconv.Itoa(checkpointVersion) {
		return nil, bad(line, "unsupported version %q", v)
	}
	c, ok := next()
	if !ok {
		return nil, bad(2, "missing entry count")
	}
	n, err := strconv.Atoi(c)
	if err != nil || n < 0 {
		return nil, bad(line, "bad entry count %q", c)
	}
	m := make(map[TopicPartition]int64, n)
	for range n {
		s, ok := next()
		if !ok {
			return nil, bad(line+1, "expected %d entries, found %d", n, len(m))
		}
		f := strings.Fields(s)
		if len(f) != 3 {
			return nil, bad(line, "want \"topic partition offset\", got %q", s)
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		o, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, bad(line, "bad partition or offset in %q", s)
		}
		m[TopicPartition{Topic: f[0], Partition: int32(p)}] = o
	}
	for {
		s, ok := next()
		if !ok {
			break
		}
		if s != "" {
			return nil, bad(line, "more entries than the count %d", n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	return m, nil
}

// WriteCheckpoint writes m in Kafka's checkpoint format atomically: a temp
// file in the same directory, fsync, rename over path, fsync the directory.
// Entries are sorted so the file is deterministic.
func WriteCheckpoint(path string, m map[TopicPartition]int64) error {
	keys := make([]TopicPartition, 0, len(m))
	for tp := range m {
		if tp.Topic == "" || strings.ContainsAny(tp.Topic, " \t\r\n") {
			return fmt.Errorf("write checkpoint %s: topic %q cannot be written", path, tp.Topic)
		}
		keys = append(keys, tp)
	}
	slices.SortFunc(keys, func(a, b TopicPartition) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%d\n%d\n", checkpointVersion, len(keys))
	for _, tp := range keys {
		fmt.Fprintf(&buf, "%s %d %d\n", tp.Topic, tp.Partition, m[tp])
	}
	if err := fsutil.WriteFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	return nil
}
