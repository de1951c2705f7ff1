#!/usr/bin/env bash
# bench-agent.sh: one `kobs agent` collection cycle over 100,000 partitions
# and 100 groups on franz-go's kfake (3 brokers, 1000 topics x 100
# partitions, 3 records per partition, each group committed on 10 topics,
# 1000 partitions), with the agent in its own process.
#
# Usage: KOBS=bin/kobs scripts/bench-agent.sh
#
# ROUNDS times it runs internal/tools/agentbench twice, interleaved: against
# kfake as it is, then with --instant-cluster (kfake answers every request
# from a cache after its first sighting: the wall time left is the agent's
# own work and the wire). Each run prints each cycle's wall time
# (kobs_agent_cycle_seconds, from /v1/health), the agent's and kfake's CPU
# time over each interval and the cycle's phases, then a RESULT line of
# medians over the cycles after the first (which also dials the brokers)
# and the agent's peak RSS (VmHWM) before and after one /metrics scrape.
# The summary is the median over the runs of each mode. kfake answers
# every request on one goroutine and shares the 2 cores with the agent:
# "kfake CPU" is the server's cost, "agent CPU" the agent's, and a loaded
# machine stretches the wall time of both; read the load average printed.
#
# Then, when Burrow and ZooKeeper are installed, BenchmarkBurrowAnchor:
# Burrow and the agent side by side on one kobs broker.
#
# Goals (issue 10): a cycle <= 1 s, RSS <= 300 MB.
#
# Environment: KOBS (bin/kobs), TOPICS (1000), PARTITIONS (100), AGENT_GROUPS
# (100), CYCLES (5), INTERVAL (10s; the cycle timeout is 4/5 of it), ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
KOBS=${KOBS:-bin/kobs}
[[ -x $KOBS ]] || { echo "bench-agent: $KOBS not found (make build)" >&2; exit 1; }
bench=$(mktemp -d "${TMPDIR:-/tmp}/bench-agent.XXXXXX")
trap 'rm -rf "$bench"' EXIT
go build -o "$bench/agentbench" ./internal/tools/agentbench
for round in $(seq "${ROUNDS:-2}"); do
	for mode in kfake instant; do
		flag=()
		[[ $mode == instant ]] && flag=(--instant-cluster)
		echo "== round $round, $mode cluster, load average $(cut -d' ' -f1-3 /proc/loadavg)"
		"$bench/agentbench" --kobs "$KOBS" --topics "${TOPICS:-1000}" --partitions "${PARTITIONS:-100}" \
			--groups "${AGENT_GROUPS:-100}" --cycles "${CYCLES:-5}" --interval "${INTERVAL:-10s}" "${flag[@]}" \
			2> >(grep -v 'level=INFO' >&2) | tee -a "$bench/$mode.out"
	done
done
# Median over the runs of each RESULT field.
med() { # med MODE KEY
	grep '^RESULT' "$bench/$1.out" | tr ' ' '\n' | sed -n "s/^$2=//p" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
for mode in kfake instant; do
	echo "SUMMARY $mode cluster, median of $(grep -c '^RESULT' "$bench/$mode.out") runs:" \
		"cycle $(med $mode wall) s wall, agent CPU $(med $mode agent_cpu) s, kfake CPU $(med $mode kfake_cpu) s," \
		"evaluate $(med $mode evaluate) s per cycle; agent RSS peak $(med $mode rss_mb) MB ($(med $mode rss_after_scrape_mb) MB after a scrape)"
done
# The anchor: Burrow 1.2.1 beside the agent on one kobs broker (3,000
# partitions, 20 groups; Burrow needs __consumer_offsets, which kfake lacks):
# CPU per 10 s of each and Burrow's evaluation of every group.
if [[ -x /usr/bin/Burrow && -f /usr/share/java/zookeeper.jar ]]; then
	go test -run '^$' -bench BurrowAnchor -benchtime 1x -timeout 20m ./agent/ 2>&1 | grep -E '^(Benchmark|---|\s+burrow_bench)'
else
	echo "bench-agent: Burrow anchor skipped: Debian packages burrow and zookeeper not installed (scripts/install-test-deps.sh)"
fi
