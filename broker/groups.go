package broker

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	klog "github.com/kobs-dev/kobs/broker/log"
	"github.com/kobs-dev/kobs/broker/replica"

	"github.com/kobs-dev/kobs/broker/controller"
	"github.com/kobs-dev/kobs/broker/group"
	"github.com/kobs-dev/kobs/broker/metadata"
	"github.com/kobs-dev/kobs/broker/wire"
)

// This file wires the group coordinator (broker/group) to the broker: its
// storage is the __consumer_offsets topic, written and read through the
// same partition logs as any topic.

const offsetsTopic = "__consumer_offsets"

// startGroups creates the coordinator and starts loading __consumer_offsets.
// An existing topic keeps its partition count (groups must keep mapping to
// the partitions holding their records); otherwise
// offsets.topic.num.partitions decides when the topic is first needed.
func (b *Broker) startGroups() error {
	n := b.cfg.OffsetsTopicNumPartitions
	if t := b.pub.Load().Topic(offsetsTopic); t != nil {
		n = int32(len(t.Partitions))
	}
	c, err := group.New(group.Config{
		Partitions:            n,
		InitialRebalanceDelay: b.cfg.GroupInitialRebalanceDelay,
		MinSessionTimeout:     b.cfg.GroupMinSessionTimeout,
		MaxSessionTimeout:     b.cfg.GroupMaxSessionTimeout,
		OffsetsRetention:      b.cfg.OffsetsRetention,
		Storage:               offsetsStorage{b},
		ManualLoad:            true,
		// Whether the partition exists in the cluster (Kafka's
		// metadataCache.contains), not whether this broker hosts a
		// replica: the coordinator commits offsets for partitions led
		// anywhere.
		PartitionExists: func(topicName string, idx int32) bool {
			return b.pub.Load().Partition(topicName, idx) != nil
		},
		Logger: b.log.With("component", "group-coordinator"),
	})
	if err != nil {
		return fmt.Errorf("start group coordinator: %w", err)
	}
	b.groups = c
	b.metrics.registerGroupGauges(c)
	c.Start()
	b.pub.Subscribe(b.offsetsLeadership)
	return nil
}

// offsetsLeadership loads the groups of the __consumer_offsets partitions
// this broker leads and unloads those it stopped leading, so the
// coordinator of a group is always its partition's leader.
func (b *Broker) offsetsLeadership(_, next *metadata.Image) {
	if next == nil || next.Offset == 0 {
		return
	}
	t := next.Topic(offsetsTopic)
	for i := int32(0); i < b.groups.Partitions(); i++ {
		if t != nil && int(i) < len(t.Partitions) && t.Partitions[i].Leader == b.cfg.NodeID &&
			b.replicas.Partition(offsetsTopic, i) != nil {
			b.groups.Load(i)
		} else {
			b.groups.Unload(i)
		}
	}
}

// stopGroups answers parked group requests and stops the coordinator's
// timers; it runs before the logs close so no append races the close.
func (b *Broker) stopGroups() {
	if b.groups != nil {
		b.groups.Close()
	}
}

// errOffsetsTopicRF: fewer live brokers than offsets.topic.replication.factor,
// so __consumer_offsets is not created yet and groups have no coordinator.
var errOffsetsTopicRF = errors.New("too few live brokers for offsets.topic.replication.factor")

// offsetsRFWarnEvery bounds the warning about errOffsetsTopicRF: clients
// retry FindCoordinator every few hundred milliseconds while it lasts.
const offsetsRFWarnEvery = 30 * time.Second

// ensureOffsetsTopic creates __consumer_offsets as Kafka does on first use:
// internal, compacted, with offsets.topic.segment.bytes segments. A
// compact-only log is never trimmed by retention.ms/retention.bytes, so
// committed offsets stay until compaction replaces or tombstones them.
//
// Its replication factor is offsets.topic.replication.factor, never less:
// while fewer brokers are live (a cluster still starting) it is refused
// with errOffsetsTopicRF, as Kafka's controller refuses the creation and
// FindCoordinator answers COORDINATOR_NOT_AVAILABLE, rather than creating
// a topic with fewer replicas than asked that would keep them for good.
// A single broker is configured with offsets.topic.replication.factor=1
// (config/server.properties, as Kafka's own).
func (b *Broker) ensureOffsetsTopic() error {
	img := b.pub.Load()
	if img.Topic(offsetsTopic) != nil {
		return nil
	}
	live := 0
	for _, br := range img.Brokers {
		if !br.Fenced {
			live++
		}
	}
	rf := b.cfg.OffsetsTopicReplicationFactor
	if live < int(rf) {
		return b.offsetsRFRefused(live, fmt.Sprintf("%d live", live))
	}
	ctx, cancel := b.adminCtx(0)
	defer cancel()
	n := b.cfg.OffsetsTopicNumPartitions
	if b.groups != nil {
		n = b.groups.Partitions()
	}
	_, err := b.createTopic(ctx, controller.TopicSpec{Name: offsetsTopic, Partitions: n,
		ReplicationFactor: rf, Internal: true, Configs: map[string]string{
			"cleanup.policy":   "compact",
			"compression.type": "producer",
			"segment.bytes":    strconv.Itoa(int(b.cfg.OffsetsTopicSegmentBytes)),
		}})
	switch {
	case errors.Is(err, controller.ErrTopicExists):
		return nil
	case errors.Is(err, controller.ErrInvalidReplicationFactor):
		// The controller counts live brokers too, and has the last word.
		return b.offsetsRFRefused(live, err.Error())
	case err != nil:
		return fmt.Errorf("create %s: %w", offsetsTopic, err)
	}
	return nil
}

// offsetsRFRefused logs (at most every offsetsRFWarnEvery) and returns the
// errOffsetsTopicRF refusal.
func (b *Broker) offsetsRFRefused(live int, detail string) error {
	rf := b.cfg.OffsetsTopicReplicationFactor
	now := time.Now().UnixNano()
	if last := b.offsetsRFWarned.Load(); now-last >= int64(offsetsRFWarnEvery) && b.offsetsRFWarned.CompareAndSwap(last, now) {
		b.log.Warn("not creating "+offsetsTopic+": fewer live brokers than offsets.topic.replication.factor; "+
			"groups get COORDINATOR_NOT_AVAILABLE until enough brokers are up (expected while a cluster starts; "+
			"a single broker needs offsets.topic.replication.factor=1)",
			"live_brokers", live, "offsets.topic.replication.factor", rf)
	}
	return fmt.Errorf("%w: %s cannot be created with %d replicas (%s)", errOffsetsTopicRF, offsetsTopic, rf, detail)
}

// offsetsStorage is group.Storage over the __consumer_offsets partitions.
type offsetsStorage struct{ b *Broker }

func (s offsetsStorage) partition(idx int32, create bool) (*replica.Partition, error) {
	if _, p := s.b.lookup(offsetsTopic, idx); p != nil || !create {
		return p, nil
	}
	if err := s.b.ensureOffsetsTopic(); err != nil {
		return nil, err
	}
	if _, p := s.b.lookup(offsetsTopic, idx); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("%s has no partition %d", offsetsTopic, idx)
}

// Append validates the coordinator's batch as a produced one would be and
// appends it to the local log; done is told when the batch is below the
// high watermark.
func (s offsetsStorage) Append(idx int32, batch []byte, done func(error)) error {
	p, err := s.partition(idx, true)
	if err != nil {
		return err
	}
	if !p.State().IsLeader() {
		return fmt.Errorf("%w: %s-%d", group.ErrNotCoordinator, offsetsTopic, idx)
	}
	batches, err := klog.ValidateBatches(batch, p.Log().Config().MaxMessageBytes)
	if errors.Is(err, klog.ErrRecordTooLarge) {
		return fmt.Errorf("%w: %w", group.ErrRecordTooLarge, err)
	}
	if err != nil {
		return fmt.Errorf("coordinator batch: %w", err)
	}
	res, err := p.Append(batches)
	if err != nil {
		return err
	}
	p.NotifyAppend()
	if done != nil {
		// Committed once the high watermark passes it, within
		// offsets.commit.timeout.ms (then the commit or SyncGroup is
		// answered REQUEST_TIMED_OUT / REBALANCE_IN_PROGRESS, as Kafka).
		p.WaitCommitted(res.LastOffset+1, s.b.cfg.OffsetsCommitTimeout, func(code int16) {
			switch code {
			case 0:
				done(nil)
			case kerr.RequestTimedOut.Code:
				done(fmt.Errorf("%w: %s-%d offset %d", group.ErrTimeout, offsetsTopic, idx, res.LastOffset))
			case kerr.NotLeaderForPartition.Code:
				done(fmt.Errorf("%w: %s-%d", group.ErrNotCoordinator, offsetsTopic, idx))
			default:
				done(fmt.Errorf("%s-%d: %w", offsetsTopic, idx, kerr.ErrorForCode(code)))
			}
		})
	}
	return nil
}

func (s offsetsStorage) Bounds(idx int32) (start, end int64, ok bool) {
	p, _ := s.partition(idx, false)
	if p == nil {
		return 0, 0, false
	}
	return p.Log().LogStartOffset(), p.Log().LogEndOffset(), true
}

func (s offsetsStorage) Read(idx int32, offset int64, maxBytes int32) ([]byte, error) {
	p, _ := s.partition(idx, false)
	if p == nil {
		return nil, fmt.Errorf("%s-%d does not exist", offsetsTopic, idx)
	}
	return p.Log().Read(offset, maxBytes, p.Log().LogEndOffset(), true)
}

// clientOf describes a request's client as Kafka shows group members:
// client id and "/ip".
func clientOf(r *wire.Request) group.Client {
	host := ""
	if r.Remote != nil {
		host = r.Remote.String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return group.Client{ID: r.Header.ClientID, Host: "/" + host}
}
