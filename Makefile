# aoe-xdp: the two commands a new machine needs (Debian 12, as root):
#   make demo   installs what it needs, builds, serves a sparse file to a demo initiator
#   make test   the whole test suite (what CI runs)

SHELL := /bin/bash
CARGO ?= cargo

# Debian packages: build (clang, libbpf headers; libxdp for xsk-rs needs
# m4, libpcap, libelf), real peers (vblade, aoetools), the Linux initiator
# VM (qemu, busybox, cpio, xz, kmod), tools the tests and bench use.
APT_PACKAGES := clang llvm m4 libpcap-dev libelf-dev libbpf-dev zlib1g-dev pkg-config make \
	iproute2 iputils-ping ethtool python3 vblade aoetools qemu-system-x86 busybox-static \
	cpio xz-utils kmod gzip coreutils procps util-linux e2fsprogs mount openssl

.PHONY: all deps build test unit lint integration interop demo bench clean-net clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo (Rust 1.85 or newer) is required" >&2; exit 1; }

build: deps
	$(CARGO) build --release --workspace

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every level: lint, unit tests on golden frames, netns integration with
# aoetools, interop with the Linux aoe driver in a VM. Ends with one
# "N passed, N failed" line.
test: build
	bash tests/run-all.sh

unit: deps
	$(CARGO) test --workspace

integration: build
	bash tests/integration.sh

interop: build
	bash tests/interop/linux-initiator.sh

demo: build
	bash tests/demo.sh

bench: build
	bash bench/run.sh

# Removes every namespace the tests, demo and bench create (all aoex-*).
clean-net:
	@for ns in $$(ip netns list | awk '/^aoex-/ {print $$1}'); do \
		ip netns pids $$ns | xargs -r kill -9; ip netns del $$ns; echo "removed $$ns"; done

clean:
	$(CARGO) clean
	rm -rf build
