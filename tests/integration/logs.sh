#!/usr/bin/env bash
# --log-format json on both daemons: starts the real hpp-engine and
# hpp-sidecar on 127.0.0.1 ephemeral ports (readiness lines as probes), has
# them log (startup, a SIGHUP with nothing to reload, the shutdown) and checks that every log line is one JSON object with ts, level,
# module and msg, and that the default stays "TS LEVEL MODULE: MESSAGE".
# Stops what it started by PID. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
source tests/integration/check_lib.bash
suite_setup

start() { # NAME REGEX CMD... -> $ready, $pid
    local name=$1 re=$2
    shift 2
    "$@" 2>"$tmp/$name.err" >/dev/null &
    pid=$!
    pids+=("$pid")
    ready=$(await_line "$tmp/$name.err" "s/$re/\\1/p" "$pid" 250) && return 0
    fail "$name starts" "$(tail -n 5 "$tmp/$name.err")"
    return 1
}
stop() { # PID NAME
    kill -TERM "$1"
    wait "$1"
    check "$2 exits 0 on SIGTERM" 0 "$?"
}
# json_lines FILE: "ok N" when every line but the readiness one is a JSON
# object with exactly ts, level, module and msg, else the first bad line.
json_lines() {
    python3 - "$1" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    if " ready on " in line:
        continue
    try:
        o = json.loads(line)
        assert sorted(o) == ["level", "module", "msg", "ts"], sorted(o)
        assert o["level"] in ("debug", "info", "warn", "error")
    except Exception as e:
        print("bad: %r (%s)" % (line[:200], e))
        sys.exit(0)
    n += 1
print("ok" if n >= 3 else "too few lines: %d" % n)
PY
}

for fmt in json text; do
    start "engine-$fmt" '^hpp-engine: ready on \(tcp:.*\)$' "$BUILD/hpp-engine" \
        --listen tcp://127.0.0.1:0 --threads 1 --log-format "$fmt" || suite_end
    ep=$ready epid=$pid
    start "sidecar-$fmt" '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$BUILD/hpp-sidecar" \
        --listen 127.0.0.1:0 --engine "$ep" --log-format "$fmt" || suite_end
    port=$ready spid=$pid
    # A request the engine refuses, and a SIGHUP with nothing to reload.
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/route" \
        -d '{"model":"acme/\"odd\u0001","messages":[{"role":"user","content":"hi"}]}'
    kill -HUP "$spid"
    await_line "$tmp/sidecar-$fmt.err" '/SIGHUP/p' "$spid" >/dev/null
    stop "$spid" "sidecar ($fmt)"
    stop "$epid" "engine ($fmt)"
    if [ "$fmt" = json ]; then
        check "engine: every log line is one JSON object" ok "$(json_lines "$tmp/engine-json.err")"
        check "sidecar: every log line is one JSON object" ok "$(json_lines "$tmp/sidecar-json.err")"
    else
        bad=$(grep -v ' ready on ' "$tmp/engine-text.err" "$tmp/sidecar-text.err" |
            grep -cvE ':[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z (debug|info|warn|error) [a-z]+: ')
        check "text: every line is TS LEVEL MODULE: MESSAGE" 0 "$bad"
    fi
done
"$BUILD/hpp-engine" --log-format xml 2>"$tmp/bad.err"
check "--log-format xml: exit 2" 2 "$?"
has_text "--log-format xml: says what it takes" "expected text or json" "$(cat "$tmp/bad.err")"
suite_end
