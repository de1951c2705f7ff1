package wire

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// echoHandler answers Metadata with an empty response after an optional
// delay, so tests can see ordering and parking.
type echoHandler struct{ delay map[int32]time.Duration }

func (h echoHandler) Handle(r *Request) {
	resp := r.Msg.ResponseKind()
	if d := h.delay[r.Header.CorrelationID]; d > 0 {
		go func() {
			time.Sleep(d)
			r.Respond(resp)
		}()
		return
	}
	r.Respond(resp)
}

func testVersions() []kmsg.ApiVersionsResponseApiKey {
	var out []kmsg.ApiVersionsResponseApiKey
	for _, k := range []struct{ key, min, max int16 }{{3, 0, 12}, {18, 0, 3}} {
		v := kmsg.NewApiVersionsResponseApiKey()
		v.ApiKey, v.MinVersion, v.MaxVersion = k.key, k.min, k.max
		out = append(out, v)
	}
	return out
}

func startServer(t *testing.T, h Handler, maxBytes int32) string {
	t.Helper()
	s := NewServer(Config{Versions: testVersions(), MaxRequestBytes: maxBytes, Handlers: 2}, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Serve("PLAINTEXT", ln)
	t.Cleanup(s.Close)
	return ln.Addr().String()
}

// frame encodes a request with header v1 or v2 as a client would.
func frame(req kmsg.Request, corr int32, clientID string) []byte {
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = kbin.AppendNullableString(b, &clientID)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func readResponse(t *testing.T, c net.Conn) (int32, []byte) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	var size [4]byte
	_, err := io.ReadFull(c, size[:])
	require.NoError(t, err)
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(c, body)
	require.NoError(t, err)
	return int32(binary.BigEndian.Uint32(body)), body[4:]
}

// expectClosed asserts the server closed the connection.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}

func TestPipelinedResponsesInOrder(t *testing.T) {
	// Request 1 is parked for 200ms; 2 and 3 are instant. Responses must
	// still come back 1, 2, 3.
	addr := startServer(t, echoHandler{delay: map[int32]time.Duration{1: 200 * time.Millisecond}}, 1<<20)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	for corr := int32(1); corr <= 3; corr++ {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = int16(corr * 4) // v4, v8, v12: header v1 and v2
		_, err := c.Write(frame(req, corr, "test"))
		require.NoError(t, err)
	}
	for corr := int32(1); corr <= 3; corr++ {
		got, body := readResponse(t, c)
		require.Equal(t, corr, got)
		resp := kmsg.NewPtrMetadataResponse()
		resp.Version = int16(corr * 4)
		if resp.IsFlexible() {
			body = body[1:] // response header v1 tags
		}
		require.NoError(t, resp.ReadFrom(body))
	}
}

func TestApiVersions(t *testing.T) {
	addr := startServer(t, echoHandler{}, 1<<20)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()

	t.Run("v3", func(t *testing.T) {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName, req.ClientSoftwareVersion = "kobs-test", "1.0"
		_, err := c.Write(frame(req, 7, "x"))
		require.NoError(t, err)
		corr, body := readResponse(t, c)
		require.Equal(t, int32(7), corr)
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 3 // header stays v0: no tag byte to skip
		require.NoError(t, resp.ReadFrom(body))
		require.Zero(t, resp.ErrorCode)
		require.Len(t, resp.ApiKeys, 2)
	})
	t.Run("unsupported version falls back to v0", func(t *testing.T) {
		// A future ApiVersions version: the body is whatever the client
		// sends; the answer is v0 with UNSUPPORTED_VERSION and our range.
		b := make([]byte, 4)
		b = binary.BigEndian.AppendUint16(b, 18)
		b = binary.BigEndian.AppendUint16(b, 99)
		b = binary.BigEndian.AppendUint32(b, 8)
		b = kbin.AppendNullableString(b, nil)
		b = append(b, 0xde, 0xad)
		binary.BigEndian.PutUint32(b, uint32(len(b)-4))
		_, err := c.Write(b)
		require.NoError(t, err)
		corr, body := readResponse(t, c)
		require.Equal(t, int32(8), corr)
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		require.NoError(t, resp.ReadFrom(body))
		require.Equal(t, kerr.UnsupportedVersion.Code, resp.ErrorCode)
		require.Len(t, resp.ApiKeys, 1)
		require.Equal(t, int16(3), resp.ApiKeys[0].MaxVersion)
	})
	t.Run("bad software name", func(t *testing.T) {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName, req.ClientSoftwareVersion = "-bad-", "1"
		_, err := c.Write(frame(req, 9, "x"))
		require.NoError(t, err)
		_, body := readResponse(t, c)
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 3
		require.NoError(t, resp.ReadFrom(body))
		require.Equal(t, kerr.InvalidRequest.Code, resp.ErrorCode)
	})
}

func TestBadFramesCloseConnection(t *testing.T) {
	addr := startServer(t, echoHandler{}, 1024)
	cases := []struct {
		name  string
		bytes func() []byte
	}{
		{"oversized frame refused before allocation", func() []byte {
			return binary.BigEndian.AppendUint32(nil, 1<<30)
		}},
		{"negative size", func() []byte { return binary.BigEndian.AppendUint32(nil, 0xffffffff) }},
		{"frame shorter than a header", func() []byte { return []byte{0, 0, 0, 3, 0, 3, 0} }},
		{"unknown api key", func() []byte {
			b := []byte{0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 1, 0, 0xff, 0xff}
			return b[:4+10]
		}},
		{"api we do not serve", func() []byte {
			req := kmsg.NewPtrProduceRequest()
			req.Version = 3
			return frame(req, 1, "x")
		}},
		{"unsupported version", func() []byte {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 13
			return frame(req, 1, "x")
		}},
		{"truncated body", func() []byte {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 1
			req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("a-topic-name")}}
			b := frame(req, 1, "x")
			b = b[:len(b)-4]
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
			return b
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Write(tc.bytes())
			require.NoError(t, err)
			expectClosed(t, c)
		})
	}
	// The server still serves others.
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	_, err = c.Write(frame(req, 42, "x"))
	require.NoError(t, err)
	corr, _ := readResponse(t, c)
	require.Equal(t, int32(42), corr)
}

// FuzzDecode feeds arbitrary frames through header parsing, the version
// table and kmsg body decoding for every API kmsg knows: nothing may panic,
// and an accepted frame must re-encode.
func FuzzDecode(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	var versions []kmsg.ApiVersionsResponseApiKey
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		req := kmsg.RequestForKey(k)
		if req == nil {
			continue
		}
		v := kmsg.NewApiVersionsResponseApiKey()
		v.ApiKey, v.MaxVersion = k, req.MaxVersion()
		versions = append(versions, v)
	}
	s := &Server{versions: map[int16]kmsg.ApiVersionsResponseApiKey{}}
	for _, v := range versions {
		s.versions[v.ApiKey] = v
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		r, err := s.decode(frame)
		if err != nil || r.Msg == nil {
			return
		}
		_ = r.Msg.AppendTo(nil)
	})
}

func fuzzSeeds() [][]byte {
	var out [][]byte
	strip := func(b []byte) []byte { return b[4:] }
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}
	out = append(out, strip(frame(md, 1, "c")))
	pr := kmsg.NewPtrProduceRequest()
	pr.Version = 9
	pr.Acks = -1
	pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: []byte{0, 1, 2}}}}}
	out = append(out, strip(frame(pr, 2, "c")))
	fe := kmsg.NewPtrFetchRequest()
	fe.Version = 11
	fe.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: 5, PartitionMaxBytes: 1 << 20}}}}
	out = append(out, strip(frame(fe, 3, "c")))
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	out = append(out, strip(frame(av, 4, "c")))
	return out
}

// gatedHandler answers once release is closed, and says when it holds a
// request.
type gatedHandler struct {
	held    chan struct{}
	release chan struct{}
}

func (h gatedHandler) Handle(r *Request) {
	go func() {
		h.held <- struct{}{}
		<-h.release
		r.Respond(r.Msg.ResponseKind())
	}()
}

// TestCloseAnswersRequestsInFlight: a server closing (a broker's shutdown,
// after its controlled shutdown) answers the requests it has read before it
// closes their connections, and closes idle connections at once; a client
// whose request is cut off reads EOF, which franz-go does not retry on a new
// connection.
func TestCloseAnswersRequestsInFlight(t *testing.T) {
	h := gatedHandler{held: make(chan struct{}, 1), release: make(chan struct{})}
	s := NewServer(Config{Versions: testVersions(), Handlers: 2}, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Serve("PLAINTEXT", ln)
	busy, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer busy.Close()
	idle, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer idle.Close()
	// Both connections accepted: one still in the listen backlog when the
	// listener closes is reset by the kernel, not closed by the server.
	require.Eventually(t, func() bool { return plaintext(s).Connections == 2 }, 5*time.Second, 5*time.Millisecond)

	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	_, err = busy.Write(frame(req, 7, "c"))
	require.NoError(t, err)
	<-h.held

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	// The idle connection goes first, while the request is still held.
	expectClosed(t, idle)
	select {
	case <-closed:
		t.Fatal("Close returned with a request unanswered")
	default:
	}
	close(h.release)
	corr, _ := readResponse(t, busy)
	require.Equal(t, int32(7), corr, "the request in flight was answered")
	expectClosed(t, busy)
	<-closed
	_, err = net.Dial("tcp", ln.Addr().String())
	require.Error(t, err, "no longer accepting")
}
