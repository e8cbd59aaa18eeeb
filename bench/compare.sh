#!/usr/bin/env bash
# Before/after: two aoe-xdp binaries, the same aoe-bench, interleaved case by
# case in one sitting, so that their ratios can be trusted on a noisy machine.
#
#   bash bench/compare.sh OLD_BINARY NEW_BINARY
#
# Each case (depth x read/write, REPS times) runs OLD then NEW on the same
# veth pair and export, target pinned to core 0, aoe-bench to core 1, with
# `sync` before each. Prints IOPS, p50/p99 latency and the target's CPU time
# per request. Environment: SECS (6), REPS (2), DEPTHS ("1 16 64"), LOOP (0;
# 1 serves the export through a loop device, so aoe-xdp uses its direct
# backend), DIR (/dev/shm: where the 256 MiB file lives; a directory on a
# disk for durable writes, which on tmpfs cost nothing), OLD_OPTS, NEW_OPTS
# (appended to each binary's export, e.g. NEW_OPTS=,writeback to compare a
# binary from before durable exports with the same acknowledgement
# semantics), AOE_BENCH (target/release/aoe-bench).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../tests/lib.sh
source "$HERE/../tests/lib.sh"
need_root
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
OLD=$1 NEW=$2
AOE_BENCH=${AOE_BENCH:-$REPO_ROOT/target/release/aoe-bench}
SECS=${SECS:-6} REPS=${REPS:-2} DEPTHS=${DEPTHS:-"1 16 64"}
for bin in "$OLD" "$NEW" "$AOE_BENCH"; do
	[ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "needs jq (make deps)" >&2; exit 2; }

NS_T=$(ns_name ct) NS_I=$(ns_name ci) IF_T=$(if_name t) IF_I=$(if_name i)
DIR=${DIR:-/dev/shm} OLD_OPTS=${OLD_OPTS:-} NEW_OPTS=${NEW_OPTS:-}
DISK=$DIR/$RUN_TAG-compare.img
LOG=$(mktemp "/tmp/$RUN_TAG-compare.XXXXXX")
on_exit rm -f "$DISK" "$LOG"
make_netns "$NS_T"
make_netns "$NS_I"
make_veth "$NS_T" "$IF_T" "$NS_I" "$IF_I"
head -c 256M /dev/zero >"$DISK"
EXPORT=$DISK
[ "${LOOP:-0}" = 1 ] && { make_loop "$DISK" EXPORT; }
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n" binary op depth IOPS p50_us p99_us cpu_us_per_io
for _ in $(seq "$REPS"); do
	for depth in $DEPTHS; do
		for op in write read; do
			for which in old new; do
				bin=$OLD opts=$OLD_OPTS
				[ "$which" = new ] && bin=$NEW opts=$NEW_OPTS
				sync
				# setsid, ip netns exec and taskset all exec: TARGET_PID is aoe-xdp.
				start_target_cmd "$NS_T" "$LOG" serving taskset -c 0 "$bin" --iface "$IF_T" \
					--export "1.1=$EXPORT$opts" --stats-interval 0
				c0=$(ticks "$TARGET_PID")
				read_pct=0
				[ "$op" = read ] && read_pct=100
				out=$(ip netns exec "$NS_I" taskset -c 1 "$AOE_BENCH" --iface "$IF_I" --target 1.1 \
					--depth "$depth" --random --read-pct "$read_pct" --duration "$SECS" --quiet --json \
					--timeout-ms 250)
				c1=$(ticks "$TARGET_PID")
				stop_target
				jq -r --arg w "$which" --arg op "$op" --arg d "$depth" --argjson cpu $((c1 - c0)) \
					--argjson hz "$HZ" \
					'[$w, $op, $d, (.iops | floor), .latency_us.p50, .latency_us.p99,
					  ($cpu / $hz * 1e6 / .ops * 100 | floor / 100)] | @tsv' <<<"$out"
			done
		done
	done
done
