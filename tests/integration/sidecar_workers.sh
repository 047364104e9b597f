#!/usr/bin/env bash
# hpp-sidecar --workers: several event loops (threads) on one port. Starts the
# real hpp-engine and hpp-sidecar --workers 2 (and 3) on 127.0.0.1 ephemeral
# ports (readiness lines as probes) and checks:
#   - requests over many connections are answered by more than one worker
#     (hpp_sidecar_worker_requests_total), and /metrics sums every worker:
#     requests, decisions and engine calls equal what was sent, whichever
#     worker answers the scrape;
#   - --max-connections is the process's limit, not each worker's;
#   - SIGHUP reaches every worker: each logs its reload (the first last, at
#     info, the others at debug), a new key works and
#     a removed one is refused on every connection, and the access log is
#     reopened by each (no line goes to the renamed file);
#   - SIGTERM stops every worker: the process exits 0 and the port is closed;
#   - the fail-open table is one for all workers: groups seen by one are
#     known to every worker once the engine is gone;
#   - --workers bad values exit 2.
# Stops what it started by PID. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
names=()

source tests/integration/check_lib.bash
suite_setup

finish() {
    local i rc
    for i in "${!pids[@]}"; do
        kill -0 "${pids[$i]}" 2>/dev/null || continue
        kill -TERM "${pids[$i]}"
        wait "${pids[$i]}"
        rc=$?
        case "${names[$i]}" in sc_*) ;; *) continue ;; esac
        check "${names[$i]} exits 0 on SIGTERM" 0 "$rc"
        no_san_report "${names[$i]}: no sanitizer report" "$tmp/${names[$i]}.err"
    done
    pids=()
    suite_end
}
start_sidecar() { # NAME ARGS... -> $ready = port, $pid
    local name=$1
    shift
    start "$name" '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" \
        --listen 127.0.0.1:0 --engine "$EP" "$@"
}
metric() { # FILE SERIES: its value, 0 when absent
    awk -v s="$2" '$1 == s { v = $2 } END { print v + 0 }' "$1"
}
# await_count FILE REGEX N: polls (4 s at most) until N lines of FILE match.
await_count() {
    local _
    for _ in $(seq 200); do
        [ "$(grep -c -- "$2" "$1")" -ge "$3" ] && return 0
        sleep 0.02
    done
    return 1
}
BODY='{"model":"hpprouter/auto","messages":[{"role":"user","content":"Write a C function."}]}'
# burst PORT N [curl args]: N requests to /v1/route, each on a connection of
# its own (the kernel spreads connections, not requests, over the workers);
# prints the statuses, counted.
burst() {
    local port=$1 n=$2 i
    shift 2
    for i in $(seq "$n"); do
        curl -s -m 10 -o /dev/null -w '%{http_code}\n' "$@" --data-binary "$BODY" \
            "http://127.0.0.1:$port/v1/route"
    done | sort | uniq -c | awk '{ printf "%s%s:%s", (NR > 1 ? " " : ""), $2, $1 }'
}

for bin in "$ENGINE" "$SIDECAR"; do
    [ -x "$bin" ] || {
        fail "binary $bin exists"
        finish
    }
done

# Flags ----------------------------------------------------------------------------
for bad in 0 -1 257 two; do
    "$SIDECAR" --workers "$bad" >/dev/null 2>"$tmp/e"
    check "--workers $bad: exit 2" 2 "$?"
done
has_line "--workers: says which flag" "--workers" "$tmp/e"
has_text "--help lists --workers" "--workers N" "$("$SIDECAR" --help)"

start engine '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 ||
    finish
EP=$ready

# Several workers answer; /metrics sums them -----------------------------------------
hash() { printf '%s\n' "$1" | "$SIDECAR" --hash-key; }
printf '%s group=default\n' "$(hash sk-one)" >"$tmp/keys"
start_sidecar sc_two --workers 2 --keys "$tmp/keys" --access-log "$tmp/access.log" \
    --log-level debug || finish
P=$ready SPID=$pid
has_line "2 workers: said at startup" "2 workers;" "$tmp/sc_two.err"
N=40
check "$N requests on $N connections: all 200" "200:$N" \
    "$(burst "$P" $N -H 'Authorization: Bearer sk-one')"
curl -s -m 5 "http://127.0.0.1:$P/metrics" >"$tmp/m"
check "/metrics: 2 workers" 2 "$(metric "$tmp/m" hpp_sidecar_workers)"
w0=$(metric "$tmp/m" 'hpp_sidecar_worker_requests_total{worker="0"}')
w1=$(metric "$tmp/m" 'hpp_sidecar_worker_requests_total{worker="1"}')
if [ "$w0" -gt 0 ] && [ "$w1" -gt 0 ]; then
    ok "both workers answered ($w0 and $w1 of $N)"
else
    fail "both workers answered" "worker 0: $w0, worker 1: $w1"
fi
check "the workers' requests add up to what was sent" $N $((w0 + w1))
check "requests_total sums the workers" $N \
    "$(metric "$tmp/m" 'hpp_sidecar_requests_total{route="/v1/route",status="200"}')"
check "engine calls sum the workers' links" $N \
    "$(metric "$tmp/m" "hpp_sidecar_engine_calls_total{engine=\"$EP\"}")"
check "the engine is up for every worker" 1 \
    "$(metric "$tmp/m" "hpp_sidecar_engine_up{engine=\"$EP\"}")"
decided=$(awk '/^hpp_sidecar_decisions_total/ { n += $2 } END { print n + 0 }' "$tmp/m")
check "decisions sum the workers" $N "$decided"
# Scrapes on fresh connections land on either worker: each sees every request.
same=0
for _ in $(seq 8); do
    curl -s -m 5 "http://127.0.0.1:$P/metrics" >"$tmp/m2"
    [ "$(metric "$tmp/m2" 'hpp_sidecar_requests_total{route="/v1/route",status="200"}')" = $N ] &&
        same=$((same + 1))
done
check "every scrape, whichever worker answers it, counts all $N" 8 "$same"
routed() { grep -c '/v1/route' "$1"; } # access log lines of /v1/route requests
check "access log: one line per request" $N "$(routed "$tmp/access.log")"

# SIGHUP reaches every worker ------------------------------------------------------------
printf '%s group=default\n' "$(hash sk-two)" >"$tmp/keys"
mv "$tmp/access.log" "$tmp/access.log.1"
kill -HUP "$SPID"
await_count "$tmp/sc_two.err" 'SIGHUP: .*keys.* reloaded, 1 keys' 2
check "SIGHUP: each of the 2 workers reloaded the keys" 2 \
    "$(grep -c 'SIGHUP: .*keys.* reloaded, 1 keys' "$tmp/sc_two.err")"
# One line at info, the first worker's, written once the other has reloaded
# (its line at debug): a reader of the log line may count on every worker.
check "SIGHUP: the info line comes last" "debug info" \
    "$(grep 'SIGHUP: .*keys.* reloaded, 1 keys' "$tmp/sc_two.err" | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $2 }')"
await_count "$tmp/sc_two.err" 'SIGHUP: .*access.log reopened' 2
check "SIGHUP: each of the 2 workers reopened the access log" 2 \
    "$(grep -c 'SIGHUP: .*access.log reopened' "$tmp/sc_two.err")"
check "the new key works on every connection" "200:$N" \
    "$(burst "$P" $N -H 'Authorization: Bearer sk-two')"
check "the removed key is refused on every connection" "401:$N" \
    "$(burst "$P" $N -H 'Authorization: Bearer sk-one')"
check "every worker writes to the reopened access log" $((2 * N)) "$(routed "$tmp/access.log")"
check "nothing went to the renamed one" $N "$(routed "$tmp/access.log.1")"

# SIGTERM stops every worker ---------------------------------------------------------
kill -TERM "$SPID"
wait "$SPID"
check "SIGTERM: exit 0 once every worker stopped" 0 "$?"
has_line "SIGTERM: stopped, 2 workers" "stopped (2 workers)" "$tmp/sc_two.err"
no_san_report "sc_two: no sanitizer report" "$tmp/sc_two.err"
curl -s -m 2 -o /dev/null "http://127.0.0.1:$P/healthz"
check "the port is closed (curl: connection refused)" 7 "$?"

# --max-connections is the process's ---------------------------------------------------
# 3 workers, limit 4: 4 connections held (spread over the workers), the 5th
# is refused whichever worker it reaches; per-worker limits would take it.
start_sidecar sc_limit --workers 3 --max-connections 4 || finish
LP=$ready
python3 - "$LP" >"$tmp/limit" <<'EOF'
import socket, sys
port = int(sys.argv[1])
def get(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()
held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
print(" ".join(get(s).split(" ")[1] for s in held))
refused = 0
for _ in range(6):
    extra = socket.create_connection(("127.0.0.1", port), timeout=5)
    line = get(extra)
    refused += line.startswith("HTTP/1.1 503")
    extra.close()
print(refused)
EOF
check "4 connections under the limit: answered" "200 200 200 200" "$(sed -n 1p "$tmp/limit")"
check "6 more, one at a time: each refused, whichever worker accepted it" 6 \
    "$(sed -n 2p "$tmp/limit")"

# Fail-open: one table for every worker -------------------------------------------------
# Groups seen by one worker (one connection) are learned for all: with the
# engine killed, requests on fresh connections, whichever worker takes
# them, know that partner may use the model and trial may not.
start fo_engine '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 \
    --threads 1 || finish
FE=$ready FEPID=$pid
EP=$FE start_sidecar sc_fo --workers 3 --timeout-ms 300 --fail-open openai/gpt-4o-mini \
    --trusted-header X-Gateway-Group || finish
FP=$ready
python3 - "$FP" >"$tmp/seen" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
body = b'{"model":"google/gemma-2-9b-it","messages":[{"role":"user","content":"hi"}]}'
for g in (b"partner", b"trial"):
    s.sendall(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nX-Gateway-Group: " + g +
              b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    n = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    n = int(n[0].split(b":")[1])
    while len(rest) < n:
        rest += s.recv(65536)
    print(head.split(b" ")[1].decode())
EOF
check "fail-open: partner and trial seen on one connection" "200 200" "$(tr '\n' ' ' <"$tmp/seen" | sed 's/ $//')"
await_line "$tmp/sc_fo.err" '/group partner may use/p' "" >/dev/null
await_line "$tmp/sc_fo.err" '/group trial may not use/p' "" >/dev/null
check "fail-open: each group learned once, for every worker" "1 1" \
    "$(grep -c 'group partner may use' "$tmp/sc_fo.err") $(grep -c 'group trial may not use' "$tmp/sc_fo.err")"
kill -KILL "$FEPID"
wait "$FEPID" 2>/dev/null
check "engine killed: partner gets the fail-open model on every connection" "200:12" \
    "$(burst "$FP" 12 -H 'X-Gateway-Group: partner')"
check "engine killed: trial is refused on every connection" "503:12" \
    "$(burst "$FP" 12 -H 'X-Gateway-Group: trial')"
curl -s -m 5 -H 'X-Gateway-Group: trial' --data-binary "$BODY" "http://127.0.0.1:$FP/v1/route" >"$tmp/b"
has_line "engine killed, trial: says the group may not use it" \
    "group trial may not use the fail-open model" "$tmp/b"

finish
