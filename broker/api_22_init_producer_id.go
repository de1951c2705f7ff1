package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// InitProducerId: v0-4
//
// Behavior:
//   - Without a transactional id (the idempotent producer) every call gets
//     a fresh producer id with epoch 0, as Kafka does, including the KIP-360
//     re-initialisation (v3+ with the old id and epoch): a new id is as good
//     as a bumped epoch for a producer that is not transactional.
//   - Producer ids come from blocks reserved on disk, so they are never
//     reused across restarts.
//   - Transactional ids are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//     until kobs has a transaction coordinator, so a transactional producer
//     fails at once with a clear error rather than hanging.
//
// Version notes: v1 same as v0, v2 flexible, v3 producer id/epoch in the
// request (KIP-360), v4 same as v3 (client may retry on PRODUCER_FENCED).
func (b *Broker) handleInitProducerID(r *wire.Request) {
	req := r.Msg.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		b.log.Warn("transactional producer refused: transactions are not supported", "transactional_id", *req.TransactionalID, "client", r.Header.ClientID)
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		r.Respond(resp)
		return
	}
	id, err := b.producerIDs.Next()
	if err != nil {
		b.log.Error("producer id allocation failed", "err", err)
		resp.ErrorCode = kerr.KafkaStorageError.Code
		r.Respond(resp)
		return
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	r.Respond(resp)
}
