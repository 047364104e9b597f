#!/usr/bin/env bash
# Runs every test suite and prints one closing line
# "total: N passed, N failed, N skipped". Each suite's line ends with the
# seconds it took (make test must stay under 5 minutes on 2 cores: the
# slowest suites are listed at the end) and is followed by the reasons of the
# tests it skipped.
#
#   HPP_BUILD  build directory holding tests/ and the binaries (default build)
#   HPP_SAN    when 1, any sanitizer report in a suite's output fails the run
#              (Criterion exits 0 on a LeakSanitizer report, so the text is checked)
#   TESTS      optional glob to run a subset, e.g. TESTS='test_cost*'
#   TEST_JOBS  shell suites run at once (default 2). Most of their time is
#              spent waiting on processes they started; the suites named in
#              ALONE (load generators, and those that count what a loaded
#              machine may drop) run afterwards, one at a time.
set -u
cd "$(dirname "$0")/.." || exit 2
export HPP_BUILD=${HPP_BUILD:-build}
export HPP_ROOT=$PWD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
logdir=$HPP_BUILD/test-logs
mkdir -p "$logdir"

passed=0 failed=0 skipped=0 bad_suites=()

san_report() {
    [ "${HPP_SAN:-0}" = 1 ] && grep -qE 'LeakSanitizer|AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$1"
}

# The seconds from $t0 to $t1 (or now), one decimal; both set for each suite.
took() { awk -v a="$t0" -v b="${t1:-$(date +%s.%N)}" 'BEGIN { printf "%.1f", b - a }'; }
timings=()

record() { # suite log rc pass fail skipped [reasons]
    local suite=$1 log=$2 rc=$3 p=$4 f=$5 s=$6 reasons=${7:-} secs
    secs=$(took)
    timings+=("$secs $suite")
    if san_report "$log"; then
        echo "!! $suite: sanitizer report (see $log)"
        grep -E -m5 -A5 'LeakSanitizer|AddressSanitizer|runtime error:' "$log"
        f=$((f + 1))
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "!! $suite: exited $rc with no failed test counted (see $log)"
        tail -n 20 "$log"
        f=1
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    [ "$f" -gt 0 ] && bad_suites+=("$suite")
    printf '%-28s %4d passed, %d failed, %d skipped  (%ss)\n' "$suite" "$p" "$f" "$s" "$secs"
    [ -n "$reasons" ] && printf '%s\n' "$reasons" | sed 's/^/    /'
    return 0
}

# Criterion suites: unit tests first, integration (itest_*) after.
for t in "$HPP_BUILD"/tests/test_* "$HPP_BUILD"/tests/itest_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    # shellcheck disable=SC2254 # TESTS is a glob on purpose
    case "$name" in ${TESTS:-*}) ;; *) continue ;; esac
    log=$logdir/$name.log tap=$logdir/$name.tap
    rm -f "$tap"
    t0=$(date +%s.%N)
    "$t" --jobs 2 --tap="$tap" >"$log" 2>&1
    rc=$?
    line=$(grep -a 'Synthesis:' "$log" | tail -n 1)
    p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line")
    f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line")
    c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$line")
    p=${p:-0} f=$(( ${f:-0} + ${c:-0} ))
    # Criterion's summary counts a skipped test nowhere; its TAP report lists
    # each one as "ok - suite::test  # SKIP reason" (cr_skip_test's message).
    reasons=$(sed -n 's/^ok - \([^ ]*\) *# SKIP \(.*\)$/SKIP \1: \2/p' "$tap" 2>/dev/null)
    s=$(grep -c . <<<"$reasons")
    if [ "$f" -gt 0 ]; then grep -a -E '\[(FAIL|----)\]|CRASH|Assertion' "$log" | head -n 40; fi
    record "$name" "$log" "$rc" "$p" "$f" "$s" "$reasons"
done

# Shell integration suites: each ends with "N passed, N failed[, N skipped]"
# (check_lib.bash's suite_end) and says "SKIP name: reason" for each skip.
# Each runs in the background into its log, and writes "RC T0 T1" to
# LOG.rc; results are read back in name order, so the report reads the same
# whatever the order they ended in.
ALONE=" bench_engine bench_client bench_cpu_latency engine_limits engine_declog sidecar_limits "
run_suite() { # SCRIPT LOG
    local a rc
    a=$(date +%s.%N)
    bash "$1" >"$2" 2>&1
    rc=$?
    echo "$rc $a $(date +%s.%N)" >"$2.rc"
}
suites=()
for t in tests/integration/*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    # shellcheck disable=SC2254 # TESTS is a glob on purpose
    case "$name" in ${TESTS:-*}) ;; *) continue ;; esac
    suites+=("$name")
    rm -f "$logdir/$name.log.rc"
done
for name in "${suites[@]}"; do
    case "$ALONE" in *" $name "*) continue ;; esac
    while [ "$(jobs -rp | wc -l)" -ge "${TEST_JOBS:-2}" ]; do wait -n; done
    run_suite "tests/integration/$name.sh" "$logdir/$name.log" &
done
wait
for name in "${suites[@]}"; do
    case "$ALONE" in *" $name "*) run_suite "tests/integration/$name.sh" "$logdir/$name.log" ;; esac
done

t1=""
for name in "${suites[@]}"; do
    log=$logdir/$name.log
    read -r rc t0 t1 <"$log.rc" 2>/dev/null || { rc=125 t0=0 t1=0; }
    line=$(grep -aE '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
    p=$(sed -n 's/^\([0-9]*\) passed.*/\1/p' <<<"$line")
    f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line")
    s=$(sed -n 's/.* \([0-9]*\) skipped$/\1/p' <<<"$line")
    p=${p:-0} f=${f:-0} s=${s:-0}
    if [ -z "$line" ]; then
        echo "!! $name: no closing \"N passed, N failed\" line (see $log)"
        tail -n 20 "$log"
        f=$((f + 1))
    elif [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
        grep -a -E 'FAIL|not ok' "$log" | head -n 40
    fi
    record "$name" "$log" "$rc" "$p" "$f" "$s" "$(grep -a '^SKIP ' "$log")"
done
t1=""

if [ $((passed + failed)) -eq 0 ]; then
    echo "no test ran ($skipped skipped)"
    exit 1
fi
[ ${#bad_suites[@]} -gt 0 ] && echo "failing suites: ${bad_suites[*]} (logs in $logdir)"
echo "slowest: $(printf '%s\n' "${timings[@]}" | sort -rn | head -n 5 | awk '{ printf "%s%s %ss", (NR > 1 ? ", " : ""), $2, $1 }')"
echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
