package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/controller"
	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/broker/wire"
)

// This file routes the requests that change metadata to the controller
// quorum (broker/controller): any broker takes them, the controller
// forwards them to the active controller, and the change comes back as a
// new image, which the call waits for, so a handler answers with the
// topic already in this broker's metadata.

// adminTimeout bounds a controller call that the request names no timeout
// for (Metadata auto-creation, FindCoordinator creating the offsets topic).
const adminTimeout = 30 * time.Second

// errNoController: topic changes need a controller and this broker runs
// none (WithExternalMetadata).
var errNoController = fmt.Errorf("%w: this broker runs no controller", controller.ErrNotController)

func (b *Broker) adminCtx(timeoutMs int32) (context.Context, context.CancelFunc) {
	d := adminTimeout
	if timeoutMs > 0 {
		d = time.Duration(timeoutMs) * time.Millisecond
	}
	return context.WithTimeout(b.ctx, d)
}

// createTopic creates a topic with n partitions (-1: num.partitions),
// replication factor rf (-1: default.replication.factor) or a manual
// assignment, through the controller, and returns it from the image.
func (b *Broker) createTopic(ctx context.Context, spec controller.TopicSpec) (*metadata.Topic, error) {
	if b.ctl == nil {
		return nil, errNoController
	}
	spec.Internal = spec.Internal || isInternalTopic(spec.Name)
	if err := b.ctl.CreateTopics(ctx, []controller.TopicSpec{spec})[0]; err != nil {
		return nil, err
	}
	t := b.pub.Load().Topic(spec.Name)
	if t == nil {
		return nil, fmt.Errorf("%w: topic %s created but not in this broker's metadata yet", controller.ErrTimeout, spec.Name)
	}
	if err := b.rollBackUnopened(t); err != nil {
		return nil, err
	}
	b.log.Info("created topic", "topic", spec.Name, "partitions", len(t.Partitions), "topic_id", t.ID.String())
	return t, nil
}

// rollBackUnopened undoes a topic whose replicas on this broker could not
// all be opened (file descriptors, a full or broken disk). The controller
// committed the topic before any broker opened a log, so the undo is a
// second change: the topic is deleted again, which deletes the replicas
// that did open (here and on other brokers); the failed ones left no
// directory (replica.Manager.Create). The error is KAFKA_STORAGE_ERROR
// naming the partitions and the cause. Failures on other brokers are only
// theirs to see (their log, OfflineReplicaCount): Kafka's KRaft brokers
// likewise report them as offline log dirs, not to the creating client.
func (b *Broker) rollBackUnopened(t *metadata.Topic) error {
	var failed []string
	var cause error
	for i := range t.Partitions {
		if !t.Partitions[i].HasReplica(b.cfg.NodeID) || b.replicas.Partition(t.Name, int32(i)) != nil {
			continue
		}
		failed = append(failed, fmt.Sprint(i))
		if cause == nil {
			cause = b.replicas.OpenError(t.Name, int32(i))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, adminTimeout)
	defer cancel()
	if derr := b.deleteTopic(ctx, t.Name); derr != nil {
		b.log.Error("topic created but its replicas could not be opened, and deleting it again failed: its partitions stay offline",
			"topic", t.Name, "partitions", failed, "err", cause, "delete_err", derr)
		return fmt.Errorf("%w: topic %s created, but partitions %v could not be opened on broker %d (%v), and deleting it again failed (%v): they stay offline (OfflineReplicaCount)",
			kerr.KafkaStorageError, t.Name, failed, b.cfg.NodeID, cause, derr)
	}
	b.log.Error("topic creation rolled back: replicas could not be opened", "topic", t.Name, "partitions", failed, "err", cause)
	return fmt.Errorf("%w: partitions %v of topic %s could not be opened on broker %d (%v); the topic was deleted again",
		kerr.KafkaStorageError, failed, t.Name, b.cfg.NodeID, cause)
}

func (b *Broker) deleteTopic(ctx context.Context, name string) error {
	if b.ctl == nil {
		return errNoController
	}
	if err := b.ctl.DeleteTopics(ctx, []string{name})[0]; err != nil {
		return err
	}
	if b.groups != nil {
		b.groups.TopicDeleted(name)
	}
	b.log.Info("deleted topic", "topic", name)
	return nil
}

// kafkaCode is the error code (and message) a controller error stands for.
func kafkaCode(err error) (int16, string) {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code, err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return kerr.RequestTimedOut.Code, err.Error()
	}
	return controller.KafkaError(err).Code, err.Error()
}

// ElectLeaders: v0-2 (see electLeaders).
func (b *Broker) handleElectLeaders(r *wire.Request) {
	if b.ctl == nil {
		r.CloseConn(errNoController)
		return
	}
	go func() {
		respond(r, electLeaders(b.ctx, b.ctl, r.Msg.(*kmsg.ElectLeadersRequest)))
	}()
}

// AlterPartitionReassignments (see alterPartitionReassignments).
func (b *Broker) handleAlterPartitionReassignments(r *wire.Request) {
	if b.ctl == nil {
		r.CloseConn(errNoController)
		return
	}
	go func() {
		respond(r, alterPartitionReassignments(b.ctx, b.ctl, r.Msg.(*kmsg.AlterPartitionAssignmentsRequest)))
	}()
}

// ListPartitionReassignments (see listPartitionReassignments).
func (b *Broker) handleListPartitionReassignments(r *wire.Request) {
	if b.ctl == nil {
		r.CloseConn(errNoController)
		return
	}
	respond(r, listPartitionReassignments(b.ctl, r.Msg.(*kmsg.ListPartitionReassignmentsRequest)))
}

// DescribeQuorum (see describeQuorum).
func (b *Broker) handleDescribeQuorum(r *wire.Request) {
	if b.ctl == nil {
		r.CloseConn(errNoController)
		return
	}
	go func() {
		respond(r, describeQuorum(b.ctx, b.ctl, r.Msg.(*kmsg.DescribeQuorumRequest)))
	}()
}
