package broker

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/broker/replica"
)

// Limits on what one request may create, so that one careless or hostile
// client cannot exhaust the broker's file descriptors or the metadata log
// (kobs issue 11: one 10,000-topic CreateTopics left 93,338 partition
// directories and a broker that could not start again).

// maxRecordsPerRequest is the most topics plus partitions one CreateTopics
// or CreatePartitions request may add. It is Kafka's own bound: KRaft's
// QuorumController refuses a user operation that would write more than
// MAX_RECORDS_PER_USER_OP (10,000) records with POLICY_VIOLATION ("Unable
// to perform excessively large batch operation"), for every topic of the
// request, and so does kobs (counting a record per topic and per
// partition).
const maxRecordsPerRequest = 10000

// fdsPerPartition is what one open partition holds: its active segment's
// .log, .index and .timeindex. The derived partition limit leaves half of
// the descriptors to connections, rolled segments and the metadata log.
const fdsPerPartition = 3

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard one (Kafka's
// docs ask operators for 100,000+; a broker should not fail at a soft
// limit it could lift itself) and returns the soft limit in force after,
// logging both. The Go runtime (1.19+) already raises it at process start
// on Linux; this also covers embedders that lowered it and says what the
// broker runs with.
func raiseFileLimit(log *slog.Logger) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the file descriptor limit (RLIMIT_NOFILE)", "err", err)
		return 0
	}
	before := lim.Cur
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("cannot raise the soft file descriptor limit to the hard one", "soft", lim.Cur, "hard", lim.Max, "err", err)
		} else {
			lim = raised
		}
	}
	log.Info("file descriptor limit (RLIMIT_NOFILE)", "soft_at_start", before, "soft", lim.Cur, "hard", lim.Max)
	return lim.Cur
}

// derivedMaxPartitions is kobs.max.partitions.per.broker's default: half
// the file descriptors, at fdsPerPartition each (3,333 at 20,000
// descriptors, 174,762 at 1,048,576).
func derivedMaxPartitions(nofile uint64) int {
	const ceiling = 1 << 20 // RLIM_INFINITY and friends
	if nofile == 0 || nofile > ceiling*2*fdsPerPartition {
		return ceiling
	}
	return max(1, int(nofile/2/fdsPerPartition))
}

// checkPartitionLimit reports whether newReplicas more partition replicas
// fit under kobs.max.partitions.per.broker on the live brokers of img,
// each taken to have this broker's limit (the brokers of a cluster share
// their configuration). It answers the error message, or "".
//
// The check runs on the broker that takes the request, against its image,
// to answer early with the room left in the cluster. It is not the one
// that holds: two requests racing could pass it together, so the active
// controller checks again, per broker, where creations are decided one at
// a time (controller.Config.MaxPartitionsPerBroker), which also covers
// internal topics.
func (b *Broker) checkPartitionLimit(img *metadata.Image, newReplicas int) string {
	limit := b.maxPartitions
	if limit <= 0 || newReplicas <= 0 {
		return ""
	}
	held := map[int32]int{}
	for _, t := range img.Topics {
		for i := range t.Partitions {
			for _, r := range t.Partitions[i].Replicas {
				held[r]++
			}
		}
	}
	room, live := 0, 0
	for id, br := range img.Brokers {
		if br.Fenced {
			continue
		}
		live++
		room += max(0, limit-held[id])
	}
	if newReplicas <= room {
		return ""
	}
	return fmt.Sprintf("kobs.max.partitions.per.broker=%d: %d more partition replicas do not fit (room for %d on %d live brokers)",
		limit, newReplicas, room, live)
}

// fdsPerSegment is what every segment of a partition holds open: .log,
// .index and .timeindex. kobs keeps them open as Kafka does (Kafka asks
// for a file descriptor limit of 100,000 or more and relies on it).
const fdsPerSegment = 3

// startupReserve is the descriptors a broker needs besides its segments
// before it can serve: listeners, the metadata log, checkpoints, stdio.
const startupReserve = 64

// checkLogsFitFileLimit refuses to start, before any partition is opened,
// a broker whose log dirs hold more partitions than
// kobs.max.partitions.per.broker, or more segments than the file
// descriptor limit (nofile, the soft RLIMIT_NOFILE after raising it) can
// keep open. Without it the broker opened partitions until "too many open
// files" and failed half-way (issue 11). Nothing on disk is changed: the
// error says which limit to raise, and the next start opens everything.
func checkLogsFitFileLimit(dirs []string, maxPartitions int, derived bool, nofile uint64, log *slog.Logger) error {
	partitions, segments := 0, 0
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("read log dir: %w", err)
		}
		for _, e := range ents {
			name, _, ok := replica.ParsePartitionDir(e.Name())
			if !e.IsDir() || !ok || validateTopicName(name) != nil {
				continue // what replica.Manager.Load skips
			}
			partitions++
			files, err := os.ReadDir(filepath.Join(dir, e.Name()))
			if err != nil {
				return fmt.Errorf("read partition dir: %w", err)
			}
			for _, f := range files {
				if strings.HasSuffix(f.Name(), ".log") {
					segments++
				}
			}
		}
	}
	howToRaise := "raise the file descriptor limit (ulimit -n, systemd LimitNOFILE=, docker --ulimit nofile=, a Kubernetes node's containerd LimitNOFILE)"
	if partitions > maxPartitions {
		how := fmt.Sprintf("set kobs.max.partitions.per.broker to at least %d, with a file descriptor limit to match (%d per segment)",
			partitions, fdsPerSegment)
		if derived {
			how = fmt.Sprintf("%s to at least %d (kobs.max.partitions.per.broker is derived as soft RLIMIT_NOFILE / %d), or set kobs.max.partitions.per.broker",
				howToRaise, partitions*2*fdsPerPartition, 2*fdsPerPartition)
		}
		return fmt.Errorf("log dirs %s hold %d partitions, more than kobs.max.partitions.per.broker=%d (soft RLIMIT_NOFILE %d); "+
			"not starting, so as not to run out of file descriptors half-way; nothing on disk was changed: %s",
			strings.Join(dirs, ","), partitions, maxPartitions, nofile, how)
	}
	need := uint64(segments*fdsPerSegment + startupReserve)
	if nofile > 0 && need > nofile {
		return fmt.Errorf("log dirs %s hold %d segments in %d partitions; kobs keeps each segment's .log, .index and .timeindex open, "+
			"as Kafka does: %d file descriptors, more than the soft RLIMIT_NOFILE %d; not starting; nothing on disk was changed: %s to at least %d, "+
			"or lower the segment count (larger log.segment.bytes, shorter retention)",
			strings.Join(dirs, ","), segments, partitions, need, nofile, howToRaise, 2*need)
	}
	if nofile > 0 && need > nofile/2 {
		log.Warn("the log dirs' segments hold more than half the file descriptors; connections and new partitions share the rest",
			"segments", segments, "partitions", partitions, "descriptors_for_segments", segments*fdsPerSegment, "soft_rlimit_nofile", nofile)
	}
	return nil
}
