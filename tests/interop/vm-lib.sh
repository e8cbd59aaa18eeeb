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

# fetch_kernel CACHE: make sure CACHE/<package>/{vmlinuz,modules/} exist and
# print that directory. Downloads and extracts the .deb only the first time.
fetch_kernel() {
	local cache=$1 pkg dir tmp
	pkg=$(kernel_package)
	if [ -z "$pkg" ]; then # a fresh machine may have no package lists yet
		apt-get update >&2 || true
		pkg=$(kernel_package)
	fi
	[ -n "$pkg" ] || { echo "cannot resolve linux-image-amd64 (apt-cache)" >&2; return 1; }
	dir=$cache/$pkg
	if [ -f "$dir/.complete" ]; then
		echo "$dir"
		return 0
	fi
	echo "fetching $pkg into $dir" >&2
	rm -rf "$dir"
	tmp=$cache/tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp/x" "$dir/modules"
	# apt's _apt user must be able to write the download directory.
	chmod 777 "$tmp"
	(cd "$tmp" && apt-get download "$pkg" >&2) ||
		(apt-get update >&2 && cd "$tmp" && apt-get download "$pkg" >&2)
	dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
	cp "$tmp"/x/boot/vmlinuz-* "$dir/vmlinuz"
	add_module "$tmp/x" "$dir/modules" e1000
	add_module "$tmp/x" "$dir/modules" aoe
	rm -rf "$tmp" # the extracted tree is ~400 MB; keep only what we use
	touch "$dir/.complete"
	echo "$dir"
}

# build_initramfs KERNEL_DIR INIT OUT: busybox + modules + INIT as /init.
build_initramfs() {
	local kdir=$1 init=$2 out=$3 root
	root=$(dirname "$out")/initramfs-root
	rm -rf "$root"
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
	cp /bin/busybox "$root/bin/busybox"
	cp "$kdir"/modules/* "$root/lib/modules/"
	install -m 0755 "$init" "$root/init"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
	rm -rf "$root"
}
