package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// topicsOpts are kafka-topics.sh's options.
type topicsOpts struct {
	admin                            adminFlags
	topic                            string
	partitions                       int32
	replicationFactor                int32
	configs                          []string
	ifExists, ifNotExists            bool
	underReplicated, underMinIsr     bool
	atMinIsr, unavailable, overrides bool
	excludeInternal                  bool
}

func newTopicsCmd() *cobra.Command {
	var o topicsOpts
	actions := []string{"create", "list", "describe", "alter", "delete"}
	cmd := &cobra.Command{
		Use:   "topics --bootstrap-server B --create|--list|--describe|--alter|--delete [--topic T ...]",
		Short: "Create, delete, describe, or change a topic (like kafka-topics.sh)",
		Long: `Create, delete, describe, or change a topic, with kafka-topics.sh's flags and output,
against any Kafka-protocol cluster. --topic takes a regular expression except with --create.
The describe filters (--under-replicated-partitions, --under-min-isr-partitions,
--at-min-isr-partitions, --unavailable-partitions) print only the matching partitions, computed
from metadata and each topic's min.insync.replicas. Exit status 0 on success, 1 on any error.`,
		Example: `  kobs topics --bootstrap-server 127.0.0.1:9092 --create --topic orders --partitions 3 --config retention.ms=86400000
  kobs topics --bootstrap-server 127.0.0.1:9092 --describe --topic orders
  kobs topics --bootstrap-server 127.0.0.1:9092 --describe --under-replicated-partitions
  kobs topics --bootstrap-server 127.0.0.1:9092 --alter --topic orders --partitions 6
  kobs topics --bootstrap-server 127.0.0.1:9092 --delete --topic orders`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, _ := countTrue(cmd, actions...)
			if n != 1 {
				return usageError(cmd, "Command must include exactly one action: --list, --describe, --create, --alter or --delete")
			}
			if err := o.check(cmd); err != nil {
				return err
			}
			adm, ctx, done, err := o.admin.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			f := cmd.Flags()
			switch {
			case f.Changed("create"):
				err = o.create(ctx, cmd, adm)
			case f.Changed("list"):
				err = o.list(ctx, cmd, adm)
			case f.Changed("describe"):
				err = o.describe(ctx, cmd, adm)
			case f.Changed("alter"):
				err = o.alter(ctx, cmd, adm)
			case f.Changed("delete"):
				err = o.delete(ctx, cmd, adm)
			}
			if err != nil && !errors.Is(err, errReported) {
				fmt.Fprintf(cmd.ErrOrStderr(), "Error while executing topic command : %s\n", err)
				return reported("%v", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	for _, a := range actions {
		f.Bool(a, false, map[string]string{
			"create":   "Create a new topic.",
			"list":     "List all available topics.",
			"describe": "List details for the given topics.",
			"alter":    "Alter the number of partitions (and, as kafka-topics.sh before 4.0, topic configs with --config).",
			"delete":   "Delete a topic.",
		}[a])
	}
	o.admin.register(cmd, 60000)
	f.StringVar(&o.topic, "topic", "", "The topic to create, alter, describe or delete. A regular expression except with --create.")
	f.Int32Var(&o.partitions, "partitions", 0, "The number of partitions for the topic being created or altered; the cluster default if not given with --create.")
	f.Int32Var(&o.replicationFactor, "replication-factor", 0, "The replication factor for each partition of the topic being created; the cluster default if not given.")
	f.StringArrayVar(&o.configs, "config", nil, "A topic configuration override name=value (repeatable): with --create, and with --alter as kafka-topics.sh before 4.0.")
	f.BoolVar(&o.ifExists, "if-exists", false, "With --alter, --delete or --describe: act only if the topic exists.")
	f.BoolVar(&o.ifNotExists, "if-not-exists", false, "With --create: act only if the topic does not already exist.")
	f.BoolVar(&o.underReplicated, "under-replicated-partitions", false, "With --describe: only show partitions whose ISR is smaller than their replica set.")
	f.BoolVar(&o.underMinIsr, "under-min-isr-partitions", false, "With --describe: only show partitions whose ISR count is less than min.insync.replicas (or that have no leader).")
	f.BoolVar(&o.atMinIsr, "at-min-isr-partitions", false, "With --describe: only show partitions whose ISR count equals min.insync.replicas.")
	f.BoolVar(&o.unavailable, "unavailable-partitions", false, "With --describe: only show partitions whose leader is not available.")
	f.BoolVar(&o.overrides, "topics-with-overrides", false, "With --describe: only show topics that have overridden configs.")
	f.BoolVar(&o.excludeInternal, "exclude-internal", false, "With --list or --describe: exclude internal topics.")
	return cmd
}

var topicsReportFlags = []string{"under-replicated-partitions", "under-min-isr-partitions", "at-min-isr-partitions", "unavailable-partitions"}

// check mirrors TopicCommandOptions.checkArgs.
func (o *topicsOpts) check(cmd *cobra.Command) error {
	f := cmd.Flags()
	if !f.Changed("list") && !f.Changed("describe") && o.topic == "" {
		return usageError(cmd, `Missing required argument "[topic]"`)
	}
	if f.Changed("alter") && !f.Changed("partitions") && !f.Changed("config") {
		return usageError(cmd, `Missing required argument "[partitions]"`)
	}
	others := func(keep ...string) []string {
		var out []string
		for _, a := range []string{"alter", "create", "describe", "list", "delete"} {
			if !slices.Contains(keep, a) {
				out = append(out, a)
			}
		}
		return out
	}
	checks := [][]string{
		append([]string{"config"}, others("alter", "create")...),
		append([]string{"partitions"}, others("alter", "create")...),
		append([]string{"replication-factor"}, others("create")...),
		append([]string{"if-exists"}, others("alter", "delete", "describe")...),
		append([]string{"if-not-exists"}, others("create")...),
		append([]string{"exclude-internal"}, others("list", "describe")...),
		append([]string{"topics-with-overrides"}, append(others("describe"), topicsReportFlags...)...),
	}
	for _, r := range topicsReportFlags {
		checks = append(checks, append([]string{r, "topics-with-overrides"}, others("describe")...))
	}
	for _, c := range checks {
		if err := checkInvalid(cmd, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// matchTopics is kafka-topics.sh's topic selection: all topics sorted, the
// internal ones unless excluded, filtered by --topic as a whole-name regular
// expression (commas read as '|', surrounding quotes dropped, as Kafka's
// IncludeList does).
func (o *topicsOpts) matchTopics(ctx context.Context, adm *kadm.Client) ([]string, error) {
	tds, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return nil, err
	}
	var re *regexp.Regexp
	if o.topic != "" {
		expr := strings.Trim(strings.ReplaceAll(strings.TrimSpace(o.topic), ",", "|"), `"'`)
		if re, err = regexp.Compile("^(?:" + expr + ")$"); err != nil {
			return nil, fmt.Errorf("--topic %q is not a valid regular expression: %w", o.topic, err)
		}
	}
	var out []string
	for _, td := range tds.Sorted() {
		if td.Err != nil {
			continue
		}
		if (o.excludeInternal && td.IsInternal) || (re != nil && !re.MatchString(td.Topic)) {
			continue
		}
		out = append(out, td.Topic)
	}
	return out, nil
}

// ensureExists is TopicCommand.ensureTopicExists.
func (o *topicsOpts) ensureExists(found []string) error {
	if o.topic != "" && !o.ifExists && len(found) == 0 {
		return kafkaError("Topic '%s' does not exist as expected", o.topic)
	}
	return nil
}

// parseTopicConfigs parses --config name=value pairs.
func parseTopicConfigs(kvs []string) (map[string]*string, error) {
	out := map[string]*string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.Contains(v, "=") {
			return nil, errors.New(`requirement failed: Invalid topic config: all configs to be added must be in the format "key=val".`)
		}
		out[k] = &v
	}
	return out, nil
}

func (o *topicsOpts) create(ctx context.Context, cmd *cobra.Command, adm *kadm.Client) error {
	f := cmd.Flags()
	rf, parts := int32(-1), int32(-1)
	if f.Changed("replication-factor") {
		if o.replicationFactor < 1 || o.replicationFactor > 32767 {
			return kafkaError("The replication factor must be between 1 and 32767 inclusive")
		}
		rf = o.replicationFactor
	}
	if f.Changed("partitions") {
		if o.partitions < 1 {
			return kafkaError("The partitions must be greater than 0")
		}
		parts = o.partitions
	}
	configs, err := parseTopicConfigs(o.configs)
	if err != nil {
		return err
	}
	if strings.ContainsAny(o.topic, "._") {
		fmt.Fprintln(cmd.OutOrStdout(), "WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could "+
			"collide. To avoid issues it is best to use either, but not both.")
	}
	resp, err := adm.CreateTopic(ctx, parts, int16(rf), configs, o.topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists) && o.ifNotExists:
		return nil
	case resp.Err != nil:
		return errors.New(errText(resp.Err, resp.ErrMessage))
	case err != nil:
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Created topic %s.\n", o.topic)
	return nil
}

func (o *topicsOpts) list(ctx context.Context, cmd *cobra.Command, adm *kadm.Client) error {
	topics, err := o.matchTopics(ctx, adm)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), strings.Join(topics, "\n"))
	return nil
}

func (o *topicsOpts) alter(ctx context.Context, cmd *cobra.Command, adm *kadm.Client) error {
	topics, err := o.matchTopics(ctx, adm)
	if err != nil {
		return err
	}
	if err := o.ensureExists(topics); err != nil || len(topics) == 0 {
		return err
	}
	if cmd.Flags().Changed("partitions") {
		resps, err := adm.UpdatePartitions(ctx, int(o.partitions), topics...)
		if err != nil {
			return err
		}
		for _, t := range topics {
			if r, ok := resps[t]; ok && r.Err != nil {
				return errors.New(errText(r.Err, r.ErrMessage))
			}
		}
	}
	if len(o.configs) > 0 {
		configs, err := parseTopicConfigs(o.configs)
		if err != nil {
			return err
		}
		var alter []kadm.AlterConfig
		for _, k := range slices.Sorted(maps.Keys(configs)) {
			alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: configs[k]})
		}
		resps, err := adm.AlterTopicConfigs(ctx, alter, topics...)
		if err != nil {
			return err
		}
		for _, r := range resps {
			if r.Err != nil {
				return errors.New(errText(r.Err, r.ErrMessage))
			}
		}
	}
	return nil
}

func (o *topicsOpts) delete(ctx context.Context, _ *cobra.Command, adm *kadm.Client) error {
	topics, err := o.matchTopics(ctx, adm)
	if err != nil {
		return err
	}
	if err := o.ensureExists(topics); err != nil || len(topics) == 0 {
		return err
	}
	resps, err := adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return err
	}
	for _, t := range topics {
		if r, ok := resps[t]; ok && r.Err != nil {
			return errors.New(errText(r.Err, r.ErrMessage))
		}
	}
	return nil
}

// partitionHealth answers the describe filters for one partition, as
// TopicCommand.PartitionDescription does (no reassignment in flight: kobs
// has none, and the replication factor is the replica count).
type partitionHealth struct {
	p      kadm.PartitionDetail
	minIsr int
	live   map[int32]bool
}

func (h partitionHealth) hasLeader() bool       { return h.p.Leader >= 0 }
func (h partitionHealth) underReplicated() bool { return len(h.p.Replicas)-len(h.p.ISR) > 0 }
func (h partitionHealth) underMinIsr() bool     { return !h.hasLeader() || len(h.p.ISR) < h.minIsr }
func (h partitionHealth) atMinIsr() bool        { return len(h.p.ISR) == h.minIsr }
func (h partitionHealth) unavailable() bool     { return !h.hasLeader() || !h.live[h.p.Leader] }
func joinIDs(ids []int32) string                { return strings.Join(mapSlice(ids, itoa32), ",") }
func itoa32(v int32) string                     { return strconv.FormatInt(int64(v), 10) }

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// kafkaUUID prints a topic id as Kafka's Uuid.toString does: URL-safe
// base64 without padding.
func kafkaUUID(id kadm.TopicID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

func (o *topicsOpts) describe(ctx context.Context, cmd *cobra.Command, adm *kadm.Client) error {
	topics, err := o.matchTopics(ctx, adm)
	if err != nil {
		return err
	}
	if err := o.ensureExists(topics); err != nil || len(topics) == 0 {
		return err
	}
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return err
	}
	live := map[int32]bool{}
	for _, b := range md.Brokers {
		live[b.NodeID] = true
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return err
	}
	configs := map[string][]kadm.Config{}
	for _, rc := range rcs {
		if rc.Err != nil {
			return fmt.Errorf("describe configs of %s: %s", rc.Name, errText(rc.Err, rc.ErrMessage))
		}
		configs[rc.Name] = rc.Configs
	}
	report := slices.ContainsFunc(topicsReportFlags, cmd.Flags().Changed)
	out := cmd.OutOrStdout()
	for _, name := range topics {
		td, ok := md.Topics[name]
		if !ok || td.Err != nil {
			if ok && errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
				continue // deleted since we listed it
			}
			return fmt.Errorf("describe %s: %v", name, td.Err)
		}
		parts := td.Partitions.Sorted()
		minIsr := 1
		var overridden []string
		for _, c := range configs[name] {
			if c.Key == "min.insync.replicas" && c.Value != nil {
				if v, err := strconv.Atoi(*c.Value); err == nil {
					minIsr = v
				}
			}
			if c.Source != kmsg.ConfigSourceDefaultConfig {
				overridden = append(overridden, c.Key+"="+derefNull(c.Value))
			}
		}
		if !report && (!o.overrides || len(overridden) > 0) && len(parts) > 0 {
			fmt.Fprintf(out, "Topic: %s", name)
			if td.ID != (kadm.TopicID{}) {
				fmt.Fprintf(out, "\tTopicId: %s", kafkaUUID(td.ID))
			}
			fmt.Fprintf(out, "\tPartitionCount: %d\tReplicationFactor: %d\tConfigs: %s\n",
				len(parts), len(parts[0].Replicas), strings.Join(overridden, ","))
		}
		if o.overrides {
			continue
		}
		for _, p := range parts {
			h := partitionHealth{p: p, minIsr: minIsr, live: live}
			if report && !(o.underReplicated && h.underReplicated() ||
				o.unavailable && h.unavailable() ||
				o.underMinIsr && h.underMinIsr() ||
				o.atMinIsr && h.atMinIsr()) {
				continue
			}
			leader := "none"
			if h.hasLeader() {
				leader = itoa32(p.Leader)
			}
			// Elr and LastKnownElr come from DescribeTopicPartitions (KIP-966);
			// over Metadata they are unknown, printed as Kafka prints a
			// broker that does not report them.
			fmt.Fprintf(out, "\tTopic: %s\tPartition: %d\tLeader: %s\tReplicas: %s\tIsr: %s\tElr: N/A\tLastKnownElr: N/A",
				name, p.Partition, leader, joinIDs(p.Replicas), joinIDs(p.ISR))
			if len(p.OfflineReplicas) > 0 {
				// Not in kafka-topics.sh; the operator wants it at 3 a.m.
				fmt.Fprintf(out, "\tOffline: %s", joinIDs(p.OfflineReplicas))
			}
			fmt.Fprintln(out)
		}
	}
	return nil
}

// derefNull prints a config value as Java prints a null String.
func derefNull(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}
