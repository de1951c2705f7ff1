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
	b.log.Info("created topic", "topic", spec.Name, "partitions", len(t.Partitions), "topic_id", t.ID.String())
	return t, nil
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
