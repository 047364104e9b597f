#!/usr/bin/env bash
# bench/bench_client, the load generator of scenario 8 (several engines): its
# usage, a run over two engines, and a run over three of which it kills one
# halfway (every request still answered, the kill and the recovery reported).
# Also bench_engine's CURVE flags refused when incomplete. Ends with
# "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
BC=$BUILD/bench/bench_client
source tests/integration/check_lib.bash
suite_setup
has() { has_text "$@"; }
# field NAME: a field of the JSON line in $tmp/out.
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[2]).read().splitlines()[-1]).get(sys.argv[1]))' "$1" "$tmp/out"; }

out=$("$BC" --help)
check "--help exits 0" 0 $?
has "--help shows the usage" "usage: bench_client --engine ENDPOINT" "$out"
out=$("$BC" 2>&1)
check "no engine: usage error" 2 $?
has "and says so" "at least one --engine" "$out"
out=$("$BC" --engine tcp://10.0.0.1:5555 2>&1)
check "a remote engine: refused" 2 $?
out=$("$BC" --engine tcp://127.0.0.1:1 --kill-pid 12345 --seconds 2 2>&1)
check "--kill-pid without --kill-after: refused" 2 $?
out=$("$BUILD/bench/bench_engine" --curve-secret x.sec 2>&1)
check "bench_engine: one CURVE flag alone is refused" 2 $?
has "and says why" "CURVE needs both" "$out"

eps=()
for i in 1 2 3; do
    "$BUILD/hpp-engine" --listen tcp://127.0.0.1:0 --threads 1 2>"$tmp/engine$i.err" &
    pids+=($!)
    ep=$(await_line "$tmp/engine$i.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$!")
    [ -n "$ep" ] && eps+=("$ep")
done
if [ ${#eps[@]} != 3 ]; then
    fail "three engines start" "$(cat "$tmp"/engine*.err)"
else
    "$BC" --engine "${eps[0]}" --engine "${eps[1]}" --seconds 1 --threads 2 --json >"$tmp/out" 2>&1
    check "two engines: exits 0" 0 $?
    check "two engines: all answered" "2 0" "$(field engines) $(field failed)"
    check "two engines: requests made" True "$(python3 -c "print($(field ok) > 100)")"
    "$BC" --engine "${eps[0]}" --engine "${eps[1]}" --engine "${eps[2]}" --seconds 2 \
        --kill-pid "${pids[1]}" --kill-after 1 --json >"$tmp/out" 2>&1
    check "one of three killed: exits 0 (every request answered)" 0 $?
    check "one of three killed: none failed" "0 0" "$(field failed) $(field failed_after_kill)"
    wait "${pids[1]}" 2>/dev/null
    check "the engine was killed (SIGKILL)" 137 $?
    check "the kill and the recovery are reported" True \
        "$(python3 -c "print(0.9 < $(field killed_at_s) < 1.5 and 0 <= $(field recovery_ms) < 1000)")"
fi

suite_end
