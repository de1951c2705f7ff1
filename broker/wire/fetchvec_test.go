package wire

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func randomFetchResponse(rng *rand.Rand, version int16) *kmsg.FetchResponse {
	r := kmsg.NewPtrFetchResponse()
	r.Version = version
	r.ThrottleMillis, r.ErrorCode, r.SessionID = rng.Int32N(100), int16(rng.IntN(3)), rng.Int32()
	for range rng.IntN(4) {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = string(rune('a'+rng.IntN(26))) + "-topic"
		for range rng.IntN(4) {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition, p.ErrorCode = rng.Int32N(1000), int16(rng.IntN(2))
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = rng.Int64(), rng.Int64(), rng.Int64()
			p.PreferredReadReplica = rng.Int32N(3) - 1
			switch rng.IntN(3) {
			case 0: // null
			case 1:
				p.RecordBatches = []byte{}
			default:
				p.RecordBatches = make([]byte, rng.IntN(300<<10))
				for i := range p.RecordBatches {
					p.RecordBatches[i] = byte(rng.Uint32())
				}
			}
			if rng.IntN(2) == 0 {
				for range rng.IntN(3) {
					a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
					a.ProducerID, a.FirstOffset = rng.Int64(), rng.Int64()
					p.AbortedTransactions = append(p.AbortedTransactions, a)
				}
				if p.AbortedTransactions == nil {
					p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
				}
			}
			t.Partitions = append(t.Partitions, p)
		}
		r.Topics = append(r.Topics, t)
	}
	return r
}

func joined(bufs net.Buffers) []byte {
	var out []byte
	for _, b := range bufs {
		out = append(out, b...)
	}
	return out
}

// The pieces appendFetchVec leaves are, put together, the bytes
// appendResponse writes, for every Fetch version the broker serves.
func TestFetchVecMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for version := int16(4); version <= 12; version++ {
		for range 50 {
			r := randomFetchResponse(rng, version)
			corr := rng.Int32()
			want := appendResponse(nil, corr, r)
			v, ok := appendFetchVec([]byte("garbage")[:0], corr, r)
			require.True(t, ok, "v%d", version)
			require.Equal(t, len(want), v.size, "v%d size", version)
			got := joined(v.buffers())
			require.True(t, bytes.Equal(want, got), "v%d: vectored encoding differs from kmsg", version)
			// And kmsg reads it back.
			back := kmsg.NewPtrFetchResponse()
			back.Version = version
			skip := 8
			if version >= 12 {
				skip = 9
			}
			require.NoError(t, back.ReadFrom(got[skip:]))
			require.Equal(t, len(r.Topics), len(back.Topics))
		}
	}
}

// What appendFetchVec does not encode falls back to kmsg.
func TestFetchVecDeclinesTaggedFields(t *testing.T) {
	r := kmsg.NewPtrFetchResponse()
	r.Version = 12
	tp := kmsg.NewFetchResponseTopic()
	tp.Topic = "t"
	p := kmsg.NewFetchResponseTopicPartition()
	p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = 3, 10
	tp.Partitions = append(tp.Partitions, p)
	r.Topics = append(r.Topics, tp)
	_, ok := appendFetchVec(nil, 1, r)
	require.False(t, ok, "diverging epoch is a tagged field")
	r.Topics[0].Partitions[0] = kmsg.NewFetchResponseTopicPartition()
	_, ok = appendFetchVec(nil, 1, r)
	require.True(t, ok)
	r.Version = 13
	_, ok = appendFetchVec(nil, 1, r)
	require.False(t, ok, "v13 addresses topics by id")
}

// writeResponse puts a large Fetch response on a TCP connection byte for
// byte as the copying path would, in chunks of writeChunk.
func TestWriteResponseVectoredOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 4))
	var want []byte
	total := 0
	for total < 3*writeChunk {
		r := randomFetchResponse(rng, 12)
		total += recordBytes(r)
		want = append(want, appendResponse(nil, 7, r)...)
		_, size, n, err := writeResponse(c, nil, 7, r, 10*time.Second)
		require.NoError(t, err)
		require.Equal(t, size, n)
	}
	require.NoError(t, c.Close())
	b := <-got
	require.True(t, bytes.Equal(want, b), "bytes on the wire differ (%d vs %d)", len(b), len(want))
}
