#!/bin/busybox sh
# /init of the test VM (busybox initramfs built by linux-initiator.sh).
#
# Loads e1000 + aoe, finds the AoE device named on the kernel command line,
# and reports on the serial console with lines the host parses:
#   AOETEST device=eX.Y
#   AOETEST size_bytes=N
#   AOETEST read_md5=MD5                      whole device, before any write
#   AOETEST read_secs=S.SS                    how long that read took
#   AOETEST wrote_md5=MD5 offset=N len=N      one per written region
#   AOETEST reread_md5=MD5 offset=N len=N     same region, read back uncached
#   AOETEST done
#   AOETEST kick ...                          see kicker() below
# and, for aoetest.scenario=restart or fullfs, the lines of that scenario
# (see scenario_restart and scenario_fullfs) instead of the md5 and regions.
# Parameters (kernel command line, all optional):
#   aoetest.target=e1.1  aoetest.wait=30  aoetest.write_off=4194304
#   aoetest.write_len=1048576  aoetest.tail_len=65536
#   aoetest.deadline=270   (seconds; then report state and power off)
#   aoetest.readahead=256  (sectors; see the blockdev --setra below)
#   aoetest.scenario=restart aoetest.duration=180 (at most, in seconds)
#   aoetest.scenario=fullfs aoetest.fill_mb=12    (1 MiB regions to write)
# The host boots with `quiet`: only kernel warnings/errors reach the console,
# so an AOETEST line is rarely split; dmesg is dumped on failure instead.

/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

say() { echo "AOETEST $*"; }
echo # the console line may still hold the firmware's escape sequences

# Leave the VM; -no-reboot + panic=-1 on the host side make qemu exit.
finish() {
	sync
	poweroff -f
	sleep 5 # poweroff -f does not return; never let /init exit (panic)
}

# dump_state: what the aoe driver and the block layer think, and where the
# tasks that do I/O are blocked.
dump_state() {
	local f pid name
	for f in /sys/kernel/debug/aoe/*; do
		[ -f "$f" ] && { echo "--- $f ---"; cat "$f"; }
	done
	for f in /sys/block/etherd*/inflight /sys/block/etherd*/stat \
		/sys/block/etherd*/state /sys/block/etherd*/queue/scheduler \
		/sys/kernel/debug/block/etherd*/state \
		/sys/kernel/debug/block/etherd*/hctx0/*; do
		[ -f "$f" ] && echo "$f: $(cat "$f" 2>/dev/null | tr '\n' ' ')"
	done
	for pid in $(ls /proc | grep '^[0-9]'); do
		name=$(cat /proc/$pid/comm 2>/dev/null) || continue
		case $name in aoe* | md5sum | dd | kworker*) ;; *) continue ;; esac
		echo "--- $pid $name: $(cut -d' ' -f3 /proc/$pid/stat) ---"
		cat /proc/$pid/stack 2>/dev/null
	done
	echo w >/proc/sysrq-trigger # blocked (D state) tasks, into dmesg
	echo "--- dmesg tail ---"
	dmesg | tail -n 100
}

die() {
	say "error $*"
	dump_state
	finish
}

# kicker: work around a stall in the Linux aoe driver (seen ~1 run in 20 under
# TCG). When every frame is still queued for the driver's completion thread
# at the moment the last outstanding frame is answered, newframe() fails and
# sets DEVFL_KICKME; the timer's "kick" then only runs the blk-mq queue, which
# has nothing new to dispatch, so the request parked on the driver's own
# rq_list is never resumed (signature: requests in flight, nout 0 for every
# target, no progress). Any new request resumes it, so issue a 4 KiB direct
# read when that state lasts a second, and report it ("AOETEST kick ...").
kicker() {
	local sys="/sys/block/etherd!$target" dbg=/sys/kernel/debug/aoe/$target
	local prev="" now kick=""
	while sleep 1; do
		set -- $(cat "$sys/stat")
		now="$1 $5" # completed reads and writes
		set -- $(cat "$sys/inflight")
		# "addr:nout:maxout:nframes" per target; nout != 0 means frames out.
		if [ "$now" = "$prev" ] && [ $(($1 + $2)) -gt 0 ] &&
			! grep -q '^[0-9a-f]*:[1-9]' "$dbg" 2>/dev/null; then
			# One kick at a time: a kick that hangs too means another cause.
			if [ -z "$kick" ] || ! kill -0 "$kick" 2>/dev/null; then
				say "kick inflight=$(($1 + $2)) completed=\"$now\""
				# bs >= page size: busybox dd only page-aligns those buffers;
				# with a smaller one O_DIRECT fails and dd silently falls back
				# to a cached read that never reaches the driver.
				dd if="$dev" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null &
				kick=$!
			fi
		fi
		prev=$now
	done
}

# Command line: aoetest.KEY=VALUE becomes shell variable KEY.
target=e1.1 wait=30 deadline=270 readahead=256 write_off=4194304 write_len=1048576 tail_len=65536
scenario=basic duration=180 fill_mb=12
for word in $(cat /proc/cmdline); do
	case $word in
	aoetest.*=*)
		kv=${word#aoetest.}
		eval "${kv%%=*}='${kv#*=}'"
		;;
	esac
done

# Watchdog: an I/O that hangs in the driver cannot be interrupted, so report
# from the side and power off before the host's hard timeout hits.
(
	sleep "$deadline"
	say "error watchdog: still running after ${deadline}s"
	dump_state
	finish
) &

# Modules in dependency order (written by the host into /lib/modules/order);
# aoe only talks on the interfaces it is told about.
while read -r mod; do
	case $mod in
	aoe) insmod "/lib/modules/$mod.ko" aoe_iflist=eth0 || die "insmod $mod" ;;
	*) insmod "/lib/modules/$mod.ko" || die "insmod $mod" ;;
	esac
done </lib/modules/order

ip link set eth0 up || die "no eth0"

# Ask again every second: the e1000 link needs a moment after "up", and a
# discover sent before carrier is simply lost.
dev=/dev/etherd/$target
i=0
while [ ! -b "$dev" ]; do
	[ "$i" -ge "$wait" ] && die "device $target did not appear within ${wait}s"
	[ -e /dev/etherd/discover ] && echo >/dev/etherd/discover
	sleep 1
	i=$((i + 1))
done
say "device=$target"
# Keep the driver's frame pool (512 frames of 1 KiB per target) from running
# dry: a frame is only reusable after the driver's completion thread has
# handled it, which under TCG can lag far behind, and a dry pool is what
# leaves the driver stalled (see kicker). The device's default readahead
# (4 MiB) lets that much read I/O be outstanding; 128 KiB bounds it.
blockdev --setra "$readahead" "$dev" || die "setra"
kicker &

size=$(blockdev --getsize64 "$dev") || die "blockdev"
say "size_bytes=$size"
# Centiseconds since boot, for a rough idea of throughput under TCG.
now_cs() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }

# aoetest.mode=demo (make demo): show the disk being used instead of testing.
if [ "${mode:-test}" = demo ]; then
	sysd="/sys/block/etherd!$target"
	say "demo: the Linux aoe driver found $target: $((size >> 20)) MiB, state $(cat "$sysd/state"), $(cat "$sysd/payload") bytes of data per frame, target MAC $(cat "$sysd/mac")"
	msg="Hello from the Linux aoe initiator, written through /dev/etherd/$target"
	echo "$msg" >/tmp/msg
	# bs >= page size: busybox dd page-aligns only those buffers (O_DIRECT).
	dd if=/tmp/msg of="$dev" bs=4096 count=1 conv=sync,fsync oflag=direct 2>/dev/null ||
		die "demo write"
	say "demo: wrote \"$msg\" to sector 0"
	echo 3 >/proc/sys/vm/drop_caches
	back=$(dd if="$dev" bs=4096 count=1 iflag=direct 2>/dev/null | strings | head -n 1)
	say "demo: read back from sector 0: \"$back\""
	t0=$(now_cs)
	md5=$(dd if="$dev" bs=1M count=64 2>/dev/null | md5sum | cut -d' ' -f1)
	t1=$(now_cs)
	say "demo: read the first 64 MiB (md5 $md5) in $(((t1 - t0) / 100)).$(printf %02d $(((t1 - t0) % 100))) s (emulated CPU)"
	say done
	finish
fi

# report_dmesg FROM NAME: the kernel's lines after the first FROM, each
# distinct message once with its count ("AOETEST NAME dmesg: N x MESSAGE",
# the first 20), and how many lines look like errors ("AOETEST NAME
# dmesg_errors=N"). The scenarios keep kernel lines off the console
# (dmesg -n 1) so that none splits a report line.
report_dmesg() {
	dmesg | tail -n +$(($1 + 1)) >/tmp/dmesg.new
	sed 's/^\[[ 0-9.]*\] //' /tmp/dmesg.new | sort | uniq -c | sort -rn | head -n 20 |
		sed "s/^ *\([0-9]*\) /AOETEST $2 dmesg: \1 x /"
	say "$2 dmesg_errors=$(grep -Eic 'error|fail|down|timeout|abort' /tmp/dmesg.new)"
}

# dd_error: the first line of dd's complaint in /tmp/dd.err, without the counts.
dd_error() { grep -v 'records\|bytes' /tmp/dd.err | head -n 1; }

# secs_of CS: centiseconds as seconds with two decimals.
secs_of() { echo "$(($1 / 100)).$(printf %02d $(($1 % 100)))"; }

# block_data N: the 4 KiB the restart scenario writes to block N; its number
# in every line, so that a lost, stale or misplaced block shows.
block_data() { yes "aoetest restart: block $1" | head -c 4096; }

# aoetest.scenario=restart: write block after block (4 KiB each, from sector
# 0, uncached) and read each back at once, while the host kills and restarts
# the target; then read every block again in one pass. The loop ends when the
# host has written "aoetest stop" into the device's last block (checked about
# every second), or after `duration` seconds.
# Reports:
#   AOETEST restart started
#   AOETEST restart progress writes=N errors=N mismatches=N   about every second
#   AOETEST restart write|read N failed: ... / restart mismatch block=N
#   AOETEST restart result writes=N errors=N mismatches=N verify_bad=N
#           loop_secs=S.SS worst_secs=S.SS stopped=0|1 wrote_md5=MD5 len=N
#   AOETEST restart dmesg...                                   see report_dmesg
scenario_restart() {
	local i=0 errors=0 mismatches=0 bad stopped=0 blocks=$((size / 4096 - 1))
	local t t0 t_start t_end t_said worst=0 dm0
	dmesg -n 1
	dm0=$(dmesg | wc -l)
	: >/tmp/expected
	t=$(now_cs)
	t_start=$t
	t_end=$((t + duration * 100))
	t_said=$t
	say "restart started"
	while [ "$t" -lt "$t_end" ] && [ "$i" -lt "$blocks" ]; do
		t0=$t
		block_data "$i" >/tmp/blk
		cat /tmp/blk >>/tmp/expected
		# bs >= page size: busybox dd page-aligns only those buffers (O_DIRECT).
		if ! dd if=/tmp/blk of="$dev" bs=4096 seek="$i" oflag=direct conv=notrunc 2>/tmp/dd.err; then
			errors=$((errors + 1))
			say "restart write $i failed: $(dd_error)"
		elif ! dd if="$dev" of=/tmp/back bs=4096 skip="$i" count=1 iflag=direct 2>/tmp/dd.err; then
			errors=$((errors + 1))
			say "restart read $i failed: $(dd_error)"
		elif ! cmp -s /tmp/blk /tmp/back; then
			mismatches=$((mismatches + 1))
			say "restart mismatch block=$i"
		fi
		i=$((i + 1))
		t=$(now_cs)
		[ $((t - t0)) -le "$worst" ] || worst=$((t - t0))
		[ $((t - t_said)) -ge 100 ] || continue
		say "restart progress writes=$i errors=$errors mismatches=$mismatches"
		t_said=$t
		if ! dd if="$dev" of=/tmp/stop bs=4096 skip="$blocks" count=1 iflag=direct 2>/tmp/dd.err; then
			errors=$((errors + 1))
			say "restart read of the stop block failed: $(dd_error)"
		elif [ "$(head -c 12 /tmp/stop)" = "aoetest stop" ]; then
			stopped=1
			break
		fi
	done
	t=$(now_cs)
	say "restart progress writes=$i errors=$errors mismatches=$mismatches"
	# Every block written, once more, uncached: counts the blocks that differ
	# (a short read counts too).
	if dd if="$dev" of=/tmp/back bs=4096 count="$i" iflag=direct 2>/tmp/dd.err; then
		bad=$(cmp -l /tmp/expected /tmp/back 2>&1 | awk '{ print int(($1 - 1) / 4096) }' | uniq | wc -l)
	else
		errors=$((errors + 1))
		say "restart verify read failed: $(dd_error)"
		bad=$i
	fi
	say "restart result writes=$i errors=$errors mismatches=$mismatches verify_bad=$bad" \
		"loop_secs=$(secs_of $((t - t_start))) worst_secs=$(secs_of "$worst") stopped=$stopped" \
		"wrote_md5=$(md5sum </tmp/expected | cut -d' ' -f1) len=$((i * 4096))"
	report_dmesg "$dm0" restart
}

# fullfs_read WHAT OFFSET: one uncached 1 MiB read, its md5 reported.
fullfs_read() {
	if dd if="$dev" of=/tmp/back bs=65536 skip=$(($2 / 65536)) count=16 \
		iflag=direct 2>/tmp/dd.err; then
		say "fullfs $1 offset=$2 md5=$(md5sum </tmp/back | cut -d' ' -f1)"
	else
		say "fullfs $1 offset=$2 failed: $(dd_error)"
	fi
}

# aoetest.scenario=fullfs: the export is a file on a filesystem with less
# free space than fill_mb MiB. Write fill_mb distinct 1 MiB regions from
# sector 0 (uncached, 64 KiB requests), then read each region back, read a
# region never written (the device's last MiB), and overwrite region 0.
# Reports:
#   AOETEST fullfs write region=R offset=N ok md5=MD5 | failed: DD ERROR
#   AOETEST fullfs reread region=R offset=N md5=MD5 | failed: DD ERROR
#   AOETEST fullfs unwritten offset=N md5=MD5 | failed: DD ERROR
#   AOETEST fullfs overwrite offset=0 wrote_md5=MD5 reread_md5=MD5 | failed: ...
#   AOETEST fullfs state=STATE          the driver's view of the device
#   AOETEST fullfs result ok=N failed=N
#   AOETEST fullfs dmesg...                                    see report_dmesg
scenario_fullfs() {
	local r=0 len=1048576 off md5 ok=0 failed=0 dm0
	dmesg -n 1
	dm0=$(dmesg | wc -l)
	while [ "$r" -lt "$fill_mb" ]; do
		off=$((r * len))
		dd if=/dev/urandom of=/tmp/region bs=$len count=1 2>/dev/null || die "urandom"
		md5=$(md5sum </tmp/region | cut -d' ' -f1)
		if dd if=/tmp/region of="$dev" bs=65536 seek=$((off / 65536)) oflag=direct \
			conv=notrunc 2>/tmp/dd.err; then
			ok=$((ok + 1))
			say "fullfs write region=$r offset=$off ok md5=$md5"
		else
			failed=$((failed + 1))
			say "fullfs write region=$r offset=$off failed: $(dd_error)"
		fi
		r=$((r + 1))
	done
	r=0
	while [ "$r" -lt "$fill_mb" ]; do
		fullfs_read "reread region=$r" $((r * len))
		r=$((r + 1))
	done
	fullfs_read unwritten $((size - len))
	# Space the file already has is still writable.
	dd if=/dev/urandom of=/tmp/region bs=$len count=1 2>/dev/null || die "urandom"
	md5=$(md5sum </tmp/region | cut -d' ' -f1)
	if dd if=/tmp/region of="$dev" bs=65536 oflag=direct conv=notrunc 2>/tmp/dd.err; then
		if dd if="$dev" of=/tmp/back bs=65536 count=16 iflag=direct 2>/tmp/dd.err; then
			say "fullfs overwrite offset=0 wrote_md5=$md5 reread_md5=$(md5sum </tmp/back | cut -d' ' -f1)"
		else
			say "fullfs overwrite offset=0 reread failed: $(dd_error)"
		fi
	else
		say "fullfs overwrite offset=0 failed: $(dd_error)"
	fi
	say "fullfs state=$(cat "/sys/block/etherd!$target/state")"
	say "fullfs result ok=$ok failed=$failed"
	report_dmesg "$dm0" fullfs
}

case $scenario in
restart | fullfs)
	"scenario_$scenario"
	say "stats $(grep -E '^(falloc|kicked):' /sys/kernel/debug/aoe/$target 2>/dev/null |
		tr -d ' ' | tr ':\n' '= ')"
	say done
	finish
	;;
esac
t0=$(now_cs)
say "read_md5=$(md5sum <"$dev" | cut -d' ' -f1)"
t1=$(now_cs)
say "read_secs=$(((t1 - t0) / 100)).$(printf %02d $(((t1 - t0) % 100)))"

# write_region OFFSET LEN: write LEN random bytes at OFFSET, flush to the
# target, drop the page cache and read the region back through the device.
# Direct I/O in 64 KiB requests (LEN must be a multiple of 4 KiB): like the
# readahead limit, this keeps the driver's frame pool from running dry (a
# single 1 MiB request needs 1024 frames); the target sees the same 1 KiB
# frames either way.
write_region() {
	local off=$1 len=$2 pat=/tmp/pattern bs=65536
	[ $((len % bs)) -eq 0 ] || bs=4096
	dd if=/dev/urandom of=$pat bs="$len" count=1 2>/dev/null || die "urandom"
	say "wrote_md5=$(md5sum <$pat | cut -d' ' -f1) offset=$off len=$len"
	dd if=$pat of="$dev" bs=$bs seek="$off" oflag=seek_bytes,direct \
		conv=notrunc,fsync 2>/dev/null || die "write at $off"
	echo 3 >/proc/sys/vm/drop_caches
	local back
	back=$(dd if="$dev" bs=$bs skip="$off" count=$((len / bs)) \
		iflag=skip_bytes,direct 2>/dev/null | md5sum | cut -d' ' -f1) ||
		die "reread at $off"
	say "reread_md5=$back offset=$off len=$len"
	rm -f $pat
}

write_region "$write_off" "$write_len"
# The last region ends exactly at the last sector of the device.
write_region $((size - tail_len)) "$tail_len"

# Driver bookkeeping, for the record: falloc near 512 means the pool ran dry.
say "stats $(grep -E '^(falloc|kicked):' /sys/kernel/debug/aoe/$target 2>/dev/null |
	tr -d ' ' | tr ':\n' '= ')"
say done
finish
