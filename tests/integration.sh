#!/usr/bin/env bash
# Integration tests: aoe-xdp in one network namespace, real AoE peers
# (aoetools' aoeping and aoecfg, a raw-socket client) in another, over a veth
# pair this script creates and removes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root

NS_T=aoex-g-tgt
NS_I=aoex-g-ini
IF_T=aoex-g0
IF_I=aoex-g1
WORK=$(mktemp -d /tmp/aoex-g.XXXXXX)
PEER="ip netns exec $NS_I python3 $REPO_ROOT/tests/tools/aoe_peer.py"
TARGET_PID=
MOUNTED=
LOOP_DEV=

cleanup() {
	stop_target
	[ -n "$MOUNTED" ] && umount "$MOUNTED" 2>/dev/null
	[ -n "$LOOP_DEV" ] && losetup -d "$LOOP_DEV" 2>/dev/null
	del_netns "$NS_T" "$NS_I"
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

AOE_BENCH=${AOE_BENCH:-$REPO_ROOT/target/release/aoe-bench}
for tool in aoeping aoecfg python3; do
	command -v "$tool" >/dev/null || { echo "missing $tool (make deps)" >&2; exit 1; }
done
for bin in "$AOE_XDP" "$AOE_BENCH"; do
	[ -x "$bin" ] || { echo "missing $bin (make build)" >&2; exit 1; }
done

# start_target ARGS...: runs aoe-xdp in the target namespace, waits until it
# serves (its log says so) or fails.
start_target() {
	: >"$WORK/target.log"
	ip netns exec "$NS_T" "$AOE_XDP" --iface "$IF_T" --stats-interval 0 "$@" \
		>>"$WORK/target.log" 2>&1 &
	TARGET_PID=$!
	if ! WAIT_SECS=10 wait_for grep -q "serving" "$WORK/target.log"; then
		echo "--- target log"; cat "$WORK/target.log"
		return 1
	fi
}

stop_target() {
	[ -n "$TARGET_PID" ] || return 0
	kill -TERM "$TARGET_PID" 2>/dev/null || true
	wait "$TARGET_PID" 2>/dev/null || true
	TARGET_PID=
}

xdp_attached() { ip -n "$NS_T" link show dev "$IF_T" | grep -q "prog/xdp"; }
alive() { kill -0 "$TARGET_PID" 2>/dev/null; }

setup_network() {
	make_netns "$NS_T"
	make_netns "$NS_I"
	make_veth "$NS_T" "$IF_T" "$NS_I" "$IF_I" 1
	ip -n "$NS_T" addr add 192.0.2.1/24 dev "$IF_T"
	ip -n "$NS_I" addr add 192.0.2.2/24 dev "$IF_I"
}

test_identify_and_config() {
	truncate -s 64M "$WORK/disk1.img"
	truncate -s 8M "$WORK/disk2.img"
	# Listen before the target starts: it announces each export.
	ip netns exec "$NS_I" python3 "$REPO_ROOT/tests/tools/aoe_peer.py" listen "$IF_I" 4 \
		>"$WORK/announce.txt" &
	local listener=$!
	sleep 0.5
	start_target --export 1.1="$WORK/disk1.img" --export 7.3="$WORK/disk2.img,ro"
	wait "$listener"
	check "start-up announcement of e1.1" grep -qx "1.1" "$WORK/announce.txt"
	check "start-up announcement of e7.3" grep -qx "7.3" "$WORK/announce.txt"
	check "Query Config: 2 sectors at MTU 1500, buffer count 256, padded" \
		test "$($PEER config "$IF_I" 1 1)" = "bufcnt=256 sectors=2 fw=1 len=60"
	check "XDP program attached while serving" xdp_attached
	check "log says which XDP mode" grep -Eq "attached to $IF_T in (native|generic) mode" "$WORK/target.log"

	local out
	out=$(ip netns exec "$NS_I" timeout 5 aoeping -I 1 1 "$IF_I" 2>&1) || true
	echo "$out"
	check "aoeping -I 1 1: serial" grep -q "serial_number: 1.1:" <<<"$out"
	check "aoeping -I 1 1: model" grep -q "model: aoe-xdp" <<<"$out"
	check "aoeping -I 1 1: firmware" grep -Eq "firmware_rev: [0-9]+\.[0-9]+" <<<"$out"
	out=$(ip netns exec "$NS_I" timeout 5 aoeping -I 7 3 "$IF_I" 2>&1) || true
	check "second export (7.3) answers aoeping" grep -q "serial_number: 7.3:" <<<"$out"

	check "802.1Q-tagged request: reply keeps VLAN 7" \
		test "$($PEER vlan-identify "$IF_I" 1 1 7)" = "7 aoe-xdp"

	cfg() { ip netns exec "$NS_I" timeout 5 aoecfg -t 1 "$@" 2>&1; }
	check "aoecfg set on an empty string" test "$(cfg -c set -s host=alpha 1 1 "$IF_I")" = "host=alpha"
	check "aoecfg read" test "$(cfg -c read 1 1 "$IF_I")" = "host=alpha"
	check "aoecfg test, matching: answered" test "$(cfg -c test -s host=alpha 1 1 "$IF_I")" = "host=alpha"
	check "aoecfg test, not matching: silent" test -z "$(cfg -c test -s host=beta 1 1 "$IF_I")"
	check "aoecfg prefix: answered" test "$(cfg -c prefix -s host= 1 1 "$IF_I")" = "host=alpha"
	check "aoecfg prefix, not matching: silent" test -z "$(cfg -c prefix -s guest 1 1 "$IF_I")"
	check "aoecfg set when present: error" test "$(cfg -c set -s other 1 1 "$IF_I")" != "other"
	check "aoecfg fset overrides" test "$(cfg -c fset -s other 1 1 "$IF_I")" = "other"
	check "aoecfg set on export 7.3 is independent" test "$(cfg -c set -s seven 7 3 "$IF_I")" = "seven"
	out=$(cfg "$IF_I")
	echo "$out"
	check "broadcast aoecfg: 1.1 answers with its own address" grep -qP "^1\.1\tother$" <<<"$out"
	check "broadcast aoecfg: 7.3 answers with its own address" grep -qP "^7\.3\tseven$" <<<"$out"
	stop_target
	check "XDP program detached after SIGTERM" bash -c "! ip -n $NS_T link show dev $IF_T | grep -q prog/xdp"
	check "log says detached" grep -q "XDP program detached" "$WORK/target.log"
}

# The advertised sectors per request follow the MTU: (2600 - 36) / 512 = 5.
test_mtu() {
	truncate -s 1M "$WORK/mtu.img"
	ip -n "$NS_T" link set "$IF_T" mtu 2600
	ip -n "$NS_I" link set "$IF_I" mtu 2600
	start_target --export 1.1="$WORK/mtu.img" --buffers 64
	check "MTU 2600: 5 sectors per request, buffer count 64" \
		test "$($PEER config "$IF_I" 1 1 | cut -d' ' -f1-2)" = "bufcnt=64 sectors=5"
	stop_target
	ip -n "$NS_T" link set "$IF_T" mtu 1500
	ip -n "$NS_I" link set "$IF_I" mtu 1500
}

test_data_path() {
	head -c 16M /dev/urandom >"$WORK/data.img"
	start_target --export 2.1="$WORK/data.img"
	local want got
	# Read back what is in the file, at the start and at the last sectors.
	want=$(dd if="$WORK/data.img" bs=512 skip=100 count=2 status=none | md5sum | cut -d' ' -f1)
	got=$($PEER read "$IF_I" 2 1 100 2 | cut -d' ' -f1)
	check "read returns the file's sectors" test "$want" = "$got"
	want=$(dd if="$WORK/data.img" bs=512 skip=32766 count=2 status=none | md5sum | cut -d' ' -f1)
	got=$($PEER read "$IF_I" 2 1 32766 2 | cut -d' ' -f1)
	check "read of the last two sectors" test "$want" = "$got"
	check "write acknowledged with status 0x40" test "$($PEER write "$IF_I" 2 1 4000 a5)" = "0 0x40 0x0"
	want=$(head -c 1024 /dev/zero | tr '\0' '\245' | md5sum | cut -d' ' -f1)
	got=$(dd if="$WORK/data.img" bs=512 skip=4000 count=2 status=none | md5sum | cut -d' ' -f1)
	check "written sectors are in the backing file" test "$want" = "$got"
	check "read past the end: ATA IDNF" test "$($PEER status "$IF_I" 2 1 0x24 32767 2)" = "0 0x41 0x10 60"
	check "unsupported ATA command (SMART): ABRT" test "$($PEER status "$IF_I" 2 1 0xb0 0 1)" = "0 0x41 0x4 60"
	check "FLUSH CACHE EXT answered" test "$($PEER status "$IF_I" 2 1 0xea 0 0)" = "0 0x40 0x0 60"
	check "flush is counted (msync ran)" bash -c "kill -TERM $TARGET_PID; sleep 1; grep -q 'flushes=1' $WORK/target.log"
	stop_target
}

test_reserve_and_mask() {
	truncate -s 4M "$WORK/res.img"
	start_target --export 3.1="$WORK/res.img"
	local me other=02:00:00:00:00:99
	me=$(ip netns exec "$NS_I" cat /sys/class/net/$IF_I/address)
	check "reserve set by us" test "$($PEER reserve "$IF_I" 3 1 1 "$me")" = "0 $me"
	check "reserved: our reads still served" test "$($PEER status "$IF_I" 3 1 0x24 0 1 | cut -d' ' -f1-2)" = "0 0x40"
	check "force set to another host" test "$($PEER reserve "$IF_I" 3 1 2 "$other")" = "0 $other"
	check "reserved by another: AoE error 6" test "$($PEER status "$IF_I" 3 1 0x24 0 1 | cut -d' ' -f1)" = "6"
	check "plain set while reserved by another: error 6" test "$($PEER reserve "$IF_I" 3 1 1 "$me" | cut -d' ' -f1)" = "6"
	check "force release" test "$($PEER reserve "$IF_I" 3 1 2)" = "0 "
	check "mask add ourselves" test "$($PEER mask "$IF_I" 3 1 1 "1:$me")" = "0 $me"
	check "mask bad directive: MError 2" test "$($PEER mask "$IF_I" 3 1 1 "9:$other" | cut -d' ' -f1)" = "2"
	check "mask: listed host served" test "$($PEER status "$IF_I" 3 1 0x24 0 1 | cut -d' ' -f1-2)" = "0 0x40"
	check "mask delete ourselves" test "$($PEER mask "$IF_I" 3 1 1 "2:$me")" = "0 "
	stop_target
}

test_bad_frames_and_other_traffic() {
	head -c 4M /dev/urandom >"$WORK/ro.img"
	local before
	before=$(md5sum <"$WORK/ro.img")
	start_target --export 4.1="$WORK/ro.img,ro"
	check "non-AoE traffic passes to the kernel (IPv4 ping)" \
		ip netns exec "$NS_I" ping -c 3 -i 0.2 -W 2 192.0.2.1
	ip netns exec "$NS_I" python3 "$REPO_ROOT/tests/tools/aoe_peer.py" fuzz "$IF_I" 4 1 20000 42
	check "target survives 20000 malformed frames" alive
	# Random Reserve/Release frames may have reserved the export: release.
	check "force release after the fuzzing" test "$($PEER reserve "$IF_I" 4 1 2)" = "0 "
	check "still answers after the fuzzing" bash -c \
		"ip netns exec $NS_I timeout 5 aoeping 4 1 $IF_I >/dev/null"
	check "write to a read-only export: ATA error" test "$($PEER write "$IF_I" 4 1 0 ff)" = "0 0x41 0x4"
	stop_target
	check "read-only export unchanged" test "$before" = "$(md5sum <"$WORK/ro.img")"
}

# A direct export on a small filesystem that fills up: writes past the
# space are ATA errors for those requests only; reads keep working.
test_storage_full() {
	local fs=$WORK/small-fs.img mnt=$WORK/mnt out ok errs
	truncate -s 2M "$fs"
	mke2fs -q -t ext2 -b 1024 -m 0 "$fs"
	LOOP_DEV=$(losetup --find --show "$fs")
	mkdir -p "$mnt"
	mount "$LOOP_DEV" "$mnt"
	MOUNTED=$mnt
	truncate -s 16M "$mnt/sparse.img" # far more than the filesystem holds
	start_target --export 5.1="$mnt/sparse.img,direct"
	out=$($PEER fill "$IF_I" 5 1 0 3000)
	echo "fill: $out"
	ok=$(grep -oP "ok=\K[0-9]+" <<<"$out")
	errs=$(grep -oP "ata_errors=\K[0-9]+" <<<"$out")
	check "writes succeed while there is space" test "$ok" -gt 500
	check "writes past the space get ATA errors" test "$errs" -gt 0
	check "every write was answered" grep -q "no_answer=0" <<<"$out"
	check "reads keep working after ENOSPC" \
		test "$($PEER status "$IF_I" 5 1 0x24 0 2 | cut -d' ' -f1-2)" = "0 0x40"
	check "target still alive" alive
	stop_target
	check "log reports the I/O errors" grep -q "storage I/O failed" "$WORK/target.log"
	umount "$mnt" && MOUNTED=
	losetup -d "$LOOP_DEV" && LOOP_DEV=
}

# Crash test: aoe-bench --verify writes at depth 16, the target is killed
# with SIGKILL mid-run and restarted, and a verify pass must find every
# write that was acknowledged before the kill.
crash_case() { # NAME EXPORT_PATH_AND_OPTIONS
	local name=$1 spec=$2 state=$WORK/crash-$1.state out rc
	start_target --export 6.1="$spec"
	ip netns exec "$NS_I" "$AOE_BENCH" --iface "$IF_I" --target 6.1 --depth 16 --random \
		--read-pct 30 --duration 6 --region-mb 16 --verify --state "$state" --quiet \
		--timeout-ms 50 --max-retries 3 >"$WORK/crash-$name.out" 2>&1 &
	local bench=$!
	sleep 2.5
	kill -KILL "$TARGET_PID"
	wait "$TARGET_PID" 2>/dev/null || true
	TARGET_PID=
	wait "$bench" || true
	check "$name: state of acknowledged writes saved" test -s "$state"
	start_target --export 6.1="$spec"
	set +e
	out=$(ip netns exec "$NS_I" "$AOE_BENCH" --iface "$IF_I" --target 6.1 --region-mb 16 \
		--verify-only --state "$state" 2>&1)
	rc=$?
	set -e
	echo "$out" | tail -5
	check "$name: after SIGKILL and restart every acknowledged write is there" test "$rc" -eq 0
	stop_target
}

test_crash() {
	head -c 32M /dev/zero >"$WORK/crash-direct.img"
	LOOP_DEV=$(losetup --find --show "$WORK/crash-direct.img")
	crash_case direct-loop "$LOOP_DEV"
	losetup -d "$LOOP_DEV" && LOOP_DEV=
	truncate -s 32M "$WORK/crash-mmap.img"
	crash_case mmap-file "$WORK/crash-mmap.img"
}

# bad_input WHY EXPECTED_TEXT ARGS...: aoe-xdp refuses with a non-zero exit and
# one line on stderr that says why, and leaves no XDP program attached.
bad_input() {
	local why=$1 text=$2 out rc
	shift 2
	set +e
	out=$(ip netns exec "$NS_T" "$@" 2>&1 >/dev/null)
	rc=$?
	set -e
	echo "  $why: $out"
	check "$why: non-zero exit, one line saying why, nothing attached" bash -c '
		[ "$1" -ne 0 ] && [ "$(wc -l <<<"$2")" -eq 1 ] && grep -q -- "$3" <<<"$2" &&
		! ip -n "$4" link show dev "$5" | grep -q prog/xdp' _ "$rc" "$out" "$text" "$NS_T" "$IF_T"
}

test_errors_leave_nothing_attached() {
	truncate -s 1M "$WORK/e.img"
	local out rc x=("$AOE_XDP" --iface "$IF_T")
	bad_input "unparseable export" "not SHELF.SLOT=PATH" "${x[@]}" --export 1.1
	bad_input "broadcast shelf" "broadcast" "${x[@]}" --export 65535.1="$WORK/e.img"
	bad_input "broadcast slot" "broadcast" "${x[@]}" --export 1.255="$WORK/e.img"
	bad_input "duplicate address" "given twice" "${x[@]}" --export 1.1="$WORK/e.img" --export 1.1="$WORK/e.img"
	bad_input "missing file" "No such file" "${x[@]}" --export 1.1="$WORK/missing.img"
	bad_input "missing interface" "no network interface" "$AOE_XDP" --iface aoex-nosuch --export 1.1="$WORK/e.img"
	bad_input "more queues than the interface has" "RX queue" "${x[@]}" --queues 2 --export 1.1="$WORK/e.img"
	bad_input "no privilege for BPF" "privileges" setpriv --reuid=65534 --regid=65534 --clear-groups \
		--inh-caps=-all "${x[@]}" --export 1.1="$WORK/e.img"

	start_target --export 1.1="$WORK/e.img"
	set +e
	out=$(ip netns exec "$NS_T" "$AOE_XDP" --iface "$IF_T" --export 1.2="$WORK/e.img" 2>&1)
	rc=$?
	set -e
	echo "$out"
	check "second instance on the same interface refuses" test "$rc" -ne 0
	check "... first instance still serves" bash -c "ip netns exec $NS_I timeout 5 aoeping 1 1 $IF_I >/dev/null"
	stop_target

	# SIGKILL: the kernel detaches the bpf_link when the process dies.
	start_target --export 1.1="$WORK/e.img"
	kill -KILL "$TARGET_PID"
	wait "$TARGET_PID" 2>/dev/null || true
	TARGET_PID=
	check "XDP program detached after SIGKILL" \
		bash -c "sleep 0.5; ! ip -n $NS_T link show dev $IF_T | grep -q prog/xdp"
	start_target --export 1.1="$WORK/e.img"
	check "restart right after SIGKILL serves again" bash -c "ip netns exec $NS_I timeout 5 aoeping 1 1 $IF_I >/dev/null"
	stop_target
}

setup_network
for t in test_identify_and_config test_mtu test_data_path test_reserve_and_mask \
	test_bad_frames_and_other_traffic test_storage_full test_crash test_errors_leave_nothing_attached; do
	echo "=== $t"
	"$t" || fail "$t aborted"
done
summary
