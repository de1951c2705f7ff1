package fsutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meta")
	require.NoError(t, WriteFileAtomic(path, []byte("one")))
	require.NoError(t, WriteFileAtomic(path, []byte("two")))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "two", string(b))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temp file left behind")

	// A directory in the way: the error names the path and leaves no temp.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "taken"), 0o755))
	require.ErrorContains(t, WriteFileAtomic(filepath.Join(dir, "taken"), []byte("x")), "taken")
	ents, err = os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 2)
}
