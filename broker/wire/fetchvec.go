package wire

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A Fetch response is mostly record batches the handler read from the log
// into buffers of their own. kmsg's AppendTo would copy each of them into
// the response buffer before the write; appendFetchVec encodes everything
// else and leaves the records where they are, and writeVec hands the
// pieces to the kernel in one writev per chunk. Kafka goes further and
// sends records from the page cache with sendfile; this saves the copy and
// the response-sized allocation, which the follower fetches of
// replication made a tenth of a broker's CPU.

// vecMinRecords is the record bytes from which a Fetch response is
// written as pieces; below it one copy costs less than the extra iovecs.
const vecMinRecords = 32 << 10

// fetchVec is an encoded Fetch response: hdr holds every byte that is
// not record data, cut at marks; records[i] goes between hdr[:marks[i]]
// and the rest.
type fetchVec struct {
	hdr     []byte
	marks   []int
	records [][]byte
	size    int // the whole frame, size prefix included
}

// buffers lays the pieces out in order (empty record sets skipped).
func (v *fetchVec) buffers() net.Buffers {
	bufs := make(net.Buffers, 0, 2*len(v.records)+1)
	from := 0
	for i, m := range v.marks {
		bufs = append(bufs, v.hdr[from:m])
		if len(v.records[i]) > 0 {
			bufs = append(bufs, v.records[i])
		}
		from = m
	}
	return append(bufs, v.hdr[from:])
}

// recordBytes is the record data a Fetch response carries.
func recordBytes(r *kmsg.FetchResponse) int {
	n := 0
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			n += len(r.Topics[i].Partitions[j].RecordBatches)
		}
	}
	return n
}

// appendFetchVec frames r as appendResponse would, into dst without its
// record data. ok is false for what it does not encode (versions outside
// 4-12, tagged fields set), which then takes appendResponse.
func appendFetchVec(dst []byte, corr int32, r *kmsg.FetchResponse) (v fetchVec, ok bool) {
	version := r.Version
	if version < 4 || version > 12 || r.UnknownTags.Len() > 0 || len(r.Brokers) > 0 {
		return v, false
	}
	flex := version >= 12
	arrayLen := func(dst []byte, n int) []byte {
		if flex {
			return kbin.AppendCompactArrayLen(dst, n)
		}
		return kbin.AppendArrayLen(dst, n)
	}
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if flex {
		dst = append(dst, 0) // response header tags
	}
	dst = kbin.AppendInt32(dst, r.ThrottleMillis)
	if version >= 7 {
		dst = kbin.AppendInt16(dst, r.ErrorCode)
		dst = kbin.AppendInt32(dst, r.SessionID)
	}
	dst = arrayLen(dst, len(r.Topics))
	records := 0
	for i := range r.Topics {
		t := &r.Topics[i]
		if t.UnknownTags.Len() > 0 {
			return v, false
		}
		if flex {
			dst = kbin.AppendCompactString(dst, t.Topic)
		} else {
			dst = kbin.AppendString(dst, t.Topic)
		}
		dst = arrayLen(dst, len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.UnknownTags.Len() > 0 || p.DivergingEpoch.Epoch != -1 || p.DivergingEpoch.EndOffset != -1 ||
				p.DivergingEpoch.UnknownTags.Len() > 0 || p.CurrentLeader.LeaderID != -1 || p.CurrentLeader.LeaderEpoch != -1 ||
				p.CurrentLeader.UnknownTags.Len() > 0 || p.SnapshotID.EndOffset != -1 || p.SnapshotID.Epoch != -1 ||
				p.SnapshotID.UnknownTags.Len() > 0 {
				return v, false
			}
			dst = kbin.AppendInt32(dst, p.Partition)
			dst = kbin.AppendInt16(dst, p.ErrorCode)
			dst = kbin.AppendInt64(dst, p.HighWatermark)
			dst = kbin.AppendInt64(dst, p.LastStableOffset)
			if version >= 5 {
				dst = kbin.AppendInt64(dst, p.LogStartOffset)
			}
			if flex {
				dst = kbin.AppendCompactNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			} else {
				dst = kbin.AppendNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			}
			for k := range p.AbortedTransactions {
				a := &p.AbortedTransactions[k]
				if a.UnknownTags.Len() > 0 {
					return v, false
				}
				dst = kbin.AppendInt64(dst, a.ProducerID)
				dst = kbin.AppendInt64(dst, a.FirstOffset)
				if flex {
					dst = append(dst, 0)
				}
			}
			if version >= 11 {
				dst = kbin.AppendInt32(dst, p.PreferredReadReplica)
			}
			switch {
			case p.RecordBatches == nil && flex:
				dst = kbin.AppendUvarint(dst, 0)
			case p.RecordBatches == nil:
				dst = kbin.AppendInt32(dst, -1)
			case flex:
				dst = kbin.AppendUvarint(dst, 1+uint32(len(p.RecordBatches)))
			default:
				dst = kbin.AppendInt32(dst, int32(len(p.RecordBatches)))
			}
			v.marks = append(v.marks, len(dst))
			v.records = append(v.records, p.RecordBatches)
			records += len(p.RecordBatches)
			if flex {
				dst = append(dst, 0) // partition tags
			}
		}
		if flex {
			dst = append(dst, 0) // topic tags
		}
	}
	if flex {
		dst = append(dst, 0) // response tags
	}
	v.size = len(dst) + records
	binary.BigEndian.PutUint32(dst, uint32(v.size-4))
	v.hdr = dst
	return v, true
}

// writeVec writes bufs with a fresh write deadline per writeChunk bytes,
// as writeAll does, one writev per chunk on a TCP connection.
func writeVec(c net.Conn, bufs net.Buffers, timeout time.Duration) (int, error) {
	written := 0
	for len(bufs) > 0 {
		var chunk net.Buffers
		n := 0
		for len(bufs) > 0 && n < writeChunk {
			b := bufs[0]
			if len(b) > writeChunk-n {
				b = b[:writeChunk-n]
			}
			chunk = append(chunk, b)
			n += len(b)
			if len(b) == len(bufs[0]) {
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][len(b):]
			}
		}
		if timeout > 0 {
			if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
				return written, err
			}
		}
		m, err := chunk.WriteTo(c)
		written += int(m)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// writeResponse frames and writes resp, reusing wbuf for the encoding; it
// returns the buffer to keep, the frame's size and the bytes written.
func writeResponse(c net.Conn, wbuf []byte, corr int32, resp kmsg.Response, timeout time.Duration) ([]byte, int, int, error) {
	if fr, ok := resp.(*kmsg.FetchResponse); ok && recordBytes(fr) >= vecMinRecords {
		if v, ok := appendFetchVec(wbuf[:0], corr, fr); ok {
			n, err := writeVec(c, v.buffers(), timeout)
			return v.hdr, v.size, n, err
		}
	}
	wbuf = appendResponse(wbuf[:0], corr, resp)
	n, err := writeAll(c, wbuf, timeout)
	return wbuf, len(wbuf), n, err
}
