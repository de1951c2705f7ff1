package audit

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The core's rules on hand-made flushes and samples: a group that catches up
// after the grace period is late, a lost flush makes its buckets uncertain,
// bad records are counted and skipped.

const W = int64(1000)

func testCore() *core {
	st := newState(W)
	st.Since = 0
	return newCore(st, time.Second, 2*time.Second, time.Hour, time.Minute)
}

func flushOf(inst string, tier Tier, client string, seq uint64, ts int64, counts ...Count) []byte {
	v, _ := json.Marshal(&Flush{Kind: flushKind, Instance: inst, Seq: seq, Tier: tier, Client: client, BucketMs: W, FlushMs: W, TS: ts, Counts: counts})
	return v
}

// oneBucket samples boundaries 0 -> 0 and W -> n on one partition, and the
// group's committed offset.
func sampleOf(n, committed int64) *sample {
	return &sample{
		LogStart:   map[string]map[int32]int64{"t": {0: 0}},
		End:        map[string]map[int32]int64{"t": {0: n}},
		Boundaries: map[int64]map[string]map[int32]int64{0: {"t": {0: 0}}, W: {"t": {0: n}}},
		Committed:  map[string]map[string]map[int32]int64{"g": {"t": {0: committed}}},
	}
}

func TestCoreLate(t *testing.T) {
	c := testCore()
	now := int64(10 * W) // long past bucket 0 + grace
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 1, W+1, Count{Topic: "t", Bucket: 0, Records: 100}), now))
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 2, now, Count{Topic: "t", Bucket: 0, Records: 0}), now))
	c.observe(sampleOf(100, 60), now)
	c.evaluate(now)
	r := c.reports("t", 0)[0]
	require.Equal(t, StatusMissing, r.Status)
	require.EqualValues(t, 40, r.Groups[0].Missing)

	c.observe(sampleOf(100, 100), now+1)
	c.evaluate(now + 1)
	r = c.reports("t", 0)[0]
	require.Equal(t, StatusLate, r.Status)
	require.Equal(t, StatusLate, r.Groups[0].Status)
	require.Zero(t, r.Groups[0].Missing)
}

func TestCoreLostFlush(t *testing.T) {
	c := testCore()
	// Flush 2 never arrives; 1 and 3 do.
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 1, 500, Count{Topic: "t", Bucket: 0, Records: 10}), 600))
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 3, 2500, Count{Topic: "t", Bucket: W, Records: 10}), 2600))
	c.observe(sampleOf(30, 30), 2600)
	c.evaluate(2600)
	require.Empty(t, c.st.Instances["p"].Uncertain, "a gap may still fill")

	// Flush 2 arrives late, out of order: applied once, no gap.
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 2, 1500, Count{Topic: "t", Bucket: 0, Records: 20}), 2700))
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 2, 1500, Count{Topic: "t", Bucket: 0, Records: 20}), 2700))
	require.EqualValues(t, 3, c.st.Instances["p"].Contig)
	require.EqualValues(t, 1, c.st.Skipped["resent"])
	require.EqualValues(t, 30, c.st.Topics["t"].Buckets[0].Producer["p"].Records)

	// Now 5 arrives without 4 and the gap stays open past the grace.
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 5, 4500, Count{Topic: "t", Bucket: 3 * W, Records: 10}), 4600))
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 6, 20*W), 20*W))
	c.observe(sampleOf(30, 30), 20*W)
	c.evaluate(20 * W)
	in := c.st.Instances["p"]
	require.Len(t, in.Uncertain, 1)
	require.EqualValues(t, 6, in.Contig)
	reps := map[int64]BucketReport{}
	for _, r := range c.reports("t", 0) {
		reps[r.Bucket] = r
	}
	require.Equal(t, StatusUncertain, reps[3*W].Status, "%+v", reps[3*W])
	require.Equal(t, StatusComplete, reps[0].Status, "%+v", reps[0])
}

func TestCoreBadRecords(t *testing.T) {
	c := testCore()
	for _, v := range []string{"", "{", `{"kind":"other"}`, `{"kind":"kobs.audit.flush/v1","instance":"x","seq":0}`,
		`{"kind":"kobs.audit.flush/v1","instance":"x","seq":1,"tier":"producer","bucket_ms":1000,"flush_ms":1000,"counts":[{"topic":"t","bucket":0,"records":-5}]}`} {
		require.Error(t, c.applyRecord([]byte(v), 0), v)
	}
	require.EqualValues(t, 1, c.st.Skipped["foreign"])
	require.EqualValues(t, 4, c.st.Skipped["corrupt"])
	require.Empty(t, c.st.Instances)
}

func TestCoreGroupGone(t *testing.T) {
	c := testCore()
	now := int64(10 * W)
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 1, now, Count{Topic: "t", Bucket: 0, Records: 100}), now))
	c.observe(sampleOf(100, 60), now)
	c.evaluate(now)
	require.Len(t, c.reports("t", 0)[0].Groups, 1)

	// A partial sample (ListGroups failed) keeps the group.
	s := sampleOf(100, 60)
	s.Committed = nil
	c.observe(s, now+1)
	c.evaluate(now + 1)
	require.Len(t, c.reports("t", 0)[0].Groups, 1)

	// A full sample without it: the group was deleted.
	s.AllGroups = true
	c.observe(s, now+2)
	c.evaluate(now + 2)
	r := c.reports("t", 0)[0]
	require.Empty(t, r.Groups)
	require.Equal(t, StatusComplete, r.Status)
	require.Empty(t, c.agg["t"]["g"].Missing)
}

// An audited consumer that dies between flushes makes its group uncertain
// in the buckets it was reading, not the bucket.
func TestCoreConsumerDied(t *testing.T) {
	c := testCore()
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 1, 1500, Count{Topic: "t", Bucket: 0, Records: 100}), 1500))
	require.NoError(t, c.applyRecord(flushOf("p", TierProducer, "p", 2, 5000), 5000))
	require.NoError(t, c.applyRecord([]byte(`{"kind":"kobs.audit.flush/v1","instance":"c","seq":1,"tier":"consumer","client":"g","bucket_ms":1000,"flush_ms":1000,"ts":900,"counts":[{"topic":"t","bucket":0,"records":40,"bytes":1}]}`), 900))
	c.observe(sampleOf(100, 100), 5000)
	c.evaluate(5000)
	r := c.reports("t", 0)[0]
	require.Equal(t, StatusUncertain, r.Groups[0].Status, "%+v", r)
	require.Equal(t, StatusComplete, r.ProducerVsBroker)
	require.True(t, c.st.Instances["c"].Dead)
}
