#!/usr/bin/env bash
# soak.sh: the soak checks of a replicated kobs cluster of real `kobs broker`
# processes (internal/soak, build tag `soak`), not part of `make test`:
#
#   TestSoakKillsAndRollingRestart  3 brokers, RF 3, min.insync.replicas=2, an
#       idempotent acks=all producer running throughout; $SOAK_KILLS (20)
#       rounds of kill -9 of the partition leader + restart (waiting for the
#       full ISR each time), then a rolling restart (SIGTERM each broker in
#       turn, waiting until it is back in every ISR). Prints the failover
#       time of each kill (kill -9 to the first acknowledged produce after it).
#   TestSoakConnectionFlood  $SOAK_FLOOD (3000) idle connections to each of 3
#       brokers under the same producer; a new client must still be served.
#   TestSoakDiskFull  one broker on a 32 MiB tmpfs (root only: it mounts and
#       unmounts the tmpfs; skipped, and said so, otherwise), filled until
#       produce fails, then freed; produce must resume.
#
# Each part consumes everything at the end and prints acknowledged vs read
# back (records and distinct values, duplicates, missing); any missing or
# duplicated acknowledged record fails the run (non-zero exit). The summary
# of every SOAK: line is printed again at the end. Bounded by a 10 min
# timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
log=$(mktemp "${TMPDIR:-/tmp}/soak.XXXXXX")
echo "soak: start, load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
rc=0
$GO test -tags soak -count=1 -v -timeout 10m -run '^TestSoak' ./internal/soak 2>&1 | tee "$log" || rc=$?
printf '\n==== soak summary ====\n'
grep -E '^SOAK: |^--- (PASS|FAIL|SKIP)|^\s+--- |skip|LOSS' "$log" || true
if ((rc != 0)); then
	echo "soak: FAILED (exit $rc); full log kept in $log"
else
	rm -f "$log"
fi
exit "$rc"
