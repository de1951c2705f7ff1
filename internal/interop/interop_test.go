// Package interop_test checks kobs against Kafka clients nobody here wrote:
// kcat (librdkafka), kafka-python and sarama each produce to one topic and
// read back what all of them wrote.
package interop_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/internal/testcluster"
)

const perClient = 200

// need returns the path of an external tool, skipping the test when it is
// absent unless KOBS_REQUIRE_INTEROP is set (make test sets it, after
// installing the tools, so a broken install fails loudly).
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("KOBS_REQUIRE_INTEROP") != "" {
		t.Fatalf("%s not found (run scripts/install-test-deps.sh)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// debianPython is the system interpreter, which sees Debian's python3-kafka
// and python3-confluent-kafka even when another python3 is first in PATH.
func debianPython(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return need(t, "python3")
}

func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// checkAll asserts that got holds every value of every client exactly once,
// and each client's values in the order it produced them (one partition).
func checkAll(t *testing.T, reader string, got []string) {
	t.Helper()
	var want []string
	for _, c := range []string{"kcat", "python", "sarama", "franz"} {
		want = append(want, values(c, perClient)...)
	}
	sorted := append([]string(nil), got...)
	sort.Strings(sorted)
	sort.Strings(want)
	require.Equal(t, want, sorted, "%s: read a different set of records", reader)
	next := map[string]int{}
	for _, v := range got {
		prefix, _, _ := strings.Cut(v, "-")
		require.Equal(t, fmt.Sprintf("%s-%d", prefix, next[prefix]), v, "%s: %s records out of order", reader, prefix)
		next[prefix]++
	}
}

func TestInterop(t *testing.T) {
	kcat := need(t, "kcat")
	python := debianPython(t)
	b := testcluster.Start(t)
	addr := b.Addr()
	const topic = "interop"

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	_, err = kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, nil, topic)
	require.NoError(t, err)

	// Each client produces its own values.
	run(t, strings.Join(values("kcat", perClient), "\n")+"\n", kcat, "-b", addr, "-t", topic, "-P", "-X", "acks=all")
	run(t, "", python, "testdata/kafka_python_client.py", "produce", addr, topic, "python", fmt.Sprint(perClient))
	saramaProduce(t, addr, topic, values("sarama", perClient))
	for _, v := range values("franz", perClient) {
		require.NoError(t, cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr())
	}
	total := 4 * perClient

	t.Run("kcat -L", func(t *testing.T) {
		out := run(t, "", kcat, "-b", addr, "-L")
		require.Contains(t, out, `topic "interop" with 1 partitions`)
		require.Contains(t, out, "partition 0, leader 1, replicas: 1, isrs: 1")
	})
	t.Run("kcat -C", func(t *testing.T) {
		out := run(t, "", kcat, "-b", addr, "-t", topic, "-C", "-o", "beginning", "-e", "-f", "%s\n")
		checkAll(t, "kcat", strings.Fields(out))
	})
	t.Run("kafka-python", func(t *testing.T) {
		out := run(t, "", python, "testdata/kafka_python_client.py", "consume", addr, topic, "1", fmt.Sprint(total))
		checkAll(t, "kafka-python", strings.Fields(out))
	})
	t.Run("sarama", func(t *testing.T) {
		checkAll(t, "sarama", saramaConsume(t, addr, topic, total))
	})
}

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "kobs-interop"
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Consumer.Return.Errors = true
	return c
}

func saramaProduce(t *testing.T, addr, topic string, vals []string) {
	t.Helper()
	p, err := sarama.NewSyncProducer([]string{addr}, saramaConfig())
	require.NoError(t, err)
	defer p.Close()
	for _, v := range vals {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)})
		require.NoError(t, err)
	}
}

func saramaConsume(t *testing.T, addr, topic string, n int) []string {
	t.Helper()
	c, err := sarama.NewConsumer([]string{addr}, saramaConfig())
	require.NoError(t, err)
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	require.NoError(t, err)
	defer pc.Close()
	var out []string
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case m := <-pc.Messages():
			out = append(out, string(m.Value))
		case err := <-pc.Errors():
			t.Fatalf("sarama consume: %v", err)
		case <-timeout:
			t.Fatalf("sarama read %d of %d records", len(out), n)
		}
	}
	return out
}
