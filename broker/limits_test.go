package broker_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/telemetry"
	"github.com/kobs-dev/kobs/internal/testcluster"
)

// fetchAll sends one Fetch v12 of partition 0 from offset with the
// largest MaxBytes and PartitionMaxBytes a client can ask for.
func fetchAll(t *testing.T, cl *kgo.Client, topic string, offset int64) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID = -1
	req.MaxBytes = 1<<31 - 1
	req.MaxWaitMillis = 0
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, offset, 1<<31-1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	require.Len(t, resp.Topics, 1)
	require.Len(t, resp.Topics[0].Partitions, 1)
	p := resp.Topics[0].Partitions[0]
	require.Zero(t, p.ErrorCode)
	return p
}

// TestFetchMaxBytesCapsResponse: the broker's fetch.max.bytes caps a Fetch
// whatever MaxBytes the client asks for, but still returns the first batch
// when it alone is larger (KIP-74), as Kafka does.
func TestFetchMaxBytesCapsResponse(t *testing.T) {
	const capBytes = 4096
	b := testcluster.Start(t, testcluster.Prop("fetch.max.bytes", "4096"), testcluster.Prop("message.max.bytes", "100000"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(context.Background(), 1, 1, nil, "capped")
	require.NoError(t, err)

	// 40 batches of ~1 KB: ten times the cap.
	stored := 0
	for range 40 {
		batch := makeBatch(1, 1000)
		stored += len(batch)
		require.Zero(t, produceRaw(t, cl, "capped", batch).ErrorCode)
	}
	p := fetchAll(t, cl, "capped", 0)
	t.Logf("partition holds %d bytes, fetch with MaxBytes 2^31-1 returned %d bytes (fetch.max.bytes %d)", stored, len(p.RecordBatches), capBytes)
	require.NotEmpty(t, p.RecordBatches)
	require.LessOrEqual(t, len(p.RecordBatches), capBytes)
	require.Greater(t, stored, 2*capBytes)

	// MinBytes above the cap is satisfied by a capped response (Kafka caps
	// MinBytes at fetch.max.bytes too) instead of waiting out MaxWait.
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.SessionEpoch = 12, -1, -1
	req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 1<<31-1, 1<<30, 60000
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "capped"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, 1<<31-1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	start := time.Now()
	fr, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	require.Less(t, time.Since(start), 30*time.Second, "answered without waiting out MaxWaitMillis")
	require.NotEmpty(t, fr.Topics[0].Partitions[0].RecordBatches)

	// A first batch larger than the cap is still returned, alone.
	big := makeBatch(1, 3*capBytes)
	resp := produceRaw(t, cl, "capped", big)
	require.Zero(t, resp.ErrorCode)
	require.Zero(t, produceRaw(t, cl, "capped", makeBatch(1, 100)).ErrorCode)
	p = fetchAll(t, cl, "capped", resp.BaseOffset)
	require.Len(t, p.RecordBatches, len(big), "the oversized first batch, and nothing after it")
	require.Equal(t, resp.BaseOffset, int64(binary.BigEndian.Uint64(p.RecordBatches)))
	require.Equal(t, big[61:], p.RecordBatches[61:], "the same records")
}

// fastRestart lets a broker restarted in the same test register again
// without waiting out the default 9 s broker session of its previous run.
var fastRestart = []testcluster.Opt{testcluster.Prop("broker.session.timeout.ms", "2000"), testcluster.Prop("broker.heartbeat.interval.ms", "500")}

// partitionDirs counts the partition directories of topics named
// prefix* in a log dir.
func partitionDirs(t *testing.T, dir, prefix string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
			n++
		}
	}
	return n
}

// TestCreateTopicsTooManyRefused: one CreateTopics naming 10,000 topics is
// refused as a whole with POLICY_VIOLATION (Kafka's answer to an
// operation larger than its controller's 10,000-record batch), creates
// nothing on disk, and the broker restarts on its data.
func TestCreateTopicsTooManyRefused(t *testing.T) {
	dir := t.TempDir()
	b := testcluster.Start(t, append(fastRestart, testcluster.Dir(dir))...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RequestTimeoutOverhead(2*time.Minute))
	require.NoError(t, err)
	defer cl.Close()

	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 5
	req.TimeoutMillis = 60000
	for i := range 10000 {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = fmt.Sprintf("many-%05d", i), 1, 1
		req.Topics = append(req.Topics, rt)
	}
	start := time.Now()
	resp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	codes := map[int16]int{}
	for _, st := range resp.Topics {
		codes[st.ErrorCode]++
	}
	t.Logf("10,000-topic CreateTopics answered in %v: error codes %v, first message %q, %d partition dirs",
		time.Since(start).Round(time.Millisecond), codes, derefStr(resp.Topics[0].ErrorMessage), partitionDirs(t, dir, "many-"))
	require.Len(t, resp.Topics, 10000)
	require.Equal(t, map[int16]int{kerr.PolicyViolation.Code: 10000}, codes)
	require.Contains(t, derefStr(resp.Topics[0].ErrorMessage), "10000")
	require.Zero(t, partitionDirs(t, dir, "many-"))

	// The broker still creates a normal topic, and restarts.
	_, err = kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, nil, "after-many")
	require.NoError(t, err)
	cl.Close()
	require.NoError(t, b.Close())
	b = testcluster.Start(t, append(fastRestart, testcluster.Dir(dir))...)
	cl2, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl2.Close()
	md, err := kadm.NewClient(cl2).ListTopics(context.Background())
	require.NoError(t, err)
	require.True(t, md.Has("after-many"))
	require.Zero(t, partitionDirs(t, dir, "many-"))
}

func derefStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// errorsPerSec is the count of Kafka's ErrorsPerSec{request,error} meter.
func errorsPerSec(b *testcluster.Broker, request string, code int16) int64 {
	return b.Registry().Meter(telemetry.Name("kafka.network", "RequestMetrics", "ErrorsPerSec",
		"request", request, "error", kerr.ErrorForCode(code).(*kerr.Error).Message), "errors").Count()
}

// TestMetadataAutoCreateCapped: a Metadata request naming 100,000 unknown
// topics with auto-creation on creates kobs.max.auto.created.topics.per.request
// of them (100 by default) and answers the rest THROTTLING_QUOTA_EXCEEDED,
// counted in ErrorsPerSec; no directory exists beyond the created topics'
// and the broker restarts with exactly those.
func TestMetadataAutoCreateCapped(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuf{}
	b := testcluster.Start(t, append(fastRestart, testcluster.Dir(dir), testcluster.Logs(logs))...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RequestTimeoutOverhead(2*time.Minute))
	require.NoError(t, err)
	defer cl.Close()

	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.AllowAutoTopicCreation = true
	for i := range 100000 {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(fmt.Sprintf("auto-%06d", i))
		req.Topics = append(req.Topics, rt)
	}
	start := time.Now()
	resp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	codes := map[int16]int{}
	for _, st := range resp.Topics {
		codes[st.ErrorCode]++
	}
	t.Logf("100,000-topic Metadata answered in %v: error codes %v, %d partition dirs",
		time.Since(start).Round(time.Millisecond), codes, partitionDirs(t, dir, "auto-"))
	require.Len(t, resp.Topics, 100000)
	require.Equal(t, map[int16]int{0: 100, kerr.ThrottlingQuotaExceeded.Code: 99900}, codes)
	require.Equal(t, 100, partitionDirs(t, dir, "auto-"))
	require.Contains(t, logs.String(), "auto-creation refused for some topics\" topics=100000 created=100 refused_per_request=99900")
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n := errorsPerSec(b, "Metadata", kerr.ThrottlingQuotaExceeded.Code); n != 99900 {
			return fmt.Errorf("ErrorsPerSec{Metadata,THROTTLING_QUOTA_EXCEEDED} = %d", n)
		}
		return nil
	})

	cl.Close()
	require.NoError(t, b.Close())
	b = testcluster.Start(t, append(fastRestart, testcluster.Dir(dir))...)
	cl2, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl2.Close()
	md, err := kadm.NewClient(cl2).ListTopics(context.Background())
	require.NoError(t, err)
	require.Len(t, md.Names(), 100)
	require.Equal(t, 100, partitionDirs(t, dir, "auto-"))
}

// TestPartitionLimitPerBroker: kobs.max.partitions.per.broker refuses
// CreateTopics, CreatePartitions and Metadata auto-creation that would
// pass it with POLICY_VIOLATION naming the key, and the creation of
// __consumer_offsets for FindCoordinator (COORDINATOR_NOT_AVAILABLE
// naming it); nothing refused leaves a directory.
func TestPartitionLimitPerBroker(t *testing.T) {
	dir := t.TempDir()
	b := testcluster.Start(t, testcluster.Dir(dir), testcluster.Prop("kobs.max.partitions.per.broker", "10"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()

	_, err = adm.CreateTopic(ctx, 8, 1, nil, "lim-a")
	require.NoError(t, err)
	r, err := adm.CreateTopic(ctx, 3, 1, nil, "lim-b")
	require.ErrorIs(t, err, kerr.PolicyViolation)
	require.Contains(t, r.ErrMessage, "kobs.max.partitions.per.broker=10")

	pr, err := adm.CreatePartitions(ctx, 3, "lim-a")
	require.NoError(t, err)
	require.ErrorIs(t, pr["lim-a"].Err, kerr.PolicyViolation)
	require.Contains(t, pr["lim-a"].ErrMessage, "kobs.max.partitions.per.broker=10")
	pr, err = adm.CreatePartitions(ctx, 2, "lim-a")
	require.NoError(t, err)
	require.NoError(t, pr["lim-a"].Err)
	// More than Kafka's 10,000 records in one request, whatever the limit.
	pr, err = adm.CreatePartitions(ctx, 20000, "lim-a")
	require.NoError(t, err)
	require.ErrorIs(t, pr["lim-a"].Err, kerr.PolicyViolation)
	require.Contains(t, pr["lim-a"].ErrMessage, "excessively large")

	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.AllowAutoTopicCreation = true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("lim-c")
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, kerr.PolicyViolation.Code, resp.Topics[0].ErrorCode)

	// A group's first FindCoordinator creates __consumer_offsets (50
	// partitions): an internal topic, held to the same limit.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorKey = 3, "g"
	fr, err := fc.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, kerr.CoordinatorNotAvailable.Code, fr.ErrorCode)
	require.Contains(t, derefStr(fr.ErrorMessage), "kobs.max.partitions.per.broker=10")

	require.Equal(t, 10, partitionDirs(t, dir, "lim-"))
	for _, p := range []string{"lim-b-", "lim-c-", "__consumer_offsets-"} {
		require.Zero(t, partitionDirs(t, dir, p))
	}
}

// TestCreateTopicRollsBackWhenAReplicaCannotOpen: when a partition's log
// cannot be opened after the controller committed the topic (here a file
// stands where its directory must go), the topic is deleted again, the
// client gets KAFKA_STORAGE_ERROR naming the partition and the cause, no
// partition directory of the topic is left, and the topic stays gone
// across a restart.
func TestCreateTopicRollsBackWhenAReplicaCannotOpen(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "rb-1")
	require.NoError(t, os.WriteFile(blocker, []byte("not a directory"), 0o644))
	b := testcluster.Start(t, append(fastRestart, testcluster.Dir(dir))...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()

	r, err := adm.CreateTopic(ctx, 3, 1, nil, "rb")
	require.ErrorIs(t, err, kerr.KafkaStorageError)
	require.Contains(t, r.ErrMessage, "[1]")
	require.Contains(t, r.ErrMessage, "deleted again")
	md, err := adm.ListTopics(ctx)
	require.NoError(t, err)
	require.False(t, md.Has("rb"), "the topic was rolled back")
	for _, d := range []string{"rb-0", "rb-2"} {
		require.NoDirExists(t, filepath.Join(dir, d))
	}
	require.FileExists(t, blocker, "what was there before is left alone")

	// Without the obstacle the same name is created normally, and the
	// broker restarts with it.
	require.NoError(t, os.Remove(blocker))
	_, err = adm.CreateTopic(ctx, 3, 1, nil, "rb")
	require.NoError(t, err)
	cl.Close()
	require.NoError(t, b.Close())
	b = testcluster.Start(t, append(fastRestart, testcluster.Dir(dir))...)
	cl2, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl2.Close()
	md, err = kadm.NewClient(cl2).ListTopics(ctx)
	require.NoError(t, err)
	require.True(t, md.Has("rb"))
	require.Len(t, md["rb"].Partitions, 3)
	require.Equal(t, 3, partitionDirs(t, dir, "rb-"))
}

// TestPartitionLimitDerivedFromFileLimit: without
// kobs.max.partitions.per.broker the limit is the soft RLIMIT_NOFILE / 6
// (3 descriptors per partition, half left for the rest), logged at start
// with the file limits, and enforced.
func TestPartitionLimitDerivedFromFileLimit(t *testing.T) {
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	want := int(min(lim.Max, 1<<20*6) / 6) // the broker raises the soft limit to the hard one
	logs := &syncBuf{}
	dir := t.TempDir()
	b := testcluster.Start(t, testcluster.Dir(dir), testcluster.Logs(logs))
	require.Contains(t, logs.String(), fmt.Sprintf("kobs.max.partitions.per.broker=%d derived=true", want))
	require.Contains(t, logs.String(), fmt.Sprintf("hard=%d", lim.Max))

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	r, err := kadm.NewClient(cl).CreateTopic(context.Background(), int32(want+1), 1, nil, "over")
	require.ErrorIs(t, err, kerr.PolicyViolation)
	if want+1 < 10000 {
		require.Contains(t, r.ErrMessage, fmt.Sprintf("kobs.max.partitions.per.broker=%d", want))
	} else {
		require.Contains(t, r.ErrMessage, "excessively large")
	}
	require.Zero(t, partitionDirs(t, dir, "over-"))
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
