# shellcheck shell=bash
# The test harness library: sourced by tests/integration.sh,
# tests/interop/linux-initiator.sh, tests/demo.sh (through it) and
# bench/run.sh. It never touches the machine's own interfaces: everything a
# script creates lives in network namespaces named after the run.
#
# Sourcing it installs the script's only EXIT, INT, TERM and HUP traps. Do not
# set traps of your own for these signals afterwards; register cleanup work
# with on_exit instead. INT exits with 130, TERM with 143, HUP with 129; every
# exit (normal, failed, interrupted) runs the cleanup below.
#
# API
#   Names (unique per run, so two runs never collide):
#     RUN_TAG                aoex-$$ (the sourcing shell's PID)
#     ns_name SUFFIX         prints "$RUN_TAG-SUFFIX", e.g. aoex-4242-tgt
#     if_name SUFFIX         prints "ax<PID>SUFFIX", e.g. ax4242t. SUFFIX must
#                            start with a letter (so the PID cannot run into it)
#                            and be at most 6 characters (IFNAMSIZ: 15 with a
#                            7-digit PID).
#   Scopes: what is registered inside a run_test test (namespaces, on_exit
#   commands, loop devices, the target) is cleaned up when that test ends;
#   what the script registers outside any test, when the script exits. At
#   its exit the script also deletes every namespace named $RUN_TAG-* left.
#   Network:
#     make_netns NAME        create namespace NAME (replacing a stale one), lo up;
#                            registered for deletion at exit (of its scope)
#     make_veth NS_A IF_A NS_B IF_B [QUEUES]
#                            a veth pair between two namespaces, QUEUES rx/tx
#                            queues on each end (default 1), both ends up
#     del_netns NAME...      kill what runs in them, delete them
#   Cleanup:
#     on_exit CMD...         run CMD (argv, no shell parsing) at exit of its
#                            scope; all of them in reverse order of
#                            registration, after the running target is stopped
#                            and before the registered namespaces are deleted
#     make_loop FILE [VAR]   attach a loop device over FILE, store its path in
#                            VAR (default LOOP_DEV) and register its detach
#     del_loop DEV [FILE]    detach DEV now if attached (and, with FILE, only
#                            if it still backs FILE: the number may be reused)
#   One target at a time (TARGET_PID, TARGET_LOG, TARGET_LOG_START, TARGET_NS):
#     start_target NS LOG ARGS...
#                            run "$AOE_XDP" ARGS in NS, output appended to LOG,
#                            in its own session (process group); waits until
#                            the log (from this start on) has a line matching
#                            "serving", else prints the log and returns 1 (the
#                            target exited, or TARGET_READY_SECS, default 15,
#                            passed; then it is killed)
#     start_target_cmd NS LOG READY_REGEX CMD...
#                            the same for any command (e.g. vblade). An empty
#                            READY_REGEX only checks that it has not exited;
#                            the caller then awaits readiness some other way
#     stop_target            SIGTERM to the target's process group, wait until
#                            all of it is gone (SIGKILL after TARGET_STOP_SECS,
#                            default 10); returns the target's exit status
#     kill_target            SIGKILL to the process group, wait for it
#     target_alive           the target process is still running
#     target_output          what the target wrote to LOG since its start
#                            (from byte TARGET_LOG_START on); still valid
#                            after stop_target/kill_target
#   Waiting (poll every 0.1 s; never sleep for a fixed time instead):
#     wait_for CMD...        retry CMD (a command or function) until it
#                            succeeds, for up to WAIT_SECS (default 10)
#                            seconds; returns 1 on timeout
#     wait_log FILE REGEX [SECS]
#                            until FILE has a line matching the extended REGEX
#                            (SECS defaults to WAIT_SECS, else 10)
#   Results (run-all.sh counts the "PASS: " and "FAIL: " lines):
#     pass TEXT / fail TEXT  count and print one result
#     check TEXT CMD...      pass if CMD succeeds, else fail
#     summary                print "N passed, N failed"; false if any failed
#     run_test FUNC [ARGS...]
#                            run FUNC ARGS in a subshell with errexit really in
#                            force (`set -eE`, inherit_errexit): the first
#                            failing command ends the test, which counts as
#                            "FAIL: FUNC aborted at line N of FILE (...)".
#                            Results reach summary through a file. The test
#                            starts with no target (TARGET_PID is empty in it);
#                            what it registers is cleaned up when it ends. It
#                            ignores INT and HUP: the script, on INT/TERM/HUP,
#                            TERMs it and everything below it and waits (30 s,
#                            then KILL) for its cleanup. Returns 0. Call it
#                            as a plain command, never from if/while/||/&&
#                            (bash would switch errexit off inside; run_test
#                            detects that and counts a FAIL instead).
#   Misc: need_root, skip_loudly TEXT, REPO_ROOT, AOE_XDP (the binary under
#   test: $AOE_XDP, default target/release/aoe-xdp).

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AOE_XDP=${AOE_XDP:-$REPO_ROOT/target/release/aoe-xdp}

RUN_TAG=aoex-$$
_LIB_TOP_PID=$$
_LIB_DIR=$(mktemp -d "/tmp/$RUN_TAG.lib.XXXXXX")
_LIB_RESULTS=$_LIB_DIR/results
: >"$_LIB_RESULTS"
_LIB_ONEXIT=()
_LIB_NETNS=()
_LIB_TEST_PID=
_LIB_SCOPE_PID=$$
# Public: set by start_target*, read by scripts.
TARGET_PID=
TARGET_LOG=
TARGET_LOG_START=0
# shellcheck disable=SC2034
TARGET_NS=

# --- names --------------------------------------------------------------------

ns_name() { echo "$RUN_TAG-$1"; }

if_name() {
	if ! [[ $1 =~ ^[A-Za-z][A-Za-z0-9]{0,5}$ ]]; then
		echo "if_name: '$1': want a letter, then at most 5 letters or digits" >&2
		return 1
	fi
	echo "ax$_LIB_TOP_PID$1"
}

# --- results --------------------------------------------------------------------

pass() { echo P >>"$_LIB_RESULTS"; echo "PASS: $*"; }
fail() { echo F >>"$_LIB_RESULTS"; echo "FAIL: $*"; }
check() { # check "description" command...
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
summary() {
	PASSED=$(grep -c '^P$' "$_LIB_RESULTS" || true)
	FAILED=$(grep -c '^F$' "$_LIB_RESULTS" || true)
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

# Loud skip: only for a kernel that truly lacks a feature.
skip_loudly() { echo "SKIP!!! $*" >&2; }

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "this test needs root (network namespaces, XDP)" >&2
		exit 1
	fi
}

# --- waiting ---------------------------------------------------------------------

wait_for() {
	local deadline=$((SECONDS + ${WAIT_SECS:-10}))
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

_lib_file_has() { [ -f "$1" ] && grep -Eq -- "$2" "$1"; }

wait_log() {
	local file=$1 re=$2 secs=${3:-${WAIT_SECS:-10}}
	if ! WAIT_SECS=$secs wait_for _lib_file_has "$file" "$re"; then
		echo "wait_log: no line matching /$re/ in $file after ${secs}s" >&2
		return 1
	fi
}

# --- cleanup ----------------------------------------------------------------------

on_exit() { _LIB_ONEXIT+=("$(printf '%q ' "$@")"); }

# _lib_descendants PID: every descendant of PID, parents before children.
_lib_descendants() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			n = split(kids[root], q, " ")
			for (i = 1; i <= n; i++) {
				print q[i]
				m = split(kids[q[i]], c, " ")
				for (j = 1; j <= m; j++) q[++n] = c[j]
			}
		}'
}

# _lib_stop_test: the script ends a running run_test subshell: TERM to it
# and, unless it is already cleaning up, to everything below it (so that a
# foreground command it waits for ends at once and its EXIT trap runs its
# cleanup); KILL after 30 s.
_lib_stop_test() {
	local pid=$_LIB_TEST_PID
	_LIB_TEST_PID=
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	if [ ! -e "$_LIB_DIR/cleanup.$pid" ]; then
		# shellcheck disable=SC2046
		kill -TERM $(_lib_descendants "$pid") 2>/dev/null
	fi
	if ! WAIT_SECS=30 wait_for _lib_gone "$pid"; then
		# shellcheck disable=SC2046
		kill -KILL "$pid" $(_lib_descendants "$pid") 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
}

# _lib_cleanup: the EXIT trap, of the script and of every run_test subshell.
# Each cleans up what was registered in it; the script's also ends a running
# test and deletes every namespace of this run that is still there.
_lib_cleanup() {
	local rc=$? i ns
	set +eE
	trap - ERR
	trap '' INT TERM HUP
	: >"$_LIB_DIR/cleanup.$BASHPID"
	if [ "$BASHPID" = "$_LIB_TOP_PID" ] && [ -n "$_LIB_TEST_PID" ]; then
		_lib_stop_test
	fi
	if [ -n "$TARGET_PID" ]; then
		# A failed test (not an interrupted one) shows what its target said.
		if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ] && [ -n "$TARGET_LOG" ]; then
			echo "--- the running target's log (tail)"
			target_output | tail -n 20 | sed 's/^/  target| /'
		fi
		stop_target >/dev/null 2>&1
	fi
	for ((i = ${#_LIB_ONEXIT[@]} - 1; i >= 0; i--)); do
		eval "${_LIB_ONEXIT[i]}"
	done
	_LIB_ONEXIT=()
	del_netns "${_LIB_NETNS[@]}"
	_LIB_NETNS=()
	if [ "$BASHPID" = "$_LIB_TOP_PID" ]; then
		for ns in $(ip netns list 2>/dev/null | awk -v p="$RUN_TAG-" 'index($1, p) == 1 { print $1 }'); do
			del_netns "$ns"
		done
		rm -rf "$_LIB_DIR"
	fi
	exit "$rc"
}

trap _lib_cleanup EXIT
trap 'echo "interrupted (SIGINT)" >&2; exit 130' INT
trap 'echo "terminated (SIGTERM)" >&2; exit 143' TERM
trap 'exit 129' HUP

# --- network ----------------------------------------------------------------------

make_netns() {
	del_netns "$1"
	_LIB_NETNS+=("$1")
	ip netns add "$1"
	ip -n "$1" link set lo up
}

make_veth() {
	local nsa=$1 ifa=$2 nsb=$3 ifb=$4 q=${5:-1} n
	for n in "$ifa" "$ifb"; do
		if [ "${#n}" -gt 15 ]; then
			echo "make_veth: interface name '$n' is longer than 15 characters" >&2
			return 1
		fi
	done
	ip link add "$ifa" numtxqueues "$q" numrxqueues "$q" netns "$nsa" type veth \
		peer name "$ifb" numtxqueues "$q" numrxqueues "$q" netns "$nsb"
	ip -n "$nsa" link set "$ifa" up
	ip -n "$nsb" link set "$ifb" up
}

del_netns() {
	local ns
	for ns in "$@"; do
		[ -e "/run/netns/$ns" ] || continue
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
}

# --- loop devices -------------------------------------------------------------------

make_loop() {
	local file=$1 var=${2:-LOOP_DEV} dev
	dev=$(losetup --find --show "$file")
	printf -v "$var" '%s' "$dev"
	on_exit del_loop "$dev" "$(realpath "$file")"
}

# del_loop DEV [FILE]: detach DEV if it is attached (and still to FILE, when
# given: the number may have been reused by someone else since).
del_loop() {
	local dev=$1 file=${2:-} back
	back=$(losetup -n -O BACK-FILE "$dev" 2>/dev/null) || return 0
	[ -n "$back" ] || return 0
	if [ -n "$file" ] && [ "$back" != "$file" ]; then
		return 0
	fi
	losetup -d "$dev"
}

# --- the target ---------------------------------------------------------------------

_lib_gone() { ! kill -0 "$1" 2>/dev/null; }
_lib_group_gone() { _lib_gone "$1" && ! kill -0 -- "-$1" 2>/dev/null; }
_lib_signal_target() { # SIG PID: the process group if it leads one, and PID
	kill -"$1" -- "-$2" 2>/dev/null || true
	kill -"$1" "$2" 2>/dev/null || true
}

target_alive() { [ -n "$TARGET_PID" ] && kill -0 "$TARGET_PID" 2>/dev/null; }

# target_output: what the target wrote to its log since it was started.
target_output() { tail -c "+$((TARGET_LOG_START + 1))" "$TARGET_LOG"; }

start_target() {
	local ns=$1 log=$2
	shift 2
	start_target_cmd "$ns" "$log" "serving" "$AOE_XDP" "$@"
}

start_target_cmd() {
	local ns=$1 log=$2 ready=$3 deadline rc=0
	shift 3
	if [ -n "$TARGET_PID" ]; then
		echo "start_target: target $TARGET_PID is still running (stop_target first)" >&2
		return 1
	fi
	touch "$log"
	TARGET_LOG=$log
	TARGET_LOG_START=$(stat -c %s "$log")
	# shellcheck disable=SC2034 # public, for scripts
	TARGET_NS=$ns
	# setsid: its own process group, so that stop_target reaches whatever it
	# forks, and so that a Ctrl-C on the terminal reaches only the script,
	# whose cleanup then stops the target.
	setsid ip netns exec "$ns" "$@" </dev/null >>"$log" 2>&1 &
	TARGET_PID=$!
	deadline=$((SECONDS + ${TARGET_READY_SECS:-15}))
	while :; do
		if [ -n "$ready" ] && grep -Eq -- "$ready" < <(target_output); then
			return 0
		fi
		if _lib_gone "$TARGET_PID"; then
			wait "$TARGET_PID" || rc=$?
			TARGET_PID=
			echo "target exited (status $rc) before it was ready: $*"
			target_output | sed 's/^/  target| /'
			return 1
		fi
		[ -n "$ready" ] || return 0
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "target did not log /$ready/ within ${TARGET_READY_SECS:-15}s: $*"
			kill_target
			target_output | sed 's/^/  target| /'
			return 1
		fi
		sleep 0.1
	done
}

stop_target() {
	[ -n "$TARGET_PID" ] || return 0
	local pid=$TARGET_PID rc=0
	_lib_signal_target TERM "$pid"
	if ! WAIT_SECS=${TARGET_STOP_SECS:-10} wait_for _lib_group_gone "$pid"; then
		echo "stop_target: $pid still running ${TARGET_STOP_SECS:-10}s after SIGTERM: SIGKILL" >&2
		_lib_signal_target KILL "$pid"
		WAIT_SECS=5 wait_for _lib_group_gone "$pid" || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	TARGET_PID=
	return "$rc"
}

kill_target() {
	[ -n "$TARGET_PID" ] || return 0
	local pid=$TARGET_PID
	_lib_signal_target KILL "$pid"
	# wait first: a job that bash reaps on its own is reported as "Killed".
	wait "$pid" 2>/dev/null || true
	WAIT_SECS=5 wait_for _lib_group_gone "$pid" || true
	TARGET_PID=
}

# --- tests with errexit in force ------------------------------------------------------

# _lib_on_err LINE: the ERR trap of a test subshell records where the test
# failed (only for commands of the test's own shell, not of its subshells:
# their failure reaches it as a failed command of its own).
_lib_on_err() {
	[ "$BASHPID" = "$_LIB_SCOPE_PID" ] || return 0
	if [ "${FUNCNAME[1]:-}" = _lib_test_body ]; then
		echo "its end (the test function returned non-zero)" >"$_LIB_DIR/abort"
	else
		printf 'line %s of %s (in %s: %s)\n' "$1" "${BASH_SOURCE[1]##*/}" \
			"${FUNCNAME[1]:-main}" "$BASH_COMMAND" >"$_LIB_DIR/abort"
	fi
}

_lib_test_body() {
	_LIB_ONEXIT=()
	_LIB_NETNS=()
	TARGET_PID=
	_LIB_TEST_PID=
	_LIB_SCOPE_PID=$BASHPID
	trap _lib_cleanup EXIT
	# The script coordinates: on its INT, HUP or TERM it TERMs the test (and
	# what runs below it), whose EXIT trap then cleans up. A Ctrl-C on the
	# terminal reaches the whole process group; the test and the commands it
	# runs ignore it (as bash makes background jobs do anyway).
	trap 'exit 143' TERM
	trap '' INT HUP
	trap '_lib_on_err "$LINENO"' ERR
	set -eE
	shopt -s inherit_errexit
	"$@"
}

run_test() {
	local name=$* rc=0 where probe
	# Inside if/while/||/&&, bash ignores errexit even in a subshell that sets
	# it again; a test run from there could not abort.
	probe=$(set +e; (set -e; false; echo ignored); true)
	if [ "$probe" = ignored ]; then
		fail "$name: run_test was called where errexit is ignored (if/while/||/&&); call it as a plain command"
		return 0
	fi
	echo "=== $name"
	: >"$_LIB_DIR/abort"
	_lib_test_body "$@" &
	_LIB_TEST_PID=$!
	wait "$_LIB_TEST_PID" || rc=$?
	_LIB_TEST_PID=
	if [ "$rc" -ne 0 ]; then
		where=$(cat "$_LIB_DIR/abort")
		fail "$name aborted at ${where:-an unknown place (see the shell message above)}, exit status $rc"
	fi
	return 0
}
