#!/usr/bin/env bash
# Runs the AFL++ fuzzer of aoe-proto for a bounded time; what `make fuzz` and
# `make fuzz-check` call, after building fuzz/target/afl/release/aoe_target
# with `cargo afl build`.
#
#   fuzz/run.sh fuzz  SECS OUT   fuzz for SECS seconds into OUT (resumes an
#                                existing OUT); exits 1 if crashes or hangs
#                                were saved
#   fuzz/run.sh check SECS OUT   a fresh OUT, stops at the first crash; one
#                                "PASS: " line with the stats, or "FAIL: "
#                                lines and exit 1 on a crash, a hang or an
#                                afl-fuzz that did not run
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

mode=${1:?usage: fuzz/run.sh fuzz|check SECS OUT}
secs=${2:?seconds}
out=${3:?output directory}
bin=fuzz/target/afl/release/aoe_target
corpus=fuzz/corpus
log=$out.log

# What afl-fuzz needs in a container, as root, non-interactively: no UI, no
# CPU governor or core_pattern complaints, a core binding only if one is
# free, and no README among the crash files.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
	AFL_TRY_AFFINITY=1 AFL_NO_CRASH_README=1

fail() {
	echo "FAIL: $*"
	exit 1
}

[ -x "$bin" ] || fail "fuzz: $bin is missing (build it with make fuzz-build)"
case $mode in
fuzz)
	# An existing output directory is resumed (its queue replaces the seeds);
	# rm -rf it to start over from fuzz/corpus.
	export AFL_AUTORESUME=1
	;;
check)
	rm -rf "$out"
	export AFL_BENCH_UNTIL_CRASH=1
	;;
*) fail "fuzz: unknown mode $mode" ;;
esac
mkdir -p "$(dirname "$out")"

# -V bounds the fuzzing; timeout bounds afl-fuzz itself (start-up and
# calibration included) in case it does not stop. -t 1000: an input that
# runs longer than 1 s is a hang (inputs take microseconds).
echo "fuzzing for $secs s: afl-fuzz -o $out (log: $log)"
start=$(date +%s)
timeout --kill-after=10 $((secs + 120)) \
	cargo afl fuzz -i "$corpus" -o "$out" -V "$secs" -t 1000 -- "$bin" >"$log" 2>&1
rc=$?
elapsed=$(($(date +%s) - start))

stats=$out/default/fuzzer_stats
stat() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$stats"; }
if [ ! -f "$stats" ]; then
	tail -n 20 "$log" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g'
	fail "fuzz: afl-fuzz did not run (exit $rc, log $log)"
fi
crashes=$(stat saved_crashes)
hangs=$(stat saved_hangs)
summary="execs_done=$(stat execs_done) execs_per_sec=$(stat execs_per_sec)"
summary+=" corpus_count=$(stat corpus_count) edges_found=$(stat edges_found)/$(stat total_edges)"
summary+=" bitmap_cvg=$(stat bitmap_cvg) saved_crashes=$crashes saved_hangs=$hangs"

if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
	for f in "$out"/default/crashes/* "$out"/default/hangs/*; do
		[ -f "$f" ] && echo "  $f"
	done
	echo "  replay one: fuzz/target/afl/release/aoe_target < FILE"
	echo "  with the panic message and a backtrace: (cd fuzz && cargo run --release --bin aoe_target -- ../FILE)"
	fail "fuzz: $crashes crash(es), $hangs hang(s) after ${elapsed} s: $summary"
fi
if [ "$rc" -ne 0 ]; then
	tail -n 20 "$log" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g'
	fail "fuzz: afl-fuzz exited with $rc after ${elapsed} s: $summary"
fi
if [ "$mode" = check ]; then
	echo "PASS: fuzz: no crash or hang in ${elapsed} s: $summary"
else
	echo "no crash or hang in ${elapsed} s: $summary"
	echo "stats: $stats"
fi
