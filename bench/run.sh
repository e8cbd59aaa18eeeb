#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make bench`: aoe-xdp against vblade and against the XDP link-limit
# responder, on a veth pair between two network namespaces, in one run.
#
#   target ns $RUN_TAG-bt (core 0) <-- veth ax<PID>t/ax<PID>i --> ns $RUN_TAG-bi: aoe-bench (core 1)
#
# Names carry the run's PID (tests/lib.sh), so two runs never collide.
# Targets, each on a fresh namespace pair and veth and the same 256 MiB file
# in /dev/shm, with `sync` between them:
#   vblade         vblade -b $VBLADE_BUFCNT 1 1 IF FILE, pinned to core 0
#   aoe-xdp        $AOE_XDP --iface IF --queues 1 --export 1.1=FILE,
#                  pinned to core 0 (skipped loudly if the binary is missing)
#   vblade-d-loop, aoe-xdp-mmap-loop, aoe-xdp-direct-loop
#                  the same file behind a loop device: vblade -d (O_DIRECT),
#                  aoe-xdp with the mmap backend, aoe-xdp with the direct
#                  (O_DIRECT + io_uring) backend.
#   xdp-responder  bench/xdp-responder: answers in the driver with XDP_TX and
#                  no storage, in the veth's threaded NAPI pinned to core 0
#                  (where the targets run). Needs bpftool.
#   xdp-responder-inline  the same, but answering inline in the softirq of
#                  aoe-bench's own send on core 1 (no cross-core wake-up: the
#                  best depth-1 latency, but one core does all the work).
#                  Both: writes only, unless BENCH_RESPONDER_READS=1:
#                  it cannot grow a 60-byte read request into a 1060-byte
#                  reply on veth, so its reads need padded requests
#                  (aoe-bench --pad-reads), which also carry 1 KiB of junk
#                  the other way; those rows are labelled "read (padded)".
# Matrix: depth $BENCH_DEPTHS x {write, read}, random 2-sector (MTU 1500)
# requests over the whole file, BENCH_SECS seconds each; then a short
# --verify run against each real target. Each case records IOPS, latency,
# and the target's peak RSS and CPU time (so CPU time per request).
#
# Environment: AOE_XDP, AOE_BENCH (default target/release/aoe-xdp,
# aoe-bench), BENCH_SECS (10), BENCH_DEPTHS ("1 16 64"), BENCH_TARGETS (all
# of the above), BENCH_NAME (bench-<UTC time>), BENCH_VERIFY_SECS (5, 0
# skips), BENCH_RESPONDER_READS (1), BENCH_BUSY_POLL (1: aoe-bench spins on
# its own core instead of sleeping, so its wake-up is not part of the
# latency; 0 sleeps in recvmmsg like an interrupt-driven initiator), BENCH_RT
# (0; 1 runs the targets and aoe-bench SCHED_FIFO, for a machine where other
# work competes for the 2 cores; implies BENCH_BUSY_POLL=0),
# BENCH_TIMEOUT_MS (250: first retransmit timeout; veth loses nothing, so a
# timeout here is a scheduling stall of the target, and a short one turns
# stalls into retransmission storms), VBLADE_BUFCNT (64: vblade's default 16
# would cap depth 64 at 16), AOE_XDP_ARGS (extra arguments),
# AOE_XDP_PEER_PASS (0; 1 attaches XDP_PASS to the initiator's veth for
# aoe-xdp too), BENCH_NO_BUILD (0; 1 skips `cargo build`, the responder's
# two BPF objects are still made when missing), TARGET_CPU (0), BENCH_CPU (1).
#
# Output: bench/results/$BENCH_NAME.json (raw), bench/results/summary.md,
# bench/results/bench.svg; logs in bench/results/$BENCH_NAME.log.d/.
# Needs root, jq, and for the responder bpftool and clang.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../tests/lib.sh
source "$ROOT/tests/lib.sh"
need_root

BENCH_SECS=${BENCH_SECS:-10}
BENCH_DEPTHS=${BENCH_DEPTHS:-"1 16 64"}
BENCH_TARGETS=${BENCH_TARGETS:-"vblade aoe-xdp xdp-responder xdp-responder-inline vblade-d-loop aoe-xdp-mmap-loop aoe-xdp-direct-loop"}
BENCH_NAME=${BENCH_NAME:-bench-$(date -u +%Y%m%dT%H%M%SZ)}
BENCH_VERIFY_SECS=${BENCH_VERIFY_SECS:-5}
BENCH_RESPONDER_READS=${BENCH_RESPONDER_READS:-1}
# BENCH_RT=1: run targets, the responder's NAPI thread and aoe-bench
# SCHED_FIFO (priority 10), so other work on the machine cannot preempt them
# (then aoe-bench sleeps instead of busy-polling by default: a spinning
# real-time thread gets throttled).
BENCH_RT=${BENCH_RT:-0}
CHRT=()
if [ "$BENCH_RT" = 1 ]; then
	CHRT=(chrt -f 10)
	BENCH_BUSY_POLL=${BENCH_BUSY_POLL:-0}
else
	BENCH_BUSY_POLL=${BENCH_BUSY_POLL:-1}
fi
BENCH_TIMEOUT_MS=${BENCH_TIMEOUT_MS:-250}
VBLADE_BUFCNT=${VBLADE_BUFCNT:-64}
AOE_XDP_ARGS=${AOE_XDP_ARGS:-}
AOE_XDP_PEER_PASS=${AOE_XDP_PEER_PASS:-0}
AOE_BENCH=${AOE_BENCH:-$ROOT/target/release/aoe-bench}
TARGET_CPU=${TARGET_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
DISK_MB=256

NS_T=$(ns_name bt)
NS_I=$(ns_name bi)
IF_T=$(if_name t)
IF_I=$(if_name i)
RESULTS=$HERE/results
LOGS=$RESULTS/$BENCH_NAME.log.d
RESPONDER=$HERE/xdp-responder
DISK=/dev/shm/$RUN_TAG-bench.img
WORK=$(mktemp -d "/tmp/$RUN_TAG-bench.XXXXXX")
on_exit rm -rf "$WORK" "$DISK"
mkdir -p "$RESULTS" "$LOGS" "$WORK/raw" "$WORK/cases"
SAMPLER=

log() { echo "bench: $*" >&2; }

command -v jq >/dev/null || { echo "bench: jq is missing (apt-get install jq)" >&2; exit 1; }
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	log "building aoe-bench"
	(cd "$ROOT" && cargo build -q -p aoe-bench --release)
fi
[ -x "$AOE_BENCH" ] || { echo "bench: $AOE_BENCH is missing (cargo build --release -p aoe-bench)" >&2; exit 1; }
# The responder's BPF objects (xdp_pass.o also serves AOE_XDP_PEER_PASS=1).
if [[ " $BENCH_TARGETS " == *" xdp-responder"* || $AOE_XDP_PEER_PASS == 1 ]]; then
	make -s -C "$RESPONDER"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "disk: $DISK ($DISK_MB MiB); load average before: $LOAD_START"
dd if=/dev/zero of="$DISK" bs=1M count=$DISK_MB status=none
case " $BENCH_TARGETS " in *-loop" "*)
	make_loop "$DISK" LOOP
	log "loop device: $LOOP over $DISK"
	;;
esac

# A fresh namespace pair and veth for every target, so no XDP program or
# queue state leaks from one to the next.
setup_net() {
	del_netns "$NS_T" "$NS_I"
	make_netns "$NS_T"
	make_netns "$NS_I"
	make_veth "$NS_T" "$IF_T" "$NS_I" "$IF_I"
}

# Samples the target's VmRSS and RssAnon (the memory without the export's
# mapped file pages), in kB, twice a second into $WORK/rss and rss_anon.
start_sampler() {
	local pid=$1
	: >"$WORK/rss"
	: >"$WORK/rss_anon"
	(
		while kill -0 "$pid" 2>/dev/null; do
			awk '/^VmRSS:/ { print $2 >>"'"$WORK/rss"'" } /^RssAnon:/ { print $2 >>"'"$WORK/rss_anon"'" }' \
				"/proc/$pid/status" 2>/dev/null || true
			sleep 0.5
		done
	) &
	SAMPLER=$!
}
stop_sampler() {
	[ -n "$SAMPLER" ] || return 0
	kill "$SAMPLER" 2>/dev/null || true
	wait "$SAMPLER" 2>/dev/null || true
	SAMPLER=
}
on_exit stop_sampler

rss_max() { sort -n "$WORK/$1" 2>/dev/null | tail -n 1; }
cpu_ticks() { # utime + stime of the target (all its threads), in clock ticks
	if [ -n "$TARGET_PID" ] && [ -r "/proc/$TARGET_PID/stat" ]; then
		sed 's/.*) //' "/proc/$TARGET_PID/stat" | awk '{ print $12 + $13 }'
	else
		echo 0
	fi
}
HZ=$(getconf CLK_TCK)

BENCH_POLL_ARGS=()
[ "$BENCH_BUSY_POLL" = 1 ] && BENCH_POLL_ARGS=(--busy-poll)
bench() { # bench ARGS...: aoe-bench in the initiator namespace, pinned
	ip netns exec "$NS_I" "${CHRT[@]}" taskset -c "$BENCH_CPU" "$AOE_BENCH" --iface "$IF_I" --target 1.1 \
		--timeout-ms "$BENCH_TIMEOUT_MS" "${BENCH_POLL_ARGS[@]}" "$@"
}

# json_or_null FILE: FILE's JSON, or null if it has none.
json_or_null() { jq -ce . "$1" 2>/dev/null || echo null; }

# run_case TARGET OP DEPTH [EXTRA ARGS...]: one measurement, stored as
# $WORK/cases/TARGET-OP-dDEPTH.json with the target's RSS and CPU time.
run_case() {
	local target=$1 op=$2 depth=$3
	shift 3
	local pct=0 label=$op name=$target-$op-d$depth rc=0 c0 c1 cpu=null
	[ "$op" = read ] && pct=100
	case " $* " in *" --pad-reads "*) label="read (padded)" ;; esac
	: >"$WORK/rss"
	: >"$WORK/rss_anon"
	c0=$(cpu_ticks)
	bench --depth "$depth" --read-pct "$pct" --random --duration "$BENCH_SECS" --json "$@" \
		>"$WORK/raw/$name.json" 2>"$LOGS/$name.stderr" || rc=$?
	c1=$(cpu_ticks)
	[ -n "$TARGET_PID" ] && cpu=$(((c1 - c0) * 1000 / HZ))
	jq -n --arg target "$target" --arg op "$label" --argjson depth "$depth" --argjson exit "$rc" \
		--arg rss "$(rss_max rss)" --arg anon "$(rss_max rss_anon)" --argjson cpu_ms "$cpu" \
		--argjson bench "$(json_or_null "$WORK/raw/$name.json")" '
		{target: $target, op: $op, depth: $depth, exit: $exit,
		 rss_kb: ($rss | tonumber? // null), rss_anon_kb: ($anon | tonumber? // null),
		 cpu_s: (if $cpu_ms == null then null else $cpu_ms / 1000 end),
		 bench: $bench}' >"$WORK/cases/$name.json"
	# One line per case: IOPS, latency, and the target's CPU time per request.
	jq -r '.bench as $b | select($b != null) |
		[.target, .op, $b.config.depth, $b.iops, $b.mb_per_s, $b.latency_us.p50, $b.latency_us.p99,
		 $b.retransmits, $b.errors_total,
		 (if .cpu_s != null and $b.ops > 0 then .cpu_s * 1e6 / $b.ops else "-" end)] | @tsv' \
		"$WORK/cases/$name.json" | {
		local t o d iops mbs p50 p99 rt err cpu_io
		if IFS=$'\t' read -r t o d iops mbs p50 p99 rt err cpu_io; then
			[ "$cpu_io" = - ] || cpu_io=$(printf '%.1f' "$cpu_io")
			printf 'bench: %-20s %-14s depth %3s: %9.0f IOPS %7.1f MB/s p50 %7.1f us p99 %8.1f us retrans %d errors %d target CPU %s us/IO\n' \
				"$t" "$o" "$d" "$iops" "$mbs" "$p50" "$p99" "$rt" "$err" "$cpu_io" >&2
		else
			log "$target $label depth $depth: aoe-bench failed (exit $rc), see $LOGS/$name.stderr"
		fi
	}
}

# verify_case TARGET: stamped writes and checked reads for BENCH_VERIFY_SECS.
verify_case() {
	local target=$1 rc=0
	[ "$BENCH_VERIFY_SECS" = 0 ] && return 0
	bench --depth 16 --read-pct 50 --random --verify --region-mb 64 \
		--duration "$BENCH_VERIFY_SECS" --json \
		>"$WORK/raw/$target-verify.json" 2>"$LOGS/$target-verify.stderr" || rc=$?
	jq -n --arg target "$target" --argjson exit "$rc" \
		--argjson bench "$(json_or_null "$WORK/raw/$target-verify.json")" \
		'{target: $target, op: "verify", depth: 16, exit: $exit, bench: $bench}' \
		>"$WORK/cases/$target-verify.json"
	if [ "$rc" = 0 ]; then
		log "$target: --verify passed"
	else
		log "$target: --verify FAILED (exit $rc), see $LOGS/$target-verify.stderr"
	fi
}

# responder_map NAME: id of the map NAME that the responder on $IF_T uses
# (other runs' responders have maps of the same name).
responder_map() {
	local prog ids
	prog=$(ip -n "$NS_T" -j link show "$IF_T" | jq -r '.[0].xdp.prog.id')
	ids=$(bpftool -j prog show id "$prog" | jq -c '.map_ids // []')
	bpftool -j map show | jq -r --argjson ids "$ids" --arg name "$1" \
		'.[] | select(.name == $name and (.id as $id | $ids | index($id) != null)) | .id'
}

wait_discovery() {
	WAIT_SECS=15 wait_for bench --discover-only --discover-timeout 1 >/dev/null 2>&1
}

matrix() { # matrix TARGET [EXTRA READ ARGS...]
	local target=$1 d
	shift
	for d in $BENCH_DEPTHS; do run_case "$target" write "$d"; done
	if [ "$target" = "${target#xdp-responder}" ] || [ "$BENCH_RESPONDER_READS" = 1 ]; then
		for d in $BENCH_DEPTHS; do run_case "$target" read "$d" "$@"; done
	fi
}

# start_aoe_xdp TARGET EXPORT: aoe-xdp pinned to the target core.
start_aoe_xdp() {
	# shellcheck disable=SC2086 # AOE_XDP_ARGS is a list of words
	start_target_cmd "$NS_T" "$LOGS/$1.log" serving "${CHRT[@]}" taskset -c "$TARGET_CPU" \
		"$AOE_XDP" --iface "$IF_T" --queues 1 --export "1.1=$2" $AOE_XDP_ARGS
}

# start_vblade TARGET PATH [VBLADE OPTIONS...]: vblade pinned to the target
# core. It prints no readiness line: wait_discovery waits for it.
start_vblade() {
	local target=$1 path=$2
	shift 2
	start_target_cmd "$NS_T" "$LOGS/$target.log" "" "${CHRT[@]}" taskset -c "$TARGET_CPU" \
		vblade -b "$VBLADE_BUFCNT" "$@" 1 1 "$IF_T" "$path"
}

# start_responder TARGET: the XDP responder on the target veth.
start_responder() {
	local mac napi p
	ip -n "$NS_T" link set dev "$IF_T" xdpdrv obj "$RESPONDER/aoe_responder.o" sec xdp
	# XDP_TX towards a veth needs NAPI on the receiving end.
	ip -n "$NS_I" link set dev "$IF_I" xdpdrv obj "$RESPONDER/xdp_pass.o" sec xdp
	# Replies to broadcast Query Configs need the responder's own MAC.
	mac=$(ip -n "$NS_T" -j link show "$IF_T" | jq -r '.[0].address')
	# shellcheck disable=SC2046 # one word per byte
	bpftool map update id "$(responder_map aoe_resp_mac)" key 0 0 0 0 \
		value $(sed 's/^/0x/; s/:/ 0x/g' <<<"$mac") 0 0
	RESP_STATS_MAP=$(responder_map aoe_resp_stats)
	[ "$1" = xdp-responder ] || return 0
	# Move the target veth's NAPI (and so the responder) into a kernel
	# thread on the target core.
	ip netns exec "$NS_T" sh -c "echo 1 > /sys/class/net/$IF_T/threaded"
	napi=$(pgrep "^napi/$IF_T" || true)
	[ -n "$napi" ] || log "no NAPI thread for $IF_T; the responder runs inline"
	for p in $napi; do
		taskset -pc "$TARGET_CPU" "$p" >/dev/null
		[ "$BENCH_RT" = 1 ] && chrt -f -p 10 "$p"
	done
	return 0
}

SKIPPED=()
skip() { # skip TARGET WHY
	skip_loudly "$1: $2; skipping it"
	SKIPPED+=("$1")
}
for target in $BENCH_TARGETS; do
	case $target in
	vblade | vblade-d-loop)
		command -v vblade >/dev/null || { skip "$target" "vblade is not installed (apt-get install vblade)"; continue; } ;;
	aoe-xdp*)
		[ -x "$AOE_XDP" ] || { skip "$target" "$AOE_XDP is missing (make build)"; continue; } ;;
	xdp-responder*)
		command -v bpftool >/dev/null || { skip "$target" "bpftool is not installed (apt-get install bpftool)"; continue; } ;;
	*)
		log "unknown target $target"
		exit 2
		;;
	esac
	setup_net
	case $target in
	vblade) start_vblade "$target" "$DISK" ;;
	vblade-d-loop) start_vblade "$target" "$LOOP" -d ;;
	aoe-xdp)
		if [ "$AOE_XDP_PEER_PASS" = 1 ]; then
			ip -n "$NS_I" link set dev "$IF_I" xdpdrv obj "$RESPONDER/xdp_pass.o" sec xdp
		fi
		start_aoe_xdp "$target" "$DISK"
		;;
	aoe-xdp-mmap-loop) start_aoe_xdp "$target" "$LOOP,mmap" ;;
	aoe-xdp-direct-loop) start_aoe_xdp "$target" "$LOOP,direct" ;;
	xdp-responder*) start_responder "$target" ;;
	esac
	log "== $target"
	if ! wait_discovery; then
		log "$target did not answer Query Config/IDENTIFY; see $LOGS"
		kill_target
		SKIPPED+=("$target(no answer)")
		continue
	fi
	[ -n "$TARGET_PID" ] && start_sampler "$TARGET_PID"
	if [ "$target" != "${target#xdp-responder}" ]; then
		matrix "$target" --pad-reads
		bpftool -j map dump id "$RESP_STATS_MAP" >"$LOGS/$target-stats.json" 2>/dev/null || true
	else
		matrix "$target"
		verify_case "$target"
	fi
	stop_sampler
	# vblade has no SIGTERM handler: 143 is its normal end.
	stop_target || [ $? = 143 ] || log "$target ended badly when stopped (see $LOGS/$target.log)"
	# The next target must not pay for this one's dirty pages.
	sync
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
shopt -s nullglob
cases=("$WORK"/cases/*.json)
cat "${cases[@]}" </dev/null | jq -s \
	--arg name "$BENCH_NAME" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kernel "$(uname -r)" \
	--argjson secs "$BENCH_SECS" --argjson cpus "$(nproc --all)" --arg skipped "${SKIPPED[*]}" \
	--arg load0 "$LOAD_START" --arg load1 "$LOAD_END" \
	--arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--argjson vbufs "$VBLADE_BUFCNT" --arg chrt "${CHRT[*]}" '
	{name: $name, date_utc: $date, kernel: $kernel, bench_secs: $secs, cpus: $cpus,
	 skipped: ($skipped | split(" ") | map(select(. != ""))),
	 loadavg_before: $load0, loadavg_after: $load1, commit: $commit,
	 vblade_bufcnt: $vbufs, chrt: $chrt, cases: .}' >"$RESULTS/$BENCH_NAME.json"
python3 "$HERE/report.py" "$RESULTS/$BENCH_NAME.json" --md "$RESULTS/summary.md" --svg "$RESULTS/bench.svg"
log "results: $RESULTS/$BENCH_NAME.json, $RESULTS/summary.md, $RESULTS/bench.svg"
if [ "$BENCH_RT" != 1 ] && awk '{ exit !($1 > 1.0) }' <<<"$LOAD_START"; then
	log "NOTE: the load average was $LOAD_START before the run: other work competed for the" \
		"2 cores, so these numbers are noisy; BENCH_RT=1 gives steadier ones"
fi
