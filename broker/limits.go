package broker

import (
	"fmt"
	"log/slog"
	"syscall"

	"github.com/kobs-dev/kobs/broker/metadata"
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
// The check runs on the broker that takes the request, against its image:
// two requests racing may together pass the limit by what each adds.
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
