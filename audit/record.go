package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// DefaultTopic is the audit topic the hooks flush to and the reconciler reads.
const DefaultTopic = "__kobs_audit"

// Tier is where records were counted.
type Tier string

// The tiers. Producer and consumer counts come from the hooks; broker counts
// come from the log's offsets (ListOffsets by timestamp at bucket boundaries).
const (
	TierProducer Tier = "producer"
	TierConsumer Tier = "consumer"
	TierBroker   Tier = "broker"
	// TierCommitted counts, per group, the records its committed offsets
	// passed over (still in the log when it got there): the consumed tier
	// of groups without the hook, in kobs_audit_records_total.
	TierCommitted Tier = "committed"
)

// flushKind marks a record as a kobs audit flush; anything else on the
// audit topic is foreign and is counted and skipped by the reconciler.
const flushKind = "kobs.audit.flush/v1"

// Flush is one audit record: the counts one hook instance gathered since its
// previous flush. (Instance, Seq) identifies it, so a re-sent flush is
// recognised and applied once; a missing Seq is a lost flush.
type Flush struct {
	Kind     string  `json:"kind"`
	Instance string  `json:"instance"`        // random per hook, so a restarted client is a new instance
	Seq      uint64  `json:"seq"`             // 1, 2, 3, ... per instance
	Tier     Tier    `json:"tier"`            // producer or consumer
	Client   string  `json:"client"`          // client id (producer) or group (consumer)
	Host     string  `json:"host,omitempty"`  // for the operator
	PID      int     `json:"pid,omitempty"`   // for the operator
	BucketMs int64   `json:"bucket_ms"`       // bucket width of Counts
	FlushMs  int64   `json:"flush_ms"`        // the hook flushes at least this often
	TS       int64   `json:"ts"`              // hook's wall clock at the flush, unix ms
	Final    bool    `json:"final,omitempty"` // the hook closed cleanly; no more flushes come
	Counts   []Count `json:"counts,omitempty"`
}

// Count is the records and bytes of one topic in one bucket. Bucket is the
// bucket start in unix ms, or OutOfWindow for records whose timestamp was
// too far from the hook's clock to trust.
type Count struct {
	Topic   string `json:"topic"`
	Bucket  int64  `json:"bucket"`
	Records int64  `json:"records"`
	Bytes   int64  `json:"bytes"`
}

// OutOfWindow is the bucket of records whose timestamps lie too far in the
// future or past (clock skew): they are counted, and labelled, not spread
// over the wrong buckets.
const OutOfWindow int64 = -1

var errForeign = errors.New("not a kobs audit flush")

// decodeFlush parses and validates one audit record. A record that is not
// JSON is corrupt; JSON of another kind is foreign (errForeign).
func decodeFlush(b []byte) (*Flush, error) {
	var f Flush
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("corrupt audit record: %w", err)
	}
	if f.Kind != flushKind {
		return nil, errForeign
	}
	switch {
	case f.Instance == "" || f.Seq == 0:
		return nil, errors.New("corrupt audit record: no instance or seq")
	case f.Tier != TierProducer && f.Tier != TierConsumer:
		return nil, fmt.Errorf("corrupt audit record: tier %q", f.Tier)
	case f.BucketMs <= 0 || f.FlushMs <= 0:
		return nil, errors.New("corrupt audit record: bucket or flush interval <= 0")
	}
	for _, c := range f.Counts {
		if c.Topic == "" || c.Records < 0 || c.Bytes < 0 || (c.Bucket != OutOfWindow && c.Bucket < 0) {
			return nil, fmt.Errorf("corrupt audit record: bad count %+v", c)
		}
	}
	return &f, nil
}

// bucketOf is the start of the bucket holding t.
func bucketOf(tsMs, widthMs int64) int64 {
	b := tsMs - tsMs%widthMs
	if tsMs < 0 && tsMs%widthMs != 0 {
		b -= widthMs
	}
	return b
}

func ms(t time.Time) int64 { return t.UnixMilli() }
