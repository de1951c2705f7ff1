package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupsOpts are kafka-consumer-groups.sh's options.
type groupsOpts struct {
	admin adminFlags
	// statusWindow spans the samples of the agent's STATUS column.
	statusWindow time.Duration
	groups       []string
	allGroups    bool
	topics       []string
	allTopics    bool
	members      bool
	verbose      bool
	offsets      bool
	state        string
	toEarliest   bool
	toLatest     bool
	toCurrent    bool
	toOffset     int64
	shiftBy      int64
	toDatetime   string
	byDuration   string
	fromFile     string
	dryRun       bool
	execute      bool
	export       bool

	filePlan map[string]map[topicPartition]int64 // --from-file, by group
}

// stateAll is --state given without a value: show every state.
const stateAll = "*"

var (
	groupsActions        = []string{"list", "describe", "delete", "reset-offsets", "delete-offsets"}
	groupsResetScenarios = []string{"to-offset", "shift-by", "to-datetime", "by-duration", "to-earliest", "to-latest", "to-current", "from-file"}
)

func newGroupsCmd() *cobra.Command {
	var o groupsOpts
	cmd := &cobra.Command{
		Use:   "groups --bootstrap-server B --list|--describe|--delete|--delete-offsets|--reset-offsets [--group G ...|--all-groups]",
		Short: "List, describe, delete consumer groups, reset or delete their offsets (like kafka-consumer-groups.sh)",
		Long: `kafka-consumer-groups.sh's flags and output, against any Kafka-protocol cluster.

--describe prints GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST
CLIENT-ID per partition (lag = log end offset - committed offset), then the agent's
LAG-SECONDS (age of the oldest unconsumed record) and STATUS (OK, WARN, STALL, STOP, REWIND,
ERR; agent/README.md) sampled over --status-window; --members, --state and
--verbose as Kafka. --reset-offsets plans by default (--dry-run) and changes offsets only with
--execute; the group must have no active members. Scenarios: --to-earliest, --to-latest,
--to-current, --to-offset N, --shift-by N, --to-datetime YYYY-MM-DDTHH:mm:SS.sss[zone]
(UTC when no zone), --by-duration PnDTnHnMnS; scope: --topic t[:p,p...] (repeatable) or
--all-topics. Exit status 0 on success, 1 when anything failed (Kafka's tool exits 0 after
some of its "Error:" lines; kobs does not).`,
		Example: `  kobs groups --bootstrap-server 127.0.0.1:9092 --list
  kobs groups --bootstrap-server 127.0.0.1:9092 --describe --group billing
  kobs groups --bootstrap-server 127.0.0.1:9092 --reset-offsets --group billing --topic orders --to-datetime 2026-11-29T20:00:00.000 --execute
  kobs groups --bootstrap-server 127.0.0.1:9092 --delete-offsets --group billing --topic old-orders`,
		Args: func(cmd *cobra.Command, args []string) error {
			// --state takes an optional value; "--state stable,empty" (with a
			// space, as Kafka's parser allows) reaches us as an argument.
			if len(args) == 1 && cmd.Flags().Changed("state") && o.state == stateAll && cmd.Flags().Changed("list") {
				o.state = args[0]
				return nil
			}
			return cobra.NoArgs(cmd, args)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n, _ := countTrue(cmd, groupsActions...); n != 1 {
				return usageError(cmd, "Command must include exactly one action: --list, --describe, --delete, --reset-offsets, --delete-offsets")
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
			case f.Changed("list"):
				err = o.list(ctx, cmd, adm)
			case f.Changed("describe"):
				err = o.describe(ctx, cmd, adm)
			case f.Changed("delete"):
				err = o.deleteGroups(ctx, cmd, adm)
			case f.Changed("reset-offsets"):
				err = o.resetOffsets(ctx, cmd, adm)
			case f.Changed("delete-offsets"):
				err = o.deleteOffsets(ctx, cmd, adm)
			}
			if err != nil && !errors.Is(err, errReported) {
				printGroupError(cmd.OutOrStdout(), "Executing consumer group command failed due to "+err.Error())
				return reported("%v", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.Bool("list", false, "List all consumer groups.")
	f.Bool("describe", false, "Describe consumer group and list offset lag (number of messages not yet processed) related to given group.")
	f.Bool("delete", false, "Pass in groups to delete topic partition offsets and ownership information over the entire consumer group.")
	f.Bool("reset-offsets", false, "Reset offsets of consumer group. The group must be inactive. --dry-run (the default) plans, --execute updates.")
	f.Bool("delete-offsets", false, "Delete offsets of consumer group. Supports one consumer group at the time, and multiple topics.")
	o.admin.register(cmd, 5000)
	f.StringArrayVar(&o.groups, "group", nil, "The consumer group we wish to act on (repeatable).")
	f.BoolVar(&o.allGroups, "all-groups", false, "Apply to all consumer groups.")
	f.StringArrayVar(&o.topics, "topic", nil, "The topic whose offsets to delete or reset; with --reset-offsets, topic:0,1,2 selects partitions (repeatable).")
	f.BoolVar(&o.allTopics, "all-topics", false, "Consider all topics assigned to a group in the --reset-offsets process.")
	f.BoolVar(&o.members, "members", false, "With --describe: describe the members of the group.")
	f.BoolVar(&o.verbose, "verbose", false, "With --describe --members: also print each member's assignment.")
	f.DurationVar(&o.statusWindow, "status-window", 5*time.Second, "With --describe: the span over which LAG-SECONDS and STATUS are sampled (agent rules; 0 skips both). Consumers commit every 5s by default: a shorter window can call a healthy one STALL.")
	f.BoolVar(&o.offsets, "offsets", false, "With --describe: list the group's partitions with their offset lag (the default).")
	f.StringVar(&o.state, "state", "", "With --describe: the state of the group. With --list: show states, or only groups in these states (e.g. --state=stable,empty).")
	f.Lookup("state").NoOptDefVal = stateAll
	f.BoolVar(&o.toEarliest, "to-earliest", false, "Reset offsets to earliest offset.")
	f.BoolVar(&o.toLatest, "to-latest", false, "Reset offsets to latest offset.")
	f.BoolVar(&o.toCurrent, "to-current", false, "Reset offsets to current offset.")
	f.Int64Var(&o.toOffset, "to-offset", 0, "Reset offsets to a specific offset.")
	f.Int64Var(&o.shiftBy, "shift-by", 0, "Reset offsets shifting current offset by 'n', where 'n' can be positive or negative.")
	f.StringVar(&o.toDatetime, "to-datetime", "", "Reset offsets to offset from datetime. Format: 'YYYY-MM-DDTHH:mm:SS.sss' (UTC unless a zone is given, e.g. +01:00 or Z).")
	f.StringVar(&o.byDuration, "by-duration", "", "Reset offsets to offset by duration from current timestamp. Format: 'PnDTnHnMnS'.")
	f.StringVar(&o.fromFile, "from-file", "", "Reset offsets to values defined in CSV file (topic,partition,offset; group,topic,partition,offset with several groups, as --export writes).")
	f.BoolVar(&o.dryRun, "dry-run", false, "Only show results without executing changes on consumer groups (the default).")
	f.BoolVar(&o.execute, "execute", false, "Execute operation. Supported operations: reset-offsets.")
	f.BoolVar(&o.export, "export", false, "Print the reset plan as CSV (topic,partition,offset; group first with several groups).")
	return cmd
}

// check mirrors ConsumerGroupCommandOptions.checkArgs.
func (o *groupsOpts) check(cmd *cobra.Command) error {
	f := cmd.Flags()
	scope := func(action string) error {
		if len(o.groups) == 0 && !o.allGroups {
			return usageError(cmd, `Option [%s] takes one of these options: [group], [all-groups]`, action)
		}
		return nil
	}
	if err := checkInvalid(cmd, "group", "all-groups"); err != nil {
		return err
	}
	switch {
	case f.Changed("describe"):
		if err := scope("describe"); err != nil {
			return err
		}
		if n, _ := countTrue(cmd, "members", "offsets", "state"); n > 1 {
			return usageError(cmd, "Option [describe] takes at most one of these options: [members], [offsets], [state]")
		}
		if f.Changed("state") && o.state != stateAll {
			return usageError(cmd, "Option [describe] does not take a value for [state]")
		}
	case f.Changed("delete"):
		if err := scope("delete"); err != nil {
			return err
		}
		if f.Changed("topic") {
			return usageError(cmd, "The consumer does not support topic-specific offset deletion from a consumer group.")
		}
	case f.Changed("delete-offsets"):
		if len(o.groups) != 1 || len(o.topics) == 0 {
			return usageError(cmd, "Option [delete-offsets] takes the following options: [group], [topic]")
		}
	case f.Changed("reset-offsets"):
		if o.dryRun && o.execute {
			return usageError(cmd, "Option [reset-offsets] only accepts one of [execute] and [dry-run]")
		}
		if !o.dryRun && !o.execute {
			fmt.Fprintln(cmd.ErrOrStderr(), "WARN: No action will be performed as the --execute option is missing. "+
				"Add --execute to reset the offsets, or --dry-run to say explicitly that this is a plan.")
		}
		if err := scope("reset-offsets"); err != nil {
			return err
		}
		n, set := countTrue(cmd, groupsResetScenarios...)
		if n > 1 {
			return usageError(cmd, `Option "[%s]" can't be used with option "[%s]"`, set[0], set[1])
		}
		if n == 0 {
			return usageError(cmd, "Option '[reset-offsets]' requires one of the following scenarios: [%s]", strings.Join(groupsResetScenarios, "], ["))
		}
		if !o.allTopics && len(o.topics) == 0 && o.fromFile == "" {
			return usageError(cmd, "One of the reset scopes should be defined: --all-topics, --topic.")
		}
		if o.allTopics && len(o.topics) > 0 {
			return usageError(cmd, `Option "[all-topics]" can't be used with option "[topic]"`)
		}
	}
	for _, sub := range []string{"members", "verbose", "offsets"} {
		if err := checkInvalid(cmd, sub, "list", "delete", "reset-offsets", "delete-offsets"); err != nil {
			return err
		}
	}
	if f.Changed("topic") && !f.Changed("delete-offsets") && !f.Changed("reset-offsets") {
		return usageError(cmd, `Option "[topic]" can't be used with option "[%s]"`, firstSet(cmd, groupsActions))
	}
	return nil
}

func firstSet(cmd *cobra.Command, names []string) string {
	_, set := countTrue(cmd, names...)
	if len(set) == 0 {
		return ""
	}
	return set[0]
}

// printGroupError is ConsumerGroupCommand.printError.
func printGroupError(w io.Writer, msg string) { fmt.Fprintf(w, "\nError: %s\n", msg) }

// consumerGroups lists the groups of consumers (protocol type "consumer",
// or empty for groups that only commit offsets), as Kafka's
// listConsumerGroups does.
func consumerGroups(ctx context.Context, adm *kadm.Client) ([]kadm.ListedGroup, error) {
	lgs, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	var out []kadm.ListedGroup
	for _, g := range lgs.Sorted() {
		if g.ProtocolType == "consumer" || g.ProtocolType == "" {
			out = append(out, g)
		}
	}
	return out, nil
}

func (o *groupsOpts) groupIDs(ctx context.Context, adm *kadm.Client) ([]string, error) {
	if !o.allGroups {
		return o.groups, nil
	}
	lgs, err := consumerGroups(ctx, adm)
	if err != nil {
		return nil, err
	}
	return mapSlice(lgs, func(g kadm.ListedGroup) string { return g.Group }), nil
}

func (o *groupsOpts) list(ctx context.Context, cmd *cobra.Command, adm *kadm.Client) error {
	lgs, err := consumerGroups(ctx, adm)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if !cmd.Flags().Changed("state") {
		for _, g := range lgs {
			fmt.Fprintln(out, g.Group)
		}
		return nil
	}
	want := map[string]bool{}
	if o.state != stateAll {
		valid := []string{"PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty", "Assigning", "Reconciling"}
		for s := range strings.SplitSeq(o.state, ",") {
			i := slices.IndexFunc(valid, func(v string) bool { return strings.EqualFold(v, strings.TrimSpace(s)) })
			if i < 0 {
				return usageError(cmd, "Invalid state list '%s'. Valid states are: %s", o.state, strings.Join(valid, ", "))
			}
			want[strings.ToLower(valid[i])] = true
		}
	}
	width := 15
	for _, g := range lgs {
		width = max(width, len(g.Group))
	}
	format := fmt.Sprintf("%%-%ds %%-20s\n", width+10)
	fmt.Fprintf(out, format, "GROUP", "STATE")
	for _, g := range lgs {
		if len(want) == 0 || want[strings.ToLower(g.State)] {
			fmt.Fprintf(out, format, g.Group, g.State)
		}
	}
	return nil
}

// offsetRow is one row of --describe's offsets view. Missing values are -1
// (printed "-"). Extra holds the values of columns that extensions add.
type offsetRow struct {
	Group      string
	Topic      string
	Partition  int32
	Current    int64 // committed offset
	LogEnd     int64 // high watermark
	Lag        int64
	ConsumerID string
	Host       string
	ClientID   string
	Extra      map[string]string
}

// offsetColumns are kafka-consumer-groups.sh's columns, with its widths.
var offsetColumns = []column{
	{"GROUP", 15, true}, {"TOPIC", 15, true}, {"PARTITION", 10, false},
	{"CURRENT-OFFSET", 15, false}, {"LOG-END-OFFSET", 15, false}, {"LAG", 15, false},
	{"CONSUMER-ID", 15, true}, {"HOST", 15, true}, {"CLIENT-ID", 15, true},
}

// offsetExtension adds columns after CLIENT-ID to the offsets view (the
// agent's LAG-SECONDS and STATUS): fill sets each row's Extra[header] for
// its columns; a value it leaves unset prints "-".
type offsetExtension struct {
	Columns []column
	Fill    func(ctx context.Context, adm *kadm.Client, group string, rows []*offsetRow) error
}

// groupOffsetExtensions are applied in order by --describe.
var groupOffsetExtensions []offsetExtension

func dash(v int64) string {
	if v < 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}

// describedGroup is what --describe and --reset-offsets need of one group.
type describedGroup struct {
	kadm.DescribedGroup
	committed map[string]map[int32]int64
}

// describeGroups describes groups and fetches their committed offsets.
func describeGroups(ctx context.Context, adm *kadm.Client, ids []string) ([]describedGroup, error) {
	dgs, err := adm.DescribeGroups(ctx, ids...)
	if err != nil && len(dgs) == 0 {
		return nil, err
	}
	var out []describedGroup
	for _, id := range slices.Sorted(slices.Values(ids)) {
		dg, ok := dgs[id]
		if !ok {
			return nil, fmt.Errorf("group %s: not described: %v", id, err)
		}
		if dg.Err != nil && !errors.Is(dg.Err, kerr.GroupIDNotFound) {
			return nil, fmt.Errorf("describe group %s: %s", id, errText(dg.Err, dg.ErrMessage))
		}
		if errors.Is(dg.Err, kerr.GroupIDNotFound) {
			dg.State = "Dead"
		}
		g := describedGroup{DescribedGroup: dg, committed: map[string]map[int32]int64{}}
		if dg.State != "Dead" {
			ors, err := adm.FetchOffsets(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("fetch committed offsets of group %s: %w", id, err)
			}
			for t, ps := range ors {
				for p, or := range ps {
					if or.Err != nil {
						return nil, fmt.Errorf("committed offset of group %s on %s-%d: %w", id, t, p, or.Err)
					}
					if or.At >= 0 {
						if g.committed[t] == nil {
							g.committed[t] = map[int32]int64{}
						}
						g.committed[t][p] = or.At
					}
				}
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// listOffsets calls one of kadm's List*Offsets for topics; kadm reads no
// topics as "all topics", which is never what we mean.
func listOffsets(ctx context.Context, topics []string, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (kadm.ListedOffsets, error) {
	if len(topics) == 0 {
		return kadm.ListedOffsets{}, nil
	}
	return list(ctx, topics...)
}

// offsetAt is the listed offset of t-p, or why there is none.
func offsetAt(lo kadm.ListedOffsets, t string, p int32) (int64, error) {
	o, ok := lo.Lookup(t, p)
	switch {
	case !ok:
		if bad, ok := lo.Lookup(t, -1); ok && bad.Err != nil {
			return -1, fmt.Errorf("%s: %w", t, bad.Err)
		}
		return -1, fmt.Errorf("no offset listed for %s-%d", t, p)
	case o.Err != nil:
		return -1, fmt.Errorf("%s-%d: %w", t, p, o.Err)
	}
	return o.Offset, nil
}

// groupStateNote prints Kafka's note on the group's state (shouldPrintMemberState)
// and says whether the group's rows should be printed; dead reports a group
// that does not exist.
func groupStateNote(cmd *cobra.Command, g string, state string, rows int) (show, dead bool) {
	switch state {
	case "Dead":
		printGroupError(cmd.OutOrStdout(), fmt.Sprintf("Consumer group '%s' does not exist.", g))
		return false, true
	case "Empty":
		fmt.Fprintf(cmd.ErrOrStderr(), "\nConsumer group '%s' has no active members.\n", g)
	case "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling":
		fmt.Fprintf(cmd.ErrOrStderr(), "\nWarning: Consumer group '%s' is rebalancing.\n", g)
	}
	return rows > 0, false
}

func (o *groupsOpts) describe(ctx context.Context, cmd *cobra.Command, adm *kadm.Client) error {
	ids, err := o.groupIDs(ctx, adm)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	groups, err := describeGroups(ctx, adm, ids)
	if err != nil {
		return err
	}
	var views []*offsetsView
	if !o.members && !cmd.Flags().Changed("state") {
		if views, err = o.offsetsViews(ctx, adm, groups); err != nil {
			return err
		}
	}
	var missing []string
	for i, g := range groups {
		var dead bool
		switch {
		case o.members:
			dead = o.printMembers(cmd, g)
		case cmd.Flags().Changed("state"):
			dead = printGroupState(cmd, g)
		default:
			dead = printOffsets(cmd, g, views[i])
		}
		if dead {
			missing = append(missing, g.Group)
		}
	}
	if len(missing) > 0 {
		return reported("groups do not exist: %s", strings.Join(missing, ", "))
	}
	return nil
}

// offsetRows builds the offsets view of one group as Kafka's
// collectGroupsOffsets does: members with assignments first (most partitions
// first), then committed partitions no member owns, with "-" for the member.
func offsetRows(ctx context.Context, adm *kadm.Client, g describedGroup) ([]*offsetRow, error) {
	type tp struct {
		t string
		p int32
	}
	var rows []*offsetRow
	assigned := map[tp]bool{}
	members := slices.Clone(g.Members)
	npart := func(m kadm.DescribedGroupMember) int {
		n := 0
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range c.Topics {
				n += len(t.Partitions)
			}
		}
		return n
	}
	slices.SortStableFunc(members, func(a, b kadm.DescribedGroupMember) int { return cmp.Compare(npart(b), npart(a)) })
	for _, m := range members {
		c, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		var mine []*offsetRow
		for _, t := range c.Topics {
			for _, p := range t.Partitions {
				assigned[tp{t.Topic, p}] = true
				mine = append(mine, &offsetRow{Group: g.Group, Topic: t.Topic, Partition: p, ConsumerID: m.MemberID, Host: m.ClientHost, ClientID: m.ClientID})
			}
		}
		slices.SortFunc(mine, func(a, b *offsetRow) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
		rows = append(rows, mine...)
	}
	var rest []*offsetRow
	for t, ps := range g.committed {
		for p := range ps {
			if !assigned[tp{t, p}] {
				rest = append(rest, &offsetRow{Group: g.Group, Topic: t, Partition: p, ConsumerID: "-", Host: "-", ClientID: "-"})
			}
		}
	}
	slices.SortFunc(rest, func(a, b *offsetRow) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	rows = append(rows, rest...)

	topics := map[string]bool{}
	for _, r := range rows {
		topics[r.Topic] = true
	}
	ends, err := listOffsets(ctx, slices.Sorted(maps.Keys(topics)), adm.ListEndOffsets)
	if err != nil {
		return nil, fmt.Errorf("log end offsets: %w", err)
	}
	for _, r := range rows {
		r.Current, r.LogEnd, r.Lag = -1, -1, -1
		if c, ok := g.committed[r.Topic][r.Partition]; ok {
			r.Current = c
		}
		if o, ok := ends.Lookup(r.Topic, r.Partition); ok && o.Err == nil {
			r.LogEnd = o.Offset
		}
		if r.Current >= 0 && r.LogEnd >= 0 {
			r.Lag = r.LogEnd - r.Current
		}
	}
	return rows, nil
}

// offsetsView is one group's offsets table, before printing.
type offsetsView struct {
	rows []*offsetRow
	cols []column
}

// maxFillConcurrency bounds how many groups' extension columns are filled
// at once: the agent's columns sample each group over --status-window, so
// --all-groups would otherwise take that window once per group.
const maxFillConcurrency = 8

// offsetsViews builds the offsets view of every group: the rows one group
// after the other, then the extension columns of all groups concurrently.
func (o *groupsOpts) offsetsViews(ctx context.Context, adm *kadm.Client, groups []describedGroup) ([]*offsetsView, error) {
	exts := append(slices.Clone(groupOffsetExtensions), o.agentOffsetColumns())
	views := make([]*offsetsView, len(groups))
	for i, g := range groups {
		v := &offsetsView{cols: slices.Clone(offsetColumns)}
		for _, ext := range exts {
			v.cols = append(v.cols, ext.Columns...)
		}
		if g.State != "Dead" {
			rows, err := offsetRows(ctx, adm, g)
			if err != nil {
				return nil, err
			}
			v.rows = rows
		}
		views[i] = v
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, maxFillConcurrency)
	)
	for i, g := range groups {
		if len(views[i].rows) == 0 {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, ext := range exts {
				if err := ext.Fill(ctx, adm, g.Group, views[i].rows); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("group %s: %w", g.Group, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return views, errors.Join(errs...)
}

// printOffsets prints Kafka's note on the group's state and its offsets
// table; dead reports a group that does not exist.
func printOffsets(cmd *cobra.Command, g describedGroup, v *offsetsView) (dead bool) {
	show, dead := groupStateNote(cmd, g.Group, g.State, len(v.rows))
	if !show {
		return dead
	}
	t := table{cols: v.cols}
	for _, r := range v.rows {
		vals := []string{r.Group, r.Topic, strconv.Itoa(int(r.Partition)), dash(r.Current), dash(r.LogEnd), dash(r.Lag), r.ConsumerID, r.Host, r.ClientID}
		for _, c := range t.cols[len(offsetColumns):] {
			v, ok := r.Extra[c.header]
			if !ok {
				v = "-"
			}
			vals = append(vals, v)
		}
		t.add(vals...)
	}
	t.write(cmd.OutOrStdout(), "\n")
	fmt.Fprintln(cmd.OutOrStdout())
	return false
}

// printMembers is Kafka's --describe --members [--verbose].
func (o *groupsOpts) printMembers(cmd *cobra.Command, g describedGroup) (dead bool) {
	show, dead := groupStateNote(cmd, g.Group, g.State, len(g.Members))
	if dead {
		return true
	}
	type member struct {
		id, instance, host, client string
		n                          int
		assignment                 string
	}
	var ms []member
	withInstance := false
	wG, wC, wI, wH, wCl := 15, 15, 17, 15, 15
	for _, m := range g.Members {
		mm := member{id: m.MemberID, host: m.ClientHost, client: m.ClientID}
		if m.InstanceID != nil {
			mm.instance = *m.InstanceID
			withInstance = withInstance || mm.instance != ""
		}
		var parts []string
		if c, ok := m.Assigned.AsConsumer(); ok {
			ts := slices.Clone(c.Topics)
			slices.SortFunc(ts, func(a, b kmsg.ConsumerMemberAssignmentTopic) int { return cmp.Compare(a.Topic, b.Topic) })
			for _, t := range ts {
				mm.n += len(t.Partitions)
				ps := slices.Sorted(slices.Values(t.Partitions))
				parts = append(parts, t.Topic+"("+strings.Join(mapSlice(ps, itoa32), ",")+")")
			}
		}
		mm.assignment = "-"
		if len(parts) > 0 {
			mm.assignment = strings.Join(parts, ", ")
		}
		wG, wC, wI, wH, wCl = max(wG, len(g.Group)), max(wC, len(mm.id)), max(wI, len(mm.instance)), max(wH, len(mm.host)), max(wCl, len(mm.client))
		ms = append(ms, mm)
	}
	if !show {
		return false
	}
	out := cmd.OutOrStdout()
	line := func(group, id, inst, host, client, n string) {
		if withInstance {
			fmt.Fprintf(out, "%-*s %-*s %-*s %-*s %-*s %-15s ", wG, group, wC, id, wI, inst, wH, host, wCl, client, n)
		} else {
			fmt.Fprintf(out, "%-*s %-*s %-*s %-*s %-15s ", wG, group, wC, id, wH, host, wCl, client, n)
		}
	}
	fmt.Fprintln(out)
	line("GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS")
	if o.verbose {
		fmt.Fprint(out, "ASSIGNMENT")
	}
	fmt.Fprintln(out)
	for _, m := range ms {
		line(g.Group, m.id, m.instance, m.host, m.client, strconv.Itoa(m.n))
		if o.verbose {
			fmt.Fprint(out, m.assignment)
		}
		fmt.Fprintln(out)
	}
	return false
}

// printGroupState is Kafka's --describe --state.
func printGroupState(cmd *cobra.Command, g describedGroup) (dead bool) {
	if _, dead := groupStateNote(cmd, g.Group, g.State, 1); dead {
		return true
	}
	coord := fmt.Sprintf("%s:%d  (%d)", g.Coordinator.Host, g.Coordinator.Port, g.Coordinator.NodeID)
	w := max(25, len(coord))
	out := cmd.OutOrStdout()
	format := fmt.Sprintf("\n%%-%ds %%-25s %%-20s %%-15s %%s", w)
	fmt.Fprintf(out, format, "GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS")
	fmt.Fprintf(out, format, g.Group, coord, g.Protocol, g.State, strconv.Itoa(len(g.Members)))
	fmt.Fprintln(out)
	return false
}

func (o *groupsOpts) deleteGroups(ctx context.Context, cmd *cobra.Command, adm *kadm.Client) error {
	ids, err := o.groupIDs(ctx, adm)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	resps, err := adm.DeleteGroups(ctx, ids...)
	if err != nil && len(resps) == 0 {
		return err
	}
	var ok, failed []string
	for _, id := range ids {
		r, found := resps[id]
		switch {
		case !found:
			failed = append(failed, fmt.Sprintf("* Group '%s' could not be deleted due to: %v", id, err))
		case r.Err != nil:
			failed = append(failed, fmt.Sprintf("* Group '%s' could not be deleted due to: %s", id, errText(r.Err, r.ErrMessage)))
		default:
			ok = append(ok, id)
		}
	}
	out := cmd.OutOrStdout()
	if len(failed) == 0 {
		fmt.Fprintf(out, "Deletion of requested consumer groups ('%s') was successful.\n", strings.Join(ok, "', '"))
		return nil
	}
	printGroupError(out, "Deletion of some consumer groups failed:")
	for _, f := range failed {
		fmt.Fprintln(out, f)
	}
	if len(ok) > 0 {
		fmt.Fprintf(out, "\nThese consumer groups were deleted successfully: '%s'\n", strings.Join(ok, "', '"))
	}
	return reported("%d of %d groups not deleted", len(failed), len(ids))
}

func (o *groupsOpts) deleteOffsets(ctx context.Context, cmd *cobra.Command, adm *kadm.Client) error {
	group := o.groups[0]
	set := kadm.TopicsSet{}
	type result struct {
		topic     string
		partition string
		err       error
	}
	var results []result
	var whole []string
	for _, arg := range o.topics {
		if strings.Contains(arg, ":") {
			t, ps, err := parseTopicPartitions(arg)
			if err != nil {
				return usageError(cmd, "%s", err)
			}
			set.Add(t, ps...)
		} else {
			whole = append(whole, arg)
		}
	}
	if len(whole) > 0 {
		md, err := adm.Metadata(ctx, whole...)
		if err != nil {
			return err
		}
		for _, t := range whole {
			td, ok := md.Topics[t]
			if !ok || td.Err != nil {
				e := error(kerr.UnknownTopicOrPartition)
				if ok {
					e = td.Err
				}
				results = append(results, result{t, "Not Provided", e})
				continue
			}
			for _, p := range td.Partitions {
				set.Add(t, p.Partition)
			}
		}
	}
	resps, err := adm.DeleteOffsets(ctx, group, set)
	out := cmd.OutOrStdout()
	failed := err != nil || len(results) > 0
	switch {
	case err == nil && len(results) == 0:
		fmt.Fprintf(out, "Request succeed for deleting offsets with topic %s group %s\n", strings.Join(o.topics, ", "), group)
	case errors.Is(err, kerr.InvalidGroupID):
		printGroupError(out, fmt.Sprintf("'%s' is not valid.", group))
	case errors.Is(err, kerr.GroupIDNotFound):
		printGroupError(out, fmt.Sprintf("'%s' does not exist.", group))
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		printGroupError(out, fmt.Sprintf("Access to '%s' is not authorized.", group))
	case errors.Is(err, kerr.NonEmptyGroup):
		printGroupError(out, fmt.Sprintf("Deleting offsets of a consumer group '%s' is forbidden if the group is not empty.", group))
	case err == nil || errors.Is(err, kerr.GroupSubscribedToTopic) || errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.UnknownTopicOrPartition):
		printGroupError(out, "Encounter some partition level error, see the follow-up details:")
	default:
		printGroupError(out, fmt.Sprintf("Encounter some unknown error: %v", err))
	}
	for t, ps := range set {
		for p := range ps {
			e := err
			if err == nil {
				e = resps[t][p]
			}
			failed = failed || e != nil
			results = append(results, result{t, itoa32(p), e})
		}
	}
	slices.SortFunc(results, func(a, b result) int { return cmp.Compare(a.topic+a.partition, b.topic+b.partition) })
	format := "\n%-30s %-15s %-15s"
	fmt.Fprintf(out, format, "TOPIC", "PARTITION", "STATUS")
	for _, r := range results {
		status := "Successful"
		if r.err != nil {
			status = "Error: :" + errName(r.err) // sic: Kafka prints "Error: :"
		}
		fmt.Fprintf(out, format, r.topic, r.partition, status)
	}
	fmt.Fprintln(out)
	if failed {
		return reported("delete offsets of group %s failed", group)
	}
	return nil
}

// parseTopicPartitions parses "topic:0,1,2".
func parseTopicPartitions(arg string) (string, []int32, error) {
	t, ps, ok := strings.Cut(arg, ":")
	if !ok || t == "" || ps == "" || strings.Contains(ps, ":") {
		return "", nil, kafkaError("Invalid topic arg '%s', expected topic name and partitions", arg)
	}
	var out []int32
	for p := range strings.SplitSeq(ps, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
		if err != nil || n < 0 {
			return "", nil, kafkaError("Invalid partition '%s' specified in topic arg '%s'", p, arg)
		}
		out = append(out, int32(n))
	}
	return t, out, nil
}

// parseKafkaDateTime parses --to-datetime as Kafka's Utils.getDateTime:
// yyyy-MM-dd'T'HH:mm:ss.SSS with an optional zone (Z, +hh, +hhmm, +hh:mm),
// UTC when there is none. We also accept it without the milliseconds.
func parseKafkaDateTime(s string) (time.Time, error) {
	date, clock, ok := strings.Cut(s, "T")
	if !ok || date == "" {
		return time.Time{}, kafkaError("Error parsing timestamp '%s'. It does not contain a 'T' according to ISO8601 format", s)
	}
	if !strings.ContainsAny(clock, "+-Z") {
		s += "Z"
	}
	for _, layout := range []string{
		"2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05.000Z07",
		"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05Z07",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, kafkaError("Error parsing timestamp '%s': want YYYY-MM-DDTHH:mm:SS.sss with an optional zone", s)
}

var isoDuration = regexp.MustCompile(`(?i)^([-+]?)P(?:([-+]?[0-9]+)D)?(?:T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?$`)

// parseISODuration parses java.time.Duration's PnDTnHnMn.nS form.
func parseISODuration(s string) (time.Duration, error) {
	m := isoDuration.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil || strings.HasSuffix(strings.ToUpper(s), "T") || strings.EqualFold(strings.TrimLeft(s, "+-"), "P") {
		return 0, kafkaError("Text cannot be parsed to a Duration: '%s' (want PnDTnHnMnS, e.g. PT1H30M)", s)
	}
	num := func(v string) int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }
	d := time.Duration(num(m[2]))*24*time.Hour + time.Duration(num(m[3]))*time.Hour +
		time.Duration(num(m[4]))*time.Minute + time.Duration(num(m[5]))*time.Second
	if m[6] != "" {
		frac := (m[6] + "000000000")[:9]
		ns := time.Duration(num(frac))
		if strings.HasPrefix(m[5], "-") {
			ns = -ns
		}
		d += ns
	}
	if m[1] == "-" {
		d = -d
	}
	return d, nil
}

// resetPlan is the new offset of each partition of one group.
type resetPlan map[string]map[int32]int64

func (o *groupsOpts) resetOffsets(ctx context.Context, cmd *cobra.Command, adm *kadm.Client) error {
	ids, err := o.groupIDs(ctx, adm)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	// Parse the scenario's argument before touching any group.
	var at time.Time
	switch {
	case cmd.Flags().Changed("to-datetime"):
		if at, err = parseKafkaDateTime(o.toDatetime); err != nil {
			return usageError(cmd, "%s", err)
		}
	case cmd.Flags().Changed("by-duration"):
		d, err := parseISODuration(o.byDuration)
		if err != nil {
			return usageError(cmd, "%s", err)
		}
		at = time.Now().Add(-d)
	}
	if o.fromFile != "" {
		if o.filePlan, err = parseResetFile(o.fromFile, o.groups); err != nil {
			return usageError(cmd, "%s", err)
		}
	}
	groups, err := describeGroups(ctx, adm, ids)
	if err != nil {
		return err
	}
	plans := map[string]resetPlan{}
	failed := false
	for _, g := range groups {
		if g.State != "Empty" && g.State != "Dead" {
			printGroupError(cmd.OutOrStdout(), fmt.Sprintf("Assignments can only be reset if the group '%s' is inactive, but the current state is %s.", g.Group, g.State))
			plans[g.Group] = resetPlan{}
			failed = true
			continue
		}
		parts, err := o.partitionsToReset(ctx, adm, g)
		if err != nil {
			return err
		}
		plan, err := o.prepare(ctx, cmd, adm, g, parts, at)
		if err != nil {
			return err
		}
		if o.execute && len(plan) > 0 {
			var os kadm.Offsets
			for t, ps := range plan {
				for p, off := range ps {
					os.AddOffset(t, p, off, -1)
				}
			}
			resps, err := adm.CommitOffsets(ctx, g.Group, os)
			if err != nil {
				return fmt.Errorf("commit offsets of group %s: %w", g.Group, err)
			}
			if err := resps.Error(); err != nil {
				return fmt.Errorf("commit offsets of group %s: %w", g.Group, err)
			}
		}
		plans[g.Group] = plan
	}
	o.printPlans(cmd.OutOrStdout(), plans)
	if failed {
		return reported("some groups were not reset")
	}
	return nil
}

type topicPartition struct {
	topic     string
	partition int32
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s-%d", tp.topic, tp.partition) }

// partitionsToReset is the reset scope: --all-topics (every partition the
// group has committed) or --topic t / t:p,p.
func (o *groupsOpts) partitionsToReset(ctx context.Context, adm *kadm.Client, g describedGroup) ([]topicPartition, error) {
	var out []topicPartition
	switch {
	case o.fromFile != "":
		for tp := range o.filePlan[g.Group] {
			out = append(out, tp)
		}
	case o.allTopics:
		for t, ps := range g.committed {
			for p := range ps {
				out = append(out, topicPartition{t, p})
			}
		}
	default:
		var whole []string
		for _, arg := range o.topics {
			if !strings.Contains(arg, ":") {
				whole = append(whole, arg)
				continue
			}
			t, ps, err := parseTopicPartitions(arg)
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				out = append(out, topicPartition{t, p})
			}
		}
		if len(whole) > 0 {
			md, err := adm.Metadata(ctx, whole...)
			if err != nil {
				return nil, err
			}
			for _, t := range whole {
				td, ok := md.Topics[t]
				if !ok {
					return nil, fmt.Errorf("topic %s: %w", t, kerr.UnknownTopicOrPartition)
				}
				if td.Err != nil {
					return nil, fmt.Errorf("topic %s: %w", t, td.Err)
				}
				for _, p := range td.Partitions {
					out = append(out, topicPartition{t, p.Partition})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b topicPartition) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	return slices.Compact(out), nil
}

// prepare is Kafka's prepareOffsetsToReset for one group.
func (o *groupsOpts) prepare(ctx context.Context, cmd *cobra.Command, adm *kadm.Client, g describedGroup, parts []topicPartition, at time.Time) (resetPlan, error) {
	topicSet := map[string]bool{}
	for _, tp := range parts {
		topicSet[tp.topic] = true
	}
	topics := slices.Sorted(maps.Keys(topicSet))
	plan := resetPlan{}
	set := func(tp topicPartition, off int64) {
		if plan[tp.topic] == nil {
			plan[tp.topic] = map[int32]int64{}
		}
		plan[tp.topic][tp.partition] = off
	}
	fromList := func(list func(context.Context, ...string) (kadm.ListedOffsets, error), what string) error {
		lo, err := listOffsets(ctx, topics, list)
		if err != nil {
			return err
		}
		for _, tp := range parts {
			off, err := offsetAt(lo, tp.topic, tp.partition)
			if err != nil {
				return kafkaError("Error getting %s offset of topic partition: %s: %w", what, tp, err)
			}
			set(tp, off)
		}
		return nil
	}
	// clamped is Kafka's checkOffsetsRange: a requested offset outside the
	// log moves to its nearest end, with a warning.
	clamped := func(want map[topicPartition]int64) error {
		starts, err := listOffsets(ctx, topics, adm.ListStartOffsets)
		if err != nil {
			return err
		}
		ends, err := listOffsets(ctx, topics, adm.ListEndOffsets)
		if err != nil {
			return err
		}
		for _, tp := range parts {
			off := want[tp]
			end, err := offsetAt(ends, tp.topic, tp.partition)
			if err != nil {
				return err
			}
			start, err := offsetAt(starts, tp.topic, tp.partition)
			if err != nil {
				return err
			}
			switch {
			case off > end:
				fmt.Fprintf(cmd.ErrOrStderr(), "WARN New offset (%d) is higher than latest offset for topic partition %s. Value will be set to %d\n", off, tp, end)
				off = end
			case off < start:
				fmt.Fprintf(cmd.ErrOrStderr(), "WARN New offset (%d) is lower than earliest offset for topic partition %s. Value will be set to %d\n", off, tp, start)
				off = start
			}
			set(tp, off)
		}
		return nil
	}
	f := cmd.Flags()
	switch {
	case f.Changed("to-offset"):
		want := map[topicPartition]int64{}
		for _, tp := range parts {
			want[tp] = o.toOffset
		}
		return plan, clamped(want)
	case f.Changed("to-earliest"):
		return plan, fromList(adm.ListStartOffsets, "starting")
	case f.Changed("to-latest"):
		return plan, fromList(adm.ListEndOffsets, "ending")
	case f.Changed("shift-by"):
		want := map[topicPartition]int64{}
		for _, tp := range parts {
			cur, ok := g.committed[tp.topic][tp.partition]
			if !ok {
				return nil, kafkaError("Cannot shift offset for partition %s since there is no current committed offset", tp)
			}
			want[tp] = cur + o.shiftBy
		}
		return plan, clamped(want)
	case f.Changed("to-datetime"), f.Changed("by-duration"):
		lo, err := listOffsets(ctx, topics, func(ctx context.Context, ts ...string) (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), ts...)
		})
		if err != nil {
			return nil, err
		}
		for _, tp := range parts {
			off, err := offsetAt(lo, tp.topic, tp.partition)
			if err != nil {
				return nil, kafkaError("Error getting offset by timestamp of topic partition: %s: %w", tp, err)
			}
			// kadm answers a partition with no record at or after the time
			// with its end offset and no timestamp; Kafka's tool says so.
			if o, _ := lo.Lookup(tp.topic, tp.partition); o.Timestamp < 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "\nWarn: Partition %d from topic %s is empty. Falling back to latest known offset.\n", tp.partition, tp.topic)
			}
			set(tp, off)
		}
		return plan, nil
	case f.Changed("from-file"):
		want, ok := o.filePlan[g.Group]
		if !ok {
			printGroupError(cmd.OutOrStdout(), fmt.Sprintf("No reset plan for group %s found", g.Group))
			return plan, nil
		}
		return plan, clamped(want)
	case f.Changed("to-current"):
		ends, err := listOffsets(ctx, topics, adm.ListEndOffsets)
		if err != nil {
			return nil, err
		}
		for _, tp := range parts {
			if cur, ok := g.committed[tp.topic][tp.partition]; ok {
				set(tp, cur)
				continue
			}
			end, err := offsetAt(ends, tp.topic, tp.partition)
			if err != nil {
				return nil, kafkaError("Error getting ending offset of topic partition: %s: %w", tp, err)
			}
			set(tp, end)
		}
		return plan, nil
	}
	return nil, errors.New("no reset scenario")
}

// printPlans is Kafka's printOffsetsToReset, or exportOffsetsToCsv with
// --export.
func (o *groupsOpts) printPlans(out io.Writer, plans map[string]resetPlan) {
	var rows [][]string
	for _, g := range slices.Sorted(maps.Keys(plans)) {
		for _, t := range slices.Sorted(maps.Keys(plans[g])) {
			for _, p := range slices.Sorted(maps.Keys(plans[g][t])) {
				rows = append(rows, []string{g, t, itoa32(p), strconv.FormatInt(plans[g][t][p], 10)})
			}
		}
	}
	if o.export {
		var sb strings.Builder
		for _, r := range rows {
			if len(o.groups) == 1 {
				r = r[1:]
			}
			sb.WriteString(strings.Join(r, ",") + "\n")
		}
		fmt.Fprintln(out, sb.String())
		return
	}
	format := "\n%-30s %-30s %-10s %-15s"
	if len(plans) > 0 {
		fmt.Fprintf(out, format, "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET")
	}
	for _, r := range rows {
		fmt.Fprintf(out, format, r[0], r[1], r[2], r[3])
	}
	fmt.Fprintln(out)
}

// parseResetFile reads --from-file: the CSV --export writes, topic,partition,offset
// when one group is named, group,topic,partition,offset otherwise.
func parseResetFile(path string, groups []string) (map[string]map[topicPartition]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]map[topicPartition]int64{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		group := ""
		switch {
		case len(f) == 3 && len(groups) == 1:
			group = groups[0]
		case len(f) == 4:
			group, f = f[0], f[1:]
		default:
			return nil, fmt.Errorf("%s line %d: %q: want topic,partition,offset (one --group) or group,topic,partition,offset", path, i+1, line)
		}
		p, perr := strconv.ParseInt(strings.TrimSpace(f[1]), 10, 32)
		off, oerr := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		if perr != nil || oerr != nil || p < 0 {
			return nil, fmt.Errorf("%s line %d: %q: partition and offset must be numbers", path, i+1, line)
		}
		if out[group] == nil {
			out[group] = map[topicPartition]int64{}
		}
		out[group][topicPartition{strings.TrimSpace(f[0]), int32(p)}] = off
	}
	return out, nil
}
