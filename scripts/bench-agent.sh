#!/usr/bin/env bash
# bench-agent.sh: one `kobs agent` collection cycle over 100,000 partitions
# and 100 groups on franz-go's kfake (3 brokers, 1000 topics x 100
# partitions, 3 records per partition, each group committed on 10 topics,
# 1000 partitions), with the agent in its own process.
#
# Usage: KOBS=bin/kobs scripts/bench-agent.sh
#
# It prints each cycle's wall time (kobs_agent_cycle_seconds, from
# /v1/health) and the agent's CPU time over each interval, then a RESULT
# line: the median over the cycles after the first (which also dials the
# brokers), and the agent's peak RSS (VmHWM) before and after one /metrics
# scrape. kfake runs in the bench process and answers every request on one
# goroutine, so the wall time is mostly kfake's; the agent CPU per cycle is
# the agent's own cost. The machine is shared: read the median.
#
# Goals (issue 10): a cycle <= 1 s, RSS <= 300 MB.
#
# Environment: KOBS (bin/kobs), TOPICS (1000), PARTITIONS (100), AGENT_GROUPS
# (100), CYCLES (5), INTERVAL (20s; the cycle timeout is 4/5 of it).
set -euo pipefail
cd "$(dirname "$0")/.."
KOBS=${KOBS:-bin/kobs}
[[ -x $KOBS ]] || { echo "bench-agent: $KOBS not found (make build)" >&2; exit 1; }
bench=$(mktemp -d "${TMPDIR:-/tmp}/bench-agent.XXXXXX")
trap 'rm -rf "$bench"' EXIT
go build -o "$bench/agentbench" ./internal/tools/agentbench
"$bench/agentbench" --kobs "$KOBS" --topics "${TOPICS:-1000}" --partitions "${PARTITIONS:-100}" \
	--groups "${AGENT_GROUPS:-100}" --cycles "${CYCLES:-5}" --interval "${INTERVAL:-20s}" 2> >(grep -v 'level=INFO' >&2)
