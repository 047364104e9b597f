#!/usr/bin/env bash
# systemd's readiness protocol without systemd: a unix datagram socket stands
# in for the service manager's NOTIFY_SOCKET, and the real hpp-engine and
# hpp-sidecar (their units are Type=notify) must send it READY=1 once they
# serve, RELOADING=1 then READY=1 around a SIGHUP reload, and STOPPING=1 on
# SIGTERM, in that order. Without NOTIFY_SOCKET they run as always (every
# other suite). Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}

source tests/integration/check_lib.bash
suite_setup

# listen NAME: a datagram socket $tmp/NAME.sock whose messages are written to
# $tmp/NAME.msgs, one line per message (its lines joined by spaces).
listen() {
    /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    print("listening", file=out, flush=True)
    while True:
        msg = s.recv(4096).decode("utf-8", "replace")
        print(" ".join(msg.split("\n")), file=out, flush=True)
' "$tmp/$1.sock" "$tmp/$1.msgs" &
    pids+=($!)
    await_line "$tmp/$1.msgs" '/^listening$/p' $! >/dev/null || fail "$1: notify socket listens"
}
# await_msgs NAME N PID: waits until N messages came (the "listening" line
# is not one); fails when PID exits first.
await_msgs() {
    await_line "$tmp/$1.msgs" "$(($2 + 1))p" "$3" >/dev/null
}
# keys NAME: the first word of each message, in order, on one line.
keys() { sed -n '2,$p' "$tmp/$1.msgs" | cut -d' ' -f1 | paste -sd' '; }

# run NAME CMD...: CMD with NOTIFY_SOCKET set; $pid. Checks READY=1 comes,
# then SIGHUP (RELOADING=1, READY=1), then SIGTERM (STOPPING=1, exit 0).
run() {
    local name=$1 rc
    shift
    listen "$name"
    NOTIFY_SOCKET=$tmp/$name.sock "$@" 2>"$tmp/$name.err" >/dev/null &
    pid=$!
    pids+=("$pid")
    if ! await_msgs "$name" 1 "$pid"; then
        fail "$name: READY=1 once serving" "$(keys "$name"); $(tail -n 3 "$tmp/$name.err")"
        return 1
    fi
    check "$name: READY=1 once serving" "READY=1" "$(keys "$name")"
    has_line "$name: after its readiness line" "ready on " "$tmp/$name.err"
    has_text "$name: with a status" "STATUS=serving on " "$(sed -n 2p "$tmp/$name.msgs")"
    kill -HUP "$pid"
    await_msgs "$name" 3 "$pid"
    check "$name: RELOADING=1 then READY=1 on SIGHUP" "READY=1 RELOADING=1 READY=1" "$(keys "$name")"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    check "$name: exits 0 on SIGTERM" 0 "$rc"
    check "$name: STOPPING=1 on SIGTERM" "READY=1 RELOADING=1 READY=1 STOPPING=1" "$(keys "$name")"
    no_san_report "$name: no sanitizer report" "$tmp/$name.err"
}

run engine "$BUILD/hpp-engine" --listen tcp://127.0.0.1:0 --threads 1

# The sidecar, in front of an engine started without NOTIFY_SOCKET.
"$BUILD/hpp-engine" --listen tcp://127.0.0.1:0 --threads 1 2>"$tmp/e2.err" >/dev/null &
pids+=($!)
ep=$(await_line "$tmp/e2.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' $! 250)
if [ -z "$ep" ]; then
    fail "engine for the sidecar starts" "$(tail -n 3 "$tmp/e2.err")"
else
    run sidecar "$BUILD/hpp-sidecar" --listen 127.0.0.1:0 --engine "$ep"
fi

suite_end
