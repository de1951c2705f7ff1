package dashboards

// Pending maps each metric name that a dashboard or an alert rule queries,
// but that no kobs component exports yet, to the work that will export it.
// The live test (live_test.go) prints this list on every run, treats these
// names as not yet checkable, and fails when one of them shows up in a
// scrape: move it out of here then, and the test checks it like the rest.
var Pending = map[string]string{}

// PendingTraceStore names Elasticsearch panels (by title) whose requests
// the trace store cannot answer yet, with the work that will make it; the
// live test prints them and fails once the store answers one, so it is
// moved out.
var PendingTraceStore = map[string]string{}

// PendingFailure names the panels that only have data during a failure
// the live tests cannot induce yet, with the reason; they print them.
// (Today they induce every one: the failing-ISR table and the agent's
// under-min-ISR stat during a follower kill in the 3-broker cluster, the
// dropped trace events with a producer whose trace buffer holds one
// event.)
var PendingFailure = map[string]string{}
