package broker_test

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// makeBatch encodes an uncompressed v2 record batch with n records of the
// given value size and a correct CRC32C.
func makeBatch(n, valueSize int) []byte { return makeIdempotentBatch(n, valueSize, -1, -1, -1) }

// makeIdempotentBatch is makeBatch with a producer id, epoch and first sequence.
func makeIdempotentBatch(n, valueSize int, pid int64, epoch int16, seq int32) []byte {
	var recs []byte
	val := []byte(strings.Repeat("v", valueSize))
	for i := 0; i < n; i++ {
		var body []byte
		body = append(body, 0)                   // attributes
		body = kbin.AppendVarlong(body, 0)       // timestamp delta
		body = kbin.AppendVarint(body, int32(i)) // offset delta
		body = kbin.AppendVarint(body, -1)       // null key
		body = kbin.AppendVarint(body, int32(len(val)))
		body = append(body, val...)
		body = kbin.AppendVarint(body, 0) // headers
		recs = kbin.AppendVarint(recs, int32(len(body)))
		recs = append(recs, body...)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		Magic: 2, LastOffsetDelta: int32(n - 1), FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(n), Records: recs,
	}
	raw := b.AppendTo(nil)
	kbin.AppendInt32(raw[:8], int32(len(raw)-12))
	crc := crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))
	kbin.AppendUint32(raw[:17], crc)
	return raw
}

func produceRaw(t *testing.T, cl *kgo.Client, topic string, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = -1
	req.TimeoutMillis = 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: records}}}}
	resp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	return resp.Topics[0].Partitions[0]
}

// TestBadProduceInput sends malformed record batches: each gets Kafka's
// error code and leaves the log as it was; the same client then produces
// normally.
func TestBadProduceInput(t *testing.T) {
	b := testcluster.Start(t, testcluster.Prop("message.max.bytes", "10000"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	const topic = "bad-input"
	_, err = adm.CreateTopic(context.Background(), 1, 1, nil, topic)
	require.NoError(t, err)

	good := makeBatch(3, 10)
	sp := produceRaw(t, cl, topic, good)
	require.Zero(t, sp.ErrorCode, kerr.ErrorForCode(sp.ErrorCode))

	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	badMagic := append([]byte(nil), good...)
	badMagic[16] = 1
	truncated := good[:len(good)-5]
	badLength := append([]byte(nil), good...)
	kbin.AppendInt32(badLength[:8], 1<<30)

	cases := []struct {
		name    string
		records []byte
		code    int16
	}{
		{"bad crc", badCRC, kerr.CorruptMessage.Code},
		{"magic 1 in produce v7", badMagic, kerr.InvalidRecord.Code},
		{"truncated batch", truncated, kerr.CorruptMessage.Code},
		{"length past the payload", badLength, kerr.CorruptMessage.Code},
		{"empty payload", []byte{}, kerr.CorruptMessage.Code},
		{"batch over message.max.bytes", makeBatch(20, 1000), kerr.MessageTooLarge.Code},
		{"good batch after a bad one", append(append([]byte(nil), good...), badCRC...), kerr.CorruptMessage.Code},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp := produceRaw(t, cl, topic, tc.records)
			require.Equal(t, tc.code, sp.ErrorCode, "got %v", kerr.ErrorForCode(sp.ErrorCode))
		})
	}
	// Nothing of the refused payloads was stored.
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	require.NoError(t, err)
	end, _ := ends.Lookup(topic, 0)
	require.Equal(t, int64(3), end.Offset)

	sp = produceRaw(t, cl, topic, good)
	require.Zero(t, sp.ErrorCode)
	require.Equal(t, int64(3), sp.BaseOffset)

	t.Run("batch larger than segment.bytes", func(t *testing.T) {
		small := "bad-input-small-segments"
		_, err := adm.CreateTopic(context.Background(), 1, 1, map[string]*string{"segment.bytes": kmsg.StringPtr("1024")}, small)
		require.NoError(t, err)
		sp := produceRaw(t, cl, small, makeBatch(20, 100))
		require.Equal(t, kerr.RecordListTooLarge.Code, sp.ErrorCode, "got %v", kerr.ErrorForCode(sp.ErrorCode))
	})
	t.Run("unknown topic", func(t *testing.T) {
		sp := produceRaw(t, cl, "no-such-topic", good)
		require.Equal(t, kerr.UnknownTopicOrPartition.Code, sp.ErrorCode)
	})
	t.Run("invalid acks", func(t *testing.T) {
		req := kmsg.NewPtrProduceRequest()
		req.Version = 7
		req.Acks = 2
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Records: good}}}}
		// kgo rewrites acks to its own setting, so go around it.
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = req.Version
		require.NoError(t, resp.ReadFrom(rawRequest(t, b.Addr(), req)))
		require.Equal(t, kerr.InvalidRequiredAcks.Code, resp.Topics[0].Partitions[0].ErrorCode)
	})
}

func TestInvalidTopicNames(t *testing.T) {
	b := testcluster.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, name := range []string{"bad name", "..", "x/y", strings.Repeat("a", 250), "ü"} {
		_, err := adm.CreateTopic(context.Background(), 1, 1, nil, name)
		require.ErrorIs(t, err, kerr.InvalidTopicException, "name %q", name)
	}
	// '.' and '_' collide in metric names: Kafka refuses the second.
	_, err = adm.CreateTopic(context.Background(), 1, 1, nil, "a.b")
	require.NoError(t, err)
	_, err = adm.CreateTopic(context.Background(), 1, 1, nil, "a_b")
	require.ErrorIs(t, err, kerr.InvalidTopicException)
	_, err = adm.CreateTopic(context.Background(), 1, 1, nil, "a.b")
	require.ErrorIs(t, err, kerr.TopicAlreadyExists)

	// Metadata for an invalid name is INVALID_TOPIC_EXCEPTION, not a new topic.
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	req.AllowAutoTopicCreation = true
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("bad name")}}
	md, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	require.Equal(t, kerr.InvalidTopicException.Code, md.Topics[0].ErrorCode)

	// Bad partition and replication settings.
	_, err = adm.CreateTopic(context.Background(), 0, 1, nil, "zero-partitions")
	require.ErrorIs(t, err, kerr.InvalidPartitions)
	_, err = adm.CreateTopic(context.Background(), 1, 3, nil, "rf3")
	require.ErrorIs(t, err, kerr.InvalidReplicationFactor)
	_, err = adm.CreateTopic(context.Background(), 1, 1, map[string]*string{"retention.ms": kmsg.StringPtr("soon")}, "bad-config")
	require.ErrorIs(t, err, kerr.InvalidConfig)
	_, err = adm.CreateTopic(context.Background(), 1, 1, map[string]*string{"no.such.config": kmsg.StringPtr("1")}, "bad-config")
	require.ErrorIs(t, err, kerr.InvalidConfig)
}

// rawRequest sends one request on a fresh connection, bypassing any client
// logic, and returns the response body after the correlation id.
func rawRequest(t *testing.T, addr string, req kmsg.Request) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	b := make([]byte, 4, 256)
	b = kbin.AppendInt16(b, req.Key())
	b = kbin.AppendInt16(b, req.GetVersion())
	b = kbin.AppendInt32(b, 1)
	b = kbin.AppendNullableString(b, kmsg.StringPtr("raw"))
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	kbin.AppendInt32(b[:0], int32(len(b)-4))
	_, err = c.Write(b)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	var size [4]byte
	_, err = io.ReadFull(c, size[:])
	require.NoError(t, err)
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(c, body)
	require.NoError(t, err)
	body = body[4:]
	if req.IsFlexible() {
		body = body[1:]
	}
	return body
}

// TestInternalTopicsProtected: clients cannot write to __consumer_offsets
// or grow it (which would remap every group to another partition).
func TestInternalTopicsProtected(t *testing.T) {
	b := testcluster.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(context.Background(), 1, 1, nil, "some-topic")
	require.NoError(t, err)
	offs := kadm.Offsets{}
	offs.AddOffset("some-topic", 0, 1, -1)
	resp, err := adm.CommitOffsets(context.Background(), "g", offs) // creates __consumer_offsets
	require.NoError(t, err)
	require.NoError(t, resp.Error())

	sp := produceRaw(t, cl, "__consumer_offsets", makeBatch(1, 10))
	require.Equal(t, kerr.InvalidTopicException.Code, sp.ErrorCode)
	cp, err := adm.CreatePartitions(context.Background(), 10, "__consumer_offsets")
	require.NoError(t, err)
	require.ErrorIs(t, cp["__consumer_offsets"].Err, kerr.InvalidRequest)
	dt, err := adm.DeleteTopics(context.Background(), "__consumer_offsets")
	require.NoError(t, err)
	require.ErrorIs(t, dt["__consumer_offsets"].Err, kerr.InvalidRequest)
}

// TestMinInsyncReplicas: acks=all to a topic whose min.insync.replicas is
// above its ISR is refused with NOT_ENOUGH_REPLICAS and stores nothing;
// acks=1 still works, as in Kafka.
func TestMinInsyncReplicas(t *testing.T) {
	b := testcluster.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(context.Background(), 1, 1, map[string]*string{"min.insync.replicas": kmsg.StringPtr("2")}, "min-isr")
	require.NoError(t, err)
	sp := produceRaw(t, cl, "min-isr", makeBatch(1, 10)) // acks=-1
	require.Equal(t, kerr.NotEnoughReplicas.Code, sp.ErrorCode)
	require.Equal(t, int64(0), endOffset(t, adm, "min-isr"))

	acks1, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	require.NoError(t, err)
	defer acks1.Close()
	require.NoError(t, acks1.ProduceSync(context.Background(), &kgo.Record{Topic: "min-isr", Value: []byte("v")}).FirstErr())
	require.Equal(t, int64(1), endOffset(t, adm, "min-isr"))
}
