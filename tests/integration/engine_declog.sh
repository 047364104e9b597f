#!/usr/bin/env bash
# hpp-engine's decision log when the disk is full, when the file hits the
# size limit, and when logrotate renames it: starts the real engine on
# 127.0.0.1 ephemeral ports, drives it with tests/integration/flood_client.py
# (pyzmq). A full disk is /dev/full (every write fails with ENOSPC); the size
# limit is `ulimit -f` (RLIMIT_FSIZE: a write crossing it is cut short, the
# next fails with EFBIG, and SIGXFSZ is the engine's to ignore). Routes must
# still be answered, the file must hold whole JSON lines only, `stats` must
# count the lost lines and the engine say so once. Stops what it started by PID.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
PY=/usr/bin/python3
CLIENT=tests/integration/flood_client.py

source tests/integration/check_lib.bash
suite_setup

if ! "$PY" -c 'import zmq, msgpack' 2>/dev/null; then
    skip "decision log" "$PY has no pyzmq or msgpack (make deps)"
    suite_end
fi

jget() { "$PY" -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
# engine NAME ARGS...: starts the engine (stderr to $tmp/NAME.err); sets $ep, $pid.
engine() {
    local name=$1
    shift
    "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 "$@" 2>"$tmp/$name.err" &
    pid=$!
    pids+=("$pid")
    ep=$(await_line "$tmp/$name.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$pid" 250)
    [ -n "$ep" ] || fail "$name starts" "$(tail -n 5 "$tmp/$name.err")"
}
routes() { jget "$("$PY" "$CLIENT" pipeline "$1" --op route --depth "$2")" 'd["ok"]'; }
# stat_when EP PID EXPR: stats, polled (50 ms, at most 10 s) until EXPR holds
# on it, or the engine PID is gone.
stat_when() {
    local st _
    for _ in $(seq 200); do
        st=$("$PY" "$CLIENT" stats "$1")
        [ "$(jget "$st" "$3")" = True ] && break
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05 # polling the engine's counters (lines are flushed when it is idle)
    done
    printf '%s' "$st"
}
# whole_lines FILE: "ok N" when every line of FILE is a JSON object and the
# file ends with a newline, else what is wrong.
whole_lines() {
    "$PY" - "$1" <<'EOF'
import json, sys
data = open(sys.argv[1], "rb").read()
if data and not data.endswith(b"\n"):
    print("ends inside a line: ...%r" % data[-60:])
    sys.exit()
for i, line in enumerate(data.splitlines(), 1):
    try:
        if not isinstance(json.loads(line), dict):
            raise ValueError("not an object")
    except ValueError as e:
        print("line %d is not JSON (%s): %r" % (i, e, line[:80]))
        sys.exit()
print("ok", len(data.splitlines()))
EOF
}
lines_of() { if [ -f "$1" ]; then grep -c . "$1"; else echo 0; fi; }
dropped_lines() { grep -c 'decision log .* lines dropped' "$1"; }

# 1. Disk full: /dev/full. Two bursts, the second after the first was
#    flushed and reported: one error line for both.
engine full --decision-log /dev/full
check "disk full: routes answered" 200 "$(routes "$ep" 200)"
st=$(stat_when "$ep" "$pid" 'd.get("decision_log_dropped", 0) >= 200')
check "disk full: stats counts the 200 lines dropped" 200 "$(jget "$st" 'd.get("decision_log_dropped")')"
check "disk full: more routes answered" 150 "$(routes "$ep" 150)"
st=$(stat_when "$ep" "$pid" 'd.get("decision_log_dropped", 0) >= 350')
check "disk full: the count goes on" 350 "$(jget "$st" 'd.get("decision_log_dropped")')"
check "disk full: one error line for both bursts (at most one a minute)" 1 "$(dropped_lines "$tmp/full.err")"
has_line "disk full: the error line says why" "No space left on device" "$tmp/full.err"
fpid=$pid

# 2. File size limit: 8 KiB (ulimit -f counts 1024-byte blocks). 300 routes
#    at once make one buffer of ~100 KB whose write is cut at 8192 bytes,
#    most likely inside a line.
log=$tmp/limited.jsonl
(
    ulimit -f 8
    exec "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 --decision-log "$log"
) 2>"$tmp/limited.err" &
pid=$!
pids+=("$pid")
ep=$(await_line "$tmp/limited.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$pid" 250)
check "size limit: routes answered" 300 "$(routes "$ep" 300)"
# Full buffers were written (or not) before the last replies went out; the
# rest goes at the next idle flush: wait for its count too, not the first.
written=$(lines_of "$log")
st=$(stat_when "$ep" "$pid" "d.get('decision_log_dropped', 0) + $written >= 300")
check "size limit: the engine is still up (SIGXFSZ ignored)" 0 "$(kill -0 "$pid" 2>/dev/null; echo $?)"
has_text "size limit: the file holds whole JSON lines only" "ok " "$(whole_lines "$log")"
check "size limit: lines in the file + lines counted dropped = routes" 300 \
    "$(($(lines_of "$log") + $(jget "$st" 'd.get("decision_log_dropped", 0)')))"
check "size limit: the file stays within the limit" True "$([ "$(stat -c %s "$log")" -le 8192 ] && echo True)"
check "size limit: one error line" 1 "$(dropped_lines "$tmp/limited.err")"
has_line "size limit: the error line says why" "File too large" "$tmp/limited.err"
check "size limit: routes still answered afterwards" 50 "$(routes "$ep" 50)"
lpid=$pid

# 3. Rotation: rename the file, SIGHUP, and the next lines go to a new file
#    at the same path (no copytruncate needed).
log=$tmp/decisions.jsonl
engine rotate --decision-log "$log"
check "rotation: routes answered" 5 "$(routes "$ep" 5)"
for _ in $(seq 200); do
    [ "$(lines_of "$log")" -ge 5 ] && break
    sleep 0.05 # the lines are flushed when the engine is idle
done
check "rotation: 5 lines before the rename" 5 "$(lines_of "$log")"
mv "$log" "$log.1"
kill -HUP "$pid"
reopened=$(await_line "$tmp/rotate.err" '/decision log .* reopened/p' "$pid")
has_text "rotation: SIGHUP reopens the log" "reopened" "$reopened"
check "rotation: routes answered after SIGHUP" 7 "$(routes "$ep" 7)"
for _ in $(seq 200); do
    [ "$(lines_of "$log")" -ge 7 ] && break
    sleep 0.05
done
check "rotation: the new lines are in a new file at the path" 7 "$(lines_of "$log")"
check "rotation: the renamed file kept the old lines only" 5 "$(lines_of "$log.1")"
has_text "rotation: the new file holds whole JSON lines" "ok 7" "$(whole_lines "$log")"

for p in "$fpid" "$lpid" "$pid"; do
    kill -TERM "$p" 2>/dev/null
    wait "$p"
    check "engine $p exits 0 on SIGTERM" 0 "$?"
done
no_san_report "engine: no sanitizer report" "$tmp/full.err" "$tmp/limited.err" "$tmp/rotate.err"
pids=()
suite_end
