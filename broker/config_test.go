package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseProperties(t *testing.T) {
	in := `# comment
! also a comment
node.id=3
listeners = PLAINTEXT://127.0.0.1:9093
log.dirs: /a,/b
spaced value
continued=one\
    two
escaped=a\=b\tc
`
	p, err := ParseProperties(strings.NewReader(in))
	require.NoError(t, err)
	want := map[string]string{
		"node.id": "3", "listeners": "PLAINTEXT://127.0.0.1:9093", "log.dirs": "/a,/b",
		"spaced": "value", "continued": "onetwo", "escaped": "a=b\tc",
	}
	for k, v := range want {
		got, ok := p.Get(k)
		require.True(t, ok, k)
		require.Equal(t, v, got, k)
	}
	require.Equal(t, []string{"node.id", "listeners", "log.dirs", "spaced", "continued", "escaped"}, p.Keys())
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.properties")
	require.NoError(t, os.WriteFile(path, []byte(`broker.id=2
listeners=PLAINTEXT://:0
log.dirs=`+dir+`
num.partitions=6
log.retention.hours=24
log.retention.minutes=30
log.segment.bytes=1048576
message.max.bytes=2000000
zookeeper.connect=localhost:2181
no.such.key=1
`), 0o644))
	c, err := LoadConfig(path, []string{"num.partitions=8", "log.flush.interval.messages=10"})
	require.NoError(t, err)
	require.Equal(t, int32(2), c.NodeID)
	require.Equal(t, int32(8), c.NumPartitions, "--override wins over the file")
	// The finest unit wins: minutes over hours.
	require.Equal(t, "1800000", c.TopicDefaults["retention.ms"])
	require.Equal(t, "1048576", c.TopicDefaults["segment.bytes"])
	require.Equal(t, "10", c.TopicDefaults["flush.messages"])
	require.Equal(t, int32(2000000), c.MessageMaxBytes)
	require.Equal(t, int32(0), c.Listeners[0].Port)
	require.NotEmpty(t, c.AdvertisedListeners[0].Host, "wildcard host is advertised as the host name")
	joined := strings.Join(c.Warnings, "\n")
	require.Contains(t, joined, `unknown config key "no.such.key"`)
	require.Contains(t, joined, "zookeeper.connect")

	lc := c.logConfig(map[string]string{"retention.ms": "5000"})
	require.Equal(t, int64(5000), lc.RetentionMs, "topic override wins")
	require.Equal(t, int64(1048576), lc.SegmentBytes, "broker default applies")
	require.Equal(t, int32(2000000), lc.MaxMessageBytes)
	require.Equal(t, int64(10), lc.FlushMessages)
	require.Equal(t, 300*time.Second, c.RetentionCheckInterval, "Kafka default")
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, props, key string
	}{
		{"missing node id", "log.dirs=/tmp/x", "node.id"},
		{"node id not a number", "node.id=abc\nlog.dirs=/tmp/x", "node.id"},
		{"node.id and broker.id disagree", "node.id=1\nbroker.id=2\nlog.dirs=/tmp/x", "node.id"},
		{"bad listener", "node.id=1\nlisteners=127.0.0.1:9092\nlog.dirs=/tmp/x", "listeners"},
		{"unsupported security protocol", "node.id=1\nlisteners=SSL://127.0.0.1:9093\nlog.dirs=/tmp/x", "listeners"},
		{"partitions out of range", "node.id=1\nnum.partitions=0\nlog.dirs=/tmp/x", "num.partitions"},
		{"bad boolean", "node.id=1\nauto.create.topics.enable=yes\nlog.dirs=/tmp/x", "auto.create.topics.enable"},
		{"segment too small", "node.id=1\nlog.segment.bytes=10\nlog.dirs=/tmp/x", "log.segment.bytes"},
		{"bad timestamp type", "node.id=1\nlog.message.timestamp.type=Whenever\nlog.dirs=/tmp/x", "log.message.timestamp.type"},
		{"bad request size", "node.id=1\nsocket.request.max.bytes=-5\nlog.dirs=/tmp/x", "socket.request.max.bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseProperties(strings.NewReader(tc.props))
			require.NoError(t, err)
			_, err = NewConfig(p)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.key+":")
		})
	}
	_, err := LoadConfig(filepath.Join(t.TempDir(), "missing.properties"), nil)
	require.Error(t, err)
	_, err = LoadConfig("", []string{"novalue"})
	require.ErrorContains(t, err, "want key=value")
}

func TestTopicConfigValidation(t *testing.T) {
	require.NoError(t, validateTopicConfigs(map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "-1"}))
	require.ErrorContains(t, validateTopicConfigs(map[string]string{"cleanup.policy": "shred"}), "cleanup.policy")
	require.ErrorContains(t, validateTopicConfigs(map[string]string{"retention.ms": "-2"}), "retention.ms")
	require.ErrorContains(t, validateTopicConfigs(map[string]string{"nope": "1"}), "unknown topic config")
	require.Equal(t, "delete,compact", alterList("delete", "compact", true))
	require.Equal(t, "compact", alterList("delete,compact", "delete", false))
}
