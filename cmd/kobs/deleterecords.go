package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// offsetJSON is kafka-delete-records.sh's --offset-json-file format.
type offsetJSON struct {
	Version    *int `json:"version"`
	Partitions *[]struct {
		Topic     *string `json:"topic"`
		Partition *int32  `json:"partition"`
		Offset    *int64  `json:"offset"`
	} `json:"partitions"`
}

// parseOffsetJSON parses and checks the file as DeleteRecordsCommand does:
// version 1 (the default), every entry with topic, partition and offset,
// no partition twice.
func parseOffsetJSON(data []byte) (kadm.Offsets, []topicPartition, error) {
	var doc offsetJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, kafkaError("The input string is not a valid JSON: %w", err)
	}
	if doc.Version != nil && *doc.Version != 1 {
		return nil, nil, kafkaError("Not supported version field value %d", *doc.Version)
	}
	if doc.Partitions == nil {
		return nil, nil, kafkaError("Missing partitions field")
	}
	var os kadm.Offsets
	var order []topicPartition
	seen := map[topicPartition]int{}
	for i, p := range *doc.Partitions {
		if p.Topic == nil || p.Partition == nil || p.Offset == nil {
			return nil, nil, fmt.Errorf("partitions[%d]: needs topic, partition and offset", i)
		}
		tp := topicPartition{*p.Topic, *p.Partition}
		if seen[tp]++; seen[tp] == 1 {
			order = append(order, tp)
		}
		os.AddOffset(tp.topic, tp.partition, *p.Offset, -1)
	}
	var dups []string
	for _, tp := range order {
		if seen[tp] > 1 {
			dups = append(dups, tp.String())
		}
	}
	if len(dups) > 0 {
		return nil, nil, kafkaError("Offset json file contains duplicate topic partitions: %s", strings.Join(dups, ","))
	}
	return os, order, nil
}

func newDeleteRecordsCmd() *cobra.Command {
	var (
		admin adminFlags
		file  string
	)
	cmd := &cobra.Command{
		Use:   "delete-records --bootstrap-server B --offset-json-file F",
		Short: "Delete records of partitions up to an offset (like kafka-delete-records.sh)",
		Long: `Delete the records of the given partitions below the given offsets, moving each log start
offset, like kafka-delete-records.sh. The file:

  {"partitions": [{"topic": "foo", "partition": 1, "offset": 1}], "version": 1}

An offset of -1 deletes up to the high watermark. Prints each partition's new low watermark or
its error; exit status 1 if any partition failed (Kafka's tool exits 0 then).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError(cmd, `Missing required argument "[offset-json-file]"`)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return reported("%v", err)
			}
			offsets, order, err := parseOffsetJSON(data)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return reported("%v", err)
			}
			adm, ctx, done, err := admin.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "Executing records delete operation")
			// A partition kadm could not send (an unknown topic, no leader)
			// is missing from resps and gets err printed on its line.
			resps, err := adm.DeleteRecords(ctx, offsets)
			fmt.Fprintln(out, "Records delete operation completed:")
			failed := 0
			slices.SortFunc(order, func(a, b topicPartition) int { return strings.Compare(a.String(), b.String()) })
			for _, tp := range order {
				r, ok := resps.Lookup(tp.topic, tp.partition)
				switch {
				case !ok:
					failed++
					fmt.Fprintf(out, "partition: %s\terror: %v\n", tp, shardCause(err))
				case r.Err != nil:
					failed++
					fmt.Fprintf(out, "partition: %s\terror: %s\n", tp, errText(r.Err, ""))
				default:
					fmt.Fprintf(out, "partition: %s\tlow_watermark: %d\n", tp, r.LowWatermark)
				}
			}
			if failed > 0 {
				return reported("%d of %d partitions failed", failed, len(order))
			}
			return nil
		},
	}
	admin.register(cmd, 60000)
	cmd.Flags().StringVar(&file, "offset-json-file", "", `REQUIRED: The JSON file with offset per partition: {"partitions": [{"topic": "foo", "partition": 1, "offset": 1}], "version": 1}`)
	return cmd
}

// shardCause is the error of a request that failed as a whole: for a request
// kadm split by broker, the first shard's own error (UNKNOWN_TOPIC_OR_PARTITION)
// rather than the count of failed shards.
func shardCause(err error) error {
	if err == nil {
		return errors.New("no answer from the cluster")
	}
	var se *kadm.ShardErrors
	if errors.As(err, &se) && len(se.Errs) > 0 {
		return se.Errs[0].Err
	}
	return err
}
