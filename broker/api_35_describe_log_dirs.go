package broker

import (
	"sort"
	"syscall"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/replica"
	"github.com/kobs-dev/kobs/broker/wire"
)

// DescribeLogDirs: v0-4
//
// Behavior:
//   - One entry per log dir with the size of each partition stored there
//     (all partitions when Topics is null, else the named ones); OffsetLag is
//     0 because every partition here is its own leader's log.
//   - v4 adds the file system's total and usable bytes (statfs).
//
// Version notes: v2 flexible, v3 top-level error code, v4 total/usable bytes.
func (b *Broker) handleDescribeLogDirs(r *wire.Request) {
	req := r.Msg.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	wanted := func(t string, p int32) bool {
		if req.Topics == nil {
			return true
		}
		for _, rt := range req.Topics {
			if rt.Topic != t {
				continue
			}
			for _, rp := range rt.Partitions {
				if rp == p {
					return true
				}
			}
		}
		return false
	}
	byDir := map[string]map[string][]kmsg.DescribeLogDirsResponseDirTopicPartition{}
	b.eachPartition(func(p *replica.Partition) {
		if !wanted(p.Topic, p.Index) {
			return
		}
		sp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		sp.Partition, sp.Size = p.Index, p.Log().Size()
		if byDir[p.LogDir] == nil {
			byDir[p.LogDir] = map[string][]kmsg.DescribeLogDirsResponseDirTopicPartition{}
		}
		byDir[p.LogDir][p.Topic] = append(byDir[p.LogDir][p.Topic], sp)
	})
	for _, dir := range b.cfg.LogDirs {
		sd := kmsg.NewDescribeLogDirsResponseDir()
		sd.Dir = dir
		var fs syscall.Statfs_t
		if err := syscall.Statfs(dir, &fs); err == nil {
			sd.TotalBytes = int64(fs.Blocks) * fs.Bsize
			sd.UsableBytes = int64(fs.Bavail) * fs.Bsize
		}
		names := make([]string, 0, len(byDir[dir]))
		for t := range byDir[dir] {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			st := kmsg.NewDescribeLogDirsResponseDirTopic()
			st.Topic = t
			st.Partitions = byDir[dir][t]
			sort.Slice(st.Partitions, func(i, j int) bool { return st.Partitions[i].Partition < st.Partitions[j].Partition })
			sd.Topics = append(sd.Topics, st)
		}
		resp.Dirs = append(resp.Dirs, sd)
	}
	r.Respond(resp)
}
