package log

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "recovery-point-offset-checkpoint")
	m, err := ReadCheckpoint(p)
	require.NoError(t, err, "a missing file is an empty checkpoint")
	require.Empty(t, m)

	want := map[TopicPartition]int64{
		{Topic: "orders", Partition: 1}:             42,
		{Topic: "orders", Partition: 0}:             7,
		{Topic: "__consumer_offsets", Partition: 3}: 0,
		{Topic: "a.b-c_d", Partition: 12}:           1 << 40,
	}
	require.NoError(t, WriteCheckpoint(p, want))
	got, err := ReadCheckpoint(p)
	require.NoError(t, err)
	require.Equal(t, want, got)

	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "0\n4\n__consumer_offsets 3 0\na.b-c_d 12 1099511627776\norders 0 7\norders 1 42\n", string(data),
		"Kafka's format, sorted")

	require.NoError(t, WriteCheckpoint(p, map[TopicPartition]int64{}))
	got, err = ReadCheckpoint(p)
	require.NoError(t, err)
	require.Empty(t, got)
	left, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	require.Empty(t, left, "no temp files left behind")

	require.Error(t, WriteCheckpoint(p, map[TopicPartition]int64{{Topic: "has space"}: 1}))
}

func TestReadCheckpointRejectsMalformed(t *testing.T) {
	tests := []struct{ name, content string }{
		{"empty", ""},
		{"version 1", "1\n0\n"},
		{"no count", "0\n"},
		{"bad count", "0\nx\n"},
		{"negative count", "0\n-1\n"},
		{"too few entries", "0\n2\nt 0 1\n"},
		{"too many entries", "0\n1\nt 0 1\nt 1 2\n"},
		{"two fields", "0\n1\nt 0\n"},
		{"bad partition", "0\n1\nt x 1\n"},
		{"bad offset", "0\n1\nt 0 1.5\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "cp")
			require.NoError(t, os.WriteFile(p, []byte(tc.content), 0o644))
			_, err := ReadCheckpoint(p)
			require.Error(t, err)
		})
	}
	t.Run("trailing blank line is fine", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "cp")
		require.NoError(t, os.WriteFile(p, []byte("0\n1\nt 0 1\n\n"), 0o644))
		m, err := ReadCheckpoint(p)
		require.NoError(t, err)
		require.Equal(t, map[TopicPartition]int64{{Topic: "t"}: 1}, m)
	})
}
