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
# Two more scenarios, each in a VM of its own:
#   restart  the VM writes and reads back 4 KiB blocks while the target is
#            killed (SIGKILL) three times and stopped (SIGTERM) twice,
#            restarted at once each time: no error, no block lost.
#   fullfs   the export is a sparse file on a small filesystem that fills
#            up: only the writes past the free space fail (EIO in the VM), the
#            target lives, reads and overwrites keep working.
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
#   SCENARIOS    which to run, in this order (default "basic restart fullfs";
#                basic = the runs of QUEUES_LIST and LOOP_QUEUES), e.g.
#                SCENARIOS="restart fullfs". restart and fullfs need aoe-xdp.
#   RESTART_GAP  restart: seconds of writes after the initiator has resumed
#                before the next restart (default 5); the driver takes about
#                15 s to resume, so the VM writes for about 5 x (15 + GAP) s
#   FULL_FS      fullfs: the filesystem under the export, tmpfs (default) or
#                ext4 (on a loop device); 8 MiB, the VM writes 12 MiB
#   FULL_OPTS    fullfs: export options appended to the file, e.g. ",direct"
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
SCENARIOS=${SCENARIOS:-basic restart fullfs}
RESTART_GAP=${RESTART_GAP:-5}
# How the target goes down in the restart scenario, in this order.
RESTART_SIGNALS="KILL TERM KILL KILL TERM"
FULL_FS=${FULL_FS:-tmpfs}
FULL_OPTS=${FULL_OPTS:-}
FULL_FS_MB=8
FULL_EXPORT_MB=32
FILL_MB=12
FULL_LOOP=""
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

# run_vm KERNEL INITRD LOG [aoetest.KEY=VALUE...]: boot the VM and wait
# until it powers off.
run_vm() {
	start_vm "$@"
	wait_vm "$3"
}

# start_vm KERNEL INITRD LOG [aoetest.KEY=VALUE...]: boot the VM in the
# background (QEMU_PID); its console goes to LOG. In the background (also for
# run_vm) so that a signal to this shell runs its trap at once.
start_vm() {
	local kernel=$1 initrd=$2 log=$3
	shift 3
	local append="console=ttyS0 quiet panic=-1 aoetest.target=$AOE_TARGET"
	append+=" aoetest.wait=30 aoetest.deadline=$((VM_TIMEOUT - 30))"
	append+=" aoetest.write_off=$WRITE_OFF"
	append+=" aoetest.write_len=$WRITE_LEN aoetest.tail_len=$TAIL_LEN"
	[ "${DEMO:-0}" != 1 ] || append+=" aoetest.mode=demo"
	[ "$#" -eq 0 ] || append+=" $*"
	# KVM hangs on this machine: always TCG.
	timeout "$VM_TIMEOUT" ip netns exec "$NS_VM" qemu-system-x86_64 \
		-accel tcg -m 512 -nographic -no-reboot \
		-kernel "$kernel" -initrd "$initrd" -append "$append" \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
		-device e1000,netdev=n0 </dev/null >"$log" 2>&1 &
	QEMU_PID=$!
}

# wait_vm LOG: wait until the VM started by start_vm powers off; its report
# lines then are in LOG.aoetest.
wait_vm() {
	local log=$1 rc=0
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

# --- scenarios: restarts, a full filesystem ------------------------------------

# report_field LOG PREFIX KEY: KEY's value on the VM's first report line
# that starts with "AOETEST PREFIX".
report_field() {
	grep -a "^AOETEST $2" "$1" | head -n 1 | grep -oE "(^| )$3=[^ ]*" | head -n 1 |
		cut -d= -f2- || true
}

# scenario_reported NAME REPORT VM_LOG TARGET_LOG LINES: the VM reported
# "AOETEST NAME result"; shows its report lines that match LINES (a grep
# basic regex after "AOETEST NAME "), labelled [NAME]. Otherwise fails and
# shows both logs.
scenario_reported() {
	local name=$1 rep=$2 log=$3 tlog=$4 lines=$5
	if ! grep -aq "^AOETEST $name result" "$rep"; then
		fail "[$name] the VM reported its result"
		show_logs "$log" "$tlog"
		return 1
	fi
	grep -a "^AOETEST $name \($lines\)\|^AOETEST kick" "$rep" | sed "s/^AOETEST /[$name] VM: /"
}

# console_has LOG REGEX: the VM's console so far has a matching line.
console_has() { [ -f "$1" ] && tr -d '\r' <"$1" | grep -aqE "$2"; }

# vm_writes LOG: writes done by the VM's restart loop, as its console says so far.
vm_writes() {
	local n
	n=$(tr -d '\r' <"$1" | grep -aoE '^AOETEST restart progress writes=[0-9]+' |
		tail -n 1 | grep -oE '[0-9]+$' || true)
	echo "${n:-0}"
}

vm_running() { [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; }

# xdp_attached: an XDP program is attached to the target's interface.
xdp_attached() { ip -n "$NS_TGT" link show dev "$TGT_IF" | grep -q 'prog/xdp'; }
xdp_detached() { ! xdp_attached; }

# target_served_writes N: the running target (--stats-interval 1) has
# counted at least N writes since its start.
target_served_writes() {
	local n
	n=$(target_output | grep -oE "stats queue=0 .* writes=[0-9]+" | tail -n 1 |
		grep -oE "[0-9]+$") || return 1
	[ "$n" -ge "$1" ]
}

# restart_due TIME: the VM has gone, or TIME (in $SECONDS) has come and the
# target that runs now has served ten of the VM's 4 KiB writes (1 KiB frames).
restart_due() {
	vm_running || return 0
	[ "$SECONDS" -ge "$1" ] && target_served_writes 40
}

# writes_resumed: the VM has gone, or the target that runs now has served a write.
writes_resumed() { ! vm_running || target_served_writes 1; }

# restart_target SIG N LOG VM_LOG SECS: the N-th restart, SECS into the VM's
# writes: SIGKILL or SIGTERM, no XDP program may stay attached, then the same
# target again at once; returns once the VM's writes reach it.
restart_target() {
	local sig=$1 n=$2 tlog=$3 vlog=$4 secs=$5 rc=0 t0 ms
	t0=$(date +%s%N)
	if [ "$sig" = KILL ]; then
		kill_target
	else
		stop_target || rc=$?
		check "[restart] $n: exit status 0 after SIGTERM (was $rc)" test "$rc" -eq 0
	fi
	if xdp_attached; then
		fail "[restart] $n: no XDP program attached after SIG$sig"
		ip -n "$NS_TGT" link show dev "$TGT_IF" | sed 's/^/  link| /'
	else
		pass "[restart] $n: no XDP program attached after SIG$sig"
	fi
	if ! start_vm_target 1 "$tlog"; then
		fail "[restart] $n: target started again after SIG$sig"
		return 1
	fi
	ms=$((($(date +%s%N) - t0) / 1000000))
	echo "[restart] $n: SIG$sig ${secs}s into the VM's writes, at its write $(vm_writes "$vlog"); serving again after ${ms} ms"
	# The driver retransmits on its own timer (counters: 1 s resolution).
	if WAIT_SECS=120 wait_for writes_resumed && vm_running; then
		echo "[restart] $n: the VM's writes reached the target again $((($(date +%s%N) - t0) / 1000000)) ms after SIG$sig"
	fi
}

# stop_mark FILE: "aoetest stop" at the start of FILE's last 4 KiB block,
# which the restart scenario's VM polls (the rest of the block: zeros).
stop_mark() {
	printf 'aoetest stop' | dd of="$1" bs=4096 seek=$(($(stat -c %s "$1") / 4096 - 1)) \
		conv=notrunc,sync 2>/dev/null
}

# run_restart: the VM writes and reads back 4 KiB blocks while the target is
# killed (SIGKILL) three times and stopped (SIGTERM) twice, each time
# restarted at once, RESTART_GAP seconds after the VM's writes have resumed
# (the driver's retransmit takes about 15 s). The Linux driver retransmits for
# aoe_deadsecs, so the VM must see no error and no lost or stale block.
run_restart() {
	local log=$WORK/vm-restart.log tlog=$WORK/target-restart.log rep
	local start=$SECONDS t0 due sig n=0 rc=0 len wrote serving kicks
	# Per-second counters show when the driver has resumed after a restart.
	local TARGET_CMD="$TARGET_CMD --stats-interval 1"
	on_exit stop_vm
	echo "=== restarts under the Linux aoe initiator: SIG${RESTART_SIGNALS// /, SIG}, ${RESTART_GAP}s of writes between ==="
	make_backing
	setup_net 1
	if ! start_vm_target 1 "$tlog"; then
		fail "[restart] target started"
		return 0
	fi
	start_vm "$KDIR/vmlinuz" "$INITRD" "$log" aoetest.scenario=restart \
		aoetest.duration=$((VM_TIMEOUT - 90))
	if ! WAIT_SECS=120 wait_for console_has "$log" '^AOETEST restart started'; then
		fail "[restart] the VM started writing"
		stop_vm
		show_logs "$log" "$tlog"
		return 0
	fi
	t0=$SECONDS
	due=$((t0 + RESTART_GAP))
	for sig in $RESTART_SIGNALS stop; do
		WAIT_SECS=120 wait_for restart_due "$due" || true
		if ! vm_running; then
			fail "[restart] the VM was still writing at restart $((n + 1))"
			break
		fi
		if ! target_served_writes 40; then
			fail "[restart] the VM's writes reached the target before restart $((n + 1))"
			break
		fi
		[ "$sig" != stop ] || break
		n=$((n + 1))
		restart_target "$sig" "$n" "$tlog" "$log" $((SECONDS - t0))
		due=$((SECONDS + RESTART_GAP))
	done
	stop_mark "$BACKING"
	stop_mark "$BACKING.orig" # so that only the VM's blocks differ at the end
	wait_vm "$log"
	rep=$log.aoetest
	check "[restart] target still running after the VM finished" target_alive
	stop_target || rc=$?
	check "[restart] target exit status 0 after SIGTERM (was $rc)" test "$rc" -eq 0
	check "[restart] no XDP program attached at the end" xdp_detached
	serving=$(grep -c ' INFO: serving ' "$tlog" || true)
	check "[restart] the target was restarted 5 times (it logged 'serving' $serving times)" \
		test "$serving" -eq 6
	scenario_reported restart "$rep" "$log" "$tlog" 'result\|dmesg\|.*failed\|mismatch' || return 0
	grep -a '^AOETEST stats' "$rep" | sed 's/^AOETEST /[restart] VM: /' || true
	check "[restart] the VM stopped when asked (not at its time limit)" \
		test "$(report_field "$rep" "restart result" stopped)" = 1
	check "[restart] the VM wrote blocks ($(report_field "$rep" "restart result" writes))" \
		test "$(report_field "$rep" "restart result" writes)" -gt 0
	check "[restart] no I/O error in the VM" test "$(report_field "$rep" "restart result" errors)" = 0
	check "[restart] every block read back right after its write" \
		test "$(report_field "$rep" "restart result" mismatches)" = 0
	check "[restart] every block read back right at the end" \
		test "$(report_field "$rep" "restart result" verify_bad)" = 0
	check "[restart] no aoe or I/O error in the VM's dmesg" \
		test "$(report_field "$rep" "restart dmesg_errors" dmesg_errors)" = 0
	len=$(report_field "$rep" "restart result" len)
	wrote=$(report_field "$rep" "restart result" wrote_md5)
	check "[restart] backing file has every block the VM wrote" \
		same "$wrote" "$(head -c "${len:-0}" "$BACKING" | md5sum | cut -d' ' -f1)"
	check "[restart] no bytes changed after the written blocks" \
		cmp -s <(tail -c +$((${len:-0} + 1)) "$BACKING") <(tail -c +$((${len:-0} + 1)) "$BACKING.orig")
	kicks=$(grep -ac '^AOETEST kick' "$rep" || true)
	[ "$kicks" -eq 0 ] || echo "[restart] note: the VM kicked the aoe driver $kicks time(s)"
	check "[restart] VM finished its script" grep -aq '^AOETEST done' "$rep"
	echo "=== restarts took $((SECONDS - start))s ==="
}

unmount_dir() { umount "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true; }

# run_fullfs: the export is a sparse FULL_EXPORT_MB file on a FULL_FS_MB
# filesystem (FULL_FS: tmpfs or ext4 on a loop device); the VM writes FILL_MB
# 1 MiB regions. The writes past the free space must fail (EIO in the VM) and
# only those; the target must live, and reads and overwrites must still work.
run_fullfs() {
	local log=$WORK/vm-fullfs.log tlog=$WORK/target-fullfs.log mnt=$WORK/fullfs
	local start=$SECONDS rep r line wrote back md5s=() rc=0
	local n_ok=0 n_failed=0 last_ok=-1 first_failed=-1 not_eio=0 bad_reread=0 reread_failed=0 differs=0
	local zeros off state
	# The export is a file on the small filesystem, with FULL_OPTS.
	local BACKING=$mnt/export.img TARGET_CMD=${TARGET_CMD//@FILE@/@FILE@$FULL_OPTS}
	on_exit stop_vm
	echo "=== a full filesystem: ${FULL_EXPORT_MB} MiB sparse export on a ${FULL_FS_MB} MiB $FULL_FS, VM writes ${FILL_MB} MiB ==="
	mkdir -p "$mnt"
	case $FULL_FS in
	tmpfs)
		mount -t tmpfs -o "size=${FULL_FS_MB}m" "$RUN_TAG-fullfs" "$mnt"
		on_exit unmount_dir "$mnt"
		;;
	ext4)
		rm -f "$WORK/fullfs.img"
		truncate -s "${FULL_FS_MB}M" "$WORK/fullfs.img"
		on_exit rm -f "$WORK/fullfs.img"
		mkfs.ext4 -q -b 1024 -m 0 "$WORK/fullfs.img"
		make_loop "$WORK/fullfs.img" FULL_LOOP
		mount "$FULL_LOOP" "$mnt"
		on_exit unmount_dir "$mnt" # before the loop device's detach
		;;
	*)
		fail "[fullfs] FULL_FS=$FULL_FS: want tmpfs or ext4"
		return 0
		;;
	esac
	truncate -s "${FULL_EXPORT_MB}M" "$BACKING"
	df -k "$mnt" | sed 's/^/[fullfs] /'
	setup_net 1
	if ! start_vm_target 1 "$tlog"; then
		fail "[fullfs] target started"
		return 0
	fi
	run_vm "$KDIR/vmlinuz" "$INITRD" "$log" aoetest.scenario=fullfs aoetest.fill_mb="$FILL_MB"
	rep=$log.aoetest
	check "[fullfs] target still running after the VM finished" target_alive
	stop_target || rc=$?
	check "[fullfs] target exit status 0 after SIGTERM (was $rc)" test "$rc" -eq 0
	check "[fullfs] target logged the storage failure (ENOSPC)" grep -qF \
		"storage I/O failed: write (No space left on device (os error 28))" "$tlog"
	{
		grep -F " export e1.1: " "$tlog" | head -n 1
		grep -F "storage I/O failed" "$tlog" | tail -n 1
		grep -F "stats total" "$tlog" | tail -n 1
	} | sed 's/^/[fullfs] target: /' || true
	scenario_reported fullfs "$rep" "$log" "$tlog" 'write\|state\|result\|dmesg\|overwrite\|unwritten' ||
		return 0
	for ((r = 0; r < FILL_MB; r++)); do
		line=$(grep -a "^AOETEST fullfs write region=$r " "$rep" | head -n 1 || true)
		md5s[r]=""
		case $line in
		*" ok md5="*)
			n_ok=$((n_ok + 1))
			last_ok=$r
			md5s[r]=${line##* md5=}
			;;
		*" failed: "*)
			n_failed=$((n_failed + 1))
			[ "$first_failed" -ge 0 ] || first_failed=$r
			[[ $line == *"Input/output error"* ]] || not_eio=$((not_eio + 1))
			;;
		esac
		off=$((r << 20))
		line=$(grep -a "^AOETEST fullfs reread region=$r " "$rep" | head -n 1 || true)
		if [[ $line != *" md5="* ]]; then
			reread_failed=$((reread_failed + 1))
			continue
		fi
		back=${line##* md5=}
		[ -z "${md5s[r]}" ] || same "$back" "${md5s[r]}" || bad_reread=$((bad_reread + 1))
		# Region 0 is overwritten after this read; the others must be in the
		# file as the VM read them (a failed region: what got in before ENOSPC).
		[ "$r" -eq 0 ] || same "$back" "$(region_md5 "$BACKING" "$off" $((1 << 20)))" ||
			differs=$((differs + 1))
	done
	check "[fullfs] writes within the free space succeed ($n_ok of $FILL_MB regions)" \
		test "$n_ok" -gt 0
	check "[fullfs] writes past the free space fail ($n_failed of $FILL_MB regions)" \
		test "$n_failed" -gt 0
	check "[fullfs] only those fail: every failed region after every written one" \
		test "$last_ok" -lt "$first_failed"
	check "[fullfs] the failed writes are EIO in the VM" test "$not_eio" -eq 0
	check "[fullfs] every region read back after ENOSPC (failed reads: $reread_failed)" \
		test "$reread_failed" -eq 0
	check "[fullfs] every written region reads back what was written" test "$bad_reread" -eq 0
	check "[fullfs] the VM read what the backing file holds" test "$differs" -eq 0
	zeros=$(head -c $((1 << 20)) /dev/zero | md5sum | cut -d' ' -f1)
	check "[fullfs] a never-written region reads as zeros" \
		same "$(report_field "$rep" "fullfs unwritten" md5)" "$zeros"
	wrote=$(report_field "$rep" "fullfs overwrite" wrote_md5)
	check "[fullfs] overwriting a written region works after ENOSPC" \
		same "$(report_field "$rep" "fullfs overwrite" reread_md5)" "$wrote"
	check "[fullfs] backing file has the overwrite" \
		same "$(region_md5 "$BACKING" 0 $((1 << 20)))" "$wrote"
	state=$(report_field "$rep" "fullfs state" state)
	check "[fullfs] the aoe driver keeps the device up (state ${state:-?})" \
		test "${state%%,*}" = up
	check "[fullfs] VM finished its script" grep -aq '^AOETEST done' "$rep"
	echo "=== full filesystem took $((SECONDS - start))s ==="
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
	local q s
	for s in $SCENARIOS; do
		case $s in
		basic | restart | fullfs) ;;
		*)
			echo "SCENARIOS: unknown '$s' (known: basic restart fullfs)" >&2
			exit 1
			;;
		esac
	done
	prepare
	if [ "${DEMO:-0}" = 1 ]; then
		run_test run_demo
		summary
		return
	fi
	for s in $SCENARIOS; do
		case $s in
		basic)
			for q in $QUEUES_LIST; do
				run_test run_once "$q"
			done
			for q in $LOOP_QUEUES; do
				run_test run_once "$q" loop
			done
			;;
		restart | fullfs)
			# Their checks rest on aoe-xdp's log (serving, storage failures).
			if [ "$TARGET_IS_AOE_XDP" = 1 ]; then
				run_test "run_$s"
			else
				echo "scenario $s: not an aoe-xdp target, not run"
			fi
			;;
		esac
	done
	summary
}

# Sourced (tests/demo.sh): only the definitions.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
