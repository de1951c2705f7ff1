#!/usr/bin/env bash
# Message-trace benchmarks: producer throughput untraced vs the kobs trace
# interceptor vs franz-go's kotel plugin in one run (rotating rounds,
# medians), store _bulk ingest events/s, shipper events/s from the trace
# topic into the embedded store, and journey / topic-page query latency as
# the store grows (1M events by default; add 10000000 to TRACE_QUERY_SIZES
# for the 10M point).
#
# Knobs:
#   TRACE_QUERY_SIZES  comma-free list of stored-event counts for the query
#                      curve (default "30000 300000 1000000"); each size is
#                      filled through the store's _bulk API first, at the
#                      store's ingest rate (~6-11k events/s on 2 cores with
#                      the typed mapping), so 10M events takes 15-30
#                      minutes of fill alone.
#   BENCHTIME          -benchtime for the query benchmarks (default 50x)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${TRACE_QUERY_SIZES:-"1000000"}
BENCHTIME=${BENCHTIME:-50x}

echo "== producer over TCP, 1 KiB records, acks=1: untraced vs kobs interceptor (sampling 1.0) vs kotel =="
go test ./tracing -run '^$' -bench 'BenchmarkProduceTraceCost$' -benchtime 5x

echo "== shipper: trace topic -> embedded store =="
go test ./tracing -run '^$' -bench 'BenchmarkShipper$' -benchtime 2x

echo "== store ingest (HTTP _bulk, trace mapping) =="
go test ./tracing -run '^$' -bench 'BenchmarkStoreBulk' -benchtime 10x

for n in $SIZES; do
	echo "== journey queries on $n stored events =="
	TRACE_BENCH_EVENTS=$n go test ./tracing -run '^$' -bench 'BenchmarkJourneyQuery$' -benchtime "$BENCHTIME" -timeout 4h
done
