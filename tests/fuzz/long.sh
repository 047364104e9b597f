#!/usr/bin/env bash
# long.sh - runs every libFuzzer target to depth and records what it reached.
#
#   tests/fuzz/long.sh [--seconds TOTAL] [--runs N] [--only NAME]... [--out FILE]
#
# The total time is shared among the targets: each gets the time left divided
# by the targets left, and stops early at N executions (default 10 million),
# so the time a fast target does not need goes to the slow ones. Each target
# starts from its committed seed corpus plus the working corpus of earlier
# runs (build-fuzz/corpus/NAME, kept between runs). Afterwards the inputs that
# add coverage are merged into tests/fuzz/corpus/NAME (commit them), crashes
# are kept in build-fuzz/crashes/NAME, and a Markdown table goes to
# tests/fuzz/RESULTS.md. Exit status: 0, or 1 when a target crashed.
set -euo pipefail
cd "$(dirname "$0")/../.."

total=$((3 * 3600))
runs=10000000
out=tests/fuzz/RESULTS.md
only=()
usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) total=${2:?--seconds needs a value}; shift 2 ;;
    --runs) runs=${2:?--runs needs a value}; shift 2 ;;
    --only) only+=("${2:?--only needs a target name}"); shift 2 ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "long.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$total$runs" in *[!0-9]*)
    echo "long.sh: --seconds and --runs take whole numbers" >&2; exit 2 ;;
esac

targets=()
for f in build-fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    n=$(basename "$f")
    if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $n "* ]]; then
        continue
    fi
    targets+=("$n")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "long.sh: no fuzz targets in build-fuzz/ (run make _fuzz first)" >&2
    exit 2
fi

rows=()
crashed=0
left=${#targets[@]}
deadline=$(($(date +%s) + total))
for n in "${targets[@]}"; do
    now=$(date +%s)
    budget=$(((deadline - now) / left))
    [ "$budget" -ge 1 ] || budget=1
    left=$((left - 1))
    work=build-fuzz/corpus/$n
    crashes=build-fuzz/crashes/$n
    log=build-fuzz/long-$n.log
    mkdir -p "$work" "$crashes" "tests/fuzz/corpus/$n"
    echo "== $n: up to $runs executions or ${budget}s"
    start=$(date +%s.%N)
    status=0
    "build-fuzz/$n" -max_total_time="$budget" -runs="$runs" -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$n" \
        >"$log" 2>&1 || status=$?
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    rate=$(awk -v e="$execs" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }')
    ncrash=$(find "$crashes" -type f | wc -l)
    if [ "$status" -ne 0 ] || [ "$ncrash" -gt 0 ]; then
        crashed=1
        echo "   $n: CRASHED (exit $status, $ncrash inputs in $crashes); see $log"
    fi
    # Keep only the inputs that add coverage to the committed seeds.
    before=$(find "tests/fuzz/corpus/$n" -type f | wc -l)
    "build-fuzz/$n" -merge=1 -max_len=65536 "tests/fuzz/corpus/$n" "$work" \
        >"build-fuzz/merge-$n.log" 2>&1 || true
    after=$(find "tests/fuzz/corpus/$n" -type f | wc -l)
    ncorpus=$(find "$work" -type f | wc -l)
    echo "   $n: $execs executions in ${secs}s ($rate/s), corpus $ncorpus, seeds $before -> $after"
    rows+=("| $n | $execs | $secs | $rate | $ncorpus | $((after - before)) | $ncrash |")
done

{
    echo "# Fuzzing to depth"
    echo
    echo "Written by \`make fuzz-long\` (tests/fuzz/long.sh) on $(date -u +%Y-%m-%d), commit"
    echo "\`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`, clang $(clang -dumpversion),"
    echo "AddressSanitizer + UndefinedBehaviorSanitizer, \`-max_len=65536\`, $(nproc) cores"
    echo "shared with other work. Budget: $total s in all, at most $runs executions per target."
    echo
    echo "| target | executions | seconds | executions/s | corpus | seeds added | crashes |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
} >"$out"
echo "wrote $out"
exit "$crashed"
