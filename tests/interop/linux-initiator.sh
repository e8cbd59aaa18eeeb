#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Interop test: the real Linux AoE initiator (Debian 12's `aoe` driver, in a
# qemu VM) against an AoE target running in a network namespace.
#
#   aoex-PID-ivm:  qemu --tap0--[br0]--axPIDvm  ==veth==  axPIDtgt :aoex-PID-itgt
#                                                        (target runs here)
#
# Names carry the run's PID (tests/lib.sh), so runs do not collide; each
# run keeps its files in build/interop/aoex-PID/ (the directories of runs
# that are no longer running are removed at the start of the next).
#
# The VM reads the whole device, writes two regions (one ending at the last
# sector) and reads them back; the host compares against the backing file.
#
# Environment:
#   TARGET_CMD   command run in aoex-itgt via `sh -c` from the repository
#                root; @IFACE@, @FILE@ and @QUEUES@ are substituted, $QUEUES
#                is also exported. Its output goes to build/interop/aoex-PID/target-qN.log.
#                Default: $AOE_XDP --iface @IFACE@ --queues @QUEUES@ --export 1.1=@FILE@
#                vblade:  TARGET_CMD='vblade 1 1 @IFACE@ @FILE@'
#                An aoe-xdp target (the command's first word is aoe-xdp) is
#                ready when it logs "serving", and must log its exit stats
#                (per-queue checks) and, for loop runs, the direct backend;
#                any other target is ready once it answers a Query Config.
#   QUEUES_LIST  veth queue counts to run, one full run each (default "1 2";
#                QUEUES=N alone runs just N)
#   LOOP_QUEUES  queue counts of further runs whose export is a loop device
#                over the backing file (aoe-xdp serves block devices with
#                O_DIRECT + io_uring); default "1" with the default
#                TARGET_CMD, "" otherwise
#   SIZE_MB      backing file size in MiB (default 32, at least 6)
#   VM_TIMEOUT   hard limit for one VM run in seconds (default 300)
#   DEMO=1       `make demo`: serve a sparse 1 GiB file to the VM, which writes
#                a message to sector 0 and reads it back; shows both sides
#   CAPTURE=1    record the AoE traffic of each run (on the bridge-side veth,
#                which also sees frames a target sends with XDP_TX) to
#                build/interop/aoex-PID/aoe-qN.pcap; needs tcpdump or dumpcap
#
# tests/demo.sh sources this file (then main does not run) and calls
# prepare and run_demo.
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
# shellcheck source=vm-lib.sh
source "$HERE/vm-lib.sh"

NS_VM=$(ns_name ivm)
NS_TGT=$(ns_name itgt)
TGT_IF=$(if_name tgt)
VM_IF=$(if_name vm) # the bridge-side end of the veth
BUILD=$REPO_ROOT/build
WORK=$BUILD/interop/$RUN_TAG
DEFAULT_LOOP_QUEUES=""
[ -n "${TARGET_CMD:-}" ] || DEFAULT_LOOP_QUEUES=1
TARGET_CMD=${TARGET_CMD:-"$AOE_XDP --iface @IFACE@ --queues @QUEUES@ --export 1.1=@FILE@"}
# An aoe-xdp target logs its readiness, its exit stats and its backend.
TARGET_IS_AOE_XDP=0
read -r _first_word _ <<<"$TARGET_CMD"
[ "$(basename "$_first_word")" != aoe-xdp ] || TARGET_IS_AOE_XDP=1
QUEUES_LIST=${QUEUES_LIST:-${QUEUES:-1 2}}
LOOP_QUEUES=${LOOP_QUEUES-$DEFAULT_LOOP_QUEUES}
SIZE_MB=${SIZE_MB:-32}
VM_TIMEOUT=${VM_TIMEOUT:-300}
AOE_TARGET=e1.1 # shelf 1, slot 1 as exported by TARGET_CMD
WRITE_OFF=$((4 << 20))
WRITE_LEN=$((1 << 20))
TAIL_LEN=$((64 << 10))

BACKING=$WORK/backing.img
LOOP_DEV=""
CAPTURE=${CAPTURE:-0}
QEMU_PID=""
CAPTURE_PID=""
KDIR=""
INITRD=""

# --- topology ---------------------------------------------------------------

# setup_net QUEUES: bridge + tap for qemu, veth with QUEUES queues to target.
# The namespaces belong to the calling test (run_test): removed when it ends.
setup_net() {
	local q=$1
	make_netns "$NS_VM"
	make_netns "$NS_TGT"
	# Ports must forward the moment they are up. That is already so with STP
	# off (the default), whatever forward_delay says; spelled out so that a
	# changed default cannot put the ports through 2 x 15 s of listening.
	ip -n "$NS_VM" link add br0 type bridge stp_state 0 forward_delay 0
	ip -n "$NS_VM" link set br0 up
	make_veth "$NS_VM" "$VM_IF" "$NS_TGT" "$TGT_IF" "$q"
	ip -n "$NS_VM" link set "$VM_IF" master br0
	# AoE frames have no flow hash, so the bridge would send them all to
	# veth queue 0. XPS maps each transmitting CPU to its own queue, which
	# spreads them over the target's queues as RSS would on a real NIC.
	local i ncpu
	ncpu=$(nproc)
	for ((i = 0; q > 1 && i < q; i++)); do
		ip netns exec "$NS_VM" sh -c \
			"printf '%x' $((1 << (i % ncpu))) > /sys/class/net/$VM_IF/queues/tx-$i/xps_cpus"
	done
	# Create the tap ourselves (qemu then just attaches to it) so it is on the
	# bridge before the VM sends anything; script=no leaves it alone.
	ip -n "$NS_VM" tuntap add dev tap0 mode tap
	ip -n "$NS_VM" link set tap0 master br0
	ip -n "$NS_VM" link set tap0 up
}

# --- backing file -----------------------------------------------------------

# make_backing: deterministic content in which every 16-byte block differs,
# so a whole-device md5 catches a lost, zeroed or misplaced sector. Pseudo-
# random (AES-CTR keystream of a fixed key) when openssl is there, else a
# counter. A pristine copy proves nothing outside the written regions changed.
make_backing() {
	local bytes=$((SIZE_MB << 20))
	if command -v openssl >/dev/null; then
		head -c "$bytes" /dev/zero |
			openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
				-iv 00000000000000000000000000000000 >"$BACKING"
	else
		seq -f '%015.0f' 1 $((bytes / 16)) >"$BACKING"
	fi
	cp "$BACKING" "$BACKING.orig"
}

# region_md5 FILE OFFSET LEN
region_md5() {
	dd if="$1" bs="$3" skip="$2" count=1 iflag=skip_bytes 2>/dev/null |
		md5sum | cut -d' ' -f1
}

# --- target -----------------------------------------------------------------

# answers_query_config: the target answers a Query Config for shelf 1 slot 1
# sent from the bridge (where the VM will be).
answers_query_config() {
	ip netns exec "$NS_VM" python3 "$REPO_ROOT/tests/tools/aoe_peer.py" config br0 1 1 >/dev/null
}

# start_vm_target QUEUES LOG: TARGET_CMD in its namespace through lib.sh's
# start_target_cmd; returns once it serves.
start_vm_target() {
	local q=$1 log=$2 cmd=$TARGET_CMD
	cmd=${cmd//@IFACE@/$TGT_IF}
	cmd=${cmd//@FILE@/${LOOP_DEV:-$BACKING}}
	cmd=${cmd//@QUEUES@/$q}
	echo "target: $cmd"
	if [ "$TARGET_IS_AOE_XDP" = 1 ]; then
		# exec: the exit status stop_target returns is aoe-xdp's own.
		start_target_cmd "$NS_TGT" "$log" "serving" env QUEUES="$q" sh -c "exec $cmd"
	else
		# No readiness line to wait for: wait until it answers.
		start_target_cmd "$NS_TGT" "$log" "" env QUEUES="$q" sh -c "$cmd" &&
			WAIT_SECS=15 wait_for answers_query_config
	fi
}

# --- optional packet capture -------------------------------------------------

# start_capture FILE: AoE frames (ethertype 0x88a2) on the bridge-side veth;
# returns once the capture tool says it listens.
start_capture() {
	[ "$CAPTURE" = 1 ] || return 0
	local tool
	if tool=$(command -v tcpdump); then
		set -- "$tool" -i "$VM_IF" -w "$1" ether proto 0x88a2
	elif tool=$(command -v dumpcap); then
		set -- "$tool" -i "$VM_IF" -w "$1" -f 'ether proto 0x88a2'
	else
		echo "CAPTURE=1 needs tcpdump or dumpcap" >&2
		return 1
	fi
	ip netns exec "$NS_VM" "$@" </dev/null >/dev/null 2>"$WORK/capture.log" &
	CAPTURE_PID=$!
	# tcpdump: "listening on IFACE", dumpcap: "Capturing on 'IFACE'"
	wait_log "$WORK/capture.log" "[Ll]istening on|Capturing on" 10
}

stop_capture() {
	[ -n "$CAPTURE_PID" ] || return 0
	kill -INT "$CAPTURE_PID" 2>/dev/null || true # INT: flush the pcap
	wait "$CAPTURE_PID" 2>/dev/null || true
	CAPTURE_PID=""
}

# --- VM ---------------------------------------------------------------------

# run_vm KERNEL INITRD LOG: boot the VM and wait until it powers off. In the
# background + `wait` so that a signal to this shell runs its trap at once.
run_vm() {
	local kernel=$1 initrd=$2 log=$3 rc=0
	local append="console=ttyS0 quiet panic=-1 aoetest.target=$AOE_TARGET"
	append+=" aoetest.wait=30 aoetest.deadline=$((VM_TIMEOUT - 30))"
	append+=" aoetest.write_off=$WRITE_OFF"
	append+=" aoetest.write_len=$WRITE_LEN aoetest.tail_len=$TAIL_LEN"
	[ "${DEMO:-0}" != 1 ] || append+=" aoetest.mode=demo"
	# KVM hangs on this machine: always TCG.
	timeout "$VM_TIMEOUT" ip netns exec "$NS_VM" qemu-system-x86_64 \
		-accel tcg -m 512 -nographic -no-reboot \
		-kernel "$kernel" -initrd "$initrd" -append "$append" \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
		-device e1000,netdev=n0 </dev/null >"$log" 2>&1 &
	QEMU_PID=$!
	wait "$QEMU_PID" || rc=$?
	QEMU_PID=""
	# The console has CRLF line ends and SeaBIOS' escape sequences, possibly in
	# front of the first AOETEST; keep the report lines clean in $log.aoetest.
	tr -d '\r' <"$log" | grep -ao 'AOETEST .*' >"$log.aoetest" || true
	[ "$rc" -ne 124 ] || echo "VM killed after ${VM_TIMEOUT}s"
}

stop_vm() {
	[ -n "$QEMU_PID" ] || return 0
	kill -TERM "$QEMU_PID" 2>/dev/null || true # timeout passes it to qemu
	wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=""
}

# --- checks -----------------------------------------------------------------

# vm_value LOG KEY: value of the first "AOETEST KEY=value" the VM reported.
vm_value() {
	grep -a "^AOETEST $2=" "$1" | head -n 1 | sed "s/^AOETEST $2=\([^ ]*\).*/\1/" || true
}

# vm_region LOG KEY OFFSET: md5 of "AOETEST KEY=md5 offset=OFFSET ...".
vm_region() {
	grep -a "^AOETEST $2=.* offset=$3 " "$1" | head -n 1 |
		sed "s/^AOETEST $2=\([^ ]*\).*/\1/" || true
}

same() { [ -n "$1" ] && [ "$1" = "$2" ]; }

# show_logs VM_LOG TARGET_LOG: enough context to diagnose a failed run.
show_logs() {
	echo "--- VM console (tail) ---"
	tail -n 80 "$1" | sed 's/^/  vm| /'
	echo "--- target log (tail) ---"
	tail -n 30 "$2" | sed 's/^/  target| /'
}

# queue_served TARGET_LOG QUEUE: the queue's last stats line counts frames
# received and sent. (How many depends on which CPUs qemu ran on, through
# XPS: on a loaded machine one queue may see little more than the
# initiator's discovery broadcast.)
queue_served() {
	local line
	line=$(grep "stats queue=$2 " "$1" | tail -n 1) || return 1
	[[ $line =~ \ rx=[1-9] ]] && [[ $line =~ \ tx=[1-9] ]]
}

# check_queues NAME QUEUES TARGET_LOG: with aoe-xdp serving several queues,
# every queue served frames (its exit log has per-queue counters). An
# aoe-xdp target that did not log its exit stats fails the check.
check_queues() {
	local name=$1 q=$2 tlog=$3 i
	if [ "$TARGET_IS_AOE_XDP" != 1 ]; then
		echo "[$name] not an aoe-xdp target: no per-queue counters to check"
		return 0
	fi
	if ! grep -q "aoe-xdp INFO: stats total" "$tlog"; then
		fail "[$name] target logged its exit stats (stats total)"
		return 0
	fi
	grep "stats queue=" "$tlog" | tail -n "$q" | sed "s/^/[$name] /"
	for ((i = 0; i < q; i++)); do
		check "[$name] queue $i served frames" queue_served "$tlog" "$i"
	done
}

# check_results NAME VM_LOG TARGET_LOG ORIG_MD5
check_results() {
	local con=$2 tlog=$3 orig=$4 t="[$1]" log=$2.aoetest
	local off len size wrote kicks
	if ! grep -aq "^AOETEST device=$AOE_TARGET" "$log"; then
		fail "$t device $AOE_TARGET appeared in the VM"
		show_logs "$con" "$tlog"
		return 0
	fi
	pass "$t device $AOE_TARGET appeared in the VM"

	echo "$t VM read the whole device in $(vm_value "$log" read_secs)s;" \
		"aoe driver: $(grep -a '^AOETEST stats' "$log" | cut -d' ' -f3- || true)"
	# Not a target fault: see kicker() in vm-init.sh (Linux aoe driver stall).
	kicks=$(grep -ac '^AOETEST kick' "$log" || true)
	[ "$kicks" -eq 0 ] ||
		echo "$t note: the aoe driver looked stalled; the VM kicked it $kicks time(s)"
	size=$(vm_value "$log" size_bytes)
	check "$t size ${size:-?} = backing file size" same "$size" "$(stat -c %s "$BACKING")"
	check "$t whole-device md5 = backing file md5" same "$(vm_value "$log" read_md5)" "$orig"

	for off in "$WRITE_OFF" "$(($(stat -c %s "$BACKING") - TAIL_LEN))"; do
		wrote=$(vm_region "$log" wrote_md5 "$off")
		len=$(grep -a "^AOETEST wrote_md5=.* offset=$off " "$log" | head -n 1 |
			sed 's/.* len=//' || true)
		check "$t region @$off: backing file has what the VM wrote" \
			same "$wrote" "$(region_md5 "$BACKING" "$off" "${len:-0}")"
		check "$t region @$off: VM re-read (uncached) = what it wrote" \
			same "$(vm_region "$log" reread_md5 "$off")" "$wrote"
		# Patch the pristine copy so the final whole-file compare below only
		# differs if the target wrote somewhere it should not have.
		[ -z "$len" ] || dd if="$BACKING" of="$BACKING.orig" bs="$len" skip="$off" \
			seek="$off" count=1 iflag=skip_bytes oflag=seek_bytes conv=notrunc 2>/dev/null
	done
	check "$t no bytes changed outside the written regions" cmp -s "$BACKING" "$BACKING.orig"
	if ! grep -aq '^AOETEST done' "$log"; then
		fail "$t VM finished its script"
		show_logs "$con" "$tlog"
	else
		pass "$t VM finished its script"
	fi
}

# --- main -------------------------------------------------------------------

# run_once QUEUES [loop]: one complete run with fresh namespaces (a run_test
# test: its namespaces, VM, capture, target and loop device are cleaned up
# when it ends, however it ends); with "loop" the export is a loop device
# over the backing file.
run_once() {
	local q=$1 mode=${2:-file} start=$SECONDS orig rc=0
	local name=q$q
	[ "$mode" = file ] || name=$name-$mode
	local log=$WORK/vm-$name.log tlog=$WORK/target-$name.log
	on_exit stop_vm
	on_exit stop_capture
	echo "=== Linux aoe initiator vs target, QUEUES=$q, ${SIZE_MB} MiB, $mode ==="
	make_backing
	orig=$(md5sum <"$BACKING" | cut -d' ' -f1)
	if [ "$mode" = loop ]; then
		make_loop "$BACKING"
		echo "loop device: $LOOP_DEV"
	fi
	setup_net "$q"
	start_capture "$WORK/aoe-$name.pcap"
	if ! start_vm_target "$q" "$tlog"; then
		fail "[$name] target started"
		return 0
	fi
	run_vm "$KDIR/vmlinuz" "$INITRD" "$log"
	check "[$name] target still running after the VM finished" target_alive
	stop_target || rc=$? # flushes the target's writes before the host reads the file
	if [ "$TARGET_IS_AOE_XDP" = 1 ]; then
		check "[$name] target exit status 0 after SIGTERM (was $rc)" test "$rc" -eq 0
	fi
	stop_capture
	if [ -n "$LOOP_DEV" ]; then
		del_loop "$LOOP_DEV"
		LOOP_DEV=""
	fi
	check_results "$name" "$log" "$tlog" "$orig"
	check_queues "$name" "$q" "$tlog"
	if [ "$mode" = loop ]; then
		if [ "$TARGET_IS_AOE_XDP" = 1 ]; then
			check "[$name] served with the direct backend" grep -q "block device, direct" "$tlog"
		else
			echo "[$name] not an aoe-xdp target: its backend is not checked"
		fi
	fi
	echo "=== QUEUES=$q took $((SECONDS - start))s ==="
}

# run_demo: `make demo` (a run_test test, like run_once).
run_demo() {
	local log=$WORK/vm-demo.log tlog=$WORK/target-demo.log
	on_exit stop_vm
	rm -f "$BACKING"
	truncate -s 1G "$BACKING"
	echo "demo: serving a sparse 1 GiB file ($BACKING, $(du -h "$BACKING" | cut -f1) on disk)"
	echo "demo: to a Linux VM (Debian 12 kernel, aoe driver) over a veth pair and a bridge in namespaces $NS_TGT and $NS_VM"
	setup_net 1
	if ! start_vm_target 1 "$tlog"; then
		fail "demo target started"
		return 0
	fi
	sed 's/^/  aoe-xdp| /' "$tlog"
	run_vm "$KDIR/vmlinuz" "$INITRD" "$log"
	grep -a "^AOETEST demo:" "$log.aoetest" | sed 's/^AOETEST demo: /  VM| /' || true
	stop_target || true
	echo "demo: the target's log after the VM powered off:"
	tail -n 5 "$tlog" | sed 's/^/  aoe-xdp| /'
	echo "demo: sector 0 of the backing file on the host:"
	head -c 4096 "$BACKING" | strings | sed 's/^/  host| /'
	echo "demo: the file is still sparse: $(du -h --apparent-size "$BACKING" | cut -f1) long, $(du -h "$BACKING" | cut -f1) on disk"
	check "demo: the VM's message is in the backing file" \
		grep -qa "Hello from the Linux aoe initiator" <(head -c 4096 "$BACKING")
	rm -f "$BACKING"
}

# prepare: checks, the kernel and the initramfs (KDIR, INITRD), the run's
# directory (WORK).
prepare() {
	need_root
	need_tools
	if [ "$SIZE_MB" -lt 6 ]; then
		echo "SIZE_MB must be at least 6 (a 1 MiB write at 4 MiB + the tail)" >&2
		exit 1
	fi
	if [ "$TARGET_IS_AOE_XDP" = 1 ] && [ ! -x "$AOE_XDP" ]; then
		echo "$AOE_XDP not built (make build), or set e.g." >&2
		echo "  TARGET_CMD='vblade 1 1 @IFACE@ @FILE@'" >&2
		exit 1
	fi
	cd "$REPO_ROOT" # TARGET_CMD may use paths relative to the repository
	# Directories of runs that have ended (their PID is gone) go; ours stays.
	local d
	for d in "$BUILD"/interop/aoex-*; do
		[ -d "$d" ] || continue
		kill -0 "${d##*/aoex-}" 2>/dev/null || rm -rf "$d"
	done
	mkdir -p "$WORK"
	# The big files go at exit; the logs stay for a look afterwards.
	on_exit rm -f "$BACKING" "$BACKING.orig" "$WORK/initrd.gz"
	INITRD=$WORK/initrd.gz
	# The kernel cache is shared between runs: one fetch at a time.
	local lock
	exec {lock}>"$BUILD/linux.lock"
	flock "$lock"
	KDIR=$(fetch_kernel "$BUILD/linux")
	exec {lock}>&-
	build_initramfs "$KDIR" "$HERE/vm-init.sh" "$INITRD"
}

main() {
	prepare
	local q
	if [ "${DEMO:-0}" = 1 ]; then
		run_test run_demo
		summary
		return
	fi
	for q in $QUEUES_LIST; do
		run_test run_once "$q"
	done
	for q in $LOOP_QUEUES; do
		run_test run_once "$q" loop
	done
	summary
}

# Sourced (tests/demo.sh): only the definitions.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
