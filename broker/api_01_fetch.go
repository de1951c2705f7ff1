package broker

import (
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/replica"
	"github.com/kobs-dev/kobs/broker/wire"
)

// Fetch: v4-12
//
// Behavior:
//   - Reads whole stored batches from the partition logs up to the high
//     watermark, within PartitionMaxBytes per partition and MaxBytes in
//     total, MaxBytes capped by the broker's fetch.max.bytes (default
//     55 MiB, as Kafka's KafkaApis caps it); the first batch of the first partition with data is returned
//     even when larger than the limits (KIP-74), so a consumer never stalls.
//   - If fewer than MinBytes are available the request is parked, without
//     holding a handler goroutine, until enough data arrives on any of its
//     partitions or MaxWaitMillis passes (Kafka's delayed fetch purgatory).
//   - Fetch sessions (KIP-227, v7+) are declined the way Kafka declines them
//     when its session cache has no room: full fetches are answered with
//     session id 0, and an incremental fetch naming a session gets
//     FETCH_SESSION_ID_NOT_FOUND so the client falls back to full fetches.
//   - read_committed reads up to the last stable offset, which equals the
//     high watermark while kobs has no transactions.
//   - Follower fetches (replica id >= 0, a replica of the partition) read up
//     to the log end offset, and the fetch offset is the follower's log end
//     offset: it moves the high watermark, the follower's caught-up time
//     (ISR shrink after replica.lag.time.max.ms) and may expand the ISR.
//     Only the leader serves fetches (NOT_LEADER_OR_FOLLOWER otherwise); a
//     current leader epoch older than the partition's is
//     FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH.
//
// Version notes: v4 isolation level and LSO, v5 log start offset, v7
// sessions, v9 current leader epoch, v11 rack/preferred replica, v12
// flexible. v13+ address topics by id and are not advertised.
func (b *Broker) handleFetch(r *wire.Request) {
	req := r.Msg.(*kmsg.FetchRequest)
	if req.Version >= 7 && req.SessionID != 0 {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		r.Respond(resp)
		return
	}
	resp, bytes, cut, bufs := b.readFetch(req)
	if bytes >= b.fetchMinBytes(req) || cut || req.MaxWaitMillis <= 0 || fetchHasError(resp) {
		b.respondFetch(r, req, resp, bufs)
		return
	}
	bufs.release()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.parkFetch(r, req)
	}()
}

// parkFetch waits for appends on the fetched partitions, re-reading after
// each, until MinBytes are available or MaxWaitMillis passes.
func (b *Broker) parkFetch(r *wire.Request, req *kmsg.FetchRequest) {
	wake := make(chan struct{}, 1)
	var watched []*replica.Partition
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			if _, p := b.lookup(rt.Topic, rp.Partition); p != nil {
				p.Watch(wake)
				watched = append(watched, p)
			}
		}
	}
	defer func() {
		for _, p := range watched {
			p.Unwatch(wake)
		}
	}()
	deadline := time.NewTimer(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	defer deadline.Stop()
	// Data may have arrived between the first read and watch.
	for {
		resp, bytes, cut, bufs := b.readFetch(req)
		if bytes >= b.fetchMinBytes(req) || cut || fetchHasError(resp) {
			b.respondFetch(r, req, resp, bufs)
			return
		}
		bufs.release() // this answer is not sent: read again later
		select {
		case <-wake:
		case <-deadline.C:
			resp, _, _, bufs := b.readFetch(req)
			b.respondFetch(r, req, resp, bufs)
			return
		case <-b.ctx.Done():
			// Shutting down: answer with what there is, as at the
			// deadline, rather than closing the connection under the
			// request (the server drains answered requests first).
			resp, _, _, bufs := b.readFetch(req)
			b.respondFetch(r, req, resp, bufs)
			return
		}
	}
}

// respondFetch sends the final answer of a fetch and counts it in
// BrokerTopicMetrics: per partition a fetch request, a failure if it
// failed, and the record bytes sent (consumer fetches only, as Kafka's
// BytesOutPerSec). Parked fetches read several times but count once. The
// read buffers go back to the pool once the response is written.
func (b *Broker) respondFetch(r *wire.Request, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, bufs fetchBufs) {
	if b.metrics != nil && req.ReplicaID < 0 {
		for _, st := range resp.Topics {
			tm := b.metrics.topic(st.Topic)
			for _, sp := range st.Partitions {
				b.metrics.fetched(tm, int64(len(sp.RecordBatches)), sp.ErrorCode != 0)
			}
		}
	}
	if len(bufs) == 0 {
		r.Respond(resp)
		return
	}
	r.RespondThen(resp, bufs.release)
}

// Fetch read buffers are recycled: replication reads every record batch
// once per follower, and a fresh buffer per read cost more (allocation,
// zeroing, page faults, collection) than the read itself. A buffer holds
// a response's records until the connection has written them
// (wire.Request.RespondThen); buffers grown past maxPooledFetchBuf are
// left to the collector.
var fetchBufPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledFetchBuf = 8 << 20

// fetchBufs are the pooled buffers one fetch response refers to.
type fetchBufs []*[]byte

func (fb fetchBufs) release() {
	for _, b := range fb {
		if cap(*b) <= maxPooledFetchBuf {
			*b = (*b)[:0]
			fetchBufPool.Put(b)
		}
	}
}

// fetchMinBytes is the request's MinBytes capped at fetch.max.bytes, as
// Kafka caps it: a fetch that may carry at most the cap is satisfied by it.
func (b *Broker) fetchMinBytes(req *kmsg.FetchRequest) int {
	if b.cfg.FetchMaxBytes > 0 {
		return int(min(req.MinBytes, b.cfg.FetchMaxBytes))
	}
	return int(req.MinBytes)
}

func fetchHasError(resp *kmsg.FetchResponse) bool {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return true
			}
		}
	}
	return false
}

// readFetch builds a fetch response from the logs as they are now and
// returns it with the number of record bytes it carries, whether the
// byte limits left data behind (then waiting cannot bring MinBytes
// closer: Kafka's delayed fetch counts the bytes available, not those
// that fit), and the pooled buffers its records are in (release them when
// the response is not sent, respondFetch does when it is).
func (b *Broker) readFetch(req *kmsg.FetchRequest) (*kmsg.FetchResponse, int, bool, fetchBufs) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.SessionID = 0 // sessions declined, see the header
	// As Kafka: min(request MaxBytes, fetch.max.bytes), so one client
	// cannot make the broker build a response of any size it likes.
	remaining := req.MaxBytes
	if req.Version < 3 || remaining <= 0 {
		remaining = 1<<31 - 1
	}
	if b.cfg.FetchMaxBytes > 0 {
		remaining = min(remaining, b.cfg.FetchMaxBytes)
	}
	total, cut := 0, false
	var bufs fetchBufs
	follower := req.ReplicaID >= 0
	now := time.Now()
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			// Kafka always sends a (possibly empty) records field;
			// librdkafka rejects a null one ("invalid MessageSetSize -1").
			sp.RecordBatches = []byte{}
			t, p := b.lookup(rt.Topic, rp.Partition)
			var ps *replica.State
			if p != nil {
				ps = p.State()
			}
			switch {
			case t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p == nil:
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			case leaderEpochError(rp.CurrentLeaderEpoch, ps.LeaderEpoch) != 0:
				sp.ErrorCode = leaderEpochError(rp.CurrentLeaderEpoch, ps.LeaderEpoch)
			case !ps.IsLeader():
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			case follower && !slices.Contains(ps.Replicas, req.ReplicaID):
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				// Consumers read below the high watermark, followers up to
				// the log end (what they copy moves the high watermark).
				upTo := p.HighWatermark()
				if follower {
					upTo = p.Log().LogEndOffset()
				}
				limit := min(rp.PartitionMaxBytes, remaining)
				buf := fetchBufPool.Get().(*[]byte)
				data, err := p.Log().ReadTo(*buf, rp.FetchOffset, limit, upTo, total == 0)
				if len(data) > 0 {
					*buf = data
					bufs = append(bufs, buf)
				} else {
					fetchBufPool.Put(buf)
				}
				if follower && err == nil {
					p.UpdateFollower(req.ReplicaID, rp.FetchOffset, now)
				}
				hw := p.HighWatermark()
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hw, hw, p.Log().LogStartOffset()
				switch {
				case errors.Is(err, klog.ErrOffsetOutOfRange):
					sp.ErrorCode = kerr.OffsetOutOfRange.Code
				case errors.Is(err, klog.ErrClosed):
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case err != nil:
					sp.ErrorCode = kerr.KafkaStorageError.Code
				case len(data) > 0:
					sp.RecordBatches = data
					total += len(data)
					remaining -= int32(min(len(data), int(remaining)))
					if next, ok := nextOffset(data); ok && next < upTo {
						cut = true
					}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, total, cut, bufs
}

// nextOffset is the offset after the last record batch (v2) in data.
func nextOffset(data []byte) (int64, bool) {
	var next int64
	ok := false
	for len(data) >= 27 {
		size := int(int32(binary.BigEndian.Uint32(data[8:12]))) + 12
		if data[16] != 2 || size < 27 || size > len(data) {
			break
		}
		next = int64(binary.BigEndian.Uint64(data[0:8])) + int64(int32(binary.BigEndian.Uint32(data[23:27]))) + 1
		ok = true
		data = data[size:]
	}
	return next, ok
}

// leaderEpochError is Kafka's check of a request's current leader epoch
// against the partition's: -1 (unknown to the client) passes, an older one
// is FENCED_LEADER_EPOCH (the client or follower lags behind a leader
// change), a newer one UNKNOWN_LEADER_EPOCH (this broker lags).
func leaderEpochError(requested, current int32) int16 {
	switch {
	case requested == -1 || requested == current:
		return 0
	case requested < current:
		return kerr.FencedLeaderEpoch.Code
	default:
		return kerr.UnknownLeaderEpoch.Code
	}
}
