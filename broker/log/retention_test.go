package log

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDeletedSegmentStaysReadableWhilePinned: retention renames a segment to
// .deleted immediately, but a reader that pinned it keeps reading; the files
// go away with the last reference.
func TestDeletedSegmentStaysReadableWhilePinned(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RetentionMs = -1
	l, _ := openLog(t, cfg)
	appendMany(t, l, 40, 60)
	require.Greater(t, l.NumSegments(), 2)

	l.mu.RLock()
	v := l.segs[0].pin()
	l.mu.RUnlock()
	want := make([]byte, v.size)
	_, err := v.seg.log.ReadAt(want, 0)
	require.NoError(t, err)

	_, err = l.DeleteRecordsBefore(l.LogEndOffset())
	require.NoError(t, err)
	require.Equal(t, 1, l.NumSegments())
	require.NoFileExists(t, v.seg.logPath)
	require.FileExists(t, v.seg.logPath+deletedSuffix, "renamed, not yet unlinked")

	var out []byte
	n, _, err := readRun(v, 0, v.size, 1<<62, &out)
	require.NoError(t, err)
	require.Equal(t, v.size, n)
	require.Equal(t, want, out)

	v.unpin()
	_, err = os.Stat(v.seg.logPath + deletedSuffix)
	require.ErrorIs(t, err, os.ErrNotExist, "the last unpin unlinks")
	require.NoFileExists(t, v.seg.idx.path+deletedSuffix)
	require.NoFileExists(t, v.seg.tidx.path+deletedSuffix)
}
