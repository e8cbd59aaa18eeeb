# shellcheck shell=bash
# Helpers for the VM-based interop tests: fetch Debian's kernel and build a
# busybox initramfs around tests/interop/vm-init.sh. Source this file.

# need_tools: fail early, naming the Debian packages that are missing.
need_tools() {
	local missing="" pair
	for pair in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static \
		cpio:cpio xz:xz-utils modinfo:kmod ip:iproute2 setsid:util-linux flock:util-linux; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
	done
	# The initramfs needs the static busybox: the dynamic one lacks its libc.
	dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing busybox-static"
	if [ -n "$missing" ]; then
		echo "missing packages:$missing (apt-get install$missing)" >&2
		exit 1
	fi
	[ -c /dev/net/tun ] || { echo "/dev/net/tun is missing (qemu tap)" >&2; exit 1; }
}

# kernel_package: the concrete image package behind linux-image-amd64.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }' || true
}

# find_module TREE NAME: path of NAME.ko[.xz|.zst|.gz] (kmod treats - and _ alike).
find_module() {
	local tree=$1 name=$2 alt
	alt=$(echo "$name" | tr '_-' '-_')
	find "$tree/lib/modules" \( -name "$name.ko*" -o -name "$alt.ko*" \) | head -n 1
}

# copy_module SRC DESTDIR: uncompressed copy as DESTDIR/<name>.ko (busybox
# insmod in the VM cannot rely on the kernel's compressed-module support).
copy_module() {
	local src=$1 dir=$2 base
	base=$(basename "$src")
	case $base in
	*.ko.xz) xz -dc "$src" >"$dir/${base%.xz}" ;;
	*.ko.zst) zstd -dcq "$src" >"$dir/${base%.zst}" ;;
	*.ko.gz) gzip -dc "$src" >"$dir/${base%.gz}" ;;
	*.ko) cp "$src" "$dir/$base" ;;
	esac
}

# add_module TREE DESTDIR NAME: copy NAME and, first, its dependencies;
# appends to DESTDIR/order so the VM loads them dependencies-first.
add_module() {
	local tree=$1 dir=$2 name=$3 path dep
	grep -qx "$name" "$dir/order" 2>/dev/null && return 0
	path=$(find_module "$tree" "$name")
	[ -n "$path" ] || { echo "module $name not found in kernel package" >&2; return 1; }
	for dep in $(modinfo -F depends "$path" | tr ',' ' '); do
		add_module "$tree" "$dir" "$dep"
	done
	copy_module "$path" "$dir"
	echo "$name" >>"$dir/order"
}

# fetch_kernel CACHE [SET MODULE...]: make sure CACHE/<package>/{vmlinuz,modules/}
# exist (modules/: e1000 and aoe, for the initiator VM) and print that
# directory. With SET, also CACHE/<package>/modules-SET/: MODULE... and their
# dependencies, in load order in its file "order". Each set has its own
# marker, so a cache made before a set was asked for gets just that set
# added; the .deb is downloaded and extracted only when something is missing.
fetch_kernel() {
	local cache=$1 set=${2:-} pkg dir tmp mod
	[ $# -lt 2 ] || shift 2
	pkg=$(kernel_package)
	if [ -z "$pkg" ]; then # a fresh machine may have no package lists yet
		apt-get update >&2 || true
		pkg=$(kernel_package)
	fi
	[ -n "$pkg" ] || { echo "cannot resolve linux-image-amd64 (apt-cache)" >&2; return 1; }
	dir=$cache/$pkg
	if [ -f "$dir/.complete" ] && { [ -z "$set" ] || [ -f "$dir/modules-$set/.complete" ]; }; then
		echo "$dir"
		return 0
	fi
	echo "fetching $pkg into $dir" >&2
	tmp=$cache/tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp/x"
	# apt's _apt user must be able to write the download directory.
	chmod 777 "$tmp"
	(cd "$tmp" && apt-get download "$pkg" >&2) ||
		(apt-get update >&2 && cd "$tmp" && apt-get download "$pkg" >&2)
	dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
	if [ ! -f "$dir/.complete" ]; then
		rm -rf "$dir"
		mkdir -p "$dir/modules"
		cp "$tmp"/x/boot/vmlinuz-* "$dir/vmlinuz"
		add_module "$tmp/x" "$dir/modules" e1000
		add_module "$tmp/x" "$dir/modules" aoe
		touch "$dir/.complete"
	fi
	if [ -n "$set" ]; then
		rm -rf "$dir/modules-$set"
		mkdir -p "$dir/modules-$set"
		for mod in "$@"; do
			add_module "$tmp/x" "$dir/modules-$set" "$mod"
		done
		touch "$dir/modules-$set/.complete"
	fi
	rm -rf "$tmp" # the extracted tree is ~400 MB; keep only what we use
	echo "$dir"
}

# initramfs_root KERNEL_DIR INIT ROOT [SET]: a directory ROOT with busybox,
# the modules (of SET, else the default ones) and INIT as /init.
initramfs_root() {
	local kdir=$1 init=$2 root=$3 set=${4:-}
	rm -rf "$root"
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
	cp /bin/busybox "$root/bin/busybox"
	cp "$kdir/modules${set:+-$set}"/* "$root/lib/modules/"
	install -m 0755 "$init" "$root/init"
}

# add_binary ROOT BINARY DEST: BINARY as ROOT/DEST, stripped (a smaller
# initramfs unpacks faster under TCG), with the shared libraries and the
# dynamic loader it needs (ldd) at their own paths.
add_binary() {
	local root=$1 bin=$2 dest=$3 lib
	mkdir -p "$(dirname "$root/$dest")"
	strip -o "$root/$dest" "$bin" 2>/dev/null || install -m 0755 "$bin" "$root/$dest"
	for lib in $(ldd "$bin" | grep -oE '/[^ ]+'); do
		install -D -m 0755 "$(readlink -f "$lib")" "$root/$lib"
	done
}

# pack_initramfs ROOT OUT: ROOT as a gzip'd cpio archive; removes ROOT.
pack_initramfs() {
	local root=$1 out=$2
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
	rm -rf "$root"
}

# build_initramfs KERNEL_DIR INIT OUT [SET]: busybox + modules + INIT as /init.
build_initramfs() {
	local root
	root=$(dirname "$3")/initramfs-root
	initramfs_root "$1" "$2" "$root" "${4:-}"
	pack_initramfs "$root" "$3"
}
