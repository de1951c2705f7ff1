package broker

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func createTopicsRequest(version int16, topics, assignments, configs int) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version, req.TimeoutMillis, req.ValidateOnly = version, 1234, version >= 1
	for i := range topics {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = fmt.Sprintf("t%d", i)
		t.NumPartitions, t.ReplicationFactor = -1, -1
		for p := range assignments {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition, a.Replicas = int32(p), []int32{1, 2, 3}
			t.ReplicaAssignment = append(t.ReplicaAssignment, a)
		}
		for c := range configs {
			cf := kmsg.NewCreateTopicsRequestTopicConfig()
			cf.Name = fmt.Sprintf("c%d", c)
			if c%2 == 0 {
				cf.Value = kmsg.StringPtr("v")
			}
			t.Configs = append(t.Configs, cf)
		}
		req.Topics = append(req.Topics, t)
	}
	return req
}

// TestDecodeCreateTopicsWithinBound: at every version, a request within
// the bound decodes exactly as kmsg decodes it.
func TestDecodeCreateTopicsWithinBound(t *testing.T) {
	for v := int16(0); v <= 7; v++ {
		req := createTopicsRequest(v, 50, 20, 9) // 50 + 1,000 + 450 elements
		got, err := decodeCreateTopics(v, req.AppendTo(nil))
		require.NoError(t, err, "v%d", v)
		require.Equal(t, req, got, "v%d", v)
	}
}

// TestDecodeCreateTopicsOverBound: past maxRecordsPerRequest topics,
// assignments and configs, only the first names are decoded, at every
// version; a truncated body is an error, as kmsg's.
func TestDecodeCreateTopicsOverBound(t *testing.T) {
	for v := int16(0); v <= 7; v++ {
		// Few topics, many configs: every topic is answered.
		got, err := decodeCreateTopics(v, createTopicsRequest(v, 3, 0, 4000).AppendTo(nil))
		require.NoError(t, err)
		o, ok := got.(*oversizedCreateTopics)
		require.True(t, ok, "v%d: %T", v, got)
		require.Equal(t, 3, o.topics)
		require.Equal(t, 3+3*4000, o.elements)
		require.Len(t, o.Topics, 3)
		require.Equal(t, "t2", o.Topics[2].Topic)
		require.Empty(t, o.Topics[2].Configs)
		require.Equal(t, v, o.GetVersion())

		// More topics than the bound: the first maxRecordsPerRequest are named.
		got, err = decodeCreateTopics(v, createTopicsRequest(v, maxRecordsPerRequest+5, 0, 0).AppendTo(nil))
		require.NoError(t, err)
		o = got.(*oversizedCreateTopics)
		require.Equal(t, maxRecordsPerRequest+5, o.topics)
		require.Len(t, o.Topics, maxRecordsPerRequest)
		require.Equal(t, fmt.Sprintf("t%d", maxRecordsPerRequest-1), o.Topics[maxRecordsPerRequest-1].Topic)

		body := createTopicsRequest(v, 20, 2, 2).AppendTo(nil)
		_, err = decodeCreateTopics(v, body[:len(body)/2])
		require.Error(t, err, "v%d truncated", v)
	}
}

func createPartitionsRequest(version int16, topics, assignments int) *kmsg.CreatePartitionsRequest {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version, req.TimeoutMillis, req.ValidateOnly = version, 1234, true
	for i := range topics {
		t := kmsg.NewCreatePartitionsRequestTopic()
		t.Topic, t.Count = fmt.Sprintf("t%d", i), int32(3+assignments)
		for range assignments {
			a := kmsg.NewCreatePartitionsRequestTopicAssignment()
			a.Replicas = []int32{1, 2}
			t.Assignment = append(t.Assignment, a)
		}
		req.Topics = append(req.Topics, t)
	}
	return req
}

// TestDecodeCreatePartitionsBounded: within the bound, kmsg's decoding at
// every version; past it, the first names only; truncated, an error.
func TestDecodeCreatePartitionsBounded(t *testing.T) {
	for v := int16(0); v <= 3; v++ {
		req := createPartitionsRequest(v, 40, 30)
		got, err := decodeCreatePartitions(v, req.AppendTo(nil))
		require.NoError(t, err, "v%d", v)
		require.Equal(t, req, got, "v%d", v)

		got, err = decodeCreatePartitions(v, createPartitionsRequest(v, 4, 3000).AppendTo(nil))
		require.NoError(t, err)
		o, ok := got.(*oversizedCreatePartitions)
		require.True(t, ok, "v%d: %T", v, got)
		require.Equal(t, 4, o.topics)
		require.Equal(t, 4+4*3000, o.elements)
		require.Len(t, o.Topics, 4)
		require.Equal(t, "t3", o.Topics[3].Topic)

		got, err = decodeCreatePartitions(v, createPartitionsRequest(v, maxRecordsPerRequest+1, 0).AppendTo(nil))
		require.NoError(t, err)
		require.Len(t, got.(*oversizedCreatePartitions).Topics, maxRecordsPerRequest)

		body := req.AppendTo(nil)
		_, err = decodeCreatePartitions(v, body[:len(body)/2])
		require.Error(t, err, "v%d truncated", v)
	}
}

func deleteTopicsRequest(version int16, topics int) *kmsg.DeleteTopicsRequest {
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version, req.TimeoutMillis = version, 1234
	for i := range topics {
		name := fmt.Sprintf("t%d", i)
		if version < 6 {
			req.TopicNames = append(req.TopicNames, name)
			continue
		}
		t := kmsg.NewDeleteTopicsRequestTopic()
		if i%2 == 0 {
			t.Topic = kmsg.StringPtr(name)
		} else {
			t.TopicID[0], t.TopicID[15] = byte(i), 7
		}
		req.Topics = append(req.Topics, t)
	}
	return req
}

// TestDecodeDeleteTopicsBounded: within the bound, kmsg's decoding at
// every version; past it, the first names (v0-5) or names and ids (v6)
// only; truncated, an error.
func TestDecodeDeleteTopicsBounded(t *testing.T) {
	for v := int16(0); v <= 6; v++ {
		req := deleteTopicsRequest(v, 100)
		got, err := decodeDeleteTopics(v, req.AppendTo(nil))
		require.NoError(t, err, "v%d", v)
		require.Equal(t, req, got, "v%d", v)

		big := deleteTopicsRequest(v, maxRecordsPerRequest+3)
		got, err = decodeDeleteTopics(v, big.AppendTo(nil))
		require.NoError(t, err)
		o, ok := got.(*oversizedDeleteTopics)
		require.True(t, ok, "v%d: %T", v, got)
		require.Equal(t, maxRecordsPerRequest+3, o.topics)
		if v < 6 {
			require.Equal(t, big.TopicNames[:maxRecordsPerRequest], o.TopicNames)
		} else {
			require.Equal(t, big.Topics[:maxRecordsPerRequest], o.Topics)
		}

		body := big.AppendTo(nil)
		_, err = decodeDeleteTopics(v, body[:len(body)/3])
		require.Error(t, err, "v%d truncated", v)
	}
}

func metadataRequest(version int16, topics int) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	req.Version, req.AllowAutoTopicCreation = version, version >= 4
	req.IncludeTopicAuthorizedOperations = version >= 8
	for i := range topics {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(fmt.Sprintf("t%d", i))
		if version >= 10 && i%2 == 1 {
			t.Topic, t.TopicID[0], t.TopicID[15] = nil, byte(i), 9
		}
		req.Topics = append(req.Topics, t)
	}
	return req
}

// TestDecodeMetadataBounded: within maxMetadataTopics, kmsg's decoding at
// every version; past it, the first maxRecordsPerRequest topics only;
// truncated, an error.
func TestDecodeMetadataBounded(t *testing.T) {
	for v := int16(0); v <= 12; v++ {
		req := metadataRequest(v, 50)
		got, err := decodeMetadata(v, req.AppendTo(nil))
		require.NoError(t, err, "v%d", v)
		require.Equal(t, req, got, "v%d", v)

		big := metadataRequest(v, maxMetadataTopics+1)
		got, err = decodeMetadata(v, big.AppendTo(nil))
		require.NoError(t, err)
		o, ok := got.(*oversizedMetadata)
		require.True(t, ok, "v%d: %T", v, got)
		require.Equal(t, maxMetadataTopics+1, o.topics)
		require.Equal(t, big.Topics[:maxRecordsPerRequest], o.Topics, "v%d", v)

		body := big.AppendTo(nil)
		_, err = decodeMetadata(v, body[:maxRecordsPerRequest])
		require.Error(t, err, "v%d truncated", v)
	}
}

// FuzzBoundedDecoders: on any bytes the bounded decoders neither panic
// nor disagree with kmsg: what they decode whole is what kmsg decodes, and
// what kmsg refuses they refuse.
func FuzzBoundedDecoders(f *testing.F) {
	f.Add(int16(0), int8(0), createTopicsRequest(0, 2, 1, 1).AppendTo(nil))
	f.Add(int16(5), int8(0), createTopicsRequest(5, 3, 2, 2).AppendTo(nil))
	f.Add(int16(1), int8(1), createPartitionsRequest(1, 2, 2).AppendTo(nil))
	f.Add(int16(3), int8(1), createPartitionsRequest(3, 2, 1).AppendTo(nil))
	f.Add(int16(3), int8(2), deleteTopicsRequest(3, 3).AppendTo(nil))
	f.Add(int16(6), int8(2), deleteTopicsRequest(6, 3).AppendTo(nil))
	f.Add(int16(4), int8(3), metadataRequest(4, 3).AppendTo(nil))
	f.Add(int16(12), int8(3), metadataRequest(12, 3).AppendTo(nil))
	f.Fuzz(func(t *testing.T, version int16, which int8, body []byte) {
		var dec func(int16, []byte) (kmsg.Request, error)
		var ref kmsg.Request
		switch (int(which)%4 + 4) % 4 {
		case 0:
			dec, ref, version = decodeCreateTopics, kmsg.NewPtrCreateTopicsRequest(), version&7
		case 1:
			dec, ref, version = decodeCreatePartitions, kmsg.NewPtrCreatePartitionsRequest(), version&3
		case 2:
			dec, ref, version = decodeDeleteTopics, kmsg.NewPtrDeleteTopicsRequest(), min(version&7, 6)
		default:
			dec, ref, version = decodeMetadata, kmsg.NewPtrMetadataRequest(), min(version&15, 12)
		}
		ref.SetVersion(version)
		refErr := ref.ReadFrom(body)
		got, err := dec(version, body)
		switch got.(type) {
		case *oversizedCreateTopics, *oversizedCreatePartitions, *oversizedDeleteTopics, *oversizedMetadata:
			return // refused from the wire bytes: kmsg may decode what follows the answered topics
		}
		if (err == nil) != (refErr == nil) {
			t.Fatalf("v%d: bounded decoder err %v, kmsg err %v", version, err, refErr)
		}
		if err == nil {
			require.Equal(t, ref, got)
		}
	})
}
