#!/usr/bin/env bash
# bench/cpu_latency, which holds the CPU latency PM QoS request while the
# benchmarks measure: usage errors, the request seen in /dev/cpu_dma_latency
# while the command runs and gone after, the command's status passed back, and
# a stop sent to the wrapper reaching the command. Without the device (or
# without root) it must refuse with 125 and say why.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
CL=$BUILD/bench/cpu_latency
DEV=/dev/cpu_dma_latency
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source tests/integration/check_lib.bash
has() { has_text "$@"; }

out=$("$CL" --help)
check "--help exits 0" 0 $?
has "--help shows the usage" "usage: cpu_latency [--us N] [--] COMMAND" "$out"
out=$("$CL" --us 1x true 2>&1)
check "--us 1x: usage error" 2 $?
has "--us 1x: says what it expects" "whole number of microseconds" "$out"
out=$("$CL" --us -1 true 2>&1)
check "--us -1: usage error" 2 $?
out=$("$CL" --bogus true 2>&1)
check "unknown option: usage error" 2 $?
has "unknown option: named" "unknown option '--bogus'" "$out"
out=$("$CL" --us 0 2>&1)
check "no command: usage error" 2 $?

qos() { od -An -td4 -N4 "$DEV" | tr -d ' '; }
if [ -w "$DEV" ] && [ -r "$DEV" ]; then
    before=$(qos)
    want=$((before < 7 ? before : 7))
    during=$("$CL" --us 7 -- od -An -td4 -N4 "$DEV" | tr -d ' ')
    check "the request holds while the command runs" "$want" "$during"
    check "and ends with it" "$before" "$(qos)"
    "$CL" sh -c 'exit 3'
    check "the command's exit status comes back" 3 $?
    "$CL" /nonexistent/command 2>"$tmp/err"
    check "a command that cannot run: 126" 126 $?
    has_line "and why" "/nonexistent/command: No such file" "$tmp/err"
    # A stop sent to the wrapper reaches the command (a script stops the pid it started).
    "$CL" sh -c 'echo $$ >'"$tmp/child"'; exec sleep 30' &
    w=$!
    for _ in $(seq 100); do [ -s "$tmp/child" ] && break; sleep 0.02; done
    child=$(cat "$tmp/child")
    kill "$w"
    wait "$w"
    check "SIGTERM to the wrapper: the command ends by it" 143 $?
    if kill -0 "$child" 2>/dev/null; then
        fail "the command is gone" "pid $child still runs"
        kill "$child"
    else
        ok "the command is gone"
    fi
    check "the request ended with the wrapper" "$before" "$(qos)"
else
    out=$("$CL" true 2>&1)
    check "no usable $DEV: refused with 125" 125 $?
    has "and why" "$DEV" "$out"
fi

suite_end
