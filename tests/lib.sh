# Shared helpers for the privileged tests: network namespaces and veth pairs
# that each test creates, names with its own prefix and removes on exit.
# Source this file; it never touches the machine's own interfaces.

# Test bookkeeping: every check goes through pass/fail so the suite can print
# one "N passed, N failed" line at the end.
PASSED=${PASSED:-0}
FAILED=${FAILED:-0}
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
check() { # check "description" command...
	local what=$1; shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
summary() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; }

# Loud skip: only for a kernel that truly lacks a feature.
skip_loudly() { echo "SKIP!!! $*" >&2; }

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "this test needs root (network namespaces, XDP)" >&2
		exit 1
	fi
}

# make_netns NAME: create a namespace (removing a stale one of the same name).
make_netns() {
	ip netns del "$1" 2>/dev/null || true
	ip netns add "$1"
	ip -n "$1" link set lo up
}

# make_veth NS_A IF_A NS_B IF_B [QUEUES]: a veth pair between two namespaces,
# with QUEUES rx/tx queues on each end (default 1).
make_veth() {
	local nsa=$1 ifa=$2 nsb=$3 ifb=$4 q=${5:-1}
	ip link add "$ifa" numtxqueues "$q" numrxqueues "$q" netns "$nsa" type veth \
		peer name "$ifb" numtxqueues "$q" numrxqueues "$q" netns "$nsb"
	ip -n "$nsa" link set "$ifa" up
	ip -n "$nsb" link set "$ifb" up
}

# del_netns NAME...: remove namespaces by name (killing what still runs there).
del_netns() {
	local ns
	for ns in "$@"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
}

# wait_for CMD... : retry a command for up to WAIT_SECS (default 10) seconds.
wait_for() {
	local deadline=$((SECONDS + ${WAIT_SECS:-10}))
	until "$@"; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.2
	done
}

# The binaries under test (built by `make build`).
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AOE_XDP=${AOE_XDP:-$REPO_ROOT/target/release/aoe-xdp}
