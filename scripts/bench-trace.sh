#!/usr/bin/env bash
# Message-trace benchmarks (issue 6): producer throughput with the trace
# interceptor on vs off in one run, shipper events/s into the embedded
# store, and journey query latency as the store grows.
#
# Knobs:
#   TRACE_QUERY_SIZES  comma-free list of stored-event counts for the query
#                      curve (default "30000 300000 1000000"); each size is
#                      filled through the store's _bulk API first, at the
#                      store's ingest rate (~11k events/s on 2 cores), so
#                      10M events takes about 15 minutes of fill alone.
#   BENCHTIME          -benchtime for the query benchmarks (default 50x)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${TRACE_QUERY_SIZES:-"30000 300000 1000000"}
BENCHTIME=${BENCHTIME:-50x}

echo "== producer: trace interceptor off vs on (sampling 1.0), 1 KiB records =="
go test ./tracing -run '^$' -bench 'BenchmarkProduceTraceCost$' -benchtime 5x

echo "== shipper: trace topic -> embedded store =="
go test ./tracing -run '^$' -bench 'BenchmarkShipper$' -benchtime 2x

echo "== store ingest (HTTP _bulk, trace mapping) =="
go test ./tracing -run '^$' -bench 'BenchmarkStoreBulk' -benchtime 10x

for n in $SIZES; do
	echo "== journey queries on $n stored events =="
	TRACE_BENCH_EVENTS=$n go test ./tracing -run '^$' -bench 'BenchmarkJourneyQuery$' -benchtime "$BENCHTIME" -timeout 4h
done
