package log

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// ReadTo reads what Read reads, into the caller's buffer when it is big
// enough, growing it otherwise, and leaves it alone when nothing is read.
func TestReadToReusesBuffer(t *testing.T) {
	l, _ := openLog(t, testConfig(newClock()))
	for i := range 5 {
		appendSpec(t, l, spec{ts: tsRange(int64(i)*10, 1, 3), valueSize: 100})
	}
	want, err := l.Read(0, 1<<20, l.LogEndOffset(), true)
	require.NoError(t, err)
	require.NotEmpty(t, want)

	buf := make([]byte, 7, 64<<10)
	for i := range buf {
		buf[i] = 0xee
	}
	got, err := l.ReadTo(buf, 0, 1<<20, l.LogEndOffset(), true)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Same(t, &buf[:1][0], &got[0], "a big enough buffer is read into, not replaced")

	small := make([]byte, 0, 16)
	got, err = l.ReadTo(small, 0, 1<<20, l.LogEndOffset(), true)
	require.NoError(t, err)
	require.Equal(t, want, got, "a small buffer is grown")

	buf[0] = 0xee
	got, err = l.ReadTo(buf, l.LogEndOffset(), 1<<20, l.LogEndOffset(), true)
	require.NoError(t, err)
	require.Nil(t, got, "nothing to read")
	require.Equal(t, byte(0xee), buf[0], "an empty read leaves the buffer alone")
}
