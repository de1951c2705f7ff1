package broker_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

// peakRSS is a process's high-water resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// millionsOfTopicsFrame is a CreateTopics v5 frame of exactly
// socket.request.max.bytes (104,857,600, the size prefix aside) naming
// 10.47 million topics: named ones first, then empty names, the smallest
// topic the wire allows (10 bytes). It returns the frame and the topic count.
func millionsOfTopicsFrame(named int) ([]byte, int) {
	const max = 104857600
	header := kbin.AppendNullableString(kbin.AppendInt32(kbin.AppendInt16(kbin.AppendInt16(nil, kmsg.CreateTopics.Int16()), 5), 7), kmsg.StringPtr("raw"))
	header = append(header, 0) // header tags
	name := func(i int) string { return fmt.Sprintf("m%05d", i) }
	const tail = 4 + 1 + 1 // timeout, validate only, tags
	budget := max - len(header) - 4 /* count */ - tail - named*(10+len(name(0)))
	n := named + budget/10
	f := make([]byte, 4, max+4)
	f = append(f, header...)
	f = kbin.AppendUvarint(f, uint32(n+1))
	for i := range n {
		s := ""
		if i < named {
			s = name(i)
		}
		f = kbin.AppendCompactString(f, s)
		f = kbin.AppendInt32(f, 1)
		f = kbin.AppendInt16(f, 1)
		f = append(f, 1, 1, 0) // no assignment, no configs, no tags
	}
	f = kbin.AppendInt32(f, 30000)
	f = append(f, 0, 0)
	binary.BigEndian.PutUint32(f, uint32(len(f)-4))
	return f, n
}

// TestCreateTopicsFrameOfMillionsBounded: one 100 MB CreateTopics frame
// claiming 10.47 million topics (issue 11: 645 MB of broker RSS, the
// decoded topics; 9.8 GB and a 1.7 GB answer measured before the bound) is
// refused from its wire bytes: the first 10,000 topics
// are answered POLICY_VIOLATION naming the count, nothing is created, the
// broker process's peak RSS stays under 400 MB (the frame itself is
// 100 MB), and the broker serves on.
func TestCreateTopicsFrameOfMillionsBounded(t *testing.T) {
	p := testcluster.StartProcess(t)
	frame, n := millionsOfTopicsFrame(20000)
	require.InDelta(t, 104857600, len(frame)-4, 10, "a frame of socket.request.max.bytes")

	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(2*time.Minute)))
	_, err = c.Write(frame)
	require.NoError(t, err)
	frame = nil
	var size [4]byte
	_, err = io.ReadFull(c, size[:])
	require.NoError(t, err)
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(c, body)
	require.NoError(t, err)
	resp := kmsg.NewPtrCreateTopicsResponse()
	resp.Version = 5
	require.NoError(t, resp.ReadFrom(body[4+1:])) // correlation id, header tags

	peak := peakRSS(t, p.Pid())
	t.Logf("CreateTopics of %d topics in a %d-byte frame: %d topics answered, first %q: %v %q; broker peak RSS %d MiB",
		n, len(body), len(resp.Topics), resp.Topics[0].Topic, kerr.ErrorForCode(resp.Topics[0].ErrorCode),
		derefStr(resp.Topics[0].ErrorMessage), peak>>20)
	require.Equal(t, 10000, len(resp.Topics), "topics answered") // not Len: it prints them all
	for i, st := range resp.Topics {
		require.Equal(t, fmt.Sprintf("m%05d", i), st.Topic)
		require.Equal(t, kerr.PolicyViolation.Code, st.ErrorCode, st.Topic)
	}
	require.Contains(t, derefStr(resp.Topics[0].ErrorMessage), strconv.Itoa(n))
	require.Contains(t, derefStr(resp.Topics[0].ErrorMessage), "excessively large")
	require.Less(t, peak, int64(400<<20), "broker peak RSS")
	require.Zero(t, partitionDirs(t, p.Dir(), "m0"))

	// The connection and the broker serve on.
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 1
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	out := kbin.AppendNullableString(kbin.AppendInt32(kbin.AppendInt16(kbin.AppendInt16(make([]byte, 4), md.Key()), 1), 8), kmsg.StringPtr("raw"))
	out = md.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	_, err = c.Write(out)
	require.NoError(t, err)
	_, err = io.ReadFull(c, size[:])
	require.NoError(t, err)
	body = make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(c, body)
	require.NoError(t, err)
	require.Equal(t, int32(8), int32(binary.BigEndian.Uint32(body)))
}

// TestDeleteTopicsAndCreatePartitionsOversizedRefused: DeleteTopics and
// CreatePartitions naming more than 10,000 topics are refused from their
// wire bytes, POLICY_VIOLATION for the first 10,000, and delete nothing.
func TestDeleteTopicsAndCreatePartitionsOversizedRefused(t *testing.T) {
	b := testcluster.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()
	_, err = kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t00000")
	require.NoError(t, err)

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.Version, del.TimeoutMillis = 6, 30000
	cp := kmsg.NewPtrCreatePartitionsRequest()
	cp.Version, cp.TimeoutMillis = 3, 30000
	for i := range 10001 {
		dt := kmsg.NewDeleteTopicsRequestTopic()
		dt.Topic = kmsg.StringPtr(fmt.Sprintf("t%05d", i))
		del.Topics = append(del.Topics, dt)
		ct := kmsg.NewCreatePartitionsRequestTopic()
		ct.Topic, ct.Count = fmt.Sprintf("t%05d", i), 2
		cp.Topics = append(cp.Topics, ct)
	}
	dresp, err := del.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, 10000, len(dresp.Topics))
	for _, st := range dresp.Topics {
		require.Equal(t, kerr.PolicyViolation.Code, st.ErrorCode, derefStr(st.Topic))
	}
	require.Contains(t, derefStr(dresp.Topics[0].ErrorMessage), "names 10001 topics")
	cresp, err := cp.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, 10000, len(cresp.Topics))
	require.Equal(t, "t09999", cresp.Topics[9999].Topic)
	for _, st := range cresp.Topics {
		require.Equal(t, kerr.PolicyViolation.Code, st.ErrorCode, st.Topic)
	}

	md, err := kadm.NewClient(cl).ListTopics(ctx, "t00000")
	require.NoError(t, err)
	require.True(t, md.Has("t00000"))
	require.Len(t, md["t00000"].Partitions, 1)
}

// TestMetadataNamingTooManyTopicsRefused: a Metadata request naming more
// than 200,000 topics (a 100 MB one of 35 million names decoded into
// 1.6 GB) gets its first 10,000 topics answered INVALID_REQUEST with the
// brokers listed; nothing is auto-created, and the connection serves on.
func TestMetadataNamingTooManyTopicsRefused(t *testing.T) {
	b := testcluster.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()

	req := kmsg.NewPtrMetadataRequest()
	req.Version, req.AllowAutoTopicCreation = 12, true
	for i := range 200001 {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(fmt.Sprintf("md-%06d", i))
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, 10000, len(resp.Topics))
	require.Equal(t, "md-009999", derefStr(resp.Topics[9999].Topic))
	for _, st := range resp.Topics {
		require.Equal(t, kerr.InvalidRequest.Code, st.ErrorCode)
	}
	require.Len(t, resp.Brokers, 1)

	md, err := kadm.NewClient(cl).ListTopics(ctx)
	require.NoError(t, err)
	require.Empty(t, md.Names(), "nothing auto-created")
}
