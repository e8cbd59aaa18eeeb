#!/usr/bin/env bash
# `make bench`: aoe-xdp against vblade and against the XDP link-limit
# responder, on a veth pair between two network namespaces, in one run.
#
#   target ns aoex-bt (core 0)  <-- veth aoexbt0/aoexbi0 -->  ns aoex-bi: aoe-bench (core 1)
#
# Targets, each on a fresh veth pair and the same 256 MiB file in /dev/shm:
#   vblade         vblade -b $VBLADE_BUFCNT 1 1 IF FILE, pinned to core 0
#   aoe-xdp        target/release/aoe-xdp --iface IF --queues 1 --export 1.1=FILE,
#                  pinned to core 0 (skipped loudly if the binary is missing)
#   vblade-d-loop, aoe-xdp-mmap-loop, aoe-xdp-direct-loop
#                  the same file behind a loop device: vblade -d (O_DIRECT),
#                  aoe-xdp with the mmap backend, aoe-xdp with the direct
#                  (O_DIRECT + io_uring) backend; CPU time per I/O is reported.
#   xdp-responder  bench/xdp-responder: answers in the driver with XDP_TX and
#                  no storage, in the veth's threaded NAPI pinned to core 0
#                  (where the targets run).
#   xdp-responder-inline  the same, but answering inline in the softirq of
#                  aoe-bench's own send on core 1 (no cross-core wake-up: the
#                  best depth-1 latency, but one core does all the work).
#                  Both: writes Writes only, unless BENCH_RESPONDER_READS=1:
#                  it cannot grow a 60-byte read request into a 1060-byte
#                  reply on veth, so its reads need padded requests
#                  (aoe-bench --pad-reads), which also carry 1 KiB of junk
#                  the other way; those rows are labelled "read (padded)".
# Matrix: depth $BENCH_DEPTHS x {write, read}, random 2-sector (MTU 1500)
# requests over the whole file, BENCH_SECS seconds each; then a short
# --verify run against each real target.
#
# Environment: BENCH_SECS (10), BENCH_DEPTHS ("1 16 64"), BENCH_TARGETS
# ("vblade aoe-xdp xdp-responder xdp-responder-inline"), BENCH_NAME (bench-<UTC time>),
# BENCH_VERIFY_SECS (5, 0 skips), BENCH_RESPONDER_READS (1), BENCH_BUSY_POLL
# (1: aoe-bench spins on its own core instead of sleeping, so its wake-up is
# not part of the latency; 0 sleeps in recvmmsg like an interrupt-driven
# initiator), BENCH_RT (0; 1 runs the targets and aoe-bench SCHED_FIFO, for
# a machine where other work competes for the 2 cores; implies
# BENCH_BUSY_POLL=0), BENCH_TIMEOUT_MS (250: first retransmit timeout; veth loses
# nothing, so a timeout here is a scheduling stall of the target, and a short
# one turns stalls into retransmission storms), VBLADE_BUFCNT
# (64: vblade's default 16 would cap depth 64 at 16), AOE_XDP_ARGS (extra
# arguments), AOE_XDP_PEER_PASS (0; 1 attaches XDP_PASS to the initiator's
# veth for aoe-xdp too), BENCH_NO_BUILD (0).
#
# Output: bench/results/$BENCH_NAME.json (raw), bench/results/summary.md,
# bench/results/bench.svg; logs in bench/results/$BENCH_NAME.log.d/.
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
[ "$BENCH_RT" = 1 ] && CHRT=(chrt -f 10)
if [ "$BENCH_RT" = 1 ]; then
	BENCH_BUSY_POLL=${BENCH_BUSY_POLL:-0}
else
	BENCH_BUSY_POLL=${BENCH_BUSY_POLL:-1}
fi
BENCH_TIMEOUT_MS=${BENCH_TIMEOUT_MS:-250}
VBLADE_BUFCNT=${VBLADE_BUFCNT:-64}
AOE_XDP_ARGS=${AOE_XDP_ARGS:-}
AOE_XDP_PEER_PASS=${AOE_XDP_PEER_PASS:-0}
TARGET_CPU=${TARGET_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
DISK_MB=256

NS_T=aoex-bt
NS_I=aoex-bi
IF_T=aoexbt0
IF_I=aoexbi0
RESULTS=$HERE/results
LOGS=$RESULTS/$BENCH_NAME.log.d
BENCH=$ROOT/target/release/aoe-bench
RESPONDER=$HERE/xdp-responder
DISK=/dev/shm/aoex-bench-$$.img
WORK=$(mktemp -d /tmp/aoex-bench.XXXXXX)
TPID=
SAMPLER=

log() { echo "bench: $*" >&2; }

stop_target() {
	if [ -n "$SAMPLER" ]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=; fi
	if [ -n "$TPID" ]; then
		kill "$TPID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$TPID" 2>/dev/null || true
		wait "$TPID" 2>/dev/null || true
		TPID=
	fi
}

cleanup() {
	set +e
	stop_target
	del_netns "$NS_T" "$NS_I"
	[ -n "${LOOP:-}" ] && losetup -d "$LOOP"
	rm -f "$DISK"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

mkdir -p "$RESULTS" "$LOGS"

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	log "building aoe-bench and the XDP responder"
	(cd "$ROOT" && cargo build -q -p aoe-bench --release)
	make -s -C "$RESPONDER"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "disk: $DISK ($DISK_MB MiB); load average before: $LOAD_START"
dd if=/dev/zero of="$DISK" bs=1M count=$DISK_MB status=none
LOOP=
case " $BENCH_TARGETS " in *-loop" "*)
	LOOP=$(losetup --find --show "$DISK")
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

# Samples the target's VmRSS (kB) twice a second into $WORK/rss.
start_sampler() {
	local pid=$1
	: >"$WORK/rss"
	: >"$WORK/rss_anon"
	(
		while kill -0 "$pid" 2>/dev/null; do
			awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null >>"$WORK/rss" || true
			# Without the export's mapped (file) pages: the memory goal.
			awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null >>"$WORK/rss_anon" || true
			sleep 0.5
		done
	) &
	SAMPLER=$!
}

rss_max() { sort -n "$WORK/${1:-rss}" 2>/dev/null | tail -1; }
cpu_ticks() { # utime + stime of the target, in clock ticks
	[ -n "$TPID" ] && [ -r "/proc/$TPID/stat" ] || { echo 0; return; }
	sed 's/.*) //' "/proc/$TPID/stat" | awk '{print $12 + $13}'
}
HZ=$(getconf CLK_TCK)

BENCH_POLL_ARGS=()
[ "$BENCH_BUSY_POLL" = 1 ] && BENCH_POLL_ARGS=(--busy-poll)
bench() { # bench ARGS...: aoe-bench in the initiator namespace, pinned
	ip netns exec "$NS_I" "${CHRT[@]}" taskset -c "$BENCH_CPU" "$BENCH" --iface "$IF_I" --target 1.1 \
		--timeout-ms "$BENCH_TIMEOUT_MS" "${BENCH_POLL_ARGS[@]}" "$@"
}

# run_case TARGET OP DEPTH [EXTRA ARGS...]: one measurement, stored as
# $WORK/cases/TARGET-OP-dDEPTH.json with the target's RSS and CPU time.
run_case() {
	local target=$1 op=$2 depth=$3
	shift 3
	local pct=0 label=$op
	[ "$op" = read ] && pct=100
	case " $* " in *" --pad-reads "*) label="read (padded)" ;; esac
	local out="$WORK/cases/$target-$op-d$depth"
	mkdir -p "$WORK/cases"
	: >"$WORK/rss"
	: >"$WORK/rss_anon"
	local c0 c1 rc=0
	c0=$(cpu_ticks)
	bench --depth "$depth" --read-pct "$pct" --random --duration "$BENCH_SECS" --json "$@" \
		>"$out.bench.json" 2>"$LOGS/$target-$op-d$depth.stderr" || rc=$?
	c1=$(cpu_ticks)
	local rss anon
	rss=$(rss_max)
	anon=$(rss_max rss_anon)
	python3 - "$out.bench.json" "$out.json" "$target" "$label" "$depth" "$rc" "${rss:-}" "$(( c1 - c0 ))" "$HZ" "${anon:-}" <<'PY'
import json, sys
src, dst, target, op, depth, rc, rss, ticks, hz, anon = sys.argv[1:]
try:
    bench = json.load(open(src))
except Exception as e:
    bench = None
json.dump({
    "target": target, "op": op, "depth": int(depth), "exit": int(rc),
    "rss_kb": int(rss) if rss else None,
    "rss_anon_kb": int(anon) if anon else None,
    "cpu_s": int(ticks) / int(hz) if not target.startswith("xdp-responder") else None,
    "bench": bench,
}, open(dst, "w"), indent=1)
PY
	if [ -s "$out.bench.json" ]; then
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); l=d["latency_us"]; print("bench: %-14s %-14s depth %3s: %9.0f IOPS %7.1f MB/s p50 %7.1f us p99 %8.1f us retrans %d errors %d" % (sys.argv[2], sys.argv[3], d["config"]["depth"], d["iops"], d["mb_per_s"], l["p50"], l["p99"], d["retransmits"], d["errors_total"]))' "$out.bench.json" "$target" "$label" >&2
	else
		log "$target $label depth $depth: aoe-bench failed (exit $rc), see $LOGS/$target-$op-d$depth.stderr"
	fi
}

# verify_case TARGET: stamped writes and checked reads for BENCH_VERIFY_SECS.
verify_case() {
	local target=$1 rc=0
	[ "$BENCH_VERIFY_SECS" = 0 ] && return 0
	bench --depth 16 --read-pct 50 --random --verify --region-mb 64 \
		--duration "$BENCH_VERIFY_SECS" --json \
		>"$WORK/cases/$target-verify.bench.json" 2>"$LOGS/$target-verify.stderr" || rc=$?
	python3 - "$WORK/cases/$target-verify.bench.json" "$WORK/cases/$target-verify.json" "$target" "$rc" <<'PY'
import json, sys
src, dst, target, rc = sys.argv[1:]
try:
    bench = json.load(open(src))
except Exception:
    bench = None
json.dump({"target": target, "op": "verify", "depth": 16, "exit": int(rc), "bench": bench},
          open(dst, "w"), indent=1)
PY
	if [ "$rc" = 0 ]; then
		log "$target: --verify passed"
	else
		log "$target: --verify FAILED (exit $rc), see $LOGS/$target-verify.stderr"
	fi
}

# responder_map NAME: id of the map NAME used by the responder on $IF_T.
responder_map() {
	local prog
	prog=$(ip -n "$NS_T" -j link show "$IF_T" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["xdp"]["prog"]["id"])')
	bpftool -j prog show id "$prog" | python3 -c '
import json, subprocess, sys
for m in json.load(sys.stdin).get("map_ids", []):
    info = json.loads(subprocess.check_output(["bpftool", "-j", "map", "show", "id", str(m)]))
    if info.get("name") == sys.argv[1]:
        print(m)
        break
' "$1"
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

SKIPPED=()
for target in $BENCH_TARGETS; do
	case $target in
	vblade)
		command -v vblade >/dev/null || { skip_loudly "vblade is not installed (apt-get install vblade)"; SKIPPED+=(vblade); continue; }
		setup_net
		ip netns exec "$NS_T" "${CHRT[@]}" taskset -c "$TARGET_CPU" vblade -b "$VBLADE_BUFCNT" 1 1 "$IF_T" "$DISK" \
			>"$LOGS/vblade.log" 2>&1 &
		TPID=$!
		;;
	vblade-d-loop)
		setup_net
		ip netns exec "$NS_T" "${CHRT[@]}" taskset -c "$TARGET_CPU" vblade -d -b "$VBLADE_BUFCNT" 1 1 "$IF_T" "$LOOP" \
			>"$LOGS/$target.log" 2>&1 &
		TPID=$!
		;;
	aoe-xdp-mmap-loop | aoe-xdp-direct-loop)
		setup_net
		backend=${target#aoe-xdp-}
		backend=${backend%-loop}
		# shellcheck disable=SC2086
		ip netns exec "$NS_T" "${CHRT[@]}" taskset -c "$TARGET_CPU" "$AOE_XDP" --iface "$IF_T" --queues 1 \
			--export "1.1=$LOOP,$backend" $AOE_XDP_ARGS >"$LOGS/$target.log" 2>&1 &
		TPID=$!
		;;
	aoe-xdp)
		if [ ! -x "$AOE_XDP" ]; then
			skip_loudly "aoe-xdp: $AOE_XDP is missing (build it with 'make build' or 'cargo build --release'); skipping it"
			SKIPPED+=(aoe-xdp)
			continue
		fi
		setup_net
		if [ "$AOE_XDP_PEER_PASS" = 1 ]; then
			ip -n "$NS_I" link set dev "$IF_I" xdpdrv obj "$RESPONDER/xdp_pass.o" sec xdp
		fi
		# shellcheck disable=SC2086
		ip netns exec "$NS_T" "${CHRT[@]}" taskset -c "$TARGET_CPU" "$AOE_XDP" --iface "$IF_T" --queues 1 \
			--export "1.1=$DISK" $AOE_XDP_ARGS >"$LOGS/aoe-xdp.log" 2>&1 &
		TPID=$!
		;;
	xdp-responder | xdp-responder-inline)
		setup_net
		ip -n "$NS_T" link set dev "$IF_T" xdpdrv obj "$RESPONDER/aoe_responder.o" sec xdp
		# XDP_TX towards a veth needs NAPI on the receiving end.
		ip -n "$NS_I" link set dev "$IF_I" xdpdrv obj "$RESPONDER/xdp_pass.o" sec xdp
		# Replies to broadcast Query Configs need the responder's own MAC.
		mac=$(ip -n "$NS_T" -br link show "$IF_T" | awk '{print $3}')
		RESP_MAC_MAP=$(responder_map aoe_resp_mac)
		RESP_STATS_MAP=$(responder_map aoe_resp_stats)
		# shellcheck disable=SC2046
		bpftool map update id "$RESP_MAC_MAP" key 0 0 0 0 value $(echo "$mac" | sed 's/^/0x/; s/:/ 0x/g') 0 0
		if [ "$target" = xdp-responder ]; then
			# Move the target veth's NAPI (and so the responder) into a
			# kernel thread on the target core.
			ip netns exec "$NS_T" sh -c "echo 1 > /sys/class/net/$IF_T/threaded"
			napi=$(pgrep "^napi/$IF_T" || true)
			if [ -z "$napi" ]; then
				log "no NAPI thread for $IF_T; the responder runs inline"
			fi
			for p in $napi; do
				taskset -pc "$TARGET_CPU" "$p" >/dev/null
				[ "$BENCH_RT" = 1 ] && chrt -f -p 10 "$p"
			done
		fi
		;;
	*)
		log "unknown target $target"
		exit 2
		;;
	esac
	log "== $target"
	if ! wait_discovery; then
		log "$target did not answer Query Config/IDENTIFY; see $LOGS"
		stop_target
		SKIPPED+=("$target(no answer)")
		continue
	fi
	[ -n "$TPID" ] && start_sampler "$TPID"
	if [ "$target" != "${target#xdp-responder}" ]; then
		matrix "$target" --pad-reads
		bpftool -j map dump id "$RESP_STATS_MAP" >"$LOGS/$target-stats.json" 2>/dev/null || true
	else
		matrix "$target"
		verify_case "$target"
	fi
	stop_target
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$WORK/cases" "$RESULTS/$BENCH_NAME.json" "$BENCH_NAME" "$BENCH_SECS" "${SKIPPED[*]:-}" \
	"$LOAD_START" "$LOAD_END" "$COMMIT" "$VBLADE_BUFCNT" "${CHRT[*]:-}" <<'PY'
import glob, json, os, platform, sys, time
cases_dir, dst, name, secs, skipped, load0, load1, commit, vbufs, chrt = sys.argv[1:]
cases = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(cases_dir, "*.json")))
         if not f.endswith(".bench.json")]
json.dump({
    "name": name,
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "kernel": platform.release(),
    "bench_secs": float(secs),
    "cpus": os.cpu_count(),
    "skipped": skipped.split() if skipped else [],
    "loadavg_before": load0,
    "loadavg_after": load1,
    "commit": commit,
    "vblade_bufcnt": int(vbufs),
    "chrt": chrt,
    "cases": cases,
}, open(dst, "w"), indent=1)
PY
python3 "$HERE/report.py" "$RESULTS/$BENCH_NAME.json" --md "$RESULTS/summary.md" --svg "$RESULTS/bench.svg"
log "results: $RESULTS/$BENCH_NAME.json, $RESULTS/summary.md, $RESULTS/bench.svg"
if [ "$BENCH_RT" != 1 ] && awk '{exit !($1 > 1.0)}' <<<"$LOAD_START"; then
	log "NOTE: the load average was $LOAD_START before the run: other work competed for the" \
		"2 cores, so these numbers are noisy; BENCH_RT=1 gives steadier ones"
fi
