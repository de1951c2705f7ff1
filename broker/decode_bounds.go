package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// Bounded decoding of CreateTopics. A topic is 10 bytes on the wire and
// about 80 in kmsg's decoded form (plus its name's allocation), so one
// frame of socket.request.max.bytes (100 MB) claiming 10.47 million
// topics decoded into gigabytes before the 10,000-record bound could
// refuse it (9.8 GB of peak RSS and a 1.7 GB answer, measured; issue 11
// saw 645 MB). Kafka decodes such a request whole and its controller
// answers every topic POLICY_VIOLATION ("Unable to perform excessively
// large batch operation", MAX_RECORDS_PER_USER_OP). kobs walks the wire
// bytes first, counting the topics, partition assignments and configs the
// request would decode; past maxRecordsPerRequest of them it decodes only
// the names of the first maxRecordsPerRequest topics and answers those.
// CreatePartitions (topics and assignments) and DeleteTopics (topics) are
// bounded the same way: Kafka's controller refuses either past
// MAX_RECORDS_PER_USER_OP records with the same POLICY_VIOLATION.

// bodyDecoders are the wire.BodyDecoders the broker installs.
var bodyDecoders = map[int16]wire.BodyDecoder{
	kmsg.CreateTopics.Int16():     decodeCreateTopics,
	kmsg.CreatePartitions.Int16(): decodeCreatePartitions,
	kmsg.DeleteTopics.Int16():     decodeDeleteTopics,
	kmsg.Metadata.Int16():         decodeMetadata,
}

// maxMetadataTopics is the most topics one Metadata request may name.
// Kafka has no such bound, but a 100 MB Metadata request of 35 million
// one-letter names decodes into 1.6 GB, and its answer would be larger
// still; clients asking for every topic send a null list, which this does
// not bound. Past it, the first maxRecordsPerRequest named topics are
// answered INVALID_REQUEST (Metadata has no error message field; the
// broker logs the reason).
const maxMetadataTopics = 200000

// oversizedMessage is the POLICY_VIOLATION message of a request refused
// from its wire bytes.
func oversizedMessage(topics, elements, answered int, what string) string {
	return fmt.Sprintf("Unable to perform excessively large batch operation: the request names %d topics (%d %s counted before refusing it), at most %d in all; answered for its first %d topics only",
		topics, elements, what, maxRecordsPerRequest, answered)
}

// oversizedCreateTopics is a CreateTopics request refused from its wire
// bytes. Topics holds the names of its first answered topics only.
type oversizedCreateTopics struct {
	*kmsg.CreateTopicsRequest
	topics   int // as the request's array claims
	elements int // topics, partition assignments and configs counted before refusing
}

// decodeCreateTopics decodes a CreateTopics body with kmsg when it holds
// at most maxRecordsPerRequest topics, partition assignments and configs
// together, and otherwise returns an *oversizedCreateTopics.
func decodeCreateTopics(version int16, body []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = version
	flexible := req.IsFlexible()
	r := kbin.Reader{Src: body}
	topics := int(arrayLen(&r, flexible))
	var names []string
	elements := max(topics, 0)
	for i := 0; i < topics && r.Ok(); i++ {
		if elements > maxRecordsPerRequest && i >= maxRecordsPerRequest {
			break // refused, and every answered name is read
		}
		name := readString(&r, flexible)
		if i < maxRecordsPerRequest {
			names = append(names, string(name))
		}
		r.Int32() // NumPartitions
		r.Int16() // ReplicationFactor
		assignments := int(arrayLen(&r, flexible))
		elements += max(assignments, 0)
		for j := 0; j < assignments && r.Ok(); j++ {
			r.Int32() // Partition
			r.Span(4 * int(max(arrayLen(&r, flexible), 0)))
			skipTags(&r, flexible)
		}
		configs := int(arrayLen(&r, flexible))
		elements += max(configs, 0)
		for j := 0; j < configs && r.Ok(); j++ {
			readString(&r, flexible) // Name
			readString(&r, flexible) // Value (nullable: the same bytes for null)
			skipTags(&r, flexible)
		}
		skipTags(&r, flexible)
	}
	if err := r.Complete(); err != nil {
		return nil, err
	}
	if elements <= maxRecordsPerRequest {
		if err := req.ReadFrom(body); err != nil {
			return nil, err
		}
		return req, nil
	}
	for _, n := range names {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = n
		req.Topics = append(req.Topics, t)
	}
	return &oversizedCreateTopics{CreateTopicsRequest: req, topics: topics, elements: elements}, nil
}

// oversizedCreatePartitions is a CreatePartitions request refused from
// its wire bytes. Topics holds the names of its first answered topics only.
type oversizedCreatePartitions struct {
	*kmsg.CreatePartitionsRequest
	topics   int // as the request's array claims
	elements int // topics and assignments counted before refusing
}

// decodeCreatePartitions decodes a CreatePartitions body with kmsg when it
// holds at most maxRecordsPerRequest topics and partition assignments,
// and otherwise returns an *oversizedCreatePartitions.
func decodeCreatePartitions(version int16, body []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version = version
	flexible := req.IsFlexible()
	r := kbin.Reader{Src: body}
	topics := int(arrayLen(&r, flexible))
	var names []string
	elements := max(topics, 0)
	for i := 0; i < topics && r.Ok(); i++ {
		if elements > maxRecordsPerRequest && i >= maxRecordsPerRequest {
			break
		}
		name := readString(&r, flexible)
		if i < maxRecordsPerRequest {
			names = append(names, string(name))
		}
		r.Int32()                                  // Count
		assignments := int(arrayLen(&r, flexible)) // nullable
		elements += max(assignments, 0)
		for j := 0; j < assignments && r.Ok(); j++ {
			r.Span(4 * int(max(arrayLen(&r, flexible), 0))) // Replicas
			skipTags(&r, flexible)
		}
		skipTags(&r, flexible)
	}
	if err := r.Complete(); err != nil {
		return nil, err
	}
	if elements <= maxRecordsPerRequest {
		if err := req.ReadFrom(body); err != nil {
			return nil, err
		}
		return req, nil
	}
	for _, n := range names {
		t := kmsg.NewCreatePartitionsRequestTopic()
		t.Topic = n
		req.Topics = append(req.Topics, t)
	}
	return &oversizedCreatePartitions{CreatePartitionsRequest: req, topics: topics, elements: elements}, nil
}

// oversizedDeleteTopics is a DeleteTopics request refused from its wire
// bytes. TopicNames (v0-5) or Topics (v6) hold its first answered topics
// only.
type oversizedDeleteTopics struct {
	*kmsg.DeleteTopicsRequest
	topics int // as the request's array claims
}

// decodeDeleteTopics decodes a DeleteTopics body with kmsg when it names
// at most maxRecordsPerRequest topics, and otherwise returns an
// *oversizedDeleteTopics.
func decodeDeleteTopics(version int16, body []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version = version
	flexible := req.IsFlexible()
	r := kbin.Reader{Src: body}
	topics := int(arrayLen(&r, flexible))
	if topics <= maxRecordsPerRequest {
		if err := req.ReadFrom(body); err != nil {
			return nil, err
		}
		return req, nil
	}
	for i := 0; i < maxRecordsPerRequest && r.Ok(); i++ {
		if version < 6 {
			req.TopicNames = append(req.TopicNames, string(readString(&r, flexible)))
			continue
		}
		t := kmsg.NewDeleteTopicsRequestTopic()
		if name := readNullableString(&r, flexible); name != nil {
			t.Topic = kmsg.StringPtr(string(name))
		}
		copy(t.TopicID[:], r.Span(16))
		skipTags(&r, flexible)
		req.Topics = append(req.Topics, t)
	}
	if err := r.Complete(); err != nil {
		return nil, err
	}
	return &oversizedDeleteTopics{DeleteTopicsRequest: req, topics: topics}, nil
}

// oversizedMetadata is a Metadata request refused from its wire bytes.
// Topics holds its first answered topics only.
type oversizedMetadata struct {
	*kmsg.MetadataRequest
	topics int // as the request's array claims
}

// decodeMetadata decodes a Metadata body with kmsg when it names at most
// maxMetadataTopics topics, and otherwise returns an *oversizedMetadata.
func decodeMetadata(version int16, body []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = version
	flexible := req.IsFlexible()
	r := kbin.Reader{Src: body}
	topics := int(arrayLen(&r, flexible))
	if topics <= maxMetadataTopics {
		if err := req.ReadFrom(body); err != nil {
			return nil, err
		}
		return req, nil
	}
	for i := 0; i < maxRecordsPerRequest && r.Ok(); i++ {
		t := kmsg.NewMetadataRequestTopic()
		if version >= 10 {
			copy(t.TopicID[:], r.Span(16))
		}
		if name := readNullableString(&r, flexible); name != nil || version < 10 {
			t.Topic = kmsg.StringPtr(string(name))
		}
		skipTags(&r, flexible)
		req.Topics = append(req.Topics, t)
	}
	if err := r.Complete(); err != nil {
		return nil, err
	}
	return &oversizedMetadata{MetadataRequest: req, topics: topics}, nil
}

// arrayLen reads an array length; -1 is a null array.
func arrayLen(r *kbin.Reader, flexible bool) int32 {
	if flexible {
		return r.CompactArrayLen()
	}
	return r.ArrayLen()
}

// readString reads a (nullable) string without copying it; null reads as
// empty.
func readString(r *kbin.Reader, flexible bool) []byte {
	return readNullableString(r, flexible)
}

// readNullableString reads a nullable string without copying it: nil for
// null, non-nil (possibly empty) otherwise.
func readNullableString(r *kbin.Reader, flexible bool) []byte {
	var n int
	if flexible {
		n = int(r.Uvarint()) - 1
	} else {
		n = int(r.Int16())
	}
	if n < 0 {
		return nil
	}
	if b := r.Span(n); b != nil {
		return b
	}
	return []byte{}
}

func skipTags(r *kbin.Reader, flexible bool) {
	if flexible {
		kmsg.SkipTags(r)
	}
}
