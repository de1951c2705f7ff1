package broker

import (
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

// bodyDecoders are the wire.BodyDecoders the broker installs.
var bodyDecoders = map[int16]wire.BodyDecoder{
	kmsg.CreateTopics.Int16(): decodeCreateTopics,
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
	var n int
	if flexible {
		n = int(r.Uvarint()) - 1
	} else {
		n = int(r.Int16())
	}
	if n < 0 {
		return nil
	}
	return r.Span(n)
}

func skipTags(r *kbin.Reader, flexible bool) {
	if flexible {
		kmsg.SkipTags(r)
	}
}
