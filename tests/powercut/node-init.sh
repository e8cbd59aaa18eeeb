#!/bin/busybox sh
# shellcheck shell=dash
# /init of the storage node VM of tests/powercut/run.sh: a busybox initramfs
# with the modules of modules/order and aoe-xdp (with its shared libraries).
#
# Mounts the ext4 filesystem on /dev/vda (after a power cut the kernel
# replays its journal here), makes the export file if asked to, and serves
# it with aoe-xdp on eth0 until the host kills the VM (the power cut).
# Reports on the serial console with lines the host parses:
#   NODE fs: LINE                      the kernel's EXT4 lines of this mount
#   NODE export=PATH size=N allocated_kib=N spec=SPEC
#   NODE error ...                     then the VM powers off
# and aoe-xdp's own log, whose "serving" line says it is ready.
# Parameters (kernel command line):
#   powercut.export=NAME   the export file, /mnt/NAME (required)
#   powercut.create=SIZE   make NAME afresh, sparse, SIZE bytes (truncate -s),
#                          and remove the other *.img files first
#   powercut.mode=MODE     durable, writeback, sync (aoe-xdp's export option
#                          of that name) or default (no option)

/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp

say() { echo "NODE $*"; }
echo # the console line may still hold the firmware's escape sequences

die() {
	say "error $*"
	dmesg | tail -n 30
	poweroff -f
	sleep 5 # poweroff -f does not return; never let /init exit (panic)
}

# Command line: powercut.KEY=VALUE becomes shell variable KEY.
export="" create="" mode=default
read -r cmdline </proc/cmdline
for word in $cmdline; do
	case $word in
	powercut.*=*)
		kv=${word#powercut.}
		eval "${kv%%=*}='${kv#*=}'"
		;;
	esac
done
[ -n "$export" ] || die "no powercut.export on the kernel command line"
case $mode in
default) opt="" ;;
durable | writeback | sync) opt=",$mode" ;;
*) die "unknown powercut.mode=$mode" ;;
esac

while read -r mod; do
	insmod "/lib/modules/$mod.ko" || die "insmod $mod"
done </lib/modules/order

# virtio_blk probes asynchronously: wait for the disk.
i=0
while [ ! -b /dev/vda ]; do
	[ "$i" -lt 100 ] || die "no /dev/vda"
	sleep 0.1
	i=$((i + 1))
done
mkdir -p /mnt
mount -t ext4 /dev/vda /mnt || die "mount /dev/vda"
dmesg | grep 'EXT4-fs (vda)' | sed 's/^\[[ 0-9.]*\] /NODE fs: /'

file=/mnt/$export
if [ -n "$create" ]; then
	rm -f /mnt/*.img
	truncate -s "$create" "$file" || die "truncate $file"
	# The file itself must survive the cut; only the writes are under test.
	sync
fi
[ -f "$file" ] || die "$file is missing"
say "export=$file size=$(stat -c %s "$file") allocated_kib=$(du -k "$file" | cut -f1) spec=1.1=$file$opt"

ip link set eth0 up || die "no eth0"
# Serve once the link is up: a Query Config sent before then is lost.
i=0
while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ]; do
	[ "$i" -lt 100 ] || die "no carrier on eth0"
	sleep 0.1
	i=$((i + 1))
done
# Writes to the console directly (a tty: line by line); "serving" = ready.
/bin/aoe-xdp --iface eth0 --xdp-mode generic --stats-interval 1 --export "1.1=$file$opt"
die "aoe-xdp exited with status $?"
