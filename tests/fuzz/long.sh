#!/usr/bin/env bash
# long.sh - runs every libFuzzer target to depth and records what it reached.
#
#   tests/fuzz/long.sh [--seconds TOTAL] [--runs N] [--only NAME]... [--out FILE]
#   tests/fuzz/long.sh --options NAME
#
# The record is cumulative: FILE (tests/fuzz/RESULTS.md) keeps, per target, the
# executions, seconds and crashes of every run so far, and each run adds to
# them, so several runs add up to the depth on record. A target whose total
# has reached N executions (default 10 million) is skipped; the others run
# until their total reaches N or their share of the time is used: each gets
# the time left divided by the targets left, so the time a fast target does
# not need goes to the slow ones. Each run starts from the committed seeds
# (tests/fuzz/corpus/NAME) plus the working corpus of earlier runs
# (build-fuzz/corpus/NAME); afterwards the inputs that add coverage are merged
# into the committed seeds (commit them with FILE). The row of a target is
# written as soon as it finishes, so an interrupted run keeps what it did,
# and runs over different targets (--only) may go on at the same time.
# Crashes are kept in build-fuzz/crashes/NAME. Exit status: 0, or 1 when a
# target crashed.
#
# A target's own libFuzzer flags are in tests/fuzz/NAME.options, one
# -flag=value a line (# comments): long.sh and `make fuzz` pass them after
# the common ones; --options NAME prints them (nothing when there is none;
# FUZZ_OPTIONS_DIR reads NAME.options from another folder, for the tests).
set -euo pipefail
cd "$(dirname "$0")/../.."

total=$((3 * 3600))
runs=10000000
out=tests/fuzz/RESULTS.md
only=()
usage() {
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
}

# The flags of tests/fuzz/$1.options, one a line; an error for a line that
# is not a -flag=value, so that a typo does not run with defaults unseen.
options() {
    local f="${FUZZ_OPTIONS_DIR:-tests/fuzz}/$1.options" line
    [ -f "$f" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        line=${line//[[:space:]]/}
        case "$line" in
        '') ;;
        -[a-z]*=?*) echo "$line" ;;
        *) echo "long.sh: $f: '$line' is not a -flag=value" >&2; return 2 ;;
        esac
    done <"$f"
}
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) total=${2:?--seconds needs a value}; shift 2 ;;
    --runs) runs=${2:?--runs needs a value}; shift 2 ;;
    --only) only+=("${2:?--only needs a target name}"); shift 2 ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    --options) options "${2:?--options needs a target name}"; exit ;;
    -h | --help) usage; exit 0 ;;
    *) echo "long.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$total$runs" in *[!0-9]*)
    echo "long.sh: --seconds and --runs take whole numbers" >&2; exit 2 ;;
esac

# The recorded row of target $1: "executions runs seconds crashes", zeros if none.
recorded() {
    [ -f "$out" ] || { echo "0 0 0 0"; return; }
    awk -F'|' -v n="$1" '
        /^<!-- end of table/ { exit } # the notes below have tables of their own
        { t = $2; gsub(/ /, "", t) }
        t == n { e = $3; r = $4; s = $5; c = $8; gsub(/[ ,]/, "", e); gsub(/ /, "", r);
                 gsub(/ /, "", s); gsub(/ /, "", c); print e + 0, r + 0, s + 0, c + 0; found = 1; exit }
        END { if (!found) print "0 0 0 0" }' "$out"
}

# Adds one run of target $1 to the record: executions $2, seconds $3,
# executions/s $4, committed seeds $5, crashes $6 (no arguments: only adds a
# row of zeros for each built target that has none, so what is left shows).
# Rows stay sorted by name; the text after the table (notes written by hand)
# is kept as it is.
record() {
    local n=${1:-} execs=${2:-} secs=${3:-} rate=${4:-} seeds=${5:-} ncrash=${6:-}
    (
        flock 9
        rows=$(mktemp)
        if [ -f "$out" ]; then
            awk -F'|' -v n="$n" '/^<!-- end of table/ { exit }
                /^\| fuzz_/ { t = $2; gsub(/ /, "", t); if (t != n) print }' "$out" >"$rows"
        fi
        if [ -n "$n" ]; then
            read -r e r s c < <(recorded "$n")
            e=$((e + execs)); r=$((r + 1)); c=$((c + ncrash))
            s=$(awk -v a="$s" -v b="$secs" 'BEGIN { printf "%.0f", a + b }')
            left=$((runs > e ? runs - e : 0))
            echo "| $n | $e | $r | $s | $rate | $seeds | $c | $left |" >>"$rows"
        fi
        for f in build-fuzz/fuzz_*; do
            [ -x "$f" ] || continue
            t=$(basename "$f")
            if ! grep -q "^| $t |" "$rows"; then
                k=$(find "tests/fuzz/corpus/$t" -type f 2>/dev/null | wc -l)
                echo "| $t | 0 | 0 | 0 | - | $k | 0 | $runs |" >>"$rows"
            fi
        done
        notes=$(mktemp)
        if [ -f "$out" ]; then
            awk 'kept { print } /^<!-- end of table/ { kept = 1 }' "$out" >"$notes"
        fi
        {
            echo "# Fuzzing to depth"
            echo
            echo "Written by \`make fuzz-long\` (tests/fuzz/long.sh). **Cumulative:** a row holds the"
            echo "executions, seconds and crashes of every run of the target so far; each run starts"
            echo "from the committed seeds (\`tests/fuzz/corpus/NAME\`), adds its figures to the row"
            echo "and merges the inputs that add coverage into the seeds, so several runs add up to"
            echo "the depth on record. The goal is $runs executions per target; \`left\` is what"
            echo "remains to it. Executions/s is the last run's, which depends on how busy the"
            echo "machine was. Last run: $(date -u +%Y-%m-%d), commit"
            echo "\`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`, clang $(clang -dumpversion),"
            echo "AddressSanitizer + UndefinedBehaviorSanitizer, \`-max_len=65536\`, nice 19 on"
            echo "$(nproc) cores shared with other work."
            echo
            echo "| target | executions | runs | seconds | executions/s | seeds | crashes | left |"
            echo "|---|---:|---:|---:|---:|---:|---:|---:|"
            sort -t'|' -k2,2 "$rows"
            echo
            echo "<!-- end of table: long.sh rewrites what is above, and keeps what is below -->"
            cat "$notes"
        } >"$out.tmp"
        mv "$out.tmp" "$out"
        rm -f "$rows" "$notes"
    ) 9>>build-fuzz/long.lock
}

# Inputs in $1 that failed: crashes, leaks, timeouts, out of memory. Not the
# slow-unit-* files libFuzzer also writes there: at nice 19 on a busy machine
# an input can wait seconds for a CPU, so their wall time says nothing.
failures() {
    find "$1" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | wc -l
}

targets=()
for f in build-fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    n=$(basename "$f")
    if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $n "* ]]; then
        continue
    fi
    read -r done_execs _ < <(recorded "$n")
    if [ "$done_execs" -ge "$runs" ]; then
        echo "== $n: $done_execs executions on record, goal reached"
        continue
    fi
    targets+=("$n")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "long.sh: no fuzz target left to run in build-fuzz/ (run make _fuzz first)" >&2
    exit 0
fi

record
crashed=0
left=${#targets[@]}
deadline=$(($(date +%s) + total))
mkdir -p build-fuzz/run
for n in "${targets[@]}"; do
    now=$(date +%s)
    budget=$(((deadline - now) / left))
    left=$((left - 1))
    if [ "$budget" -lt 1 ]; then
        echo "== $n: no time left"
        continue
    fi
    read -r done_execs _ < <(recorded "$n")
    want=$((runs - done_execs))
    work=build-fuzz/corpus/$n
    crashes=build-fuzz/crashes/$n
    log=build-fuzz/long-$n.log
    # A copy of the binary, so that a rebuild during the run does not touch it.
    bin=build-fuzz/run/$n
    cp "build-fuzz/$n" "$bin"
    mkdir -p "$work" "$crashes" "tests/fuzz/corpus/$n"
    ncrash0=$(failures "$crashes")
    echo "== $n: $done_execs on record, up to $want more executions or ${budget}s"
    # A target's dictionary (tests/fuzz/NAME.dict), when it has one.
    dict=()
    if [ -f "tests/fuzz/$n.dict" ]; then
        dict=(-dict="tests/fuzz/$n.dict")
    fi
    # Its own flags (tests/fuzz/NAME.options), after the common ones.
    opts_text=$(options "$n")
    opts=()
    if [ -n "$opts_text" ]; then
        mapfile -t opts <<<"$opts_text"
    fi
    start=$(date +%s.%N)
    status=0
    "$bin" -max_total_time="$budget" -runs="$want" -max_len=65536 ${dict[@]+"${dict[@]}"} \
        ${opts[@]+"${opts[@]}"} -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$n" \
        >"$log" 2>&1 || status=$?
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    rate=$(awk -v e="$execs" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }')
    ncrash=$(($(failures "$crashes") - ncrash0))
    if [ "$status" -eq 72 ] && [ "$ncrash" -eq 0 ]; then
        # libFuzzer's exit on SIGINT (-interrupt_exitcode): a run stopped by
        # hand, its figures kept, nothing found.
        echo "   $n: interrupted (SIGINT); its executions are counted"
    elif [ "$status" -ne 0 ] || [ "$ncrash" -gt 0 ]; then
        crashed=1
        [ "$ncrash" -gt 0 ] || ncrash=1
        echo "   $n: FAILED (exit $status, $ncrash new inputs in $crashes); see $log"
    fi
    # Keep only the inputs that add coverage to the committed seeds.
    before=$(find "tests/fuzz/corpus/$n" -type f | wc -l)
    "$bin" -merge=1 -max_len=65536 "tests/fuzz/corpus/$n" "$work" \
        >"build-fuzz/merge-$n.log" 2>&1 || true
    after=$(find "tests/fuzz/corpus/$n" -type f | wc -l)
    echo "   $n: $execs executions in ${secs}s ($rate/s), seeds $before -> $after"
    record "$n" "$execs" "$secs" "$rate" "$after" "$ncrash"
done
echo "wrote $out"
exit "$crashed"
