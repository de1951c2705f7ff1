package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/group"
	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/broker/wire"
)

// FindCoordinator: v0-4
//
// Behavior:
//   - Group keys (type 0): the coordinator is the leader of the group's
//     __consumer_offsets partition in the current image, answered with its
//     endpoint for the listener the request came on; a partition without
//     a leader is COORDINATOR_NOT_AVAILABLE. The first lookup creates
//     __consumer_offsets (Kafka answers COORDINATOR_NOT_AVAILABLE while it
//     creates the topic; kobs creates it synchronously and answers at once)
//     with offsets.topic.replication.factor replicas; while fewer brokers
//     are live it is not created and the answer is COORDINATOR_NOT_AVAILABLE
//     (Kafka's controller refuses the creation the same way).
//   - Transaction keys (type 1) get COORDINATOR_NOT_AVAILABLE until kobs has
//     a transaction coordinator; other key types INVALID_REQUEST.
//   - Any key is accepted, the empty group id included, as in Kafka.
//
// Version notes: v1 key type, throttle and error message; v3 flexible; v4
// batches keys (KIP-699) and answers per key. v5 (TRANSACTION_ABORTABLE) and
// v6 (share coordinators) are not advertised.
func (b *Broker) handleFindCoordinator(r *wire.Request) {
	req := r.Msg.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		switch req.CoordinatorType {
		case 0:
			if err := b.ensureOffsetsTopic(); err != nil {
				if !errors.Is(err, errOffsetsTopicRF) { // logged by ensureOffsetsTopic
					b.log.Error("cannot create the offsets topic", "err", err)
				}
				c.ErrorCode, c.ErrorMessage = kerr.CoordinatorNotAvailable.Code, strp(err.Error())
				break
			}
			img := b.pub.Load()
			t := img.Topic(offsetsTopic)
			var mb *metadata.Broker
			if t != nil && len(t.Partitions) > 0 {
				mp := t.Partitions[group.PartitionFor(key, int32(len(t.Partitions)))]
				mb = img.Brokers[mp.Leader]
			}
			if mb == nil {
				c.ErrorCode, c.ErrorMessage = kerr.CoordinatorNotAvailable.Code, strp("the group's offsets partition has no leader")
				break
			}
			host, port, ok := b.brokerEndpoint(mb, r.Listener)
			if !ok {
				c.ErrorCode, c.ErrorMessage = kerr.CoordinatorNotAvailable.Code, strp("the coordinator has no endpoint on listener "+r.Listener)
				break
			}
			c.NodeID, c.Host, c.Port = mb.ID, host, port
		case 1:
			c.ErrorCode, c.ErrorMessage = kerr.CoordinatorNotAvailable.Code, strp("kobs has no transaction coordinator yet")
		default:
			c.ErrorCode, c.ErrorMessage = kerr.InvalidRequest.Code, strp("unsupported coordinator key type")
		}
		if c.ErrorCode != 0 {
			c.NodeID, c.Host, c.Port = -1, "", -1
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	respond(r, resp)
}
