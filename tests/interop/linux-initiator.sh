#!/usr/bin/env bash
# Interop test: the real Linux AoE initiator (Debian 12's `aoe` driver, in a
# qemu VM) against an AoE target running in a network namespace.
#
#   aoex-ivm:  qemu --tap0--[br0]--aoex-ivm0  ==veth==  aoex-tgt0 :aoex-itgt
#                                                        (target runs here)
#
# The VM reads the whole device, writes two regions (one ending at the last
# sector) and reads them back; the host compares against the backing file.
#
# Environment:
#   TARGET_CMD   command run in aoex-itgt via `sh -c` from the repository
#                root; @IFACE@, @FILE@ and @QUEUES@ are substituted, $QUEUES
#                is also exported. Its output goes to build/interop/target-qN.log.
#                Default: $AOE_XDP --iface @IFACE@ --queues @QUEUES@ --export 1.1=@FILE@
#                vblade:  TARGET_CMD='vblade 1 1 @IFACE@ @FILE@'
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
#                build/interop/aoe-qN.pcap; needs tcpdump or dumpcap
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib.sh"
source "$HERE/vm-lib.sh"

NS_VM=aoex-ivm
NS_TGT=aoex-itgt
TGT_IF=aoex-tgt0
BUILD=$REPO_ROOT/build
WORK=$BUILD/interop
DEFAULT_LOOP_QUEUES=""
[ -n "${TARGET_CMD:-}" ] || DEFAULT_LOOP_QUEUES=1
TARGET_CMD=${TARGET_CMD:-"$AOE_XDP --iface @IFACE@ --queues @QUEUES@ --export 1.1=@FILE@"}
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
TARGET_PID=""
CAPTURE_PID=""

cleanup() {
	stop_vm
	stop_target
	[ -z "$LOOP_DEV" ] || losetup -d "$LOOP_DEV" 2>/dev/null || true
	LOOP_DEV=""
	stop_capture
	del_netns "$NS_VM" "$NS_TGT"
}

# --- topology ---------------------------------------------------------------

# setup_net QUEUES: bridge + tap for qemu, veth with QUEUES queues to target.
setup_net() {
	local q=$1
	make_netns "$NS_VM"
	make_netns "$NS_TGT"
	# Ports must forward the moment they are up. That is already so with STP
	# off (the default), whatever forward_delay says; spelled out so that a
	# changed default cannot put the ports through 2 x 15 s of listening.
	ip -n "$NS_VM" link add br0 type bridge stp_state 0 forward_delay 0
	ip -n "$NS_VM" link set br0 up
	make_veth "$NS_VM" aoex-ivm0 "$NS_TGT" "$TGT_IF" "$q"
	ip -n "$NS_VM" link set aoex-ivm0 master br0
	# AoE frames have no flow hash, so the bridge would send them all to
	# veth queue 0. XPS maps each transmitting CPU to its own queue, which
	# spreads them over the target's queues as RSS would on a real NIC.
	local i ncpu
	ncpu=$(nproc)
	for ((i = 0; q > 1 && i < q; i++)); do
		ip netns exec "$NS_VM" sh -c \
			"printf '%x' $((1 << (i % ncpu))) > /sys/class/net/aoex-ivm0/queues/tx-$i/xps_cpus"
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

# start_target QUEUES LOG: run TARGET_CMD in its namespace, in its own
# session so that stopping it also stops whatever it forked.
start_target() {
	local q=$1 log=$2 cmd=$TARGET_CMD
	cmd=${cmd//@IFACE@/$TGT_IF}
	cmd=${cmd//@FILE@/${LOOP_DEV:-$BACKING}}
	cmd=${cmd//@QUEUES@/$q}
	echo "target: $cmd"
	QUEUES=$q setsid ip netns exec "$NS_TGT" sh -c "$cmd" >"$log" 2>&1 </dev/null &
	TARGET_PID=$!
	sleep 1
	if ! kill -0 "$TARGET_PID" 2>/dev/null; then
		echo "target exited at once; its log:"
		tail -n 30 "$log" | sed 's/^/  target| /'
		TARGET_PID=""
		return 1
	fi
}

# stop_target: SIGTERM first (lets a target detach XDP and flush), then KILL.
# Waits for every process in the target's namespace, not just for the PID we
# started (setsid may fork, and the target runs under ip netns exec and sh).
stop_target() {
	[ -n "$TARGET_PID" ] || return 0
	kill -TERM -- -"$TARGET_PID" 2>/dev/null || true
	ip netns pids "$NS_TGT" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
	if ! WAIT_SECS=10 wait_for eval '[ -z "$(ip netns pids "$NS_TGT" 2>/dev/null)" ]'; then
		kill -KILL -- -"$TARGET_PID" 2>/dev/null || true
		ip netns pids "$NS_TGT" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	fi
	wait "$TARGET_PID" 2>/dev/null || true
	TARGET_PID=""
}

# --- optional packet capture -------------------------------------------------

# start_capture FILE: AoE frames (ethertype 0x88a2) on the bridge-side veth.
start_capture() {
	[ "$CAPTURE" = 1 ] || return 0
	local tool
	if tool=$(command -v tcpdump); then
		set -- "$tool" -q -i aoex-ivm0 -w "$1" ether proto 0x88a2
	elif tool=$(command -v dumpcap); then
		set -- "$tool" -q -i aoex-ivm0 -w "$1" -f 'ether proto 0x88a2'
	else
		echo "CAPTURE=1 needs tcpdump or dumpcap" >&2
		return 1
	fi
	ip netns exec "$NS_VM" "$@" </dev/null >/dev/null 2>&1 &
	CAPTURE_PID=$!
	sleep 1 # let it open the interface before the VM talks
}

stop_capture() {
	[ -n "$CAPTURE_PID" ] || return 0
	kill -INT "$CAPTURE_PID" 2>/dev/null || true # INT: flush the pcap
	wait "$CAPTURE_PID" 2>/dev/null || true
	CAPTURE_PID=""
}

# --- VM ---------------------------------------------------------------------

# run_vm KERNEL INITRD LOG: boot the VM and wait until it powers off. In the
# background + `wait` so that a signal to this script runs the trap at once.
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

# check_queues NAME QUEUES TARGET_LOG: with aoe-xdp serving several queues,
# every queue served frames (its exit log has per-queue counters).
check_queues() {
	local name=$1 q=$2 tlog=$3 i
	grep -q "aoe-xdp INFO: stats total" "$tlog" || return 0
	grep "stats queue=" "$tlog" | tail -n "$q" | sed "s/^/[$name] /"
	for ((i = 0; i < q; i++)); do
		check "[$name] queue $i served frames" \
			bash -c "grep 'stats queue=$i ' '$tlog' | tail -n 1 | grep -q ' rx=[1-9]'"
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
		"aoe driver: $(grep -a '^AOETEST stats' "$log" | cut -d' ' -f3-)"
	# Not a target fault: see kicker() in vm-init.sh (Linux aoe driver stall).
	kicks=$(grep -ac '^AOETEST kick' "$log" || true)
	[ "$kicks" -eq 0 ] ||
		echo "$t note: the aoe driver looked stalled; the VM kicked it $kicks time(s)"
	size=$(vm_value "$log" size_bytes)
	check "$t size ${size:-?} = backing file size" same "$size" "$(stat -c %s "$BACKING")"
	check "$t whole-device md5 = backing file md5" same "$(vm_value "$log" read_md5)" "$orig"

	for off in "$WRITE_OFF" "$(( $(stat -c %s "$BACKING") - TAIL_LEN ))"; do
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

# run_once QUEUES KERNEL_DIR INITRD [loop]: one complete run with fresh
# namespaces; with "loop" the export is a loop device over the backing file.
run_once() {
	local q=$1 kdir=$2 initrd=$3 mode=${4:-file} start=$SECONDS orig
	local name=q$q
	[ "$mode" = file ] || name=$name-$mode
	local log=$WORK/vm-$name.log tlog=$WORK/target-$name.log
	echo "=== Linux aoe initiator vs target, QUEUES=$q, ${SIZE_MB} MiB, $mode ==="
	make_backing
	orig=$(md5sum <"$BACKING" | cut -d' ' -f1)
	if [ "$mode" = loop ]; then
		LOOP_DEV=$(losetup --find --show "$BACKING")
		echo "loop device: $LOOP_DEV"
	fi
	setup_net "$q"
	start_capture "$WORK/aoe-q$q.pcap"
	if start_target "$q" "$tlog"; then
		run_vm "$kdir/vmlinuz" "$initrd" "$log"
		check "[$name] target still running after the VM finished" kill -0 "$TARGET_PID"
		stop_target # flushes the target's writes before the host reads the file
		stop_capture
		if [ -n "$LOOP_DEV" ]; then
			losetup -d "$LOOP_DEV"
			LOOP_DEV=""
		fi
		check_results "$name" "$log" "$tlog" "$orig"
		check_queues "$name" "$q" "$tlog"
		if [ "$mode" = loop ] && grep -q "aoe-xdp INFO" "$tlog"; then
			check "[$name] served with the direct backend" grep -q "block device, direct" "$tlog"
		fi
	else
		fail "[$name] target started"
	fi
	cleanup
	echo "=== QUEUES=$q took $((SECONDS - start))s ==="
}

# run_demo KERNEL_DIR INITRD: `make demo`.
run_demo() {
	local kdir=$1 initrd=$2 log=$WORK/vm-demo.log tlog=$WORK/target-demo.log
	rm -f "$BACKING"
	truncate -s 1G "$BACKING"
	echo "demo: serving a sparse 1 GiB file ($BACKING, $(du -h "$BACKING" | cut -f1) on disk)"
	echo "demo: to a Linux VM (Debian 12 kernel, aoe driver) over a veth pair and a bridge in namespaces $NS_TGT and $NS_VM"
	setup_net 1
	start_target 1 "$tlog" || { cat "$tlog"; fail "demo target started"; return; }
	sed 's/^/  aoe-xdp| /' "$tlog"
	run_vm "$kdir/vmlinuz" "$initrd" "$log"
	grep -a "^AOETEST demo:" "$log.aoetest" | sed 's/^AOETEST demo: /  VM| /'
	stop_target
	echo "demo: the target's log after the VM powered off:"
	tail -n 5 "$tlog" | sed 's/^/  aoe-xdp| /'
	echo "demo: sector 0 of the backing file on the host:"
	head -c 4096 "$BACKING" | strings | sed 's/^/  host| /'
	echo "demo: the file is still sparse: $(du -h --apparent-size "$BACKING" | cut -f1) long, $(du -h "$BACKING" | cut -f1) on disk"
	check "demo: the VM's message is in the backing file" \
		grep -qa "Hello from the Linux aoe initiator" <(head -c 4096 "$BACKING")
	rm -f "$BACKING"
}

main() {
	need_root
	need_tools
	if [ "$SIZE_MB" -lt 6 ]; then
		echo "SIZE_MB must be at least 6 (a 1 MiB write at 4 MiB + the tail)" >&2
		exit 1
	fi
	if [[ $TARGET_CMD == "$AOE_XDP "* && ! -x $AOE_XDP ]]; then
		echo "$AOE_XDP not built (make build), or set e.g." >&2
		echo "  TARGET_CMD='vblade 1 1 @IFACE@ @FILE@'" >&2
		exit 1
	fi
	# The namespace names are global: a second run would tear down this one's.
	exec 9>/run/lock/aoex-linux-initiator.lock
	if ! flock -n 9; then
		echo "another linux-initiator.sh run is active (namespaces $NS_VM, $NS_TGT)" >&2
		exit 1
	fi
	cd "$REPO_ROOT" # TARGET_CMD may use paths relative to the repository
	mkdir -p "$WORK"
	local kdir initrd=$WORK/initrd.gz
	kdir=$(fetch_kernel "$BUILD/linux")
	build_initramfs "$kdir" "$HERE/vm-init.sh" "$initrd"

	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	local q
	if [ "${DEMO:-0}" = 1 ]; then
		run_demo "$kdir" "$initrd"
		summary
		return
	fi
	for q in $QUEUES_LIST; do
		run_once "$q" "$kdir" "$initrd"
	done
	for q in $LOOP_QUEUES; do
		run_once "$q" "$kdir" "$initrd" loop
	done
	summary
}

main "$@"
