#!/usr/bin/env bash
# Prometheus metrics of both daemons: starts the real hpp-engine with
# --metrics-listen and the real hpp-sidecar on 127.0.0.1 ephemeral ports,
# makes decisions (routes decided by a known rule, an error, a malformed
# frame, a reload that serves and one that is refused) over ZeroMQ, scrapes
# GET /metrics over HTTP before and after, and checks that each series moved
# by what was sent. Both outputs go through Prometheus's own
# `promtool check metrics` (exposition syntax and naming lint). Also: the
# flag's bad values (exit 2, or 1 for an address in use), the small HTTP
# server's answers to other paths and methods, a silent client not holding
# up a scrape, and a clean stop. Stops what it started by PID.
# Ends with "N passed, N failed, N skipped".
#
# promtool comes from the Debian package prometheus (19 MB, 96 MB
# installed), too heavy for `make deps`; it is not installed either (its
# postinst would start a Prometheus server on hosts with systemd): when no
# promtool is on PATH the suite fetches the package once with
# `apt-get download` (no root needed) and extracts promtool alone into
# $HPP_TOOLS (default .state/tools, git-ignored), saying so on a line.
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
TOOLS=${HPP_TOOLS:-.state/tools}
PY=/usr/bin/python3

source tests/integration/check_lib.bash
suite_setup

# promtool: on PATH, else the one extracted before, else fetched now.
# Prints its path, or nothing (and why on stderr).
find_promtool() {
    if command -v promtool >/dev/null; then
        command -v promtool
        return
    fi
    if [ -x "$TOOLS/promtool" ]; then
        echo "$TOOLS/promtool"
        return
    fi
    echo "fetching promtool: apt-get download prometheus (19 MB), extracting usr/bin/promtool into $TOOLS" >&2
    local d=$tmp/deb
    mkdir -p "$d" "$TOOLS" || return
    if ! (cd "$d" && apt-get download -q prometheus >/dev/null 2>"$d/err"); then
        echo "apt-get download prometheus failed: $(tail -n 1 "$d/err")" >&2
        return
    fi
    dpkg-deb -x "$d"/prometheus_*.deb "$d/x" && cp "$d/x/usr/bin/promtool" "$TOOLS/promtool" &&
        echo "$TOOLS/promtool"
}

# A ZeroMQ client for the engine: one request, its reply as JSON on stdout.
cat >"$tmp/call.py" <<'EOF'
import json, sys, msgpack, zmq
ep, what = sys.argv[1], sys.argv[2]
if not ep.startswith("tcp://127."):
    raise SystemExit("loopback only")
s = zmq.Context.instance().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(ep)
if what == "raw":  # an undecodable frame
    body = bytes.fromhex(sys.argv[3])
else:
    req = {"v": 1, "id": 7, "op": what}
    req.update(json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
    body = msgpack.packb(req)
s.send_multipart([b"", body])
if not s.poll(5000):
    raise SystemExit("no reply")
print(json.dumps(msgpack.unpackb(s.recv_multipart()[-1], raw=False)))
EOF
call() { "$PY" "$tmp/call.py" "$@"; }
jget() { "$PY" -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
# metric FILE SERIES: the value of one series (name and labels exactly as
# exposed), or "absent".
metric() {
    awk -v s="$2" '$1 == s { print $2; found = 1; exit } END { if (!found) print "absent" }' "$1"
}
scrape() { curl -sS --max-time 5 -o "$2" -w '%{http_code}' "http://$1/metrics"; }
# engine NAME ARGS...: starts the engine (stderr to $tmp/NAME.err); sets
# $ep (ZeroMQ endpoint), $maddr (metrics HOST:PORT, "" when off), $pid.
engine() {
    local name=$1
    shift
    "$ENGINE" --listen tcp://127.0.0.1:0 "$@" 2>"$tmp/$name.err" &
    pid=$!
    pids+=("$pid")
    ep=$(await_line "$tmp/$name.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$pid" 250)
    [ -n "$ep" ] || fail "$name starts" "$(tail -n 5 "$tmp/$name.err")"
    maddr=$(sed -n 's|^hpp-engine: metrics on http://\(.*\)/metrics$|\1|p' "$tmp/$name.err")
}
# exit_of ARGS...: the engine's exit status for ARGS (it must exit by itself).
exit_of() {
    timeout 20 "$ENGINE" --listen tcp://127.0.0.1:0 "$@" >"$tmp/out" 2>"$tmp/err"
    echo $?
}

if ! "$PY" -c 'import zmq, msgpack' 2>/dev/null || ! command -v curl >/dev/null; then
    skip "metrics" "$PY has no pyzmq or msgpack, or curl is missing (make deps)"
    suite_end
fi

# 1. The flag's bad values: a clear message and exit 2 (1 when the address
#    is only busy: nothing wrong with the command line).
check "bad address: exit 2" 2 "$(exit_of --metrics-listen nope)"
has_line "bad address: says what is expected" \
    "hpp-engine: --metrics-listen: expected HOST:PORT (PORT 0..65535), as 127.0.0.1:9464, got 'nope' (see --help)" "$tmp/err"
check "port out of range: exit 2" 2 "$(exit_of --metrics-listen 127.0.0.1:65536)"
check "IPv6 without brackets: exit 2" 2 "$(exit_of --metrics-listen ::1:9464)"
has_line "IPv6 without brackets: says how" "goes in brackets" "$tmp/err"
check "no value: exit 2" 2 "$(exit_of --metrics-listen)"
check "unresolvable host: exit 2" 2 "$(exit_of --metrics-listen 256.0.0.1:0)"
has_line "unresolvable host: says so" "--metrics-listen: cannot resolve '256.0.0.1'" "$tmp/err"

# 2. Off unless asked for.
engine plain --threads 1
check "off by default: no metrics line" "" "$maddr"
has_text "--help lists --metrics-listen" "--metrics-listen HOST:PORT" "$("$ENGINE" --help)"

# 3. The engine with metrics, on a policy file of its own to reload.
cp policies/default.policy "$tmp/p.policy"
engine eng --threads 2 --policy "$tmp/p.policy" --metrics-listen 127.0.0.1:0
case "$maddr" in 127.0.0.1:[0-9]*) ok "metrics address announced ($maddr)" ;;
*) fail "metrics address announced" "$(cat "$tmp/eng.err")" ;; esac
epid=$pid

check "busy address: exit 1" 1 "$(exit_of --metrics-listen "$maddr")"
has_line "busy address: says so" "cannot bind: Address already in use" "$tmp/err"

check "first scrape: 200" 200 "$(scrape "$maddr" "$tmp/m1")"
check "first scrape: no code decisions yet" 0 "$(metric "$tmp/m1" 'hpp_engine_decisions_total{rule="code"}')"
check "first scrape: policy version 1" 1 "$(metric "$tmp/m1" hpp_engine_policy_version)"

for i in 1 2 3; do
    r=$(call "$ep" route '{"hints": ["code"], "prompt_tokens": 500}')
    [ "$(jget "$r" 'd.get("rule")')" = code ] || fail "route $i decided by rule code" "$r"
done
r=$(call "$ep" route '{"model": "no/such-model", "prompt_tokens": 10}')
check "a route for an unknown model is an error" unknown_model "$(jget "$r" 'd.get("error", {}).get("code") if isinstance(d.get("error"), dict) else d.get("code")')"
call "$ep" raw c1 >/dev/null
r=$(call "$ep" reload)
check "reload of the same file serves" True "$(jget "$r" 'd["ok"]')"
printf 'route broken when {\n' >"$tmp/p.policy.new" && mv "$tmp/p.policy.new" "$tmp/p.policy"
r=$(call "$ep" reload)
check "reload of a broken file is refused" False "$(jget "$r" 'd["ok"]')"
hash=$(jget "$(call "$ep" ping)" 'd["policy_hash"]')

check "second scrape: 200" 200 "$(scrape "$maddr" "$tmp/m2")"
m=$tmp/m2
check "decisions by rule: code +3" 3 "$(metric "$m" 'hpp_engine_decisions_total{rule="code"}')"
check "requests by op: 4 routes" 4 "$(metric "$m" 'hpp_engine_requests_total{op="route"}')"
check "requests by op: 2 reloads" 2 "$(metric "$m" 'hpp_engine_requests_total{op="reload"}')"
check "errors by code: unknown_model 1" 1 "$(metric "$m" 'hpp_engine_errors_total{code="unknown_model"}')"
check "malformed frames: 1" 1 "$(metric "$m" hpp_engine_malformed_total)"
check "errors by code: bad_request (the malformed frame and the refused reload)" 2 \
    "$(metric "$m" 'hpp_engine_errors_total{code="bad_request"}')"
check "reloads: ok 1" 1 "$(metric "$m" 'hpp_engine_reloads_total{result="ok"}')"
check "reloads: failed 1" 1 "$(metric "$m" 'hpp_engine_reloads_total{result="failed"}')"
check "last reload failed" 0 "$(metric "$m" hpp_engine_last_reload_success)"
check "policy info: version 2 with the hash ping reports" 1 \
    "$(metric "$m" "hpp_engine_policy_info{version=\"2\",hash=\"$hash\"}")"
check "build info" 1 "$(awk '/^hpp_engine_build_info\{version="[0-9.]+",protocol="1",commit="[^"]+"\} 1$/ { n++ } END { print n + 0 }' "$m")"
for s in queued_reply_bytes refused_total replies_dropped_total decision_log_dropped_total; do
    check "hpp_engine_$s exposed" 0 "$(metric "$m" "hpp_engine_$s")"
done
check "worker threads" 2 "$(metric "$m" hpp_engine_worker_threads)"
for s in process_cpu_seconds_total process_resident_memory_bytes process_virtual_memory_bytes \
    process_open_fds process_max_fds process_start_time_seconds; do
    v=$(metric "$m" "$s")
    check "$s is a positive number" True "$(awk -v v="$v" 'BEGIN { print (v ~ /^[0-9.e+]+$/ && v + 0 > 0) ? "True" : "False" }')"
done
check "process start time is this engine's" True "$(awk -v v="$(metric "$m" process_start_time_seconds)" -v now="$(date +%s)" 'BEGIN { print (v <= now + 1 && v > now - 600) ? "True" : "False" }')"

# 4. The HTTP server: other paths and methods, HEAD, a bad request line,
#    and a silent client that must not hold up a scrape.
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }
check "GET / is 404" 404 "$(code "http://$maddr/")"
check "POST /metrics is 405" 405 "$(code -X POST "http://$maddr/metrics")"
check "HEAD /metrics is 200" 200 "$(code -I "http://$maddr/metrics")"
check "a query string is ignored" 200 "$(code "http://$maddr/metrics?x=1")"
raw() { # RAW-REQUEST: the status line of the answer
    exec 3<>"/dev/tcp/${maddr%:*}/${maddr##*:}" || return
    printf '%b' "$1" >&3
    head -n 1 <&3 | tr -d '\r'
    exec 3<&-
}
check "a bad request line is 400" "HTTP/1.1 400 Bad Request" "$(raw 'nonsense\r\n\r\n')"
check "headers past 4 KiB are 431" "HTTP/1.1 431 Request Header Fields Too Large" \
    "$(raw "GET /metrics HTTP/1.1\r\nX: $(head -c 5000 /dev/zero | tr '\0' a)\r\n\r\n")"
exec 4<>"/dev/tcp/${maddr%:*}/${maddr##*:}" # says nothing
check "a scrape while a client is silent" 200 "$(scrape "$maddr" "$tmp/m3")"
exec 4<&-

# 5. The sidecar's /metrics: build info and process_* too.
"$SIDECAR" --listen 127.0.0.1:0 --engine "$ep" 2>"$tmp/sc.err" &
spid=$!
pids+=("$spid")
sport=$(await_line "$tmp/sc.err" 's/^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$spid" 250)
check "sidecar scrape: 200" 200 "$(scrape "127.0.0.1:$sport" "$tmp/s1")"
check "sidecar build info" 1 "$(awk '/^hpp_sidecar_build_info\{version="[0-9.]+",protocol="1",commit="[^"]+"\} 1$/ { n++ } END { print n + 0 }' "$tmp/s1")"
for s in process_cpu_seconds_total process_resident_memory_bytes process_open_fds process_max_fds \
    process_start_time_seconds process_virtual_memory_bytes; do
    check "sidecar $s" True "$(awk -v v="$(metric "$tmp/s1" "$s")" 'BEGIN { print (v ~ /^[0-9.e+]+$/) ? "True" : "False" }')"
done

# 6. Prometheus's own check of both expositions.
promtool=$(find_promtool)
if [ -z "$promtool" ]; then
    skip "promtool check metrics" "no promtool and it could not be fetched (see the line above)"
else
    for f in m2:engine s1:sidecar; do
        out=$("$promtool" check metrics <"$tmp/${f%%:*}" 2>&1)
        check "promtool check metrics: the ${f#*:}'s exposition" "0 []" "$? [$out]"
    done
fi

# 7. A clean stop: SIGTERM, exit 0, the metrics thread included.
kill -TERM "$epid"
wait "$epid"
check "the engine stops with status 0" 0 "$?"
check "the metrics port is closed after the stop" 000 "$(code "http://$maddr/metrics")"
no_san_report "no sanitizer report" "$tmp"/*.err

suite_end
