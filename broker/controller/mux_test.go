package controller

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMuxCloseWaitsForRaftReaders: closing the CONTROLLER listener cuts
// raft's inbound connections, but the controller closes the metadata log
// only once raft's reader goroutines have let go of them. A reader can be
// in the middle of a heartbeat that writes the term to the stable store;
// closing the store under it made raft panic ("failed to save current
// term: database not open"), seen once in a -race run of this package.
func TestMuxCloseWaitsForRaftReaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := newMux(ln, func(c net.Conn) { _ = c.Close() })

	peer, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer peer.Close()
	_, err = peer.Write([]byte{0}) // not rpcMagic: a raft connection
	require.NoError(t, err)
	conn, err := m.Accept()
	require.NoError(t, err)

	// raft's reader: reads until its socket fails, then finishes the
	// request it is in (release) before closing the connection.
	readFailed, release, released := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := conn.Read(buf); err != nil {
				break
			}
		}
		close(readFailed)
		<-release
		_ = conn.Close()
		close(released)
	}()

	require.NoError(t, m.Close())
	select {
	case <-readFailed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not cut the raft connection")
	}
	require.False(t, m.awaitRaftReaders(50*time.Millisecond), "the reader still holds its connection")
	close(release)
	<-released
	require.True(t, m.awaitRaftReaders(10*time.Second), "the reader let go")
}
