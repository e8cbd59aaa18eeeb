#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Power-cut test: aoe-xdp serves a sparse file on ext4 from inside a qemu VM
# (the storage node: the Debian kernel of the interop test, a busybox
# initramfs with aoe-xdp, the ext4 filesystem on a virtio disk backed by a
# host file). aoe-bench on the host writes to it; at a random moment qemu
# gets SIGKILL: the power cut, the VM's page cache is gone. The VM boots
# again on the same disk (ext4 replays its journal), aoe-xdp serves the same
# file again, and `aoe-bench --verify-only` checks every write that was
# acknowledged before the cut.
#
#   aoex-PID-pvm:  qemu --tap0--[br0]--axPIDpvm  ==veth==  axPIDpini :aoex-PID-pini
#                  (aoe-xdp in the VM, on its e1000)        (aoe-bench runs here)
#
# A cut: the VM boots and makes a fresh export file (so no earlier cut's data
# is in it; aoe-bench's generations, taken from the clock, also tell an
# earlier run's data from this one's); aoe-bench --verify writes sequentially
# (each LBA at most once: a late duplicate of a write could otherwise pass
# for a lost one) with a fresh state file; qemu is killed; the VM boots
# again; aoe-bench --verify-only reads back every sector up to the last
# acknowledged one.
#
# POWERCUT_CUTS cuts in POWERCUT_MODE must lose nothing; then
# POWERCUT_WRITEBACK_CUTS cuts with the writeback option must lose
# acknowledged writes (they would be in the VM's page cache only): that shows
# the test can see a loss at all.
#
# Environment:
#   POWERCUT_MODE            default (the default: no export option, so
#                            aoe-xdp's own default, durable, is what is cut),
#                            durable, or sync (durable by its older name)
#   POWERCUT_CUTS            cuts in that mode (default 5)
#   POWERCUT_WRITEBACK_CUTS  cuts with ,writeback (default 2; 0: none)
#   POWERCUT_ACCEL           auto (default: KVM if a probe boot works, else
#                            TCG), kvm or tcg
#   POWERCUT_SEED            seed of the random cut moments (default: random)
#   POWERCUT_MIN_MS, POWERCUT_MAX_MS
#                            the cut comes this long after the VM served its
#                            first writes (default 2000 and 6000)
#   AOE_XDP, AOE_BENCH       the binaries (default target/release/*)
# Each run keeps its console and aoe-bench logs in build/powercut/aoex-PID/
# (removed at the start of a later run); its disk image and state files go
# at exit.
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
# shellcheck source=../interop/vm-lib.sh
source "$HERE/../interop/vm-lib.sh"

AOE_BENCH=${AOE_BENCH:-$REPO_ROOT/target/release/aoe-bench}
MODE=${POWERCUT_MODE:-default}
CUTS=${POWERCUT_CUTS:-5}
WB_CUTS=${POWERCUT_WRITEBACK_CUTS:-2}
ACCEL=${POWERCUT_ACCEL:-auto}
MIN_MS=${POWERCUT_MIN_MS:-2000}
MAX_MS=${POWERCUT_MAX_MS:-6000}

NS_VM=$(ns_name pvm)
NS_INI=$(ns_name pini)
VM_IF=$(if_name pvm) # the bridge-side end of the veth
INI_IF=$(if_name pini)
BUILD=$REPO_ROOT/build
WORK=$BUILD/powercut/$RUN_TAG
DISK=$WORK/disk.img
INITRD=$WORK/initrd.gz
RESULTS=$WORK/results
KDIR=""
QEMU_ACCEL=()
DISK_SIZE=4G
EXPORT_SIZE=1G
# aoe-bench writes over the whole export: far more than a cut lets it write
# (checked: no LBA twice), and it bounds the state file (8 bytes a sector).
REGION_MB=1024
# The node's modules, in load order (virtio disk, ext4, the e1000 NIC).
NODE_MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	virtio_blk crc16 mbcache jbd2 crc32c_generic ext4 e1000)

# --- preparation ------------------------------------------------------------

prepare() {
	need_root
	need_tools
	local tool bin d lock
	for tool in mkfs.ext4 python3 ldd; do
		command -v "$tool" >/dev/null || { echo "missing $tool (make deps)" >&2; exit 1; }
	done
	for bin in "$AOE_XDP" "$AOE_BENCH"; do
		[ -x "$bin" ] || { echo "missing $bin (make build)" >&2; exit 1; }
	done
	case $MODE in
	durable | sync | default) ;;
	*) echo "POWERCUT_MODE=$MODE: want durable, sync or default" >&2; exit 1 ;;
	esac
	if ! [ "$MIN_MS" -ge 0 ] 2>/dev/null || ! [ "$MAX_MS" -ge "$MIN_MS" ] 2>/dev/null; then
		echo "want 0 <= POWERCUT_MIN_MS <= POWERCUT_MAX_MS" >&2
		exit 1
	fi
	if [ "$WB_CUTS" -gt 0 ] && ! "$AOE_XDP" --help | grep -q writeback; then
		echo "$AOE_XDP has no writeback option (POWERCUT_WRITEBACK_CUTS=0 runs without)" >&2
		exit 1
	fi
	# Directories of runs that have ended (their PID is gone) go; ours stays.
	for d in "$BUILD"/powercut/aoex-*; do
		[ -d "$d" ] || continue
		kill -0 "${d##*/aoex-}" 2>/dev/null || rm -rf "$d"
	done
	mkdir -p "$WORK"
	: >"$RESULTS"
	on_exit remove_big_files
	# The kernel cache is shared with the interop test: one fetch at a time.
	exec {lock}>"$BUILD/linux.lock"
	flock "$lock"
	KDIR=$(fetch_kernel "$BUILD/linux" powercut "${NODE_MODULES[@]}")
	exec {lock}>&-
	initramfs_root "$KDIR" "$HERE/node-init.sh" "$WORK/initramfs-root" powercut
	add_binary "$WORK/initramfs-root" "$AOE_XDP" /bin/aoe-xdp
	pack_initramfs "$WORK/initramfs-root" "$INITRD"
	# The host makes the filesystem; the VM makes each export file in it.
	truncate -s "$DISK_SIZE" "$DISK"
	mkfs.ext4 -q -F "$DISK"
	pick_accel
}

# remove_big_files: at exit; the logs stay for a look afterwards.
remove_big_files() { rm -rf "$DISK" "$INITRD" "$WORK"/*.state "$WORK/initramfs-root"; }

# kvm_boots: the kernel gets as far as its panic for want of a root
# filesystem (qemu then exits: -no-reboot) under KVM. On some nested hosts a
# KVM guest hangs in the kernel's decompressor instead.
kvm_boots() {
	timeout 10 qemu-system-x86_64 -accel kvm -cpu host -m 256 -nographic -no-reboot \
		-nic none -kernel "$KDIR/vmlinuz" -append "console=ttyS0 panic=-1" \
		</dev/null 2>&1 | grep -aq "Kernel panic"
}

pick_accel() {
	case $ACCEL in
	kvm) QEMU_ACCEL=(-accel kvm -cpu host) ;;
	tcg) QEMU_ACCEL=(-accel tcg) ;;
	auto)
		if [ -w /dev/kvm ] && kvm_boots; then
			QEMU_ACCEL=(-accel kvm -cpu host)
		else
			QEMU_ACCEL=(-accel tcg)
			[ ! -w /dev/kvm ] || echo "a KVM guest did not boot here: TCG"
		fi
		;;
	*) echo "POWERCUT_ACCEL=$ACCEL: want auto, kvm or tcg" >&2; exit 1 ;;
	esac
	echo "qemu: ${QEMU_ACCEL[*]}"
}

# setup_net: bridge + tap for qemu, veth to the initiator's namespace.
setup_net() {
	make_netns "$NS_VM"
	make_netns "$NS_INI"
	# STP off: ports forward the moment they are up.
	ip -n "$NS_VM" link add br0 type bridge stp_state 0 forward_delay 0
	ip -n "$NS_VM" link set br0 up
	make_veth "$NS_VM" "$VM_IF" "$NS_INI" "$INI_IF"
	ip -n "$NS_VM" link set "$VM_IF" master br0
	# Our own tap, on the bridge before the VM sends anything; qemu attaches.
	ip -n "$NS_VM" tuntap add dev tap0 mode tap
	ip -n "$NS_VM" link set tap0 master br0
	ip -n "$NS_VM" link set tap0 up
}

# --- the storage node -------------------------------------------------------

# boot_node LOG MODE EXPORT [SIZE]: boot the VM as the harness's target
# (lib.sh start_target_cmd: qemu is TARGET_PID, kill_target is the power
# cut); returns once aoe-xdp in it serves EXPORT. With SIZE the VM makes
# EXPORT afresh, sparse.
boot_node() {
	local log=$1 mode=$2 export=$3 size=${4:-}
	local append="console=ttyS0 quiet panic=-1 powercut.export=$export powercut.mode=$mode"
	[ -z "$size" ] || append+=" powercut.create=$size"
	# Enough RAM that the page cache holds every write of a cut.
	TARGET_READY_SECS=60 start_target_cmd "$NS_VM" "$log" "serving" \
		qemu-system-x86_64 "${QEMU_ACCEL[@]}" -m 1024 -smp 1 -nographic -no-reboot \
		-kernel "$KDIR/vmlinuz" -initrd "$INITRD" -append "$append" \
		-drive "if=virtio,file=$DISK,format=raw" \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device e1000,netdev=n0
}

# node_said LOG PATTERN: the lines of the console that match, CRs removed.
node_said() { tr -d '\r' <"$1" | grep -a -- "$2" || true; }

# served_writes: aoe-xdp's latest per-queue stats line (every second) counts
# writes.
served_writes() {
	local n
	n=$(target_output | tr -d '\r' | grep -oE "stats queue=0 .* writes=[0-9]+" | tail -n 1 |
		grep -oE "[0-9]+$") || return 1
	[ "$n" -gt 0 ]
}

# max_acked_lba STATE: the highest LBA the state file records an acknowledged
# generation for (-1: none). The file: a 32-byte header, then a little-endian
# u64 generation per sector from LBA 0.
max_acked_lba() {
	python3 -c 'import sys
d = open(sys.argv[1], "rb").read()[32:].rstrip(b"\0")
print((len(d) - 1) // 8 if d else -1)' "$1"
}

# stop_bench: the load generator of a cut that ended early must not write
# into the next cut's export.
BENCH_PID=""
stop_bench() {
	[ -n "$BENCH_PID" ] || return 0
	kill -KILL "$BENCH_PID" 2>/dev/null || true
	wait "$BENCH_PID" 2>/dev/null || true
	BENCH_PID=""
}

now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }

# show_verify OUT: aoe-bench --verify-only's summary and its first complaints
# (not the warning that the state covers more than the region read).
show_verify() {
	{
		grep -E '^(verify-only on |read |retransmits |verify: )' "$1" || true
		grep -v 'covers [0-9]* sectors, the region' "$1" | grep -m 4 '^aoe-bench: ' || true
	} | sed 's/^/  aoe-bench| /'
}

# The verify outcomes (EXIT_STATUS FAILED_SECTORS).
intact() { [ "$1" -eq 0 ] && [ "$2" -eq 0 ]; }
loss_reported() { [ "$1" -ne 0 ] && [ "$2" -gt 0 ]; }

# --- one cut ----------------------------------------------------------------

# cut MODE N DELAY_MS: boot, load, cut after DELAY_MS, boot again, verify. In
# writeback mode the verify must find lost writes, in any other none.
cut() {
	local mode=$1 n=$2 delay_ms=$3 t="[$1 cut $2]"
	local export=cut-$1-$2.img state=$WORK/cut-$1-$2.state
	local load_log=$WORK/cut-$1-$2-load.console verify_log=$WORK/cut-$1-$2-verify.console
	local bench_out=$WORK/cut-$1-$2-load.bench verify_out=$WORK/cut-$1-$2-verify.bench
	local t0 load_ms acked writes errors spr max_lba region rc=0 known failures
	echo "$t export /mnt/$export, cut ${delay_ms} ms after the first served writes"
	on_exit stop_bench
	if ! boot_node "$load_log" "$mode" "$export" "$EXPORT_SIZE"; then
		fail "$t the node booted and served a fresh export"
		return 0
	fi
	node_said "$load_log" "^NODE export=" | sed "s/^/$t /"
	# Sequential writes only; the duration only bounds a run the cut did not
	# end. Short timeouts: the requests in flight at the cut are given up soon.
	t0=$(now_us)
	ip netns exec "$NS_INI" "$AOE_BENCH" --iface "$INI_IF" --target 1.1 --depth 16 \
		--read-pct 0 --verify --state "$state" --region-mb "$REGION_MB" --duration 60 \
		--timeout-ms 50 --max-retries 3 --discover-timeout 15 --quiet \
		>"$bench_out" 2>&1 &
	BENCH_PID=$!
	if WAIT_SECS=30 wait_for served_writes; then
		pass "$t the node served writes"
	else
		fail "$t the node served writes"
	fi
	sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
	check "$t the load still ran at the cut" kill -0 "$BENCH_PID"
	check "$t the node still ran at the cut" target_alive
	kill_target # the power cut
	load_ms=$((($(now_us) - t0) / 1000))
	kill -TERM "$BENCH_PID" 2>/dev/null || true # stop issuing; saves the state
	wait "$BENCH_PID" || true # its requests in flight at the cut time out
	BENCH_PID=""
	sed 's/^/  aoe-bench| /' "$bench_out"
	# aoe-bench: "state: saved N acknowledged sectors to PATH".
	acked=$(sed -nE 's/^state: saved ([0-9]+) acknowledged sectors to .*/\1/p' "$bench_out" | tail -n 1)
	check "$t writes were acknowledged before the cut (state: saved ${acked:-<no such line>})" \
		test "${acked:-0}" -gt 0
	# Each LBA at most once: every write issued (done or given up) fits in
	# the region, so the sequential writes never wrapped.
	writes=$(awk '$1 == "write" { print $2 }' "$bench_out")
	errors=$(sed -nE 's/.*, errors ([0-9]+) .*/\1/p' "$bench_out")
	spr=$(sed -nE 's/.* ([0-9]+) sectors\/request.*/\1/p' "$bench_out")
	check "$t no LBA written twice: $((${writes:-0} + ${errors:-0})) writes of ${spr:-?} sectors in a region of $((REGION_MB * 2048))" \
		test "$(((${writes:-0} + ${errors:-0}) * ${spr:-0}))" -le "$((REGION_MB * 2048))"
	[ "${acked:-0}" -gt 0 ] || return 0

	if ! boot_node "$verify_log" "$mode" "$export"; then
		fail "$t the node booted again after the cut and served the export"
		return 0
	fi
	pass "$t the node booted again after the cut and served the export"
	node_said "$verify_log" "^NODE fs: " | sed "s/^/$t /"
	# Read back up to the last acknowledged sector (not the whole region: at
	# 1 KiB a request that would take long).
	max_lba=$(max_acked_lba "$state")
	region=$((max_lba / 2048 + 1))
	ip netns exec "$NS_INI" "$AOE_BENCH" --iface "$INI_IF" --target 1.1 --region-mb "$region" \
		--verify-only --state "$state" --discover-timeout 15 >"$verify_out" 2>&1 || rc=$?
	kill_target # it only read; the next boot replays the journal anyway
	show_verify "$verify_out"
	known=$(sed -nE 's/^verify: [0-9]+ sectors checked \(([0-9]+) against a known generation\), [0-9]+ failures$/\1/p' "$verify_out")
	failures=$(sed -nE 's/^verify: [0-9]+ sectors checked \([0-9]+ against a known generation\), ([0-9]+) failures$/\1/p' "$verify_out")
	echo "$t load ran ${load_ms} ms until the cut: $acked sectors acknowledged (up to LBA $max_lba);" \
		"verify-only: ${known:-?} checked against their generation, ${failures:-?} failed (exit $rc)" |
		tee -a "$RESULTS"
	grep -q "recovery complete" <(node_said "$verify_log" "^NODE fs: ") || echo "$t (no journal replay)" >>"$RESULTS"
	check "$t verify-only checked every acknowledged sector (${known:-none} of $acked)" \
		test "${known:-0}" -eq "$acked"
	if [ "$mode" = writeback ]; then
		check "$t the cut lost acknowledged writes and verify-only says so (${failures:-?} sectors, exit $rc)" \
			loss_reported "$rc" "${failures:-0}"
	else
		check "$t every acknowledged write survived the cut (${failures:-?} failures, exit $rc)" \
			intact "$rc" "${failures:-1}"
	fi
}

# --- main -------------------------------------------------------------------

main() {
	local start=$SECONDS i
	prepare
	setup_net
	# The cut moments, drawn here: a run_test subshell reseeds RANDOM.
	local seed=${POWERCUT_SEED:-$RANDOM}
	RANDOM=$seed
	local delays=()
	for ((i = 0; i < CUTS + WB_CUTS; i++)); do
		delays+=("$((MIN_MS + (RANDOM * 32768 + RANDOM) % (MAX_MS - MIN_MS + 1)))")
	done
	echo "power cuts: $CUTS in mode $MODE, $WB_CUTS in mode writeback; cut after ${delays[*]} ms (POWERCUT_SEED=$seed)"
	for ((i = 1; i <= CUTS; i++)); do
		run_test cut "$MODE" "$i" "${delays[i - 1]}"
	done
	for ((i = 1; i <= WB_CUTS; i++)); do
		run_test cut writeback "$i" "${delays[CUTS + i - 1]}"
	done
	echo "--- per cut"
	cat "$RESULTS"
	echo "power-cut test took $((SECONDS - start)) s (qemu ${QEMU_ACCEL[*]}); logs in $WORK"
	summary
}

main "$@"
