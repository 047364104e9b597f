#!/usr/bin/env bash
# hpp-engine against clients that send and never read: starts the real engine
# on a 127.0.0.1 ephemeral port and tests/integration/flood_client.py (pyzmq),
# whose DEALERs send tens of thousands of `models` requests each without
# reading a reply. The engine must stay small (VmHWM/VmRSS from
# /proc/PID/status), count what it dropped and refused in `stats`, keep
# answering a client that does read, and give the memory back once the
# flooders leave. Stops what it started by PID.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
PY=/usr/bin/python3
FLOOD=tests/integration/flood_client.py
CLIENTS=3
PER_CLIENT=30000
BOUND_KB=$((64 * 1024)) # the goal: under 64 MB whatever the clients do

source tests/integration/check_lib.bash
suite_setup

if ! "$PY" -c 'import zmq, msgpack' 2>/dev/null; then
    skip "engine limits" "$PY has no pyzmq or msgpack (make deps)"
    suite_end
fi

# jget JSON EXPR: a field of a JSON document, EXPR in Python on `d`.
jget() { "$PY" -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
# kb PID FIELD: VmRSS or VmHWM in kB.
kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

"$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 2>"$tmp/engine.err" &
epid=$!
pids+=("$epid")
ep=$(await_line "$tmp/engine.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$epid" 250)
if [ -z "$ep" ]; then
    fail "engine starts" "$(tail -n 5 "$tmp/engine.err")"
    suite_end
fi
start_kb=$(kb "$epid" VmRSS)

# The flooders: CLIENTS connections, PER_CLIENT requests each, nothing read.
# They hold their connections until their stdin closes.
mkfifo "$tmp/hold"
"$PY" "$FLOOD" flood "$ep" --clients "$CLIENTS" --requests "$PER_CLIENT" \
    <"$tmp/hold" >"$tmp/flood.out" 2>"$tmp/flood.err" &
fpid=$!
pids+=("$fpid")
exec 3>"$tmp/hold"
sent=$((CLIENTS * PER_CLIENT))
check "the flooders sent their requests" "flooded $sent" \
    "$(await_line "$tmp/flood.out" '/^flooded/p' "$fpid" 1500)"

# A client that reads is still served while they hold their connections.
ping=$("$PY" "$FLOOD" ping "$ep" --count 20 --gap-ms 0)
check "pings answered during the flood" 20 "$(jget "$ping" 'd["answered"]')"
pipe=$("$PY" "$FLOOD" pipeline "$ep" --depth 8)
check "a reading client's 8 pipelined models requests all answered" 8 "$(jget "$pipe" 'd["ok"]')"

st=$("$PY" "$FLOOD" settle "$ep" --sent "$sent" --seconds 60)
check "the engine took every request (answered or refused)" True \
    "$(jget "$st" 'd["requests"]["models"] + d.get("refused", 0) >= '"$sent")"
peak=$(kb "$epid" VmHWM)
now=$(kb "$epid" VmRSS)
echo "# VmRSS start ${start_kb} kB, peak ${peak} kB, with the flooders connected ${now} kB"
# under_kb NAME KB LIMIT: KB < LIMIT, unless the sanitizers (make asan)
# makes resident sizes mean something else (shadow memory, quarantine).
under_kb() {
    if [ "${HPP_SAN:-0}" = 1 ]; then
        skip "$1" "resident sizes include the sanitizers' own memory (make asan)"
    else
        check "$1 ($2 kB)" True "$([ "${2:-999999999}" -lt "$3" ] && echo True)"
    fi
}
under_kb "peak VmHWM under 64 MB" "$peak" "$BOUND_KB"
under_kb "VmRSS with the flooders connected under 64 MB" "$now" "$BOUND_KB"
check "stats counts dropped replies" True "$(jget "$st" 'd["dropped"] > 0')"
check "stats counts refused requests" True "$(jget "$st" 'd.get("refused", 0) > 0')"
check "stats: queued reply bytes within --queue-mb (16 MB)" True \
    "$(jget "$st" '0 < d.get("queued_bytes", -1) <= 16 << 20')"

# The flooders leave: their queued replies are freed and the memory returned.
exec 3>&-
wait "$fpid"
check "the flooders exit 0" 0 "$?"
queued=""
for _ in $(seq 200); do
    queued=$(jget "$("$PY" "$FLOOD" stats "$ep")" 'd.get("queued_bytes")')
    [ "$queued" = 0 ] && break
    sleep 0.05 # polling the engine's gauge
done
check "queued reply bytes back to 0 once they left" 0 "$queued"
after=""
for _ in $(seq 100); do
    after=$(kb "$epid" VmRSS)
    [ "$after" -lt $((start_kb + 8 * 1024)) ] && break
    sleep 0.05 # the engine gives memory back a second after the burst
done
echo "# VmRSS after they left: ${after} kB"
under_kb "VmRSS back within 8 MB of the start ($start_kb kB) after they left" "$after" \
    $((start_kb + 8 * 1024))
check "pings answered after the flood" 5 "$(jget "$("$PY" "$FLOOD" ping "$ep" --count 5 --gap-ms 0)" 'd["answered"]')"

# Tunable: one request at the workers per client, and it says so.
"$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 --peer-inflight 1 --peer-hwm 64 \
    --peer-queue-kb 64 --queue-mb 1 2>"$tmp/engine2.err" &
e2=$!
pids+=("$e2")
ep2=$(await_line "$tmp/engine2.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$e2" 250)
[ -n "$ep2" ] || fail "engine with every limit flag starts" "$(tail -n 3 "$tmp/engine2.err")"
pipe=$("$PY" "$FLOOD" pipeline "$ep2" --depth 40)
check "--peer-inflight 1: the 40 requests sent at once are answered or refused" 40 \
    "$(jget "$pipe" 'd["ok"] + d["errors"]')"
check "--peer-inflight 1: some are refused" True "$(jget "$pipe" 'd["errors"] > 0')"
has_text "--peer-inflight 1: the refusal names the limit" "requests of this client in progress (--peer-inflight)" \
    "$(jget "$pipe" 'd["first_error"]')"
bad=$("$ENGINE" --peer-inflight 0 2>&1)
check "--peer-inflight 0 is a usage error" 2 "$?"
has_text "--peer-inflight 0 says the range" "expected an integer" "$bad"

kill -TERM "$epid" "$e2" 2>/dev/null
wait "$epid"
check "engine exits 0 on SIGTERM" 0 "$?"
wait "$e2"
no_san_report "engine: no sanitizer report" "$tmp/engine.err" "$tmp/engine2.err"
pids=()
suite_end
