package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// configsOpts are kafka-configs.sh's options for topics and brokers.
type configsOpts struct {
	admin         adminFlags
	entityType    string
	entityName    string
	entityDefault bool
	topic         string
	broker        string
	all           bool
	addConfig     string
	deleteConfig  []string
}

func newConfigsCmd() *cobra.Command {
	var o configsOpts
	cmd := &cobra.Command{
		Use:   "configs --bootstrap-server B --entity-type topics|brokers --entity-name N --describe|--alter",
		Short: "Describe or alter topic and broker configs (like kafka-configs.sh)",
		Long: `kafka-configs.sh for topics and brokers, against any Kafka-protocol cluster.

--describe prints the dynamic configs of the entity (--all: every config) with their
synonyms; without --entity-name, every topic or every broker and the cluster default.
--alter --add-config k1=v1,k2=[v1,v2] --delete-config k1,k2 changes them with
IncrementalAlterConfigs. Exit status 0 on success, 1 on any error.`,
		Example: `  kobs configs --bootstrap-server 127.0.0.1:9092 --entity-type topics --entity-name orders --describe
  kobs configs --bootstrap-server 127.0.0.1:9092 --entity-type topics --entity-name orders --alter --add-config retention.ms=3600000,cleanup.policy=[compact,delete]
  kobs configs --bootstrap-server 127.0.0.1:9092 --entity-type brokers --entity-name 1 --describe --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			etype, names, err := o.check(cmd)
			if err != nil {
				return err
			}
			adm, ctx, done, err := o.admin.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if cmd.Flags().Changed("describe") {
				err = o.describe(ctx, cmd, adm, etype, names)
			} else {
				err = o.alter(ctx, cmd, adm, etype, names[0])
			}
			if err != nil && !errors.Is(err, errReported) {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return reported("%v", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.Bool("describe", false, "List configs for the given entity.")
	f.Bool("alter", false, "Alter the configuration for the entity.")
	o.admin.register(cmd, 60000)
	f.StringVar(&o.entityType, "entity-type", "", "Type of entity (topics/brokers)")
	f.StringVar(&o.entityName, "entity-name", "", "Name of entity (topic name/broker id)")
	f.BoolVar(&o.entityDefault, "entity-default", false, "Default entity name for brokers (the cluster-wide default)")
	f.StringVar(&o.topic, "topic", "", "The topic's name (same as --entity-type topics --entity-name T).")
	f.StringVar(&o.broker, "broker", "", "The broker's ID (same as --entity-type brokers --entity-name ID).")
	f.BoolVar(&o.all, "all", false, "List all configs for the given entity, including static configs if available.")
	f.StringVar(&o.addConfig, "add-config", "", "Key Value pairs of configs to add. Square brackets can be used to group values which contain commas: 'k1=v1,k2=[v1,v2,v2],k3=v3'.")
	f.StringSliceVar(&o.deleteConfig, "delete-config", nil, "config keys to remove 'k1,k2'")
	return cmd
}

// check mirrors ConfigCommandOptions.checkArgs for topics and brokers; it
// returns the entity type and the names ("" is the broker default).
func (o *configsOpts) check(cmd *cobra.Command) (string, []string, error) {
	f := cmd.Flags()
	if n, _ := countTrue(cmd, "describe", "alter"); n != 1 {
		return "", nil, usageError(cmd, "Command must include exactly one action: --describe, --alter")
	}
	for _, c := range [][]string{{"alter", "describe"}, {"describe", "alter", "add-config", "delete-config"}} {
		if err := checkInvalid(cmd, c[0], c[1:]...); err != nil {
			return "", nil, err
		}
	}
	fail := func(format string, args ...any) (string, []string, error) {
		msg := fmt.Sprintf(format, args...)
		fmt.Fprintln(cmd.ErrOrStderr(), msg)
		return "", nil, reported("%s", msg)
	}
	etype, name, named := o.entityType, o.entityName, f.Changed("entity-name")
	if f.Changed("topic") || f.Changed("broker") {
		if f.Changed("entity-type") || named || o.entityDefault {
			return fail("--entity-{type,name,default} should not be used in conjunction with specific entity flags")
		}
		if f.Changed("topic") && f.Changed("broker") {
			return fail("Only '%s' and '%s' entity types may be specified together", "users", "clients")
		}
		etype, name, named = "topics", o.topic, true
		if f.Changed("broker") {
			etype, name = "brokers", o.broker
		}
	}
	switch etype {
	case "":
		return fail("At least one entity type must be specified")
	case "topics", "brokers":
	default:
		return fail("Invalid entity type %s, the entity type must be one of topics, brokers with a --bootstrap-server argument (kobs configs does not handle clients, users, ips, broker-loggers, client-metrics or groups)", etype)
	}
	if etype == "brokers" && named {
		if _, err := strconv.ParseInt(name, 10, 32); err != nil {
			return fail("The entity name for brokers must be a valid integer broker id, but it is: %s", name)
		}
	}
	if o.entityDefault && etype != "brokers" {
		return fail("--entity-default must not be specified with --describe of %s", etype)
	}
	if o.entityDefault && named {
		return fail("--entity-name and --entity-default cannot both be given")
	}
	if f.Changed("alter") {
		if !named && !o.entityDefault {
			if etype == "brokers" {
				return fail("An entity-name or default entity must be specified with --alter of users, clients, brokers or ips")
			}
			return fail("An entity name must be specified with --alter of %s", etype)
		}
		if !f.Changed("add-config") && !f.Changed("delete-config") {
			return fail("At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter")
		}
	}
	switch {
	case named:
		return etype, []string{name}, nil
	case o.entityDefault:
		return etype, []string{""}, nil
	}
	return etype, nil, nil
}

// kafkaConfigSource names a config source as Kafka's ConfigEntry.ConfigSource.
func kafkaConfigSource(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceClientMetricsConfig:
		return "DYNAMIC_CLIENT_METRICS_CONFIG"
	case kmsg.ConfigSourceGroupConfig:
		return "DYNAMIC_GROUP_CONFIG"
	}
	return s.String()
}

// dynamicSource is the source --describe shows without --all.
func dynamicSource(etype, name string) kmsg.ConfigSource {
	switch {
	case etype == "topics":
		return kmsg.ConfigSourceDynamicTopicConfig
	case name == "":
		return kmsg.ConfigSourceDynamicDefaultBrokerConfig
	}
	return kmsg.ConfigSourceDynamicBrokerConfig
}

func describeEntity(ctx context.Context, adm *kadm.Client, etype, name string) ([]kadm.Config, error) {
	var rcs kadm.ResourceConfigs
	var err error
	if etype == "topics" {
		rcs, err = adm.DescribeTopicConfigs(ctx, name)
	} else if name == "" {
		rcs, err = adm.DescribeBrokerConfigs(ctx)
	} else {
		id, _ := strconv.ParseInt(name, 10, 32)
		rcs, err = adm.DescribeBrokerConfigs(ctx, int32(id))
	}
	if err != nil {
		return nil, err
	}
	if len(rcs) != 1 {
		return nil, fmt.Errorf("describe configs of %s %s: %d answers, want 1", strings.TrimSuffix(etype, "s"), name, len(rcs))
	}
	if rcs[0].Err != nil {
		return nil, errors.New(errText(rcs[0].Err, rcs[0].ErrMessage))
	}
	cs := slices.Clone(rcs[0].Configs)
	slices.SortFunc(cs, func(a, b kadm.Config) int { return cmp.Compare(a.Key, b.Key) })
	return cs, nil
}

func (o *configsOpts) describe(ctx context.Context, cmd *cobra.Command, adm *kadm.Client, etype string, names []string) error {
	if names == nil {
		if etype == "topics" {
			tds, err := adm.ListTopicsWithInternal(ctx)
			if err != nil {
				return err
			}
			names = tds.Names()
			slices.Sort(names)
		} else {
			bds, err := adm.ListBrokers(ctx)
			if err != nil {
				return err
			}
			for _, b := range bds {
				names = append(names, itoa32(b.NodeID))
			}
			names = append(names, "")
		}
	}
	out := cmd.OutOrStdout()
	for _, name := range names {
		cs, err := describeEntity(ctx, adm, etype, name)
		if err != nil {
			return err
		}
		switch {
		case name == "":
			fmt.Fprintf(out, "Default configs for %s in the cluster are:\n", etype)
		case o.all:
			fmt.Fprintf(out, "All configs for %s %s are:\n", strings.TrimSuffix(etype, "s"), name)
		default:
			fmt.Fprintf(out, "Dynamic configs for %s %s are:\n", strings.TrimSuffix(etype, "s"), name)
		}
		want := dynamicSource(etype, name)
		for _, c := range cs {
			if !o.all && c.Source != want {
				continue
			}
			syn := make([]string, len(c.Synonyms))
			for i, s := range c.Synonyms {
				syn[i] = kafkaConfigSource(s.Source) + ":" + s.Key + "=" + derefNull(s.Value)
			}
			fmt.Fprintf(out, "  %s=%s sensitive=%t synonyms={%s}\n", c.Key, derefNull(c.Value), c.Sensitive, strings.Join(syn, ", "))
		}
	}
	return nil
}

var configKey = regexp.MustCompile(`^[a-zA-Z0-9._-]*$`)

// parseAddConfig parses --add-config as Kafka does: k=v pairs separated by
// commas, square brackets grouping a value that contains commas (the
// brackets are dropped).
func parseAddConfig(s string) ([][2]string, error) {
	var (
		out   [][2]string
		cur   strings.Builder
		depth int
		parts []string
	)
	for _, r := range s {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth = max(depth-1, 0)
		case r == ',' && depth == 0:
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, errors.New(`requirement failed: Invalid entity config: all configs to be added must be in the format "key=val".`)
		}
		k = strings.TrimSpace(k)
		if !configKey.MatchString(k) {
			return nil, kafkaError("Invalid character found for config key: %s", k)
		}
		v = strings.TrimSpace(strings.NewReplacer("[", "", "]", "").Replace(v))
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func (o *configsOpts) alter(ctx context.Context, cmd *cobra.Command, adm *kadm.Client, etype, name string) error {
	var adds [][2]string
	if cmd.Flags().Changed("add-config") {
		var err error
		if adds, err = parseAddConfig(o.addConfig); err != nil {
			return err
		}
	}
	// Kafka fails the command if a config to delete is not set dynamically.
	if len(o.deleteConfig) > 0 {
		cs, err := describeEntity(ctx, adm, etype, name)
		if err != nil {
			return err
		}
		want := dynamicSource(etype, name)
		var bad []string
		for _, k := range o.deleteConfig {
			k = strings.TrimSpace(k)
			if !slices.ContainsFunc(cs, func(c kadm.Config) bool { return c.Key == k && c.Source == want }) {
				bad = append(bad, k)
			}
		}
		if len(bad) > 0 {
			return kafkaError("Invalid config(s): %s", strings.Join(bad, ","))
		}
	}
	var ops []kadm.AlterConfig
	for _, kv := range adds {
		v := kv[1]
		ops = append(ops, kadm.AlterConfig{Op: kadm.SetConfig, Name: kv[0], Value: &v})
	}
	for _, k := range o.deleteConfig {
		ops = append(ops, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: strings.TrimSpace(k)})
	}
	var resps kadm.AlterConfigsResponses
	var err error
	switch {
	case etype == "topics":
		resps, err = adm.AlterTopicConfigs(ctx, ops, name)
	case name == "":
		resps, err = adm.AlterBrokerConfigs(ctx, ops)
	default:
		id, _ := strconv.ParseInt(name, 10, 32)
		resps, err = adm.AlterBrokerConfigs(ctx, ops, int32(id))
	}
	if err != nil {
		return err
	}
	for _, r := range resps {
		if r.Err != nil {
			return errors.New(errText(r.Err, r.ErrMessage))
		}
	}
	if name == "" {
		fmt.Fprintf(cmd.OutOrStdout(), "Completed updating default config for %s in the cluster.\n", etype)
	} else {
		fmt.Fprintf(cmd.OutOrStdout(), "Completed updating config for %s %s.\n", strings.TrimSuffix(etype, "s"), name)
	}
	return nil
}
