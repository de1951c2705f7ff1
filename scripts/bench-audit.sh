#!/usr/bin/env bash
# Message-audit benchmarks (issue 14): producer throughput over TCP with the
# audit hook on vs off in one run (alternating rounds, medians, cost in %),
# the hook's own work per record, and the reconciler core at 1,000 topics x
# 100 groups (apply rate of flush counts, sample + evaluation time per
# bucket, state size and encode time).
#
# Knobs:
#   AUDIT_ROUNDS   rounds of 100k records per side for the cost (default 24)
#   AUDIT_BUCKETS  buckets reconciled at 1,000 x 100 (default 12)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${AUDIT_ROUNDS:-24}
BUCKETS=${AUDIT_BUCKETS:-12}

echo "== producer: audit hook off vs on, 512-byte records over TCP, medians of $ROUNDS interleaved rounds =="
go test ./audit -run '^$' -bench 'BenchmarkAuditProduceCost$' -benchtime "${ROUNDS}x"

echo "== hook work per acknowledged record =="
go test ./audit -run '^$' -bench 'BenchmarkHookCount$'

echo "== reconciler: 1,000 topics x 100 groups, per bucket =="
go test ./audit -run '^$' -bench 'BenchmarkReconcile1000Topics100Groups$' -benchtime "${BUCKETS}x"
