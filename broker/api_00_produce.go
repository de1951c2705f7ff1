package broker

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/producerstate"
	"github.com/kobs-dev/kobs/broker/replica"
	"github.com/kobs-dev/kobs/broker/wire"
)

// Produce: v3-9
//
// Behavior:
//   - acks must be -1, 0 or 1 (INVALID_REQUIRED_ACKS). Only the partition's
//     leader appends (else NOT_LEADER_OR_FOLLOWER); every batch is stamped
//     with the leader epoch.
//   - acks=-1 is refused before the append when the ISR is smaller than the
//     topic's min.insync.replicas (NOT_ENOUGH_REPLICAS, nothing appended);
//     otherwise it is answered once the high watermark passed the batch
//     (every ISR member has it), without holding a handler: an ISR that
//     shrank below min.insync.replicas meanwhile gets
//     NOT_ENOUGH_REPLICAS_AFTER_APPEND, a leader deposed meanwhile
//     NOT_LEADER_OR_FOLLOWER (it never acknowledges), and TimeoutMillis
//     passing REQUEST_TIMED_OUT.
//   - Each partition's payload is validated batch by batch (magic 2, CRC32C,
//     lengths, max.message.bytes) before anything of it is appended, so a bad
//     batch leaves the log untouched; other partitions are unaffected.
//   - Produce never creates topics (only Metadata does, as in Kafka).
//   - acks=0 gets no response; if any partition failed the connection is
//     closed, which is the only signal Kafka gives such a producer.
//   - Transactional produce is refused until transactions exist.
//
// Version notes: v3 is the first with record batches (magic 2) only, which
// is why it is our minimum; v5 adds LogStartOffset, v8 ErrorRecords and
// ErrorMessage, v9 is flexible.
func (b *Broker) handleProduce(r *wire.Request) {
	req := r.Msg.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	anyErr := false

	reqErr := int16(0)
	switch {
	case req.Acks != -1 && req.Acks != 0 && req.Acks != 1:
		reqErr = kerr.InvalidRequiredAcks.Code
	case req.TransactionID != nil:
		reqErr = kerr.TransactionalIDAuthorizationFailed.Code
	}

	// The response is laid out first so that acks=all completions can
	// fill their partition in place.
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	type wait struct {
		p      *replica.Partition
		offset int64
		sp     *kmsg.ProduceResponseTopicPartition
	}
	var waits []wait
	var appended []*replica.Partition
	for i, rt := range req.Topics {
		for j, rp := range rt.Partitions {
			sp := &resp.Topics[i].Partitions[j]
			if reqErr != 0 {
				sp.ErrorCode = reqErr
			} else if p, next := b.produceTo(rt.Topic, req.Acks, rp, sp, &appended); p != nil && req.Acks == -1 {
				waits = append(waits, wait{p, next, sp})
			}
			if sp.ErrorCode != 0 {
				anyErr = true
			}
		}
	}
	// Parked fetches are woken once the whole request is appended, as
	// Kafka completes delayed fetches from its action queue after the
	// produce: a follower woken by the first partition would fetch that
	// one alone and need another round trip, with acks=all waiting on
	// it, for the rest.
	for _, p := range appended {
		p.NotifyAppend()
	}
	if req.Acks == 0 {
		if anyErr {
			r.CloseConn(errors.New("acks=0 produce failed; closing so the producer notices"))
			return
		}
		r.NoResponse()
		return
	}
	if len(waits) == 0 {
		r.Respond(resp)
		return
	}
	// acks=all: answer once every appended partition's high watermark
	// passed the batch (Kafka's delayed produce); no handler waits.
	var pending atomic.Int32
	pending.Store(int32(len(waits)) + 1)
	finish := func() {
		if pending.Add(-1) == 0 {
			r.Respond(resp)
		}
	}
	timeout := max(time.Duration(req.TimeoutMillis)*time.Millisecond, time.Millisecond)
	for _, w := range waits {
		w.p.WaitCommitted(w.offset, timeout, func(code int16) {
			if code != 0 {
				w.sp.ErrorCode = code
				w.sp.ErrorMessage = strp(kerr.ErrorForCode(code).Error())
				b.log.Warn("acks=all produce not acknowledged", "topic", w.p.Topic, "partition", w.p.Index,
					"error", kerr.ErrorForCode(code), "offset", w.offset-1)
			}
			finish()
		})
	}
	finish()
}

// produceTo appends one partition's payload and fills sp; it returns the
// partition and the high watermark to wait for when the append (or its
// duplicate) succeeded, and adds the partition to *appended when records
// were written (parked fetches to wake).
func (b *Broker) produceTo(topicName string, acks int16, rp kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition,
	appended *[]*replica.Partition) (*replica.Partition, int64) {
	t, p := b.lookup(topicName, rp.Partition)
	tm := b.metrics.topic(topicName)
	if t == nil || int(rp.Partition) >= len(t.Partitions) || rp.Partition < 0 {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		b.metrics.produceFailed(tm, int64(len(rp.Records)))
		return nil, 0
	}
	if p == nil || !p.State().IsLeader() {
		// The partition exists but another broker leads it: the client
		// refreshes its metadata.
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		b.metrics.produceFailed(tm, int64(len(rp.Records)))
		return nil, 0
	}
	lcfg := p.Log().Config()
	batches, err := klog.ValidateBatches(rp.Records, lcfg.MaxMessageBytes)
	if err == nil && t.Internal {
		// Only the broker writes its internal topics.
		err = fmt.Errorf("%w: cannot append to internal topic %s", errInternalTopic, topicName)
	}
	if err == nil && acks == -1 {
		// acks=all promises min.insync.replicas copies; Kafka refuses
		// before appending when the ISR is already smaller.
		if st := p.State(); len(st.ISR) < st.MinISR {
			err = fmt.Errorf("%w: in-sync replicas %d < min.insync.replicas %d", errNotEnoughReplicas, len(st.ISR), st.MinISR)
		}
	}
	if err == nil {
		for _, bt := range batches {
			if bt.IsTransactional() || bt.IsControl() {
				err = fmt.Errorf("%w: transactional batches are not supported", errTransactional)
				break
			}
			if lcfg.Compact {
				// Kafka's LogValidator: a compacted topic needs a key on every record.
				if err = klog.CheckKeys(bt); err != nil {
					break
				}
			}
		}
	}
	var res replica.AppendResult
	if err == nil {
		res, err = p.Append(batches)
	}
	if err != nil {
		sp.ErrorCode = produceErrorCode(err)
		sp.ErrorMessage = strp(err.Error())
		b.log.Warn("produce refused", "topic", topicName, "partition", rp.Partition,
			"error", kerr.ErrorForCode(sp.ErrorCode), "err", err)
		b.metrics.produceFailed(tm, int64(len(rp.Records)))
		return nil, 0
	}
	if !res.Duplicate {
		*appended = append(*appended, p)
		var records int64
		for _, bt := range batches {
			records += int64(bt.NumRecords)
		}
		b.metrics.produced(tm, records, int64(len(rp.Records)))
	}
	sp.BaseOffset = res.FirstOffset
	sp.LogAppendTime = res.LogAppendTime
	sp.LogStartOffset = res.LogStartOffset
	return p, res.LastOffset + 1
}

var (
	errTransactional     = errors.New("transactional produce")
	errInvalidRecord     = replica.ErrInvalidRecord
	errInternalTopic     = errors.New("internal topic")
	errNotEnoughReplicas = errors.New("not enough replicas")
)

// produceErrorCode maps log errors to the codes Kafka returns for them.
func produceErrorCode(err error) int16 {
	switch {
	case errors.Is(err, klog.ErrCorruptMessage):
		return kerr.CorruptMessage.Code
	case errors.Is(err, klog.ErrUnsupportedMagic), errors.Is(err, errInvalidRecord), errors.Is(err, klog.ErrMissingKey):
		// Produce v3+ must carry magic 2 batches; Kafka answers
		// INVALID_RECORD (LogValidator's InvalidRecordException).
		return kerr.InvalidRecord.Code
	case errors.Is(err, klog.ErrRecordTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, klog.ErrBatchLargerThanSegment):
		return kerr.RecordListTooLarge.Code
	case errors.Is(err, producerstate.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, producerstate.ErrInvalidEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, errNotEnoughReplicas):
		return kerr.NotEnoughReplicas.Code
	case errors.Is(err, errInternalTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, errTransactional):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, klog.ErrClosed), errors.Is(err, replica.ErrNotLeader):
		return kerr.NotLeaderForPartition.Code
	default:
		return kerr.KafkaStorageError.Code
	}
}
