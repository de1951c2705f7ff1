#!/usr/bin/env bash
# bench-cluster.sh: the replicated-cluster benchmarks (internal/soak, build
# tag `soak`), each on real `kobs broker` processes, printing what it
# measured next to the load average (the machine is shared):
#
#   TestBenchReplicatedProduce  the same `kobs perf produce` workload (1 KiB
#       records, unthrottled, 6 partitions, $BENCH_RECORDS records per run)
#       with acks=all on RF 3 over 3 brokers against acks=1 on RF 1 on one
#       broker, $BENCH_ROUNDS interleaved (ABBA) rounds, medians and their
#       ratio (goal >= 0.5).
#   TestBenchFailover  kill -9 of the partition leader to the first
#       acknowledged acks=all produce, p50 and max over $BENCH_KILLS (10)
#       kills with broker.session.timeout.ms=2000 (goal <= 3 s); also checks
#       that everything acknowledged is read back.
#   TestBenchRestart1000Partitions  $BENCH_TOPICS (100) topics x 10
#       partitions, RF 3 on 3 brokers; broker 2 is stopped (SIGTERM, then
#       kill -9) and restarted, timed until it is back in every ISR.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
log=$(mktemp "${TMPDIR:-/tmp}/bench-cluster.XXXXXX")
echo "bench-cluster: start, load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
rc=0
$GO test -tags soak -count=1 -v -timeout 20m -run '^TestBench' ./internal/soak >"$log" 2>&1 || rc=$?
grep -E '^SOAK: ' "$log" | sed 's/^SOAK: //' || true
if ((rc != 0)); then
	grep -vE '^SOAK: ' "$log" | tail -n 60 >&2
	echo "bench-cluster: FAILED (exit $rc); full log with the brokers' logs kept in $log" >&2
else
	rm -f "$log"
fi
exit "$rc"
