package main

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kobs-dev/kobs/agent"
)

// agentOffsetColumns adds the agent's LAG-SECONDS and STATUS after
// kafka-consumer-groups.sh's columns (agent.DescribeGroup): lag seconds are
// exact (the timestamp of the record at the committed offset), the status
// follows agent/README.md's rules over three samples spread across
// --status-window. A window of 0 skips both (they print "-").
func (o *groupsOpts) agentOffsetColumns() offsetExtension {
	return offsetExtension{
		Columns: []column{{"LAG-SECONDS", 12, false}, {"STATUS", 8, true}},
		Fill: func(ctx context.Context, _ *kadm.Client, group string, rows []*offsetRow) error {
			if o.statusWindow <= 0 || len(rows) == 0 {
				return nil
			}
			// The same connection (TLS, SASL, client id) as the command's.
			cl, err := kgo.NewClient(o.admin.clientOpts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			// The sampling takes the window on top of --timeout, which
			// bounds the requests of the rest of the command.
			deadline, ok := ctx.Deadline()
			budget := time.Duration(o.admin.timeoutMs) * time.Millisecond
			if ok {
				budget = time.Until(deadline)
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.statusWindow+budget)
			defer cancel()
			g, err := agent.DescribeGroup(sctx, cl, group, agent.DescribeOptions{
				Samples: 3, Every: o.statusWindow / 2, ExactOpts: o.admin.clientOpts,
			})
			if errors.Is(err, agent.ErrGroupNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			byTP := map[agent.TopicPartition]*agent.PartitionLag{}
			for i := range g.Partitions {
				p := &g.Partitions[i]
				byTP[agent.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p
			}
			for _, r := range rows {
				p := byTP[agent.TopicPartition{Topic: r.Topic, Partition: r.Partition}]
				if p == nil {
					continue
				}
				if r.Extra == nil {
					r.Extra = map[string]string{}
				}
				if !math.IsNaN(p.LagSeconds) {
					r.Extra["LAG-SECONDS"] = strconv.FormatFloat(p.LagSeconds, 'f', 1, 64)
				}
				if !p.NoCommit() {
					r.Extra["STATUS"] = string(p.Status)
				}
			}
			return nil
		},
	}
}
