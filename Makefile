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
	cpio xz-utils kmod gzip coreutils procps util-linux e2fsprogs mount openssl jq bpftool

.PHONY: all deps build test unit lint integration interop powercut demo bench clean-net clean

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

# Power cuts: aoe-xdp in a qemu VM serving a file on ext4 under aoe-bench
# --verify load; qemu is killed, the VM boots again, every acknowledged
# write must be there (and with ,writeback it must not: the test sees loss).
powercut: build
	bash tests/powercut/run.sh

demo: build
	bash tests/demo.sh

bench: build
	bash bench/run.sh

# Coverage-guided fuzzing of aoe-proto with AFL++ on stable Rust (fuzz/ is
# its own cargo package, outside the workspace; see fuzz/README.md).
#   make fuzz [FUZZ_SECS=600]   fuzz into build/fuzz (resumed if it exists)
#   make fuzz-check             60 s from the seed corpus; PASS:/FAIL: line
FUZZ_SECS ?= 600
FUZZ_CHECK_SECS ?= 60
FUZZ_OUT ?= build/fuzz

.PHONY: fuzz fuzz-check fuzz-build fuzz-deps

# cargo-afl 0.18 builds AFL++ (from the source it ships) when installed;
# `cargo afl config --build` builds it if that did not happen.
fuzz-deps:
	@command -v $(CARGO) >/dev/null || { echo "FAIL: fuzz: cargo is required"; exit 1; }
	@if ! $(CARGO) afl --version 2>/dev/null | grep -q '^cargo-afl 0\.18\.'; then \
		echo "installing cargo-afl 0.18"; \
		$(CARGO) install cargo-afl --locked --version '~0.18' \
			|| { echo "FAIL: fuzz: cargo install cargo-afl failed"; exit 1; }; \
	fi
	@out=$$($(CARGO) afl config --build 2>&1) || echo "$$out" | grep -q "already built" \
		|| { echo "$$out"; echo "FAIL: fuzz: cargo afl config --build failed"; exit 1; }

fuzz-build: fuzz-deps
	cd fuzz && $(CARGO) afl build --release --target-dir target/afl --bin aoe_target

fuzz: fuzz-build
	bash fuzz/run.sh fuzz $(FUZZ_SECS) $(FUZZ_OUT)

# Also the fuzz crate's own lint and tests (the seed corpus is up to date
# and passes), since the workspace lint does not reach fuzz/.
fuzz-check: fuzz-build
	cd fuzz && $(CARGO) fmt --check && $(CARGO) clippy --release --all-targets -- -D warnings \
		&& $(CARGO) test --release
	bash fuzz/run.sh check $(FUZZ_CHECK_SECS) build/fuzz-check

# Removes every namespace the tests, demo and bench create (all aoex-*).
clean-net:
	@for ns in $$(ip netns list | awk '/^aoex-/ {print $$1}'); do \
		ip netns pids $$ns | xargs -r kill -9; ip netns del $$ns; echo "removed $$ns"; done

clean:
	$(CARGO) clean
	rm -rf build
