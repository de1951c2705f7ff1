// Package perf implements the load tools behind "kobs perf produce" and
// "kobs perf consume", modelled on kafka-producer-perf-test and
// kafka-consumer-perf-test: a record or throughput budget, periodic stats lines
// and a final line with rates and latency percentiles.
package perf
