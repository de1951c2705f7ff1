// Command kfakeserver runs franz-go's kfake as a standalone broker, the anchor
// scripts/bench-produce.sh measures kobs against. It keeps everything in
// memory and is a test double, not a broker: numbers from it say what a lean
// in-process Kafka implementation does on this machine, nothing more.
//
//	kfakeserver --port 0 --seed-topic bench-1:6 --seed-topic bench-all:6
//
// It prints "kfake listening on 127.0.0.1:PORT" (one line per broker) once
// it accepts connections and runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// seedTopics collects repeated --seed-topic name:partitions flags.
type seedTopics []kfake.Opt

func (s *seedTopics) String() string { return "" }

func (s *seedTopics) Set(v string) error {
	name, parts, ok := strings.Cut(v, ":")
	if !ok || name == "" {
		return fmt.Errorf("seed topic %q: want name:partitions", v)
	}
	n, err := strconv.ParseInt(parts, 10, 32)
	if err != nil || n <= 0 {
		return fmt.Errorf("seed topic %q: partitions must be a positive integer", v)
	}
	*s = append(*s, kfake.SeedTopics(int32(n), name))
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kfakeserver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kfakeserver", flag.ContinueOnError)
	port := fs.Int("port", 0, "port of the first broker, the others take the next ones; 0 picks free ports")
	brokers := fs.Int("brokers", 1, "number of brokers")
	partitions := fs.Int("default-partitions", 6, "partitions of auto-created topics")
	autoCreate := fs.Bool("auto-create-topics", true, "create unknown topics on metadata requests, like auto.create.topics.enable")
	retentionBytes := fs.Int64("retention-bytes", -1, "per-partition size cap enforced every second, like log.retention.bytes; -1 keeps everything")
	var seeds seedTopics
	fs.Var(&seeds, "seed-topic", "topic to create at start, name:partitions (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokers < 1 {
		return errors.New("--brokers must be at least 1")
	}
	if *port < 0 || *port+*brokers-1 > 65535 {
		return fmt.Errorf("--port %d: out of range for %d brokers", *port, *brokers)
	}

	opts := []kfake.Opt{kfake.NumBrokers(*brokers), kfake.DefaultNumPartitions(*partitions)}
	if *port > 0 {
		ports := make([]int, *brokers)
		for i := range ports {
			ports[i] = *port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	}
	if *autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if *retentionBytes >= 0 {
		opts = append(opts, kfake.BrokerConfigs(map[string]string{
			"log.retention.bytes": strconv.FormatInt(*retentionBytes, 10),
		}))
	}
	opts = append(opts, seeds...)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start kfake cluster: %w", err)
	}
	defer c.Close()
	// NewCluster returns with its listeners bound, so connections are
	// accepted from here on and scripts may start as soon as they read this.
	for _, addr := range c.ListenAddrs() {
		fmt.Printf("kfake listening on %s\n", addr)
	}
	if *retentionBytes < 0 {
		<-ctx.Done()
		return nil
	}
	// kfake keeps every record in memory and only runs retention on its own
	// for topics with a topic-level retention config, which auto-created and
	// seeded topics lack; so we enforce the broker-level cap ourselves, or a
	// long benchmark would hold gigabytes.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			c.ApplyRetention()
		}
	}
}
