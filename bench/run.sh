#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make bench`: aoe-xdp against vblade and against the XDP link-limit
# responder, on a veth pair between two network namespaces, in one run.
#
#   target ns $RUN_TAG-bt (core 0) <-- veth ax<PID>t/ax<PID>i --> ns $RUN_TAG-bi: aoe-bench (core 1)
#
# Names carry the run's PID (tests/lib.sh), so two runs never collide.
# Every target serves the same 256 MiB file on a real disk (BENCH_DISK_DIR,
# default build/bench: the repository's filesystem, refused if it is tmpfs
# or ramfs unless BENCH_ALLOW_RAM=1), or that file behind a loop device
# (losetup's default, buffered: the loop writes into the file's page cache
# and a flush of the loop device fsyncs the file). The file is written in
# full and synced once, so no target pays for block allocation; before each
# target it is read back into the page cache (for loop targets the loop
# device too), so every target starts from the same state; `sync` runs
# before every case, so no case pays for an earlier one's dirty pages.
# Targets, each on a fresh namespace pair and veth, pinned to core 0:
#   durable (a write is acknowledged once it is on stable storage):
#     aoe-xdp            --export 1.1=FILE (the default: durable, buffered)
#     vblade-s           vblade -s (O_SYNC)
#     vblade-d-s         vblade -d -s (O_DIRECT|O_SYNC)
#     aoe-xdp-loop, vblade-s-loop, vblade-d-s-loop
#                        the same on the loop device (aoe-xdp: durable, direct)
#     aoe-xdp-direct     --export 1.1=FILE,direct (not in the default list)
#   not durable:
#     aoe-xdp-writeback  --export 1.1=FILE,writeback
#     vblade             plain vblade
#     aoe-xdp-writeback-loop, vblade-d-loop
#                        --export 1.1=LOOP,writeback (direct) and vblade -d
#   no storage:
#     xdp-responder      bench/xdp-responder: answers in the driver with XDP_TX
#                        in the veth's threaded NAPI pinned to core 0 (where
#                        the targets run). Needs bpftool.
#     xdp-responder-inline  the same, but answering inline in the softirq of
#                        aoe-bench's own send on core 1 (no cross-core
#                        wake-up: the best depth-1 latency, but one core does
#                        all the work). Reads only with
#                        BENCH_RESPONDER_READS=1: it cannot grow a 60-byte
#                        read request into a 1060-byte reply on veth, so its
#                        reads need padded requests (aoe-bench --pad-reads),
#                        labelled "read (padded)".
# vblade runs with -b $VBLADE_BUFCNT. aoe-xdp must know the `writeback`
# export option (the script stops otherwise: an older binary's default
# export is not durable, so its rows would be mislabelled).
# Matrix: writes at depth $BENCH_DEPTHS on every target, reads on aoe-xdp,
# vblade, aoe-xdp-loop and vblade-d-loop; random 2-sector (MTU 1500)
# requests over the whole file, BENCH_SECS seconds each; then a short
# --verify run against each real target. Each case records IOPS, latency,
# and the target's peak RSS and CPU time (so CPU time per request).
# Default run: 32 cases + 10 verify runs, about 7 minutes.
#
# Environment: AOE_XDP, AOE_BENCH (default target/release/aoe-xdp,
# aoe-bench), BENCH_SECS (10), BENCH_DEPTHS ("1 16"), BENCH_TARGETS (the
# default list above, in that order), BENCH_NAME (bench-<UTC time>),
# BENCH_RESULTS (bench/results), BENCH_DISK_DIR (build/bench),
# BENCH_BEFORE (an earlier run's JSON whose aoe-xdp/vblade ratios the
# summary shows beside these; default the newest JSON in BENCH_RESULTS,
# empty for none), BENCH_VERIFY_SECS (5, 0 skips), BENCH_RESPONDER_READS
# (0), BENCH_BUSY_POLL (1: aoe-bench spins on its own core instead of
# sleeping, so its wake-up is not part of the latency; 0 sleeps in recvmmsg
# like an interrupt-driven initiator), BENCH_RT (0; 1 runs the targets and
# aoe-bench SCHED_FIFO, for a machine where other work competes for the 2
# cores; implies BENCH_BUSY_POLL=0), BENCH_TIMEOUT_MS (250: first
# retransmit timeout; veth loses nothing, so a timeout here is a scheduling
# stall of the target, and a short one turns stalls into retransmission
# storms), BENCH_DURABLE_TIMEOUT_MS (2000: the same for durable targets,
# whose writes queue behind each other's syncs), VBLADE_BUFCNT (64:
# vblade's default 16 would cap the depth), AOE_XDP_ARGS (extra arguments),
# AOE_XDP_PEER_PASS (0; 1 attaches XDP_PASS to the initiator's veth for
# aoe-xdp too), BENCH_NO_BUILD (0; 1 skips `cargo build`, the responder's
# two BPF objects are still made when missing), BENCH_ALLOW_RAM (0),
# TARGET_CPU (0), BENCH_CPU (1).
#
# Output: $BENCH_RESULTS/$BENCH_NAME.json (raw), summary.md and bench.svg
# there, the goals and the aoe-xdp/vblade table on stdout; logs in
# $BENCH_RESULTS/$BENCH_NAME.log.d/.
# Needs root, jq, findmnt, and for the responder bpftool and clang.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../tests/lib.sh
source "$ROOT/tests/lib.sh"
need_root

BENCH_SECS=${BENCH_SECS:-10}
BENCH_DEPTHS=${BENCH_DEPTHS:-"1 16"}
BENCH_TARGETS=${BENCH_TARGETS:-"aoe-xdp vblade-s vblade-d-s aoe-xdp-writeback vblade xdp-responder xdp-responder-inline aoe-xdp-loop vblade-s-loop vblade-d-s-loop aoe-xdp-writeback-loop vblade-d-loop"}
BENCH_NAME=${BENCH_NAME:-bench-$(date -u +%Y%m%dT%H%M%SZ)}
BENCH_RESULTS=${BENCH_RESULTS:-$HERE/results}
BENCH_DISK_DIR=${BENCH_DISK_DIR:-$ROOT/build/bench}
BENCH_ALLOW_RAM=${BENCH_ALLOW_RAM:-0}
BENCH_VERIFY_SECS=${BENCH_VERIFY_SECS:-5}
BENCH_RESPONDER_READS=${BENCH_RESPONDER_READS:-0}
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
BENCH_DURABLE_TIMEOUT_MS=${BENCH_DURABLE_TIMEOUT_MS:-2000}
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
RESULTS=$BENCH_RESULTS
LOGS=$RESULTS/$BENCH_NAME.log.d
RESPONDER=$HERE/xdp-responder
DISK=$BENCH_DISK_DIR/$RUN_TAG-bench.img
LOOP=
WORK=$(mktemp -d "/tmp/$RUN_TAG-bench.XXXXXX")
on_exit rm -rf "$WORK" "$DISK"
SAMPLER=

log() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 2; }

# The earlier run to compare with: the newest JSON in the results directory
# unless BENCH_BEFORE says otherwise (set and empty: none).
if [ -z "${BENCH_BEFORE+set}" ]; then
	BENCH_BEFORE=
	for f in "$RESULTS"/*.json; do
		[ -f "$f" ] || continue
		[ "$f" != "$RESULTS/$BENCH_NAME.json" ] || continue
		if [ -z "$BENCH_BEFORE" ] || [ "$f" -nt "$BENCH_BEFORE" ]; then
			BENCH_BEFORE=$f
		fi
	done
fi
[ -z "$BENCH_BEFORE" ] || [ -f "$BENCH_BEFORE" ] || die "BENCH_BEFORE=$BENCH_BEFORE is not a file"

# target_spec TARGET: what TARGET is. Sets KIND (aoe-xdp, vblade or
# responder), MEDIUM (file or loop), DURABLE (true, false; null for no
# storage), OPS (the operations measured), EXPORT_OPTS (appended to
# aoe-xdp's export) and VBLADE_OPTS; fails for an unknown TARGET.
target_spec() {
	KIND=aoe-xdp MEDIUM=file DURABLE=true OPS=write EXPORT_OPTS='' VBLADE_OPTS=()
	case $1 in
	aoe-xdp) OPS="write read" ;;
	aoe-xdp-direct) EXPORT_OPTS=,direct ;;
	aoe-xdp-writeback) EXPORT_OPTS=,writeback DURABLE=false ;;
	aoe-xdp-loop) MEDIUM=loop OPS="write read" ;;
	aoe-xdp-writeback-loop) MEDIUM=loop EXPORT_OPTS=,writeback DURABLE=false ;;
	vblade) KIND=vblade DURABLE=false OPS="write read" ;;
	vblade-s) KIND=vblade VBLADE_OPTS=(-s) ;;
	vblade-d-s) KIND=vblade VBLADE_OPTS=(-d -s) ;;
	vblade-s-loop) KIND=vblade MEDIUM=loop VBLADE_OPTS=(-s) ;;
	vblade-d-s-loop) KIND=vblade MEDIUM=loop VBLADE_OPTS=(-d -s) ;;
	vblade-d-loop) KIND=vblade MEDIUM=loop DURABLE=false OPS="write read" VBLADE_OPTS=(-d) ;;
	xdp-responder | xdp-responder-inline)
		KIND=responder DURABLE=null
		if [ "$BENCH_RESPONDER_READS" = 1 ]; then OPS="write read"; fi
		;;
	*) return 1 ;;
	esac
}
for target in $BENCH_TARGETS; do
	target_spec "$target" || die "unknown target $target (see the top of $0)"
done

command -v jq >/dev/null || die "jq is missing (apt-get install jq)"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	log "building aoe-bench"
	(cd "$ROOT" && cargo build -q -p aoe-bench --release)
fi
[ -x "$AOE_BENCH" ] || die "$AOE_BENCH is missing (cargo build --release -p aoe-bench)"
# A binary without `writeback` predates durable-by-default exports: its
# default export is not durable, and the durable rows would be wrong.
if [[ " $BENCH_TARGETS " == *" aoe-xdp"* && -x $AOE_XDP ]] &&
	! "$AOE_XDP" --help 2>/dev/null | grep -q -- --writeback; then
	die "$AOE_XDP does not know the writeback option, so its default export is not" \
		"durable: build the current tree (make build), or leave the aoe-xdp targets out of BENCH_TARGETS"
fi
# The responder's BPF objects (xdp_pass.o also serves AOE_XDP_PEER_PASS=1).
if [[ " $BENCH_TARGETS " == *" xdp-responder"* || $AOE_XDP_PEER_PASS == 1 ]]; then
	make -s -C "$RESPONDER"
fi

# Durable writes on a RAM filesystem measure nothing.
mkdir -p "$BENCH_DISK_DIR"
read -r DISK_FS DISK_SRC < <(findmnt -n -o FSTYPE,SOURCE --target "$BENCH_DISK_DIR")
case $DISK_FS in tmpfs | ramfs)
	[ "$BENCH_ALLOW_RAM" = 1 ] || die "$BENCH_DISK_DIR is on $DISK_FS: durable writes there measure" \
		"nothing; set BENCH_DISK_DIR to a directory on a disk (or BENCH_ALLOW_RAM=1)"
	;;
esac
# Only now, so that a refused run leaves nothing in the results directory.
mkdir -p "$RESULTS" "$LOGS" "$WORK/raw" "$WORK/cases"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "disk: $DISK ($DISK_MB MiB, $DISK_FS on $DISK_SRC); load average before: $LOAD_START"
# Written in full, not sparse: no target pays for allocating blocks.
dd if=/dev/zero of="$DISK" bs=1M count=$DISK_MB conv=fsync status=none
case " $BENCH_TARGETS " in *-loop" "*)
	make_loop "$DISK" LOOP
	log "loop device: $LOOP over $DISK"
	;;
esac

# warm PATH...: reads PATHs through the page cache, so every target starts
# with all of the file cached (O_DIRECT writes of an earlier target drop
# the pages they overwrite).
warm() {
	local p
	for p in "$@"; do dd if="$p" of=/dev/null bs=1M status=none; done
}

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
	local timeout=$BENCH_TIMEOUT_MS
	# A durable write waits for the disk behind up to depth-1 others; that
	# is no stall, and retransmitting it would only add writes.
	if [ "$DURABLE" = true ]; then timeout=$BENCH_DURABLE_TIMEOUT_MS; fi
	ip netns exec "$NS_I" "${CHRT[@]}" taskset -c "$BENCH_CPU" "$AOE_BENCH" --iface "$IF_I" --target 1.1 \
		--timeout-ms "$timeout" "${BENCH_POLL_ARGS[@]}" "$@"
}

# json_or_null FILE: FILE's JSON, or null if it has none.
json_or_null() { jq -ce . "$1" 2>/dev/null || echo null; }

# run_case TARGET OP DEPTH [EXTRA ARGS...]: one measurement, stored as
# $WORK/cases/TARGET-OP-dDEPTH.json with the target's RSS and CPU time and
# what the target is (MEDIUM, DURABLE, TARGET_CMD of the running target).
run_case() {
	local target=$1 op=$2 depth=$3
	shift 3
	local pct=0 label=$op name=$target-$op-d$depth rc=0 c0 c1 cpu=null
	[ "$op" = read ] && pct=100
	case " $* " in *" --pad-reads "*) label="read (padded)" ;; esac
	# Nothing left dirty by the previous case is written back during this one.
	sync
	: >"$WORK/rss"
	: >"$WORK/rss_anon"
	c0=$(cpu_ticks)
	bench --depth "$depth" --read-pct "$pct" --random --duration "$BENCH_SECS" --json "$@" \
		>"$WORK/raw/$name.json" 2>"$LOGS/$name.stderr" || rc=$?
	c1=$(cpu_ticks)
	[ -n "$TARGET_PID" ] && cpu=$(((c1 - c0) * 1000 / HZ))
	jq -n --arg target "$target" --arg op "$label" --argjson depth "$depth" --argjson exit "$rc" \
		--arg medium "$MEDIUM" --argjson durable "$DURABLE" --arg cmd "$TARGET_CMD" \
		--arg rss "$(rss_max rss)" --arg anon "$(rss_max rss_anon)" --argjson cpu_ms "$cpu" \
		--argjson bench "$(json_or_null "$WORK/raw/$name.json")" '
		{target: $target, op: $op, depth: $depth, exit: $exit,
		 medium: $medium, durable: $durable, cmd: $cmd,
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
			printf 'bench: %-22s %-13s depth %3s: %9.0f IOPS %7.1f MB/s p50 %7.1f us p99 %8.1f us retrans %d errors %d target CPU %s us/IO\n' \
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

matrix() { # matrix TARGET: every operation of OPS at every depth
	local target=$1 op d
	for op in $OPS; do
		for d in $BENCH_DEPTHS; do
			if [ "$KIND" = responder ] && [ "$op" = read ]; then
				run_case "$target" read "$d" --pad-reads
			else
				run_case "$target" "$op" "$d"
			fi
		done
	done
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
	target_spec "$target"
	case $KIND in
	vblade)
		command -v vblade >/dev/null || { skip "$target" "vblade is not installed (apt-get install vblade)"; continue; } ;;
	aoe-xdp)
		[ -x "$AOE_XDP" ] || { skip "$target" "$AOE_XDP is missing (make build)"; continue; } ;;
	responder)
		command -v bpftool >/dev/null || { skip "$target" "bpftool is not installed (apt-get install bpftool)"; continue; } ;;
	esac
	path=$DISK
	[ "$MEDIUM" = loop ] && path=$LOOP
	# The same starting state for every target: nothing dirty (the previous
	# target's writes must not be written back on this one's time), the
	# whole file in the page cache.
	sync
	if [ "$KIND" != responder ]; then
		if [ "$MEDIUM" = loop ]; then warm "$DISK" "$LOOP"; else warm "$DISK"; fi
	fi
	setup_net
	log "== $target"
	started=1
	case $KIND in
	vblade)
		TARGET_CMD="vblade -b $VBLADE_BUFCNT${VBLADE_OPTS[*]:+ ${VBLADE_OPTS[*]}} 1 1 IF ${MEDIUM^^}"
		start_vblade "$target" "$path" "${VBLADE_OPTS[@]}" || started=0
		;;
	aoe-xdp)
		if [ "$AOE_XDP_PEER_PASS" = 1 ]; then
			ip -n "$NS_I" link set dev "$IF_I" xdpdrv obj "$RESPONDER/xdp_pass.o" sec xdp
		fi
		TARGET_CMD="aoe-xdp --export 1.1=${MEDIUM^^}$EXPORT_OPTS${AOE_XDP_ARGS:+ $AOE_XDP_ARGS}"
		start_aoe_xdp "$target" "$path$EXPORT_OPTS" || started=0
		;;
	responder)
		TARGET_CMD="bench/xdp-responder"
		start_responder "$target"
		;;
	esac
	if [ "$started" = 0 ]; then
		log "$target did not start; see $LOGS/$target.log"
		SKIPPED+=("$target(did not start)")
		continue
	fi
	if ! wait_discovery; then
		log "$target did not answer Query Config/IDENTIFY; see $LOGS"
		kill_target
		SKIPPED+=("$target(no answer)")
		continue
	fi
	[ -n "$TARGET_PID" ] && start_sampler "$TARGET_PID"
	matrix "$target"
	if [ "$KIND" = responder ]; then
		bpftool -j map dump id "$RESP_STATS_MAP" >"$LOGS/$target-stats.json" 2>/dev/null || true
	else
		verify_case "$target"
	fi
	stop_sampler
	# vblade has no SIGTERM handler: 143 is its normal end.
	stop_target || [ $? = 143 ] || log "$target ended badly when stopped (see $LOGS/$target.log)"
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
shopt -s nullglob
cases=("$WORK"/cases/*.json)
cat "${cases[@]}" </dev/null | jq -s \
	--arg name "$BENCH_NAME" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kernel "$(uname -r)" \
	--argjson secs "$BENCH_SECS" --argjson cpus "$(nproc --all)" --arg skipped "${SKIPPED[*]}" \
	--arg load0 "$LOAD_START" --arg load1 "$LOAD_END" \
	--arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--argjson vbufs "$VBLADE_BUFCNT" --arg chrt "${CHRT[*]}" \
	--arg disk "$DISK" --arg fs "$DISK_FS" --arg src "$DISK_SRC" --argjson mb "$DISK_MB" \
	--arg loop "$LOOP" --arg before "$BENCH_BEFORE" '
	{name: $name, format: 2, date_utc: $date, kernel: $kernel, bench_secs: $secs, cpus: $cpus,
	 skipped: ($skipped | split(" ") | map(select(. != ""))),
	 loadavg_before: $load0, loadavg_after: $load1, commit: $commit,
	 vblade_bufcnt: $vbufs, chrt: $chrt,
	 disk: {path: $disk, fstype: $fs, source: $src, mb: $mb, loop: $loop,
	        state: "written in full and synced, read into the page cache before each target"},
	 before: (if $before == "" then null else $before end),
	 cases: .}' >"$RESULTS/$BENCH_NAME.json"
python3 "$HERE/report.py" "$RESULTS/$BENCH_NAME.json" --md "$RESULTS/summary.md" --svg "$RESULTS/bench.svg" \
	--text
log "results: $RESULTS/$BENCH_NAME.json, $RESULTS/summary.md, $RESULTS/bench.svg"
if [ "$BENCH_RT" != 1 ] && awk '{ exit !($1 > 1.0) }' <<<"$LOAD_START"; then
	log "NOTE: the load average was $LOAD_START before the run: other work competed for the" \
		"2 cores, so these numbers are noisy; BENCH_RT=1 gives steadier ones"
fi
