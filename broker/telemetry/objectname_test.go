package telemetry

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNameKeepsKafkaOrder(t *testing.T) {
	n := Name("kafka.server", "BrokerTopicMetrics", "MessagesInPerSec", "topic", "t")
	require.Equal(t, "kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t", n.String())
	require.Equal(t, "kafka.server:name=MessagesInPerSec,topic=t,type=BrokerTopicMetrics", n.Canonical())
	require.Equal(t, "type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t", n.KeyPropertyList())
	require.Equal(t, "name=MessagesInPerSec,topic=t,type=BrokerTopicMetrics", n.CanonicalKeyPropertyList())
	require.False(t, n.IsPattern())

	// Empty tag values are dropped, as in KafkaMetricsGroup.
	n = Name("kafka.log", "Log", "Size", "topic", "t", "partition", "0", "extra", "")
	require.Equal(t, "kafka.log:type=Log,name=Size,topic=t,partition=0", n.String())

	// Values outside [\w-%. \t] are quoted like Sanitizer.jmxSanitize.
	n = Name("kafka.server", "Request", "", "user", `a:b,c="d"*`)
	require.Equal(t, `kafka.server:type=Request,user="a:b,c=\"d\"\*"`, n.String())
	back, err := ParseObjectName(n.String())
	require.NoError(t, err)
	require.Equal(t, n.Canonical(), back.Canonical())
	require.False(t, back.IsPattern(), "escaped * is not a wildcard")

	require.Panics(t, func() { Name("d", "T", "N", "odd") })
	require.Panics(t, func() { Name("d", "T", "N", "k=", "v") })
}

func TestParseObjectName(t *testing.T) {
	for _, tc := range []struct {
		in, str, canon string
		pattern        bool
	}{
		{"kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec", "", "kafka.server:name=MessagesInPerSec,type=BrokerTopicMetrics", false},
		{"kafka.server:type=BrokerTopicMetrics,*", "", "kafka.server:type=BrokerTopicMetrics,*", true},
		{"kafka.server:*,type=BrokerTopicMetrics", "kafka.server:type=BrokerTopicMetrics,*", "kafka.server:type=BrokerTopicMetrics,*", true},
		{"kafka.server:name=*,type=BrokerTopicMetrics", "", "kafka.server:name=*,type=BrokerTopicMetrics", true},
		{"*:*", "", "*:*", true},
		{"kafka.*:type=Log,name=Size,topic=t?", "", "kafka.*:name=Size,topic=t?,type=Log", true},
		{`d:k="a,b=c:d"`, "", `d:k="a,b=c:d"`, false},
		{"d:k=v w", "", "d:k=v w", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			n, err := ParseObjectName(tc.in)
			require.NoError(t, err)
			want := tc.str
			if want == "" {
				want = tc.in
			}
			require.Equal(t, want, n.String())
			require.Equal(t, tc.canon, n.Canonical())
			require.Equal(t, tc.pattern, n.IsPattern())
		})
	}
	for _, bad := range []string{
		"", "nodomain", "d:", "d:k", "d:k=", "d:=v", "d:k=v,", "d:k=v,k=w", "d:k=a,b",
		`d:k="unterminated`, `d:k="bad\x"`, "d:k=v,*,*", "d:k=a:b", `d:k=a"b`,
	} {
		_, err := ParseObjectName(bad)
		require.ErrorIs(t, err, ErrMalformedObjectName, "input %q", bad)
	}
}

func TestObjectNameMatches(t *testing.T) {
	all := MustParseObjectName("kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec")
	perTopic := MustParseObjectName("kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t1")
	log := MustParseObjectName("kafka.log:type=Log,name=Size,topic=t1,partition=0")
	quoted := Name("kafka.server", "Request", "", "user", "a*b")

	for _, tc := range []struct {
		pattern string
		name    ObjectName
		want    bool
	}{
		// Property-list pattern: extra keys allowed.
		{"kafka.server:type=BrokerTopicMetrics,*", all, true},
		{"kafka.server:type=BrokerTopicMetrics,*", perTopic, true},
		// No trailing *: the key set must be exactly {name,type}.
		{"kafka.server:name=*,type=BrokerTopicMetrics", all, true},
		{"kafka.server:name=*,type=BrokerTopicMetrics", perTopic, false},
		{"kafka.server:name=*,topic=*,type=BrokerTopicMetrics", perTopic, true},
		{"kafka.server:name=*,topic=*,type=BrokerTopicMetrics", all, false},
		{"kafka.server:name=Messages??PerSec,*", all, true},
		{"kafka.server:name=Bytes*,*", all, false},
		{"kafka.*:*", log, true},
		{"*:type=Log,*", log, true},
		{"kafka.log:type=Log,name=*,topic=t1,partition=*", log, true},
		{"kafka.log:type=Log,name=*,topic=t2,partition=*", log, false},
		// A non-pattern matches by canonical equality, whatever the key order.
		{"kafka.server:name=MessagesInPerSec,type=BrokerTopicMetrics", all, true},
		// Quoted values: \* is literal, * a wildcard.
		{`kafka.server:type=Request,user="a\*b"`, quoted, true},
		{`kafka.server:type=Request,user="a*"`, quoted, true},
		{`kafka.server:type=Request,user="x*"`, quoted, false},
	} {
		p := MustParseObjectName(tc.pattern)
		require.Equal(t, tc.want, p.Matches(tc.name), "%s vs %s", tc.pattern, tc.name)
	}
	p := MustParseObjectName("kafka.server:*")
	require.False(t, p.Matches(p), "a pattern never matches a pattern")
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true}, {"a*c*e", "abcde", true},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"abc", "abd", false}, {"*x*", "abc", false},
		{"a**b", "ab", true},
	} {
		require.Equal(t, tc.want, glob(tc.p, tc.s, false), "%q ~ %q", tc.p, tc.s)
	}
}
