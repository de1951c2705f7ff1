#!/usr/bin/env bash
# Message-trace benchmarks: producer throughput untraced vs the kobs trace
# interceptor vs franz-go's kotel plugin in one run (rotating rounds,
# medians), store _bulk ingest events/s, shipper events/s from the trace
# topic into the embedded store, and journey / topic-page query latency
# (p50, p99) on a store holding 1M events (10M opt-in).
#
# Knobs:
#   TRACE_BENCH_10M=1  also measure the queries at 10M stored events. The
#                      store is filled through its HTTP _bulk API (30-40k
#                      events/s with the benchmark rendering the bodies
#                      beside it on 2 busy cores: 1M takes about 30 s, 10M
#                      about 5 minutes); the store then holds its index in
#                      memory, about 4 GB of heap (8 GB of RAM) at 10M.
#   TRACE_QUERY_SIZES  the stored-event counts to measure (default 1000000;
#                      TRACE_BENCH_10M=1 appends 10000000)
#   BENCHTIME          -benchtime for the query benchmarks (default 100x)
#   TRACE_BENCH_DIR    keep the filled stores there and reuse them on the next
#                      run (a fill is most of the time of a 10M run)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${TRACE_QUERY_SIZES:-"1000000"}
if [ "${TRACE_BENCH_10M:-}" = 1 ]; then
	SIZES="$SIZES 10000000"
fi
BENCHTIME=${BENCHTIME:-100x}

echo "== producer over TCP, 1 KiB records, acks=1: untraced vs kobs interceptor (sampling 1.0) vs kotel =="
# Rounds of 100k records are short and the machine is shared: 9 rotating
# rounds per mode, medians; records/s and CPU-µs per record (the whole
# process: client, broker, trace producer) against the untraced median.
# -v: the per-round values are logged.
go test ./tracing -run '^$' -bench 'BenchmarkProduceTraceCost$' -benchtime 9x -v | grep -v '^=== RUN'

echo "== shipper: trace topic -> embedded store =="
go test ./tracing -run '^$' -bench 'BenchmarkShipper$' -benchtime 2x

echo "== store ingest (HTTP _bulk, trace mapping) =="
go test ./tracing -run '^$' -bench 'BenchmarkStoreBulk' -benchtime 10x

for n in $SIZES; do
	echo "== journey and topic-page queries on $n stored events (p50/p99 ms) =="
	# -v: the fill rate and bytes per event are logged by the parent benchmark.
	TRACE_BENCH_EVENTS=$n go test ./tracing -run '^$' -bench 'BenchmarkJourneyQuery$' -benchtime "$BENCHTIME" -timeout 6h -v |
		grep -v '^=== RUN'
done
