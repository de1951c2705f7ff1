#!/usr/bin/env bash
# bench-produce.sh: produce throughput of a kobs broker against franz-go's kfake,
# the anchor DESIGN.md section 7 asks us to report ratios against.
#
# Usage: KOBS=bin/kobs scripts/bench-produce.sh
#
# It starts one kobs broker (kobs broker --config FILE, 6 partitions per topic,
# auto-create on) and one kfakeserver (built into bin/ if missing, with topics
# bench-1 and bench-all of 6 partitions), then for acks 1 and all runs
#   kobs perf produce --topic bench-<acks> --num-records $RECORDS --record-size 1024
#                     --throughput -1 --acks <acks>
# against each, interleaved (kobs, kfake, kfake, kobs, ...) for $ROUNDS rounds,
# because this machine is shared and noisy: interleaving spreads the noise over
# both targets and the median drops the outliers. It prints the median
# records/sec per target, the ratio, and every run's final line.
#
# Environment:
#   KOBS         kobs binary, used both as the broker and as the perf client (bin/kobs)
#   RECORDS      records per run (200000)
#   ROUNDS       runs per target and acks (3)
#   KOBS_TARGET  kobs (default) or kfake: stand a second kfakeserver in for the
#                kobs broker, to dry-run this script before the broker exists
#   KFAKESERVER  kfakeserver binary (bin/kfakeserver; built if missing)
#   READY_TIMEOUT seconds to wait for each server to accept connections (30)
#   PAUSE        seconds to idle before each run (1)
#
# Before measuring, each target gets one short warm-up run per acks setting, so
# that topic creation, metadata and connection setup are not in the numbers.
# kobs keeps every record on disk under a temp dir (about 1.3 GB with the
# defaults); kfake keeps them in memory, so it runs with a 64 MiB per-partition
# retention cap.
set -euo pipefail

cd "$(dirname "$0")/.."

KOBS=${KOBS:-bin/kobs}
RECORDS=${RECORDS:-200000}
ROUNDS=${ROUNDS:-3}
KOBS_TARGET=${KOBS_TARGET:-kobs}
KFAKESERVER=${KFAKESERVER:-bin/kfakeserver}
READY_TIMEOUT=${READY_TIMEOUT:-30}
PAUSE=${PAUSE:-1}
PARTITIONS=6
ACKS_LIST=(1 all)

die() { echo "bench-produce: $*" >&2; exit 1; }

[[ -x $KOBS ]] || die "kobs binary $KOBS not found or not executable (set KOBS=...)"
[[ $KOBS_TARGET == kobs || $KOBS_TARGET == kfake ]] || die "KOBS_TARGET must be kobs or kfake, got $KOBS_TARGET"
[[ $RECORDS =~ ^[1-9][0-9]*$ ]] || die "RECORDS must be a positive integer"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

if [[ ! -x $KFAKESERVER ]]; then
	echo "building $KFAKESERVER" >&2
	go build -o "$KFAKESERVER" ./internal/tools/kfakeserver
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-produce.XXXXXX")
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port asks the kernel for an unused loopback port. Another process could
# take it before our server binds it; the readiness check below then fails
# loudly rather than benchmarking the wrong thing.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_ready PID PORT LOG waits until PORT accepts connections, failing early
# with the server's log if PID exits first.
wait_ready() {
	local pid=$1 port=$2 log=$3 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$log" >&2
			die "server on port $port exited before it was ready"
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	cat "$log" >&2
	die "server on port $port not ready after ${READY_TIMEOUT}s"
}

# start_kfake NAME starts a kfakeserver and sets REPLY to its address.
start_kfake() {
	local name=$1 port log
	port=$(free_port)
	log=$tmp/$name.log
	"$KFAKESERVER" --port "$port" --default-partitions "$PARTITIONS" \
		--retention-bytes $((64 << 20)) --seed-topic "bench-1:$PARTITIONS" --seed-topic "bench-all:$PARTITIONS" >"$log" 2>&1 &
	pids+=($!)
	wait_ready "$!" "$port" "$log"
	REPLY=127.0.0.1:$port
}

# start_kobs starts the kobs broker and sets REPLY to its address.
start_kobs() {
	local port cfg log
	port=$(free_port)
	cfg=$tmp/server.properties
	log=$tmp/kobs.log
	mkdir -p "$tmp/kobs-data"
	cat >"$cfg" <<-EOF
		node.id=1
		listeners=PLAINTEXT://127.0.0.1:$port
		log.dirs=$tmp/kobs-data
		num.partitions=$PARTITIONS
		auto.create.topics.enable=true
	EOF
	"$KOBS" broker --config "$cfg" >"$log" 2>&1 &
	pids+=($!)
	wait_ready "$!" "$port" "$log"
	REPLY=127.0.0.1:$port
}

if [[ $KOBS_TARGET == kobs ]]; then
	start_kobs
else
	echo "KOBS_TARGET=kfake: a second kfakeserver stands in for the kobs broker" >&2
	start_kfake kobs-standin
fi
kobs_addr=$REPLY
start_kfake kfake
kfake_addr=$REPLY
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
echo "kobs target: $kobs_addr ($KOBS_TARGET), kfake: $kfake_addr, $RECORDS records x $ROUNDS rounds" >&2

# median prints the median of its arguments (the mean of the middle two for an
# even count).
median() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {
		if (NR == 0) exit 1
		if (NR % 2) printf "%.1f\n", v[(NR+1)/2]
		else printf "%.1f\n", (v[NR/2] + v[NR/2+1]) / 2
	}'
}

# produce TARGET ADDR ACKS N OUT runs one perf produce, failing loudly.
produce() {
	local target=$1 addr=$2 acks=$3 n=$4 out=$5
	if ! "$KOBS" perf produce --bootstrap-server "$addr" --topic "bench-$acks" \
		--num-records "$n" --record-size 1024 --throughput -1 --acks "$acks" \
		--reporting-interval -1 >"$out" 2>&1; then
		cat "$out" >&2
		die "produce $n records to $target (acks=$acks) failed"
	fi
}

warmup=$((RECORDS / 10 < 20000 ? RECORDS / 10 + 1 : 20000))
for acks in "${ACKS_LIST[@]}"; do
	produce kobs "$kobs_addr" "$acks" "$warmup" "$tmp/warmup.out"
	produce kfake "$kfake_addr" "$acks" "$warmup" "$tmp/warmup.out"
done

declare -A rates    # "acks target" -> space-separated records/sec of each round
raw=()
for acks in "${ACKS_LIST[@]}"; do
	for ((round = 1; round <= ROUNDS; round++)); do
		# ABBA order (kobs first in odd rounds, kfake first in even ones), so
		# neither target always runs right after the other one's load, and
		# a pause, so the last server's garbage collection is not billed to
		# the next one.
		order=(kobs kfake)
		((round % 2)) || order=(kfake kobs)
		for target in "${order[@]}"; do
			sleep "$PAUSE"
			if [[ $target == kobs ]]; then addr=$kobs_addr; else addr=$kfake_addr; fi
			out=$tmp/run.out
			produce "$target" "$addr" "$acks" "$RECORDS" "$out"
			final=$(grep -E '^[0-9]+ records sent, .* 99\.9th\.$' "$out" | tail -n 1) ||
				die "no final line from produce to $target (acks=$acks, round $round): $(cat "$out")"
			rate=$(awk '{print $4}' <<<"$final")
			rates["$acks $target"]+="$rate "
			raw+=("acks=$acks round=$round $target: $final")
			echo "acks=$acks round=$round $target: $rate records/sec" >&2
		done
	done
done

# spread prints "min-max" of its arguments: with few rounds on a shared
# machine, the medians mean little unless the ranges are tight.
spread() {
	printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.0f-%.0f\n", lo, hi}'
}

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
printf '\n%-5s %12s %12s %18s   %s\n' acks kobs_rec/s kfake_rec/s 'ratio(kobs/kfake)' 'range kobs | kfake'
for acks in "${ACKS_LIST[@]}"; do
	# Word splitting of the stored list is intended: one argument per round.
	# shellcheck disable=SC2086
	k=$(median ${rates["$acks kobs"]})
	# shellcheck disable=SC2086
	f=$(median ${rates["$acks kfake"]})
	ratio=$(awk -v k="$k" -v f="$f" 'BEGIN { if (f > 0) printf "%.3f", k / f; else print "n/a" }')
	# shellcheck disable=SC2086
	printf '%-5s %12s %12s %18s   %s | %s\n' "$acks" "$k" "$f" "$ratio" \
		"$(spread ${rates["$acks kobs"]})" "$(spread ${rates["$acks kfake"]})"
done
if [[ $KOBS_TARGET == kfake ]]; then
	echo "(dry run: the kobs column is a second kfakeserver, not kobs)"
fi

printf '\nfinal lines:\n'
printf '%s\n' "${raw[@]}"
