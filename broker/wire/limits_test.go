package wire

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func startServerCfg(t *testing.T, cfg Config, h Handler) (*Server, string) {
	t.Helper()
	cfg.Versions = testVersions()
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = 100 << 20
	}
	if cfg.Handlers == 0 {
		cfg.Handlers = 2
	}
	s := NewServer(cfg, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Serve("PLAINTEXT", ln)
	t.Cleanup(s.Close)
	return s, ln.Addr().String()
}

func stats(t *testing.T, s *Server) ListenerStats {
	t.Helper()
	st, ok := s.ListenerStats("PLAINTEXT")
	require.True(t, ok)
	return st
}

// plaintext is stats for conditions that require.Eventually runs on its own
// goroutine, where a require must not fail the test; a missing listener
// reads as zero and the condition stays false.
func plaintext(s *Server) ListenerStats {
	st, _ := s.ListenerStats("PLAINTEXT")
	return st
}

// apiVersionsRoundTrip dials addr and reads one ApiVersions answer.
func apiVersionsRoundTrip(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	req := kmsg.NewPtrApiVersionsRequest()
	if _, err := c.Write(frame(req, 5, "probe")); err != nil {
		return err
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return err
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != 5 {
		return fmt.Errorf("correlation id %d", corr)
	}
	return nil
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

const fdHelperEnv = "KOBS_WIRE_FD_HELPER"

// TestFDHelperProcess is the server side of TestAcceptSurvivesFDExhaustion,
// run in a child process whose RLIMIT_NOFILE is lowered to 64 so the burst
// exhausts real file descriptors without touching the test process.
func TestFDHelperProcess(t *testing.T) {
	if os.Getenv(fdHelperEnv) != "1" {
		t.Skip("helper process for TestAcceptSurvivesFDExhaustion")
	}
	lim := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(2)
	}
	s := NewServer(Config{Versions: testVersions(), Handlers: 2,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}, echoHandler{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(2)
	}
	s.Serve("PLAINTEXT", ln)
	fmt.Println(ln.Addr().String())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		st, _ := s.ListenerStats("PLAINTEXT")
		b, _ := json.Marshal(st)
		fmt.Println(string(b))
	}
	s.Close()
	os.Exit(0)
}

func TestAcceptSurvivesFDExhaustion(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFDHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), fdHelperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	var stderrMu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		stderrMu.Lock()
		defer stderrMu.Unlock()
		return stderr.Write(p)
	})
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	out := bufio.NewScanner(stdout)
	require.True(t, out.Scan(), "helper printed no address")
	addr := out.Text()
	require.Contains(t, addr, "127.0.0.1:", "helper: %s", addr)
	helperStats := func() ListenerStats {
		_, err := io.WriteString(stdin, "stats\n")
		require.NoError(t, err)
		require.True(t, out.Scan())
		var st ListenerStats
		require.NoError(t, json.Unmarshal(out.Bytes(), &st), out.Text())
		return st
	}
	require.NoError(t, apiVersionsRoundTrip(addr))

	// The burst: 150 idle connections against a 64-descriptor budget. The
	// kernel completes the handshakes (backlog); the server's accept runs
	// out of descriptors.
	var burst []net.Conn
	for range 150 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		require.NoError(t, err)
		burst = append(burst, c)
	}
	require.Eventually(t, func() bool {
		st := helperStats()
		return st.AcceptErrors > 0 && !st.Serving
	}, 10*time.Second, 20*time.Millisecond, "the burst never exhausted the helper's descriptors")
	st := helperStats()
	require.Contains(t, st.LastAcceptError, "too many open files")

	for _, c := range burst {
		require.NoError(t, c.Close())
	}
	// The listener recovers on its own and serves new clients.
	require.Eventually(t, func() bool { return apiVersionsRoundTrip(addr) == nil }, 15*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return helperStats().Serving }, 5*time.Second, 20*time.Millisecond)
	for range 5 {
		require.NoError(t, apiVersionsRoundTrip(addr))
	}
	stderrMu.Lock()
	logs := stderr.String()
	stderrMu.Unlock()
	require.Contains(t, logs, "accept failed; retrying")
	require.Contains(t, logs, "listener accepting again")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestMaxConnectionsPerIP(t *testing.T) {
	s, addr := startServerCfg(t, Config{MaxConnectionsPerIP: 2}, echoHandler{})
	var keep []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		keep = append(keep, c)
		t.Cleanup(func() { c.Close() })
	}
	require.Eventually(t, func() bool { return plaintext(s).Connections == 2 }, 5*time.Second, 5*time.Millisecond)
	third, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer third.Close()
	expectClosed(t, third)
	require.Equal(t, int64(1), stats(t, s).RejectedPerIP)
	// The two admitted connections still work; closing one admits a new one.
	require.NoError(t, keep[0].Close())
	require.Eventually(t, func() bool { return plaintext(s).Connections == 1 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, apiVersionsRoundTrip(addr))
}

func TestMaxConnectionsBlocksAcceptUntilOneCloses(t *testing.T) {
	s, addr := startServerCfg(t, Config{MaxConnections: 2}, echoHandler{})
	a, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer a.Close()
	b, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer b.Close()
	require.Eventually(t, func() bool { return plaintext(s).Connections == 2 }, 5*time.Second, 5*time.Millisecond)

	// The third waits in the backlog: its request is not answered...
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(frame(kmsg.NewPtrApiVersionsRequest(), 9, "third"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = c.Read(make([]byte, 1))
	require.True(t, isTimeout(err), "answered beyond max.connections: %v", err)
	require.Equal(t, int64(2), stats(t, s).Created)

	// ...until one of the others closes.
	require.NoError(t, a.Close())
	corr, _ := readResponse(t, c)
	require.Equal(t, int32(9), corr)
}

func TestIdleConnectionClosed(t *testing.T) {
	// The client's pace (a quarter of the timeout) leaves room for a
	// scheduling stall of ~1 s on a loaded 2-core machine.
	const idle = 1500 * time.Millisecond
	s, addr := startServerCfg(t, Config{IdleTimeout: idle}, echoHandler{})
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	// Activity keeps it open past the idle timeout...
	for range 8 {
		_, err := c.Write(frame(kmsg.NewPtrApiVersionsRequest(), 1, "x"))
		require.NoError(t, err)
		readResponse(t, c)
		time.Sleep(idle / 4) // pacing the client, not waiting for the server
	}
	require.Zero(t, stats(t, s).IdleClosed)
	// ...silence closes it.
	expectClosed(t, c)
	require.Eventually(t, func() bool { return plaintext(s).IdleClosed == 1 }, 5*time.Second, 5*time.Millisecond)
}

func TestSlowBodyDisconnected(t *testing.T) {
	s, addr := startServerCfg(t, Config{ReadTimeout: 300 * time.Millisecond}, echoHandler{})
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(binary.BigEndian.AppendUint32(nil, 1000))
	require.NoError(t, err)
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		closed <- err
	}()
	// Trickle one byte every 20 ms: 1000 bytes would take 20 s.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-closed:
			require.Error(t, err, "closed by the server")
			require.False(t, isTimeout(err))
			require.Less(t, time.Since(start), 5*time.Second)
			require.Equal(t, int64(1), stats(t, s).ReadTimeouts)
			require.NoError(t, apiVersionsRoundTrip(addr), "others are still served")
			return
		case <-tick.C:
			_, _ = c.Write([]byte{0})
		case <-time.After(10 * time.Second):
			t.Fatal("slow-body client still connected after 10s")
		}
	}
}

// bigHandler answers every Metadata request with a response of about size
// bytes.
type bigHandler struct{ resp *kmsg.MetadataResponse }

func newBigHandler(size int) bigHandler {
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = 1
	name := strings.Repeat("t", 1000)
	for range size / 1010 {
		tp := kmsg.NewMetadataResponseTopic()
		tp.Topic = kmsg.StringPtr(name)
		resp.Topics = append(resp.Topics, tp)
	}
	return bigHandler{resp: resp}
}

func (h bigHandler) Handle(r *Request) {
	if _, ok := r.Msg.(*kmsg.MetadataRequest); ok {
		r.Respond(h.resp)
		return
	}
	r.Respond(r.Msg.ResponseKind())
}

func TestNeverReadingClientsDisconnectedSlowReadersServed(t *testing.T) {
	const (
		respSize = 1 << 20
		clients  = 20
	)
	// A 256 KiB chunk takes the slow reader 200 ms: five times less than
	// the write timeout, so a loaded machine does not make it a never-reader.
	s, addr := startServerCfg(t, Config{WriteTimeout: time.Second}, newBigHandler(respSize))
	base := heapInUse()

	// A slow but steady reader (64 KiB every 50 ms) keeps its connection.
	slow, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer slow.Close()
	require.NoError(t, slow.(*net.TCPConn).SetReadBuffer(16<<10))
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	_, err = slow.Write(frame(req, 1, "slow"))
	require.NoError(t, err)

	// Clients that pipeline requests and never read a byte.
	var never []net.Conn
	for range clients {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.(*net.TCPConn).SetReadBuffer(4<<10))
		for corr := range int32(20) {
			_, err := c.Write(frame(req, corr, "never"))
			require.NoError(t, err)
		}
		never = append(never, c)
	}

	var sizeBuf [4]byte
	require.NoError(t, slow.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = io.ReadFull(slow, sizeBuf[:])
	require.NoError(t, err)
	remaining := int(binary.BigEndian.Uint32(sizeBuf[:]))
	require.Greater(t, remaining, respSize*9/10)
	buf := make([]byte, 64<<10)
	for remaining > 0 {
		n, err := io.ReadFull(slow, buf[:min(len(buf), remaining)])
		require.NoError(t, err, "slow reader lost its connection with %d bytes left", remaining)
		remaining -= n
		time.Sleep(50 * time.Millisecond) // the client's reading pace
	}

	require.Eventually(t, func() bool {
		st := plaintext(s)
		return st.WriteTimeouts == clients && st.Connections == 1
	}, 20*time.Second, 10*time.Millisecond, "never-reading clients still connected: %+v", stats(t, s))
	// Their unsent responses are gone with them: the live heap is back
	// within 16 MiB of where it started (each held 1 MiB, 20 MiB in all).
	require.Less(t, heapInUse(), base+16<<20)
	require.NoError(t, apiVersionsRoundTrip(addr))
}

func TestAnnouncedSizeIsNotReserved(t *testing.T) {
	const (
		conns     = 500
		announced = 100 << 20
	)
	s, addr := startServerCfg(t, Config{MaxRequestBytes: announced}, echoHandler{})
	base := heapInUse()
	var cs []net.Conn
	for range conns {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		b := binary.BigEndian.AppendUint32(nil, announced)
		b = append(b, 0, 3, 0, 1, 0, 0, 0, 1, 0, 0) // 10 bytes of a Metadata header
		_, err = c.Write(b)
		require.NoError(t, err)
		cs = append(cs, c)
	}
	// Every connection is inside its body read: the request pool accounts
	// for all 500 announced frames (50 GB if they were allocated).
	require.Eventually(t, func() bool {
		_, used := s.MemoryPool()
		return used == conns*announced
	}, 20*time.Second, 10*time.Millisecond)
	grown := heapInUse() - base
	t.Logf("heap grew %d KiB for %d connections announcing %d MiB each", grown>>10, conns, announced>>20)
	require.Less(t, grown, uint64(64<<20), "heap must stay below 64 MiB, not %d GiB", conns*announced>>30)
	require.Equal(t, int64(conns), stats(t, s).Connections)
	require.NoError(t, apiVersionsRoundTrip(addr))
}

func TestQueuedMaxRequestBytesMutesReadsUntilAnswered(t *testing.T) {
	// One request fits the pool; while it is parked, another connection's
	// request is not read.
	release := make(chan struct{})
	h := handlerFunc(func(r *Request) {
		if r.Header.ClientID == "park" {
			go func() { <-release; r.Respond(r.Msg.ResponseKind()) }()
			return
		}
		r.Respond(r.Msg.ResponseKind())
	})
	s, addr := startServerCfg(t, Config{QueuedMaxRequestBytes: 10}, h)
	a, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer a.Close()
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 1
	_, err = a.Write(frame(md, 1, "park"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { avail, _ := s.MemoryPool(); return avail <= 0 }, 5*time.Second, 5*time.Millisecond)

	b, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer b.Close()
	_, err = b.Write(frame(md, 2, "other"))
	require.NoError(t, err)
	require.NoError(t, b.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = b.Read(make([]byte, 1))
	require.True(t, isTimeout(err), "read beyond queued.max.request.bytes: %v", err)

	close(release)
	corr, _ := readResponse(t, a)
	require.Equal(t, int32(1), corr)
	corr, _ = readResponse(t, b)
	require.Equal(t, int32(2), corr)
	_, used := s.MemoryPool()
	require.Zero(t, used)
}

type handlerFunc func(*Request)

func (f handlerFunc) Handle(r *Request) { f(r) }

func TestReadFrameGrowsWithData(t *testing.T) {
	// 10 bytes of a 100 MB frame: the buffer stays one chunk.
	r := io.MultiReader(strings.NewReader("0123456789"))
	_, err := readFrame(r, 100<<20)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	data := strings.Repeat("x", 200_000)
	got, err := readFrame(iotestOneByteChunks(data), len(data))
	require.NoError(t, err)
	require.Equal(t, data, string(got))
	require.Equal(t, len(data), cap(got), "the final buffer is exactly the frame")
}

// iotestOneByteChunks returns a reader that yields at most 1000 bytes per Read.
func iotestOneByteChunks(s string) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		if len(s) == 0 {
			return 0, io.EOF
		}
		n := copy(p[:min(len(p), 1000)], s)
		s = s[n:]
		return n, nil
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
