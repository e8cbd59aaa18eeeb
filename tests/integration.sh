#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Integration tests: aoe-xdp in one network namespace, real AoE peers
# (aoetools' aoeping and aoecfg, a raw-socket client) in another, over a veth
# pair this script creates and removes. Names carry the run's PID (lib.sh),
# so two runs do not collide. Each test runs with errexit in force
# (run_test): a command that fails mid-test ends it as a failure.
#
# Environment: AOE_XDP, AOE_BENCH (default target/release/aoe-xdp, aoe-bench).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root

NS_T=$(ns_name tgt)
NS_I=$(ns_name ini)
IF_T=$(if_name t)
IF_I=$(if_name i)
WORK=$(mktemp -d "/tmp/$RUN_TAG.XXXXXX")
on_exit rm -rf "$WORK"
TLOG=$WORK/target.log

AOE_BENCH=${AOE_BENCH:-$REPO_ROOT/target/release/aoe-bench}
for tool in aoeping aoecfg python3 setpriv mke2fs; do
	command -v "$tool" >/dev/null || { echo "missing $tool (make deps)" >&2; exit 1; }
done
for bin in "$AOE_XDP" "$AOE_BENCH"; do
	[ -x "$bin" ] || { echo "missing $bin (make build)" >&2; exit 1; }
done

# --- helpers ------------------------------------------------------------------

# peer SUBCOMMAND ARGS...: tests/tools/aoe_peer.py in the initiator namespace.
peer() { ip netns exec "$NS_I" python3 "$REPO_ROOT/tests/tools/aoe_peer.py" "$@"; }

# start_aoe ARGS...: aoe-xdp on IF_T (STATS_INTERVAL: its --stats-interval,
# default 0 = stats only at exit); returns once it serves.
start_aoe() {
	start_target "$NS_T" "$TLOG" --iface "$IF_T" --stats-interval "${STATS_INTERVAL:-0}" "$@"
}

# target_logged REGEX: the running (or last) target logged a matching line.
target_logged() { grep -Eq -- "$1" < <(target_output); }

xdp_attached() { [[ $(ip -n "$NS_T" link show dev "$IF_T") == *prog/xdp* ]]; }
xdp_detached() { ! xdp_attached; }
# The kernel detaches a dead process' bpf_link when its last reference goes.
xdp_detached_soon() { WAIT_SECS=5 wait_for xdp_detached; }

aoeping_answers() { ip netns exec "$NS_I" timeout 5 aoeping "$1" "$2" "$IF_I" >/dev/null; }

# cfg ARGS...: aoecfg from the initiator, at most 1 s for answers.
cfg() { ip netns exec "$NS_I" timeout 5 aoecfg -t 1 "$@" 2>&1; }

unmount() { ! mountpoint -q "$1" || umount "$1"; }

setup_network() {
	make_netns "$NS_T"
	make_netns "$NS_I"
	make_veth "$NS_T" "$IF_T" "$NS_I" "$IF_I" 1
	ip -n "$NS_T" addr add 192.0.2.1/24 dev "$IF_T"
	ip -n "$NS_I" addr add 192.0.2.2/24 dev "$IF_I"
}

# --- tests ----------------------------------------------------------------------

test_identify_and_config() {
	truncate -s 64M "$WORK/disk1.img"
	truncate -s 8M "$WORK/disk2.img"
	# Listen before the target starts: it announces each export.
	peer listen "$IF_I" 10 2 >"$WORK/announce.txt" &
	local listener=$!
	wait_log "$WORK/announce.txt" '^listening$' 10
	start_aoe --export 1.1="$WORK/disk1.img" --export 7.3="$WORK/disk2.img,ro"
	wait "$listener"
	check "start-up announcement of e1.1" grep -qx "1.1" "$WORK/announce.txt"
	check "start-up announcement of e7.3" grep -qx "7.3" "$WORK/announce.txt"
	check "Query Config: 2 sectors at MTU 1500, buffer count 256, padded" \
		test "$(peer config "$IF_I" 1 1)" = "bufcnt=256 sectors=2 fw=1 len=60"
	check "XDP program attached while serving" xdp_attached
	check "log says which XDP mode" target_logged "attached to $IF_T in (native|generic) mode"

	local out
	out=$(ip netns exec "$NS_I" timeout 5 aoeping -I 1 1 "$IF_I" 2>&1) || true
	echo "$out"
	check "aoeping -I 1 1: serial" grep -q "serial_number: 1.1:" <<<"$out"
	check "aoeping -I 1 1: model" grep -q "model: aoe-xdp" <<<"$out"
	check "aoeping -I 1 1: firmware" grep -Eq "firmware_rev: [0-9]+\.[0-9]+" <<<"$out"
	out=$(ip netns exec "$NS_I" timeout 5 aoeping -I 7 3 "$IF_I" 2>&1) || true
	check "second export (7.3) answers aoeping" grep -q "serial_number: 7.3:" <<<"$out"

	check "802.1Q-tagged request: reply keeps VLAN 7" \
		test "$(peer vlan-identify "$IF_I" 1 1 7)" = "7 aoe-xdp"

	check "aoecfg set on an empty string" test "$(cfg -c set -s host=alpha 1 1 "$IF_I")" = "host=alpha"
	check "aoecfg read" test "$(cfg -c read 1 1 "$IF_I")" = "host=alpha"
	check "aoecfg test, matching: answered" test "$(cfg -c test -s host=alpha 1 1 "$IF_I")" = "host=alpha"
	check "aoecfg test, not matching: silent" test -z "$(cfg -c test -s host=beta 1 1 "$IF_I")"
	check "aoecfg prefix: answered" test "$(cfg -c prefix -s host= 1 1 "$IF_I")" = "host=alpha"
	check "aoecfg prefix, not matching: silent" test -z "$(cfg -c prefix -s guest 1 1 "$IF_I")"
	# aoecfg prints an error reply as errtab[code]: "*badcfg*" is error 4.
	check "aoecfg set when present: AoE error 4 (aoecfg prints *badcfg*)" \
		test "$(cfg -c set -s other 1 1 "$IF_I")" = "*badcfg*"
	check "Query Config set when present: AoE error 4 in the reply" \
		test "$(peer qc "$IF_I" 1 1 3 other | cut -d' ' -f1)" = "4"
	check "refused set left the string alone" test "$(cfg -c read 1 1 "$IF_I")" = "host=alpha"
	check "aoecfg fset overrides" test "$(cfg -c fset -s other 1 1 "$IF_I")" = "other"
	check "aoecfg set on export 7.3 is independent" test "$(cfg -c set -s seven 7 3 "$IF_I")" = "seven"
	out=$(cfg "$IF_I")
	echo "$out"
	check "broadcast aoecfg: 1.1 answers with its own address" grep -qP "^1\.1\tother$" <<<"$out"
	check "broadcast aoecfg: 7.3 answers with its own address" grep -qP "^7\.3\tseven$" <<<"$out"
	local rc=0
	stop_target || rc=$?
	check "exit status 0 after SIGTERM" test "$rc" -eq 0
	check "XDP program detached after SIGTERM" xdp_detached
	check "log says detached" target_logged "XDP program detached"
}

# The advertised sectors per request follow the MTU: (2600 - 36) / 512 = 5.
test_mtu() {
	truncate -s 1M "$WORK/mtu.img"
	on_exit ip -n "$NS_T" link set "$IF_T" mtu 1500
	on_exit ip -n "$NS_I" link set "$IF_I" mtu 1500
	ip -n "$NS_T" link set "$IF_T" mtu 2600
	ip -n "$NS_I" link set "$IF_I" mtu 2600
	start_aoe --export 1.1="$WORK/mtu.img" --buffers 64
	check "MTU 2600: 5 sectors per request, buffer count 64" \
		test "$(peer config "$IF_I" 1 1 | cut -d' ' -f1-2)" = "bufcnt=64 sectors=5"
	stop_target
}

test_data_path() {
	head -c 16M /dev/urandom >"$WORK/data.img"
	start_aoe --export 2.1="$WORK/data.img"
	local want got rc=0
	# Read back what is in the file, at the start and at the last sectors.
	want=$(dd if="$WORK/data.img" bs=512 skip=100 count=2 status=none | md5sum | cut -d' ' -f1)
	got=$(peer read "$IF_I" 2 1 100 2 | cut -d' ' -f1)
	check "read returns the file's sectors" test "$want" = "$got"
	want=$(dd if="$WORK/data.img" bs=512 skip=32766 count=2 status=none | md5sum | cut -d' ' -f1)
	got=$(peer read "$IF_I" 2 1 32766 2 | cut -d' ' -f1)
	check "read of the last two sectors" test "$want" = "$got"
	check "write acknowledged with status 0x40" test "$(peer write "$IF_I" 2 1 4000 a5)" = "0 0x40 0x0"
	want=$(head -c 1024 /dev/zero | tr '\0' '\245' | md5sum | cut -d' ' -f1)
	got=$(dd if="$WORK/data.img" bs=512 skip=4000 count=2 status=none | md5sum | cut -d' ' -f1)
	check "written sectors are in the backing file" test "$want" = "$got"
	check "read past the end: ATA IDNF" test "$(peer status "$IF_I" 2 1 0x24 32767 2)" = "0 0x41 0x10 60"
	check "unsupported ATA command (SMART): ABRT" test "$(peer status "$IF_I" 2 1 0xb0 0 1)" = "0 0x41 0x4 60"
	check "FLUSH CACHE EXT answered" test "$(peer status "$IF_I" 2 1 0xea 0 0)" = "0 0x40 0x0 60"
	# The counters of the final stats line, once the target has exited.
	stop_target || rc=$?
	check "exit status 0 after SIGTERM" test "$rc" -eq 0
	check "flush is counted (fsync ran): final stats say flushes=1" \
		target_logged "stats total .* flushes=1( |$)"
	check "the durable write to a file waited for its barrier: final stats say commits=1 solo_writes=0" \
		target_logged "stats total .* commits=1 solo_writes=0( |$)"
	check "the start-up log names the default: buffered, durable (group commit)" \
		target_logged "export e2.1: .*\\(file, buffered, durable \\((writes O_DIRECT, )?group commit\\)"
}

# A durable write alone on a block device goes solo: one RWF_DSYNC write.
test_solo_write_on_a_block_device() {
	head -c 4M /dev/zero >"$WORK/solo.img"
	make_loop "$WORK/solo.img"
	start_aoe --export 2.2="$LOOP_DEV"
	check "write acknowledged" test "$(peer write "$IF_I" 2 2 10 5a)" = "0 0x40 0x0"
	stop_target
	check "the lone durable write went solo: final stats say commits=0 solo_writes=1" \
		target_logged "stats total .* commits=0 solo_writes=1( |$)"
	check "the written sectors are on the device" \
		test "$(dd if="$LOOP_DEV" bs=512 skip=10 count=2 iflag=direct status=none | md5sum)" = \
		"$(head -c 1024 /dev/zero | tr '\0' 'Z' | md5sum)"
	del_loop "$LOOP_DEV"
}

test_reserve_and_mask() {
	truncate -s 4M "$WORK/res.img"
	start_aoe --export 3.1="$WORK/res.img"
	local me other=02:00:00:00:00:99
	me=$(ip netns exec "$NS_I" cat "/sys/class/net/$IF_I/address")
	check "reserve set by us" test "$(peer reserve "$IF_I" 3 1 1 "$me")" = "0 $me"
	check "reserved: our reads still served" test "$(peer status "$IF_I" 3 1 0x24 0 1 | cut -d' ' -f1-2)" = "0 0x40"
	check "force set to another host" test "$(peer reserve "$IF_I" 3 1 2 "$other")" = "0 $other"
	check "reserved by another: AoE error 6" test "$(peer status "$IF_I" 3 1 0x24 0 1 | cut -d' ' -f1)" = "6"
	check "plain set while reserved by another: error 6" test "$(peer reserve "$IF_I" 3 1 1 "$me" | cut -d' ' -f1)" = "6"
	check "force release" test "$(peer reserve "$IF_I" 3 1 2)" = "0 "
	check "mask add ourselves" test "$(peer mask "$IF_I" 3 1 1 "1:$me")" = "0 $me"
	check "mask bad directive: MError 2" test "$(peer mask "$IF_I" 3 1 1 "9:$other" | cut -d' ' -f1)" = "2"
	check "mask: listed host served" test "$(peer status "$IF_I" 3 1 0x24 0 1 | cut -d' ' -f1-2)" = "0 0x40"
	check "mask delete ourselves" test "$(peer mask "$IF_I" 3 1 1 "2:$me")" = "0 "
	stop_target
}

test_bad_frames_and_other_traffic() {
	head -c 4M /dev/urandom >"$WORK/ro.img"
	local before
	before=$(md5sum <"$WORK/ro.img")
	start_aoe --export 4.1="$WORK/ro.img,ro"
	check "non-AoE traffic passes to the kernel (IPv4 ping)" \
		ip netns exec "$NS_I" ping -c 3 -i 0.2 -W 2 192.0.2.1
	peer fuzz "$IF_I" 4 1 20000 42
	check "target survives 20000 malformed frames" target_alive
	# Random Reserve/Release frames may have reserved the export: release.
	check "force release after the fuzzing" test "$(peer reserve "$IF_I" 4 1 2)" = "0 "
	check "still answers after the fuzzing" aoeping_answers 4 1
	check "write to a read-only export: ATA error" test "$(peer write "$IF_I" 4 1 0 ff)" = "0 0x41 0x4"
	stop_target
	check "read-only export unchanged" test "$before" = "$(md5sum <"$WORK/ro.img")"
}

# storage_full_case NAME FSTYPE OPTIONS: an export on a small filesystem
# that fills up (ext2 on a loop device, or a tmpfs). Writes past the space
# are ATA errors for those requests only; reads (of holes too) keep
# working; the target lives.
storage_full_case() {
	local name=$1 fstype=$2 opts=$3 fs=$WORK/small-fs-$1.img mnt=$WORK/mnt-$1 out ok errs
	mkdir -p "$mnt"
	if [ "$fstype" = tmpfs ]; then
		mount -t tmpfs -o size=1M tmpfs "$mnt"
		on_exit unmount "$mnt"
	else
		truncate -s 2M "$fs"
		mke2fs -q -t ext2 -b 1024 -m 0 "$fs"
		make_loop "$fs"
		mount "$LOOP_DEV" "$mnt"
		on_exit unmount "$mnt" # registered after the loop device: runs before its detach
	fi
	truncate -s 16M "$mnt/sparse.img" # far more than the filesystem holds
	start_aoe --export 5.1="$mnt/sparse.img$opts"
	out=$(peer fill "$IF_I" 5 1 0 3000)
	echo "  $name fill: $out"
	ok=$(grep -oP "(^| )ok=\K[0-9]+" <<<"$out")
	errs=$(grep -oP "ata_errors=\K[0-9]+" <<<"$out")
	check "$name: writes succeed while there is space" test "$ok" -gt 500
	check "$name: writes past the space get ATA errors" test "$errs" -gt 0
	check "$name: every write was answered" grep -q "no_answer=0" <<<"$out"
	check "$name: reads keep working after ENOSPC" \
		test "$(peer status "$IF_I" 5 1 0x24 0 2 | cut -d' ' -f1-2)" = "0 0x40"
	check "$name: a read of a hole on the full filesystem works" \
		test "$(peer status "$IF_I" 5 1 0x24 30000 2 | cut -d' ' -f1-2)" = "0 0x40"
	check "$name: target still alive" target_alive
	stop_target
	check "$name: log reports the I/O errors with their cause" \
		target_logged "storage I/O failed: write \\(No space left on device \\(os error 28\\)\\)"
	unmount "$mnt"
	[ "$fstype" = tmpfs ] || del_loop "$LOOP_DEV"
}

test_storage_full() {
	storage_full_case buffered-ext2 ext2 ""
	storage_full_case direct-ext2 ext2 ",direct"
	storage_full_case buffered-tmpfs tmpfs ""
	storage_full_case writeback-tmpfs tmpfs ",writeback"
}

# served_writes N: the target's latest per-queue stats line counts at least
# N writes (needs STATS_INTERVAL=1).
served_writes() {
	local n
	n=$(target_output | grep -oE "stats queue=0 .* writes=[0-9]+" | tail -n 1 | grep -oE "[0-9]+$") || return 1
	[ "$n" -ge "$1" ]
}

# Crash test: aoe-bench --verify writes at depth 16, the target is killed
# with SIGKILL mid-run (once it has served writes) and restarted, and a
# verify pass must find every write that was acknowledged before the kill.
crash_case() { # NAME EXPORT_PATH_AND_OPTIONS
	local name=$1 spec=$2 state=$WORK/crash-$1.state out rc=0 bench acked known groups
	STATS_INTERVAL=1 start_aoe --export 6.1="$spec"
	ip netns exec "$NS_I" "$AOE_BENCH" --iface "$IF_I" --target 6.1 --depth 16 --random \
		--read-pct 30 --duration 6 --region-mb 16 --verify --state "$state" --quiet \
		--timeout-ms 50 --max-retries 3 >"$WORK/crash-$name.out" 2>&1 &
	bench=$!
	# Kill once the target's stats show served writes, not after a fixed time.
	if WAIT_SECS=5 wait_for served_writes 1000; then
		pass "$name: the target served writes before the kill"
	else
		fail "$name: the target served writes before the kill"
	fi
	check "$name: the load still ran at the kill" kill -0 "$bench"
	groups=$(target_output | grep -oE "stats queue=0 .* commits=[0-9]+" | tail -n 1 | grep -oE "[0-9]+$")
	kill_target
	wait "$bench" || true # its requests in flight at the kill time out
	sed 's/^/  aoe-bench| /' "$WORK/crash-$name.out" | tail -n 4
	# aoe-bench: "state: saved N acknowledged sectors to PATH".
	acked=$(sed -nE 's/^state: saved ([0-9]+) acknowledged sectors to .*/\1/p' "$WORK/crash-$name.out" | tail -n 1)
	check "$name: the load run acknowledged writes and saved them (state: saved ${acked:-<no such line>})" \
		test "${acked:-0}" -gt 0
	if [[ $spec == *writeback* ]]; then
		check "$name: writeback needs no group commit (commits=${groups:-none})" test "${groups:-x}" = 0
	else
		check "$name: durable writes at depth 16 were group-committed (commits=${groups:-none})" \
			test "${groups:-0}" -gt 0
	fi
	start_aoe --export 6.1="$spec"
	out=$(ip netns exec "$NS_I" "$AOE_BENCH" --iface "$IF_I" --target 6.1 --region-mb 16 \
		--verify-only --state "$state" 2>&1) || rc=$?
	echo "$out" | tail -n 5
	check "$name: after SIGKILL and restart every acknowledged write is there" test "$rc" -eq 0
	known=$(sed -nE 's/^verify: [0-9]+ sectors checked \(([0-9]+) against a known generation\), 0 failures$/\1/p' <<<"$out")
	check "$name: verify-only checked sectors against a known generation (${known:-none})" \
		test "${known:-0}" -gt 0
	stop_target
}

test_crash() {
	head -c 32M /dev/zero >"$WORK/crash-direct.img"
	make_loop "$WORK/crash-direct.img"
	crash_case direct-loop "$LOOP_DEV"
	del_loop "$LOOP_DEV"
	truncate -s 32M "$WORK/crash-file.img"
	crash_case buffered-file "$WORK/crash-file.img"
	# A process crash loses nothing from the page cache: writeback survives
	# it too (a power cut is another matter: tests/powercut).
	truncate -s 32M "$WORK/crash-wb.img"
	crash_case writeback-file "$WORK/crash-wb.img,writeback"
}

# one_line_saying OUTPUT TEXT: OUTPUT is one line that contains TEXT.
one_line_saying() { [ "$(wc -l <<<"$1")" -eq 1 ] && grep -q -- "$2" <<<"$1"; }

# bad_input WHY EXPECTED_TEXT ARGS...: aoe-xdp refuses with a non-zero exit and
# one line on stderr that says why, and leaves no XDP program attached.
bad_input() {
	local why=$1 text=$2 out rc=0
	shift 2
	out=$(ip netns exec "$NS_T" "$@" 2>&1 >/dev/null) || rc=$?
	echo "  $why: $out"
	check "$why: non-zero exit" test "$rc" -ne 0
	check "$why: one line saying why" one_line_saying "$out" "$text"
	check "$why: nothing attached" xdp_detached
}

test_errors_leave_nothing_attached() {
	truncate -s 1M "$WORK/e.img"
	local out rc=0 x=("$AOE_XDP" --iface "$IF_T")
	bad_input "unparseable export" "not SHELF.SLOT=PATH" "${x[@]}" --export 1.1
	bad_input "broadcast shelf" "broadcast" "${x[@]}" --export 65535.1="$WORK/e.img"
	bad_input "broadcast slot" "broadcast" "${x[@]}" --export 1.255="$WORK/e.img"
	bad_input "duplicate address" "given twice" "${x[@]}" --export 1.1="$WORK/e.img" --export 1.1="$WORK/e.img"
	bad_input "retired mmap backend" "buffered" "${x[@]}" --export 1.1="$WORK/e.img,mmap"
	bad_input "writeback and sync together" "cannot be used with" "${x[@]}" --writeback --sync --export 1.1="$WORK/e.img"
	bad_input "missing file" "No such file" "${x[@]}" --export 1.1="$WORK/missing.img"
	bad_input "missing interface" "no network interface" "$AOE_XDP" --iface aoex-nosuch --export 1.1="$WORK/e.img"
	bad_input "more queues than the interface has" "RX queue" "${x[@]}" --queues 2 --export 1.1="$WORK/e.img"
	bad_input "no privilege for BPF" "privileges" setpriv --reuid=65534 --regid=65534 --clear-groups \
		--inh-caps=-all "${x[@]}" --export 1.1="$WORK/e.img"

	start_aoe --export 1.1="$WORK/e.img"
	out=$(ip netns exec "$NS_T" "$AOE_XDP" --iface "$IF_T" --export 1.2="$WORK/e.img" 2>&1) || rc=$?
	echo "$out"
	check "second instance on the same interface refuses" test "$rc" -ne 0
	check "... first instance still serves" aoeping_answers 1 1
	stop_target

	# SIGKILL: the kernel detaches the bpf_link when the process dies.
	start_aoe --export 1.1="$WORK/e.img"
	kill_target
	check "XDP program detached after SIGKILL" xdp_detached_soon
	start_aoe --export 1.1="$WORK/e.img"
	check "restart right after SIGKILL serves again" aoeping_answers 1 1
	stop_target
}

setup_network
run_test test_identify_and_config
run_test test_mtu
run_test test_data_path
run_test test_solo_write_on_a_block_device
run_test test_reserve_and_mask
run_test test_bad_frames_and_other_traffic
run_test test_storage_full
run_test test_crash
run_test test_errors_leave_nothing_attached
summary
