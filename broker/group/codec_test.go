package group

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	klog "github.com/kobs-dev/kobs/broker/log"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	// Each line is hex groups followed by an optional comment.
	var out []byte
	for _, line := range strings.Split(s, "\n") {
		for _, f := range strings.Fields(line) {
			b, err := hex.DecodeString(f)
			if err != nil {
				break
			}
			out = append(out, b...)
		}
	}
	return out
}

// The golden bytes below are written out field by field from Kafka's
// schemas (group-coordinator/src/main/resources/common/message/*.json):
// non-flexible versions, int16-length strings, int32-length bytes and
// arrays, a leading int16 version.
func TestOffsetKeyGolden(t *testing.T) {
	got := EncodeOffsetKey(OffsetKey{Group: "grp", Topic: "tpc", Partition: 7})
	want := unhex(t, `
		0001          version 1
		0003 677270   "grp"
		0003 747063   "tpc"
		00000007      partition`)
	require.Equal(t, want, got)

	// kmsg's independent encoder agrees.
	k := kmsg.OffsetCommitKey{Version: 1, Group: "grp", Topic: "tpc", Partition: 7}
	require.Equal(t, k.AppendTo(nil), got)

	v, ok, g, err := DecodeKey(got)
	require.NoError(t, err)
	require.Equal(t, int16(1), v)
	require.Empty(t, g)
	require.Equal(t, OffsetKey{"grp", "tpc", 7}, ok)
}

func TestOffsetValueGolden(t *testing.T) {
	got := EncodeOffsetValue(OffsetValue{Offset: 0x0102, LeaderEpoch: 5, Metadata: "md", CommitTimestamp: 0x0a0b, ExpireTimestamp: -1})
	want := unhex(t, `
		0003               version 3
		0000000000000102   offset
		00000005           leader epoch
		0002 6d64          metadata "md"
		0000000000000a0b   commit timestamp`)
	require.Equal(t, want, got)
	kv := kmsg.OffsetCommitValue{Version: 3, Offset: 0x0102, LeaderEpoch: 5, Metadata: "md", CommitTimestamp: 0x0a0b}
	require.Equal(t, kv.AppendTo(nil), got)

	// With an expire timestamp Kafka writes v1 (no leader epoch).
	got = EncodeOffsetValue(OffsetValue{Offset: 9, LeaderEpoch: 5, Metadata: "", CommitTimestamp: 10, ExpireTimestamp: 20})
	want = unhex(t, `
		0001 0000000000000009 0000 000000000000000a 0000000000000014`)
	require.Equal(t, want, got)

	// Every version Kafka ever wrote decodes, v4 (flexible) included.
	for ver := int16(0); ver <= 4; ver++ {
		src := kmsg.OffsetCommitValue{Version: ver, Offset: 42, LeaderEpoch: 3, Metadata: "meta", CommitTimestamp: 1000, ExpireTimestamp: 2000}
		v, err := DecodeOffsetValue(src.AppendTo(nil))
		require.NoError(t, err, "v%d", ver)
		require.Equal(t, int64(42), v.Offset, "v%d", ver)
		require.Equal(t, "meta", v.Metadata, "v%d", ver)
		require.Equal(t, int64(1000), v.CommitTimestamp, "v%d", ver)
		wantEpoch, wantExpire := int32(-1), int64(-1)
		if ver >= 3 {
			wantEpoch = 3
		}
		if ver == 1 {
			wantExpire = 2000
		}
		require.Equal(t, wantEpoch, v.LeaderEpoch, "v%d", ver)
		require.Equal(t, wantExpire, v.ExpireTimestamp, "v%d", ver)
	}
	_, err := DecodeOffsetValue([]byte{0, 3, 0, 0})
	require.ErrorIs(t, err, ErrCorruptRecord)
	_, err = DecodeOffsetValue([]byte{0, 9})
	require.ErrorIs(t, err, ErrCorruptRecord)
}

func TestGroupMetadataGolden(t *testing.T) {
	require.Equal(t, unhex(t, "0002 0001 67"), EncodeGroupKey("g"))
	require.Equal(t, (&kmsg.GroupMetadataKey{Version: 2, Group: "g"}).AppendTo(nil), EncodeGroupKey("g"))

	proto, leader, inst := "range", "m1", "i1"
	v := GroupValue{ProtocolType: "consumer", Generation: 3, Protocol: &proto, Leader: &leader, CurrentStateTimestamp: 0x10,
		Members: []MemberValue{{MemberID: "m1", GroupInstanceID: &inst, ClientID: "c", ClientHost: "/h",
			RebalanceTimeout: 0x20, SessionTimeout: 0x30, Subscription: []byte{1, 2}, Assignment: []byte{3}}}}
	got := EncodeGroupValue(v)
	want := unhex(t, `
		0003                               version 3
		0008 636f6e73756d6572              protocolType "consumer"
		00000003                           generation
		0005 72616e6765                    protocol "range"
		0002 6d31                          leader "m1"
		0000000000000010                   currentStateTimestamp
		00000001                           one member
		  0002 6d31                        memberId
		  0002 6931                        groupInstanceId
		  0001 63                          clientId
		  0002 2f68                        clientHost
		  00000020                         rebalanceTimeout
		  00000030                         sessionTimeout
		  00000002 0102                    subscription
		  00000001 03                      assignment`)
	require.Equal(t, want, got)
	km := kmsg.GroupMetadataValue{Version: 3, ProtocolType: "consumer", Generation: 3, Protocol: &proto, Leader: &leader,
		CurrentStateTimestamp: 0x10, Members: []kmsg.GroupMetadataValueMember{{MemberID: "m1", InstanceID: &inst,
			ClientID: "c", ClientHost: "/h", RebalanceTimeoutMillis: 0x20, SessionTimeoutMillis: 0x30,
			Subscription: []byte{1, 2}, Assignment: []byte{3}}}}
	require.Equal(t, km.AppendTo(nil), got)

	// An empty group: null protocol and leader, no members.
	empty := EncodeGroupValue(GroupValue{ProtocolType: "", Generation: 0, CurrentStateTimestamp: -1})
	require.Equal(t, unhex(t, "0003 0000 00000000 ffff ffff ffffffffffffffff 00000000"), empty)

	for ver := int16(0); ver <= 4; ver++ {
		src := km
		src.Version = ver
		d, err := DecodeGroupValue(src.AppendTo(nil))
		require.NoError(t, err, "v%d", ver)
		require.Equal(t, "consumer", d.ProtocolType)
		require.Equal(t, int32(3), d.Generation)
		require.Equal(t, "range", *d.Protocol)
		require.Len(t, d.Members, 1)
		m := d.Members[0]
		require.Equal(t, "m1", m.MemberID)
		require.Equal(t, []byte{1, 2}, m.Subscription)
		require.Equal(t, []byte{3}, m.Assignment)
		require.Equal(t, int32(0x30), m.SessionTimeout)
		if ver >= 3 {
			require.Equal(t, "i1", *m.GroupInstanceID, "v%d", ver)
		}
		if ver >= 1 {
			require.Equal(t, int32(0x20), m.RebalanceTimeout, "v%d", ver)
		}
	}
	_, err := DecodeGroupValue(got[:len(got)-1])
	require.ErrorIs(t, err, ErrCorruptRecord)
}

// TestPartitionFor checks Java's String.hashCode (UTF-16, int32 overflow)
// and Kafka's Utils.abs, which maps MinInt32 to 0.
func TestPartitionFor(t *testing.T) {
	require.Equal(t, int32(0), JavaStringHashCode(""))
	require.Equal(t, int32(99162322), JavaStringHashCode("hello"))
	// A supplementary character hashes as its two UTF-16 surrogates.
	require.Equal(t, int32(0xD83D*31+0xDE00), JavaStringHashCode("😀"))
	// "polygenelubricants".hashCode() == Integer.MIN_VALUE.
	require.Equal(t, int32(-1<<31), JavaStringHashCode("polygenelubricants"))
	require.Equal(t, int32(0), PartitionFor("polygenelubricants", 50))
	// Expected values from Java 17: s.hashCode() and Utils.abs(h) % 50.
	require.Equal(t, int32(-1906497762), JavaStringHashCode("my-group"))
	require.Equal(t, int32(12), PartitionFor("my-group", 50))
	require.Equal(t, int32(22), PartitionFor("hello", 50))
	require.Equal(t, int32(49), PartitionFor("😀", 50))
}

func TestEncodeBatchRoundTrip(t *testing.T) {
	recs := []KV{
		{Key: EncodeOffsetKey(OffsetKey{"g", "t", 0}), Value: EncodeOffsetValue(OffsetValue{Offset: 5, LeaderEpoch: -1, ExpireTimestamp: -1})},
		{Key: EncodeGroupKey("g")}, // tombstone
	}
	b := EncodeBatch(recs, 1234)
	batches, err := klog.ValidateBatches(b, 1<<20)
	require.NoError(t, err)
	require.Len(t, batches, 1)
	require.Equal(t, int32(2), batches[0].NumRecords)
	require.Equal(t, int64(-1), batches[0].ProducerID)
	require.Equal(t, int64(1234), batches[0].MaxTimestamp)

	binary.BigEndian.PutUint64(b, 100) // the log assigns the base offset
	var got []StoredRecord
	next, err := DecodeBatches(b, func(r StoredRecord) error { got = append(got, r); return nil })
	require.NoError(t, err)
	require.Equal(t, int64(102), next)
	require.Len(t, got, 2)
	require.Equal(t, int64(100), got[0].Offset)
	require.Equal(t, recs[0].Value, got[0].Value)
	require.Equal(t, int64(101), got[1].Offset)
	require.Nil(t, got[1].Value)
	require.Equal(t, int64(1234), got[1].Timestamp)
}

// TestDecodeCompressedBatch: a gzip batch (as a Kafka broker configured
// with offsets.topic.compression.codec would write) is decompressed.
func TestDecodeCompressedBatch(t *testing.T) {
	var raw []byte
	for i, kv := range []KV{{Key: []byte("k0"), Value: []byte("v0")}, {Key: []byte("k1"), Value: []byte("v1")}} {
		r := kmsg.Record{OffsetDelta: int32(i), Key: kv.Key, Value: kv.Value}
		body := r.AppendTo(nil)[1:] // without the placeholder length
		raw = kbin.AppendVarint(raw, int32(len(body)))
		raw = append(raw, body...)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write(raw)
	require.NoError(t, zw.Close())
	rb := kmsg.RecordBatch{FirstOffset: 7, Magic: 2, Attributes: 1, LastOffsetDelta: 1, ProducerID: -1,
		ProducerEpoch: -1, FirstSequence: -1, NumRecords: 2, Records: zb.Bytes()}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	_, err := klog.ValidateBatches(b, 0)
	require.NoError(t, err)
	var keys []string
	next, err := DecodeBatches(b, func(r StoredRecord) error {
		keys = append(keys, string(r.Key)+"="+string(r.Value))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(9), next)
	require.Equal(t, []string{"k0=v0", "k1=v1"}, keys)

	// A partial trailing batch is left for the next read.
	next, err = DecodeBatches(b[:len(b)-3], func(StoredRecord) error { return nil })
	require.NoError(t, err)
	require.Equal(t, int64(-1), next)
}
