#!/usr/bin/env bash
# bench/bench_engine, the ZeroMQ load generator of the benchmarks: usage, the
# echo server it forks (answers every request, leaves no process behind),
# closed and open loop against the real engine on an ephemeral port, and a
# failed run when nothing answers. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
BE=$BUILD/bench/bench_engine
source tests/integration/check_lib.bash
suite_setup
has() { has_text "$@"; }
# field NAME: a field of the JSON line in $tmp/out.
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[2]).read().splitlines()[-1])[sys.argv[1]])' "$1" "$tmp/out"; }

out=$("$BE" --help)
check "--help exits 0" 0 $?
has "--help shows the usage" "usage: bench_engine [--endpoint" "$out"
out=$("$BE" --depth x 2>&1)
check "a bad value: usage error" 2 $?
has "and says so" "expected a number" "$out"
out=$("$BE" --endpoint tcp://10.0.0.1:5555 2>&1)
check "a remote endpoint: refused" 2 $?
has "and says why" "must be on 127.0.0.1" "$out"

# The echo server runs in a child process; every request is answered and the
# child is gone afterwards.
"$BE" --echo --depth 8 --requests 2000 --json >"$tmp/out" 2>&1
check "echo: exits 0" 0 $?
check "echo: every request answered" "echo 2000 0" "$(field target) $(field ok) $(field failed)"
if pgrep -f "^$BE --echo" >/dev/null; then
    fail "echo: its child is gone" "$(pgrep -af "^$BE")"
else
    ok "echo: its child is gone"
fi

# The real engine on an ephemeral port; its ready line is the probe.
"$BUILD/hpp-engine" --listen tcp://127.0.0.1:0 2>"$tmp/engine.err" &
pids+=($!)
ep=$(await_line "$tmp/engine.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "${pids[0]}")
if [ -z "$ep" ]; then
    fail "engine starts" "$(cat "$tmp/engine.err")"
else
    "$BE" --endpoint "$ep" --depth 16 --connections 2 --requests 3000 --json >"$tmp/out" 2>&1
    check "engine, closed loop: exits 0" 0 $?
    check "engine, closed loop: every request answered" "engine 3000 0" \
        "$(field target) $(field ok) $(field failed)"
    "$BE" --endpoint "$ep" --mode open --rate 2000 --seconds 1 --warmup 0 --json >"$tmp/out" 2>&1
    check "engine, open loop: exits 0" 0 $?
    # 2000 sends are due in the second; a stall at its very end may leave the
    # last few unsent, but every one sent must be answered.
    check "engine, open loop: every request sent is answered, none lost" "$(field sent) 0" \
        "$(field ok) $(field lost)"
    check "engine, open loop: the rate kept" True "$(python3 -c "print(1900 <= $(field sent) <= 2000)")"
    check "engine, open loop: latency from the schedule" "scheduled send time" "$(field latency_from)"
fi
kill "${pids[0]}" 2>/dev/null
wait "${pids[0]}" 2>/dev/null
pids=()

# Nothing answers: the run fails (exit 1), it does not hang.
"$BE" --endpoint "${ep:-tcp://127.0.0.1:1}" --depth 4 --seconds 0.5 --warmup 0 --json >"$tmp/out" 2>&1
check "no server: exit 1" 1 $?
check "no server: nothing answered" 0 "$(field ok)"

suite_end
