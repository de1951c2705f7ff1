package controller

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// The errors the controller returns are Kafka's own error codes, so a
// request handler maps any of them to its response with
// kerr.ErrorForCode / errors.As(err, **kerr.Error). Errors carry a message
// naming what was wrong; errors.Is(err, ErrTopicExists) and friends work on
// every node, also when the write was forwarded to the active controller.
var (
	ErrNotController               = kerr.NotController
	ErrTimeout                     = kerr.RequestTimedOut
	ErrTopicExists                 = kerr.TopicAlreadyExists
	ErrUnknownTopicOrPartition     = kerr.UnknownTopicOrPartition
	ErrInvalidTopic                = kerr.InvalidTopicException
	ErrInvalidPartitions           = kerr.InvalidPartitions
	ErrInvalidReplicationFactor    = kerr.InvalidReplicationFactor
	ErrInvalidReplicaAssignment    = kerr.InvalidReplicaAssignment
	ErrInvalidRequest              = kerr.InvalidRequest
	ErrFencedLeaderEpoch           = kerr.FencedLeaderEpoch
	ErrUnknownLeaderEpoch          = kerr.UnknownLeaderEpoch
	ErrInvalidUpdateVersion        = kerr.InvalidUpdateVersion
	ErrNotLeaderOrFollower         = kerr.NotLeaderForPartition
	ErrIneligibleReplica           = kerr.IneligibleReplica
	ErrElectionNotNeeded           = kerr.ElectionNotNeeded
	ErrPreferredLeaderNotAvailable = kerr.PreferredLeaderNotAvailable
	ErrEligibleLeadersNotAvailable = kerr.EligibleLeadersNotAvailable
	ErrNoReassignmentInProgress    = kerr.NoReassignmentInProgress
	ErrDuplicateBrokerRegistration = kerr.DuplicateBrokerRegistration
	ErrStaleBrokerEpoch            = kerr.StaleBrokerEpoch
	ErrBrokerIDNotRegistered       = kerr.BrokerIDNotRegistered
	ErrUnknownServer               = kerr.UnknownServerError
	ErrPolicyViolation             = kerr.PolicyViolation
	ErrKafkaStorage                = kerr.KafkaStorageError
)

// codedError is a Kafka error code with a message saying what exactly was
// wrong. It unwraps to the *kerr.Error sentinel.
type codedError struct {
	k   *kerr.Error
	msg string
}

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Unwrap() error { return e.k }

// errorf returns an error for Kafka error k with a formatted message.
func errorf(k *kerr.Error, format string, args ...any) error {
	return &codedError{k: k, msg: k.Message + ": " + fmt.Sprintf(format, args...)}
}

// KafkaError returns the Kafka error an error from this package stands for:
// nil for nil, UNKNOWN_SERVER_ERROR for anything that is not a Kafka error.
func KafkaError(err error) *kerr.Error {
	if err == nil {
		return nil
	}
	var k *kerr.Error
	if errors.As(err, &k) {
		return k
	}
	return kerr.UnknownServerError
}

// wireError is an error as it crosses the forwarding RPC.
type wireError struct {
	Code int16  `json:"code"`
	Msg  string `json:"msg"`
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	return &wireError{Code: KafkaError(err).Code, Msg: err.Error()}
}

func fromWire(w *wireError) error {
	if w == nil || w.Code == 0 {
		return nil
	}
	k, _ := kerr.ErrorForCode(w.Code).(*kerr.Error)
	if k == nil {
		k = kerr.UnknownServerError
	}
	return &codedError{k: k, msg: w.Msg}
}
