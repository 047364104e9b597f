#!/usr/bin/env bash
# bench/run.sh - the benchmark harness behind `make bench` (read bench/README.md).
#
# Runs every scenario against binaries already built at -O2 in $HPP_BUILD,
# on 127.0.0.1 only, bounded in time, and writes bench/results/<date>/:
# one JSON-lines file of raw numbers per scenario (each record carries the
# exact command that produced it), CSV copies, machine.json, plots, then
# regenerates bench/RESULTS.md with bench/report.py.
#
# Environment (all optional):
#   HPP_BUILD=build-bench   build directory with hpp-engine, hpp-sidecar, bench/*
#   BENCH_DATE=YYYY-MM-DD   results folder name (default: today, UTC)
#   BENCH_SECONDS=3         seconds per measured point (wrk -d, load generator)
#   BENCH_BUDGET=540        seconds; a scenario that would start later is skipped
#   BENCH_QUICK=1           a short smoke run (1 s points, fewer points, no repeats)
#   BENCH_REPEAT=3          runs of each point a goal is judged at (median taken; HTTP: >= 2)
#   BENCH_NO_INSTALL=1      never apt-get/npm install missing tools (skip instead)
#   SKIP_FLOOR=1 SKIP_RESOLVE=1 SKIP_ENGINE=1 SKIP_SIDECAR=1 SKIP_PEERS=1
#   SKIP_PLOTS=1 SKIP_MEMORY=1 SKIP_RELOAD=1 SKIP_MULTI=1 SKIP_SLOWCONN=1 SKIP_FLOOD=1
#   SKIP_SCORER=1 SKIP_LEDGER=1
#                           skip one scenario (the report says it was skipped)
#   ONLY=multi              run only the named scenarios (space-separated: floor resolve
#                           engine sidecar peers memory reload multi slowconn flood scorer
#                           scaling ledger)
#   BENCH_SLOW_CONNS=2000   slowconn: slow client connections held at once
#   PROFILE=auto|1|0        perf profiles: auto = only of components that miss a goal
#   BENCH_NO_REPORT=1       do not regenerate bench/RESULTS.md (results folder only)
#   BENCH_CPU_LATENCY=0     idle-state exit latency (us) held from scenario 0 on; off = leave
#                           idle states to the machine (read "Idle states" below)
#   BENCH_PROXY_ONLY=1      sidecar: the proxy rounds only (no body-size rounds)
#   BENCH_SIDECAR_BEFORE=F  sidecar: also proxy through the hpp-sidecar binary F
#                           (system sidecar-proxy-before), in the same rounds: before/after
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 2

B=${HPP_BUILD:-build-bench}
DATE=${BENCH_DATE:-$(date -u +%F)}
OUT=bench/results/$DATE
TMP=$OUT/raw-tmp
SECS=${BENCH_SECONDS:-3}
BUDGET=${BENCH_BUDGET:-540}
QUICK=${BENCH_QUICK:-0}
REPEAT=${BENCH_REPEAT:-3}
HTTP_ROUNDS=$((REPEAT > 2 ? REPEAT : 2)) # interleaved A B rounds at the HTTP goal points
PROFILE=${PROFILE:-auto}
LITELLM=litellm:tests/data/litellm/model_prices_and_context_window.json
BUNDLED_CATALOG=${BENCH_CATALOG:-policies/catalog.json}
POLICY=${BENCH_POLICY:-policies/default.policy}
REPORT=bench/report.py
IDLE_US=${BENCH_CPU_LATENCY:-0}
if [ "$QUICK" = 1 ]; then
    SECS=1
    REPEAT=1
fi
START=$(date +%s)

rm -rf "$OUT"
mkdir -p "$TMP"

# ---------------------------------------------------------------------------
# Helpers

log() { printf '\n== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }

# q ARGS...: the command line, shell-quoted so that it can be pasted back.
q() {
    local a out=""
    for a in "$@"; do
        # The Portkey config is kilobytes of JSON: cite the file it was saved to.
        if [ -n "${PK_CONFIG:-}" ] && [ "$a" = "x-portkey-config: $PK_CONFIG" ]; then
            out+="\"x-portkey-config: \$(cat $PK_CONFIG_FILE)\" "
        elif [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            out+="$a "
        else
            out+="'${a//\'/\'\\\'\'}' "
        fi
    done
    printf '%s' "${out% }"
}

# show ARGS...: prints the exact command about to run.
show() { printf '+ %s\n' "$(q "$@")"; }

elapsed() { echo $(($(date +%s) - START)); }

# status SCENARIO ok|skipped|failed REASON: one line of status.jsonl.
# built SCENARIO BIN...: true when every $B/BIN is built; otherwise the
# scenario is marked skipped, naming the first one missing.
built() {
    local name=$1 b
    shift
    for b in "$@"; do
        [ -x "$B/$b" ] || {
            status "$name" skipped "$B/$b is not built yet"
            return 1
        }
    done
}

status() {
    python3 "$REPORT" record "$OUT/status.jsonl" scenario="$1" status="$2" reason="${3:-}" \
        at_s="$(elapsed)"
    printf '   -> %s: %s%s\n' "$1" "$2" "${3:+ ($3)}"
}

# status_of SCENARIO PARTS ALL FAILS WHY_NONE PARTIAL_LABEL: the status of a
# scenario made of parts: skipped when no part could run (WHY_NONE), failed
# when a run failed, partial when PARTS (" a b", as measured) is not ALL.
status_of() {
    local name=$1 parts=$2 all=$3 fails=$4
    if [ -z "$parts" ]; then
        status "$name" skipped "$5"
    elif [ "$fails" != 0 ]; then
        status "$name" failed "$fails runs failed"
    elif [ "$parts" != "$all" ]; then
        status "$name" partial "$6$parts"
    else
        status "$name" ok
    fi
}

# want SCENARIO VAR: 0 when the scenario should run (not skipped, time left).
want() {
    local name=$1 var=$2
    if [ "${!var:-0}" = 1 ]; then
        status "$name" skipped "$var=1"
        return 1
    fi
    if [ "$(elapsed)" -ge "$BUDGET" ]; then
        status "$name" skipped "time budget of ${BUDGET}s used"
        return 1
    fi
    return 0
}

# record FILE key=value... [--wrk FILE] [--json FILE] [--cost A B]: appends one JSON record,
# marked with the idle states it was measured under.
record() { python3 "$REPORT" record "$@" idle="$IDLE"; }

# snap FILE name=PID...: CPU time and context switches of each process, for --cost.
snap() { python3 "$REPORT" procsnap "$@"; }

PIDS=()
# start LOG CMD...: runs CMD in the background (stdout+stderr to LOG), sets PID.
start() {
    local logf=$1
    shift
    show "$@"
    "$@" >"$logf" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}

# stop PID: SIGTERM, then SIGKILL after 5 s; only processes this script started.
stop() {
    local p=$1 _
    kill "$p" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    return 0
}

cleanup() {
    local p
    for p in "${PIDS[@]}"; do stop "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_line FILE REGEX PID [SECONDS]: waits until FILE has a line matching
# REGEX (the process's readiness line); fails when PID exits or on timeout.
wait_line() {
    local f=$1 re=$2 p=$3 t=${4:-20} _
    for _ in $(seq $((t * 20))); do
        grep -qE "$re" "$f" 2>/dev/null && return 0
        kill -0 "$p" 2>/dev/null || break
        sleep 0.05
    done
    note "not ready: $f"
    tail -n 5 "$f" | sed 's/^/   | /'
    return 1
}

# wait_http URL PID [SECONDS]: waits until URL answers 200.
wait_http() {
    local u=$1 p=$2 t=${3:-20} _
    for _ in $(seq $((t * 20))); do
        curl -sf -o /dev/null -m 1 "$u" && return 0
        kill -0 "$p" 2>/dev/null || break
        sleep 0.05
    done
    note "not answering: $u"
    return 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# rss PID: "VmRSS VmHWM" in kB from /proc.
rss() {
    awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{print r+0, h+0}' "/proc/$1/status" 2>/dev/null
}

have() { command -v "$1" >/dev/null 2>&1; }

# need_pkg BINARY PACKAGE...: installs the first package that provides it, like `make deps`.
need_pkg() {
    local bin=$1 pkg
    shift
    have "$bin" && return 0
    if [ "${BENCH_NO_INSTALL:-0}" = 1 ]; then
        note "$bin missing and BENCH_NO_INSTALL=1"
        return 1
    fi
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    # A Debian package of a server starts its service on install; keep it off.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ] && [ -z "$sudo" ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    for pkg in "$@"; do
        show $sudo apt-get install -y -qq --no-install-recommends "$pkg"
        if { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            $sudo apt-get install -y -qq --no-install-recommends "$pkg"; } >"$TMP/apt-$pkg.log" 2>&1 &&
            have "$bin"; then
            break
        fi
    done
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    have "$bin"
}

# wrk_run OUTFILE BODY CONNECTIONS URL [wrk args...]: one closed-loop wrk run
# posting BODY; sets CMD to the command line. Fails when wrk printed no summary.
wrk_run() {
    local out=$1 body=$2 conns=$3 url=$4 threads=2
    shift 4
    [ "$conns" -lt 2 ] && threads=1
    local cmd=(env "WRK_BODY=$body" wrk "-t$threads" "-c$conns" "-d${WRK_SECS:-$SECS}s" --timeout 5s
        -s bench/wrk/route.lua "$@" "$url")
    CMD=$(q "${cmd[@]}")
    show "${cmd[@]}"
    "${cmd[@]}" >"$out" 2>&1
    if ! grep -q '^wrk-json: ' "$out"; then
        note "wrk printed no summary:"
        tail -n 5 "$out" | sed 's/^/   | /'
        return 1
    fi
    grep '^Requests/sec\|Non-2xx\|Socket errors' "$out" | sed 's/^/   /'
    return 0
}

# ---------------------------------------------------------------------------
# Services: upstream stand-in, engine, sidecar, peers

# start_stub NAME [flags]: sets STUB_URL and STUB_PID.
start_stub() {
    local name=$1
    shift
    start "$TMP/$name.log" "$B/bench/upstream_stub" "$@"
    STUB_PID=$PID
    wait_line "$TMP/$name.log" '^upstream_stub: ready on ' "$PID" || return 1
    STUB_URL="http://$(sed -n 's/^upstream_stub: ready on //p' "$TMP/$name.log" | head -n 1)"
}

# start_engine NAME CATALOG...: sets ENGINE_EP and ENGINE_PID. The engine binds an
# ephemeral port and prints "hpp-engine: ready on ENDPOINT" once it serves.
start_engine() {
    local name=$1 c args=()
    shift
    for c in "$@"; do args+=(--catalog "$c"); done
    ENGINE_CMD=("$B/hpp-engine" --policy "$POLICY" "${args[@]}" --listen tcp://127.0.0.1:0)
    # The direct listener too, where the build has one: the sidecars below
    # use it, as a sidecar on the engine's host should (engine/eng_direct.h).
    if help_of "$B/hpp-engine" --direct | grep -q -- --direct; then
        ENGINE_CMD+=(--direct tcp://127.0.0.1:0)
    fi
    start "$TMP/$name.log" "${ENGINE_CMD[@]}"
    ENGINE_PID=$PID
    wait_line "$TMP/$name.log" '^hpp-engine: ready on ' "$PID" 60 || return 1
    ENGINE_EP=$(sed -n 's/^hpp-engine: ready on //p' "$TMP/$name.log" | head -n 1)
    ENGINE_DIRECT=$(sed -n 's/^hpp-engine: direct on //p' "$TMP/$name.log" | head -n 1)
}

# start_sidecar NAME [flags]: sets SC_URL and SC_PID (engine at $SC_ENGINE, else
# $ENGINE_EP; with SC_LOCAL=1, --local-engine on the engine's files). The sidecar binds an ephemeral port and prints "hpp-sidecar:
# ready on HOST:PORT".
start_sidecar() {
    local name=$1
    shift
    local eng=(--engine "${SC_ENGINE:-$ENGINE_EP}")
    # SC_LOCAL=1: decisions in the sidecar's process, on the engine's files.
    [ -n "${SC_LOCAL:-}" ] && eng=(--local-engine --policy "$POLICY" --catalog "$BUNDLED_CATALOG"
        --catalog "$LITELLM")
    SC_CMD=("$B/hpp-sidecar" --listen 127.0.0.1:0 "${eng[@]}" "$@")
    start "$TMP/$name.log" "${SC_CMD[@]}"
    SC_PID=$PID
    wait_line "$TMP/$name.log" '^hpp-sidecar: ready on ' "$PID" 20 || return 1
    SC_URL="http://$(sed -n 's/^hpp-sidecar: ready on //p' "$TMP/$name.log" | head -n 1)"
    wait_http "$SC_URL/healthz" "$PID"
}

# start_portkey: sets PK_URL and PK_PID.
start_portkey() {
    start "$TMP/portkey.log" env NODE_ENV=production TRUSTED_CUSTOM_HOSTS=127.0.0.1 \
        node bench/peers/portkey_local.mjs --port=0 --headless
    PK_PID=$PID
    wait_line "$TMP/portkey.log" '^portkey: ready on ' "$PID" 30 || return 1
    PK_URL="http://$(sed -n 's/^portkey: ready on //p' "$TMP/portkey.log" | head -n 1)"
}

# start_nginx: a static 200 reply, foreground, prefix under $TMP; sets NG_URL, NG_PID.
# With the stub up ($UP_URL), /v1/chat/completions is also a plain reverse proxy
# to it, with kept-alive upstream connections like the sidecar's: what one HTTP
# hop costs on this machine without any decision (the floor of the proxy goal).
# Once per run: a later call reuses the running nginx.
start_nginx() {
    [ -n "${NG_PID:-}" ] && kill -0 "$NG_PID" 2>/dev/null && return 0
    local dir=$TMP/nginx port pport="" proxy=""
    port=$(free_port)
    if [ -n "${UP_URL:-}" ]; then
        pport=$(free_port)
        proxy="upstream hpp_stub { server ${UP_URL#http://}; keepalive 64; }"
        proxy+=$'\n    server { listen 127.0.0.1:'"$pport"'; location / {'
        proxy+=' proxy_pass http://hpp_stub; proxy_http_version 1.1;'
        proxy+=' proxy_set_header Connection ""; } }'
    fi
    mkdir -p "$dir/tmp"
    # Workers = cores, like a tuned deployment: nginx is the ceiling, not a peer.
    cat >"$dir/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $PWD/$dir/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $PWD/$dir/tmp/body;
    proxy_temp_path $PWD/$dir/tmp/proxy;
    fastcgi_temp_path $PWD/$dir/tmp/fastcgi;
    uwsgi_temp_path $PWD/$dir/tmp/uwsgi;
    scgi_temp_path $PWD/$dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type application/json;
            add_header X-HPP-Router-Resolved-Model openai/gpt-4o-mini;
            return 200 '{"model":"openai/gpt-4o-mini","provider":"openai","tier":"budget"}';
        }
    }
    $proxy
}
EOF
    start "$TMP/nginx.log" nginx -p "$PWD/$dir" -c "$PWD/$dir/nginx.conf" -e stderr
    NG_PID=$PID
    NG_URL="http://127.0.0.1:$port"
    NG_PROXY_URL=""
    [ -n "$pport" ] && NG_PROXY_URL="http://127.0.0.1:$pport"
    wait_http "$NG_URL/" "$PID"
}

# The Portkey config: conditional routing on metadata and params, each target
# the same upstream stand-in with the model a tier would pick.
portkey_config() {
    local host=$1
    python3 - "$host" <<'EOF'
import json, sys
host = sys.argv[1] + "/v1"
def target(name, model):
    return {"name": name, "provider": "openai", "api_key": "sk-bench",
            "custom_host": host, "override_params": {"model": model}}
print(json.dumps({
    "strategy": {"mode": "conditional",
                 "conditions": [
                     {"query": {"metadata.task": {"$eq": "solidity"}}, "then": "local"},
                     {"query": {"$or": [{"metadata.task": {"$eq": "code"}},
                                        {"metadata.task": {"$eq": "reasoning"}}]},
                      "then": "standard"},
                     {"query": {"params.max_tokens": {"$gt": 4000}}, "then": "premium"}],
                 "default": "budget"},
    "targets": [target("local", "ollama/solidity-master:2"),
                target("standard", "anthropic/claude-sonnet-4"),
                target("premium", "openai/gpt-5"),
                target("budget", "openai/gpt-4o-mini")]},
    separators=(",", ":")))
EOF
}

# check_reply NAME URL HEADER-REGEX [curl args]: one request by curl before a
# measurement; fails unless it answers 200 with a header matching the regex.
# Sets CHECKED to the matching header line.
check_reply() {
    local name=$1 url=$2 re=$3 body=$4
    shift 4
    local out
    out=$(curl -s -i -m 10 -H 'Content-Type: application/json' "$@" --data-binary "@$body" "$url" |
        tr -d '\r')
    CHECKED=$(grep -iE "$re" <<<"$out" | head -n 1)
    if ! head -n 1 <<<"$out" | grep -q ' 200' || [ -z "$CHECKED" ]; then
        note "$name: unexpected answer from $url:"
        head -n 12 <<<"$out" | sed 's/^/   | /'
        return 1
    fi
    note "$name answers: $CHECKED"
}

# ---------------------------------------------------------------------------
# Scenarios

# Idle states. A blocking server sleeps between requests, and every request
# wakes several threads; a thread that wakes on an idle CPU waits for that CPU
# to leave its idle state. On a virtual machine whose idle vCPUs halt, that is
# the hypervisor running the vCPU again: tens of microseconds per wake-up, a
# cost of the host's setting, not of the software measured. Latency benchmarks
# commonly hold the idle-state exit latency at 0 while they measure (cyclictest
# does by default; tuned's latency-performance profile does it for a whole
# host): idle CPUs then poll instead of halting. This run does the same from
# scenario 0's second hiccup run on, through bench/cpu_latency, and measures
# the latency goal points once more with the machine's own setting, so the
# report shows both. BENCH_CPU_LATENCY=off leaves idle states alone throughout.
IDLE=default # the idle states the records written now were measured under
IDLE_PID=""  # the bench/cpu_latency holding the request, while held
IDLE_TRIED=0 # the first attempt is recorded in idle.jsonl, with the reason if it failed
idle_hold() {
    [ -n "$IDLE_PID" ] && return 0
    [ "$IDLE_US" = off ] && return 1
    local why=""
    if [ ! -x "$B/bench/cpu_latency" ]; then
        why="$B/bench/cpu_latency is not built"
    elif ! why=$("$B/bench/cpu_latency" --us "$IDLE_US" true 2>&1); then
        why=${why:-"bench/cpu_latency failed"}
    fi
    if [ -n "$why" ]; then
        if [ "$IDLE_TRIED" = 0 ]; then
            note "idle states left to the machine: $why"
            record "$OUT/idle.jsonl" held=0 us="$IDLE_US" reason="$why"
        fi
        IDLE_TRIED=1
        return 1
    fi
    start "$TMP/cpu_latency.log" "$B/bench/cpu_latency" --us "$IDLE_US" sleep 100000
    IDLE_PID=$PID
    IDLE=held
    if [ "$IDLE_TRIED" = 0 ]; then
        record "$OUT/idle.jsonl" held=1 us="$IDLE_US" \
            cmd="$(q "$B/bench/cpu_latency" --us "$IDLE_US" COMMAND)"
    fi
    IDLE_TRIED=1
}
idle_release() {
    [ -n "$IDLE_PID" ] || return 0
    stop "$IDLE_PID"
    IDLE_PID=""
    IDLE=default
}

# 0. Machine floor, first, while nothing else of this run is up: how long this
#    machine stops a thread that never blocks (the hiccup meter spins on every
#    CPU, so it must run alone), then how long it takes to wake a sleeping
#    thread (what every request to a blocking server pays several times), and a
#    ZeroMQ echo server in a child process driven like the engine in scenario 2
#    (same sockets, threads and process boundary, no decision). No latency
#    measured later can be lower than these.
# floor_hiccup: one run of the hiccup meter, recorded with the idle states it ran under.
floor_hiccup() {
    local cmd=("$B/bench/hiccup" --seconds "$SECS" --mode both --json)
    show "${cmd[@]}"
    if ! "${cmd[@]}" >"$TMP/floor_hiccup.out" 2>&1; then
        tail -n 3 "$TMP/floor_hiccup.out" | sed 's/^/   | /'
        return 1
    fi
    record "$OUT/floor_hiccup.jsonl" --json "$TMP/floor_hiccup.out" cmd="$(q "${cmd[@]}")"
    python3 - "$TMP/floor_hiccup.out" "$IDLE" <<'EOF'
import json, sys
h = json.loads(open(sys.argv[1]).read().splitlines()[-1])
o = h["overall"]
print(f"   idle states: {sys.argv[2]}")
print(f"   all CPUs: {o['gaps_ge_200us']} gaps >= 200 us, {o['gaps_ge_1ms']} >= 1 ms, "
      f"max {o['max_gap_us']:.0f} us, {o['lost_pct']:.2f}% of the time lost "
      f"({o['lost_preempted_pct']:.2f}% to other tasks); stall p99 {h['stall_p99_us']:.0f} us "
      f"({h['stall_p99_not_preempted_us']:.0f} us without other tasks)")
for key, label in (("cross_cpu", "cross-CPU"), ("same_cpu", "same-CPU"), ("timer", "timer")):
    w = h.get("wake", {}).get(key)
    if w:
        print(f"   {label} wake-up: p50 {w['p50_us']:.0f} us, p99 {w['p99_us']:.0f} us, "
              f"p99.9 {w['p999_us']:.0f} us, max {w['max_us']:.0f} us ({w['count']} wake-ups)")
    else:
        print(f"   {label} wake-up: not measured")
EOF
}

scenario_floor() {
    want floor SKIP_FLOOR || return 0
    log "0. machine floor ($B/bench/hiccup, $B/bench/bench_engine --echo)"
    local cmd fails=0 parts=""
    if [ -x "$B/bench/hiccup" ]; then
        # With the machine's idle states, then (when it can be held) with the
        # request of this run: the wake-up tables show what it changes.
        floor_hiccup || fails=$((fails + 1))
        if idle_hold; then
            floor_hiccup || fails=$((fails + 1))
        fi
        parts+=" hiccup"
    else
        note "$B/bench/hiccup is not built yet"
        idle_hold
    fi
    if [ -x "$B/bench/bench_engine" ]; then
        local mode
        for mode in open closed; do
            cmd=("$B/bench/bench_engine" --echo --mode "$mode")
            if [ "$mode" = open ]; then cmd+=(--rate 20000); else cmd+=(--depth 1); fi
            cmd+=(--seconds "$SECS")
            show "${cmd[@]}"
            if "${cmd[@]}" >"$TMP/floor_echo_$mode.out" 2>&1; then
                record "$OUT/floor_echo.jsonl" --json "$TMP/floor_echo_$mode.out" \
                    cmd="$(q "${cmd[@]}")"
                grep '^  latency_us' "$TMP/floor_echo_$mode.out" | sed 's/^ */   /'
            else
                fails=$((fails + 1))
                tail -n 3 "$TMP/floor_echo_$mode.out" | sed 's/^/   | /'
            fi
        done
        parts+=" echo"
    else
        note "$B/bench/bench_engine is not built yet"
    fi
    status_of floor "$parts" " hiccup echo" "$fails" \
        "neither bench/hiccup nor bench/bench_engine is built" "measured:"
}

# 1. In-process resolver: ns per decision and allocations, bundled and full catalog.
scenario_resolve() {
    want resolve SKIP_RESOLVE || return 0
    log "1. in-process resolver ($B/bench/bench_resolve)"
    built resolve bench/bench_resolve || return 0
    # Then the same mix with real prompt text in every request: the hint rules
    # scan the whole sample, up to the sidecar's 8 KiB.
    local label ok=0 cmd labels=(bundled litellm text-1k text-8k)
    for label in "${labels[@]}"; do
        cmd=("$B/bench/bench_resolve" --policy "$POLICY" --catalog "$BUNDLED_CATALOG")
        case $label in
        litellm) cmd+=(--catalog "$LITELLM") ;;
        text-*) cmd+=(--text "bench/bodies/prompt_${label#text-}.txt") ;;
        esac
        cmd+=(--seconds "$SECS" --json)
        show "${cmd[@]}"
        "${cmd[@]}" >"$TMP/resolve_$label.out" 2>&1
        local rc=$?
        grep -v '^{' "$TMP/resolve_$label.out" | sed 's/^/   | /'
        # Exit 1 = the decision path allocated: still a measurement, recorded as such.
        if [ "$rc" -le 1 ] && grep -q '^{' "$TMP/resolve_$label.out"; then
            record "$OUT/resolve.jsonl" --json "$TMP/resolve_$label.out" catalog="$label" \
                exit_status="$rc" cmd="$(q "${cmd[@]}")"
            sed -n 's/.*"p50_ns":\([0-9]*\),"p99_ns":\([0-9]*\).*"allocs":\([0-9]*\).*/   p50 \1 ns, p99 \2 ns, allocations \3/p' \
                "$TMP/resolve_$label.out"
            [ "$rc" = 0 ] && ok=$((ok + 1))
        else
            note "bench_resolve failed (exit $rc)"
        fi
    done
    if [ "$ok" = "${#labels[@]}" ]; then
        status resolve ok
    else
        status resolve failed "$ok of ${#labels[@]} runs"
    fi
}

# 2. Engine over ZMQ tcp loopback: closed-loop throughput vs pipelining depth,
#    open-loop latency at fixed rates (the load generator avoids coordinated omission).
scenario_engine() {
    want engine SKIP_ENGINE || return 0
    log "2. hpp-engine over ZMQ tcp loopback ($B/bench/bench_engine)"
    local m
    for m in hpp-engine bench/bench_engine; do
        if [ ! -x "$B/$m" ]; then
            status engine skipped "$B/$m is not built yet"
            return 0
        fi
    done
    if ! start_engine engine "$BUNDLED_CATALOG" "$LITELLM"; then
        status engine failed "engine did not start"
        return 0
    fi
    local depths="1 4 16 64 256 1024" rates="5000 20000 50000 100000" d r fails=0
    [ "$QUICK" = 1 ] && depths="1 64" && rates="20000"
    # The points the goals are judged at run $REPEAT times, the others once;
    # the report takes the median, so one stall of the machine cannot decide
    # a verdict. Runs are numbered in the records.
    for d in $depths; do
        engine_point closed "$d" "$([ "$d" = 1024 ] && echo "$REPEAT" || echo 1)" --depth "$d" ||
            fails=$((fails + 1))
    done
    for r in $rates; do
        engine_point open "$r" "$([ "$r" = 20000 ] && echo "$REPEAT" || echo 1)" --rate "$r" ||
            fails=$((fails + 1))
    done
    # The open-loop goal point once more with the machine's own idle states.
    if [ "$IDLE" = held ]; then
        idle_release
        engine_point open 20000 1 --rate 20000 || fails=$((fails + 1))
        idle_hold
    fi
    if [ "$PROFILE" = 1 ]; then
        profile_pid engine "$ENGINE_PID" "$B/bench/bench_engine" --endpoint "$ENGINE_EP" \
            --mode closed --depth 64 --seconds "$SECS"
    fi
    stop "$ENGINE_PID"
    if [ "$fails" = 0 ]; then status engine ok; else status engine failed "$fails runs failed"; fi
}

# Services shared by scenarios 3 and 4. http_base: the upstream stand-in and wrk;
# engine_point MODE POINT RUNS ARGS...: bench_engine against $ENGINE_EP RUNS times,
# each run recorded in engine_MODE.jsonl with depth= or rate= POINT and round=.
engine_point() {
    local mode=$1 point=$2 runs=$3 key=depth run fails=0
    shift 3
    [ "$mode" = open ] && key=rate
    for run in $(seq 1 "$runs"); do
        local out="$TMP/engine_${mode}_${point}_$run.out"
        local cmd=("$B/bench/bench_engine" --endpoint "$ENGINE_EP" --mode "$mode" "$@"
            --seconds "$SECS")
        show "${cmd[@]}"
        if "${cmd[@]}" >"$out" 2>&1; then
            record "$OUT/engine_$mode.jsonl" --json "$out" "$key=$point" round="$run" \
                cmd="$(q "${cmd[@]}")"
        else
            fails=$((fails + 1))
            tail -n 3 "$out" | sed 's/^/   | /'
        fi
    done
    [ "$fails" = 0 ]
}

# http_sidecars: an engine and five sidecars (decision-only and proxy to the
# stub, both on the engine's direct listener; the same proxy on the engine's
# ROUTER, deciding in its own process (--local-engine), and on the ROUTER
# with the libzmq engine link).
BASE_UP=0
http_base() {
    [ "$BASE_UP" = 1 ] && return 0
    [ "$BASE_UP" = failed ] && return 1
    BASE_UP=failed
    if [ ! -x "$B/bench/upstream_stub" ]; then
        HTTP_WHY="$B/bench/upstream_stub is not built"
        return 1
    fi
    if ! need_pkg wrk wrk; then
        HTTP_WHY="wrk is not installed"
        return 1
    fi
    HTTP_WHY="the upstream stand-in did not start"
    start_stub stub || return 1
    UP_URL=$STUB_URL
    BASE_UP=1
}

SC_UP=0
http_sidecars() {
    [ "$SC_UP" = 1 ] && return 0
    [ "$SC_UP" = failed ] && return 1
    http_base || return 1
    SC_UP=failed
    local m
    for m in hpp-engine hpp-sidecar; do
        if [ ! -x "$B/$m" ]; then
            HTTP_WHY="$B/$m is not built yet"
            return 1
        fi
    done
    HTTP_WHY="engine or sidecar did not start"
    start_engine engine_http "$BUNDLED_CATALOG" "$LITELLM" || return 1
    # The sidecars on the engine's direct listener when it has one.
    local direct=${ENGINE_DIRECT:-$ENGINE_EP}
    SC_ENGINE=$direct start_sidecar sidecar_route || return 1
    SC_ROUTE_URL=$SC_URL
    SC_ROUTE_PID=$SC_PID
    SC_ENGINE=$direct start_sidecar sidecar_proxy --upstream "$UP_URL/v1" || return 1
    SC_PROXY_URL=$SC_URL
    SC_PROXY_PID=$SC_PID
    # The same proxy on the engine's ROUTER: what the direct listener saves.
    SC_PROXYR_URL=""
    if [ -n "${ENGINE_DIRECT:-}" ]; then
        start_sidecar sidecar_proxy_router --upstream "$UP_URL/v1" || return 1
        SC_PROXYR_URL=$SC_URL
        SC_PROXYR_PID=$SC_PID
    fi
    # The same proxy deciding in its own process (--local-engine): what the
    # engine's round trip costs, in the same run.
    SC_PROXYL_URL=""
    if help_of "$B/hpp-sidecar" --local-engine | grep -q -- --local-engine; then
        SC_LOCAL=1 start_sidecar sidecar_proxy_local --upstream "$UP_URL/v1" || return 1
        SC_PROXYL_URL=$SC_URL
        SC_PROXYL_PID=$SC_PID
    fi
    # The same proxy on the libzmq link: what the zmtp link saves, in the same run.
    start_sidecar sidecar_proxy_libzmq --engine-link libzmq --upstream "$UP_URL/v1" || return 1
    SC_PROXYZ_URL=$SC_URL
    SC_PROXYZ_PID=$SC_PID
    # Another build of the sidecar, proxying to the same stub: before/after a change.
    if [ -n "${BENCH_SIDECAR_BEFORE:-}" ]; then
        mkdir -p "$TMP/before" && cp "$BENCH_SIDECAR_BEFORE" "$TMP/before/hpp-sidecar" &&
            B=$TMP/before SC_ENGINE=$direct start_sidecar sidecar_proxy_before \
                --upstream "$UP_URL/v1" || return 1
        SC_PROXYB_URL=$SC_URL
        SC_PROXYB_PID=$SC_PID
    fi
    SC_UP=1
}

BODIES="small 1k 32k image"

# 3. Sidecar /v1/route with wrk and real bodies; proxy mode vs the upstream directly.
scenario_sidecar() {
    want sidecar SKIP_SIDECAR || return 0
    log "3. hpp-sidecar /v1/route with wrk"
    if ! http_sidecars; then
        status sidecar skipped "$HTTP_WHY"
        return 0
    fi
    local body fails=0 round
    # The 1 MiB long-context body is generated, not committed.
    local long=$TMP/1m.json bodies=$BODIES
    python3 bench/bodies/make_bodies.py --long "$long" >/dev/null && bodies+=" 1m"
    # Body sizes, interleaved in HTTP_ROUNDS rounds (the goals take the
    # median), with what each request cost the sidecar and the engine.
    local ok_bodies=()
    [ "${BENCH_PROXY_ONLY:-0}" = 1 ] && bodies=""
    for body in $bodies; do
        local f=bench/bodies/$body.json
        [ "$body" = 1m ] && f=$long
        check_reply "sidecar /v1/route ($body)" "$SC_ROUTE_URL/v1/route" \
            '^X-HPP-Router-Resolved-Model: .+' "$f" -H 'X-HPP-Task: code' || {
            fails=$((fails + 1))
            continue
        }
        ok_bodies+=("$body")
        eval "RESOLVED_body_$body=\${CHECKED#*: }"
    done
    for round in $(seq 1 "$HTTP_ROUNDS"); do
        for body in "${ok_bodies[@]}"; do
            local f=bench/bodies/$body.json rv="RESOLVED_body_$body"
            [ "$body" = 1m ] && f=$long
            snap "$TMP/cost_a" "sidecar=$SC_ROUTE_PID" "engine=$ENGINE_PID"
            if wrk_run "$TMP/sc_${body}_$round.out" "$f" 32 "$SC_ROUTE_URL/v1/route" \
                -H 'X-HPP-Task: code'; then
                snap "$TMP/cost_b" "sidecar=$SC_ROUTE_PID" "engine=$ENGINE_PID"
                record "$OUT/sidecar_route.jsonl" --wrk "$TMP/sc_${body}_$round.out" body="$body" \
                    body_bytes="$(stat -c %s "$f")" connections=32 round="$round" \
                    resolved="${!rv}" cmd="$CMD" --cost "$TMP/cost_a" "$TMP/cost_b"
            else
                fails=$((fails + 1))
            fi
        done
    done
    # Proxy mode vs calling the upstream directly (and through nginx), 1
    # connection, A B C A B C ...
    local f=bench/bodies/1k.json
    check_reply "sidecar proxy" "$SC_PROXY_URL/v1/chat/completions" \
        '^X-HPP-Router-Resolved-Model: .+' "$f" -H 'X-HPP-Task: code' \
        -H 'Authorization: Bearer sk-bench' || fails=$((fails + 1))
    check_reply "upstream direct" "$UP_URL/v1/chat/completions" '^X-Upstream-Model: .+' "$f" ||
        fails=$((fails + 1))
    # nginx as a plain reverse proxy to the same stub: the cost of the extra
    # HTTP hop alone, the floor under what proxy mode can add on this machine.
    local ngx=""
    if need_pkg nginx nginx-light nginx && start_nginx && [ -n "$NG_PROXY_URL" ] &&
        check_reply "nginx proxy" "$NG_PROXY_URL/v1/chat/completions" '^X-Upstream-Model: .+' \
            "$f"; then
        ngx=$NG_PROXY_URL
    else
        note "nginx proxy: not measured (nginx missing or did not start)"
    fi
    local round
    for round in $(seq 1 "$HTTP_ROUNDS"); do
        proxy_round "$round" "$f" "$ngx" || fails=$((fails + 1))
    done
    # The same at 32 connections, with nginx's static reply (the ceiling of
    # the HTTP stack) in the same rounds: the throughput side of the proxy goal.
    if [ -n "$ngx" ] && [ -n "${NG_URL:-}" ]; then
        for round in $(seq 1 "$HTTP_ROUNDS"); do
            PROXY_CONNS=32 proxy_round "$round" "$f" "$ngx" || fails=$((fails + 1))
            if wrk_run "$TMP/nginx_static_32_$round.out" "$f" 32 "$NG_URL/v1/route"; then
                record "$OUT/sidecar_proxy32.jsonl" --wrk "$TMP/nginx_static_32_$round.out" \
                    system=nginx-static round="$round" connections=32 body=1k cmd="$CMD"
            else
                fails=$((fails + 1))
            fi
        done
    fi
    # Once more with the machine's own idle states (read "Idle states" above).
    if [ "$IDLE" = held ]; then
        idle_release
        proxy_round 1 "$f" "$ngx" || fails=$((fails + 1))
        idle_hold
    fi
    if [ "$PROFILE" = 1 ]; then
        profile_pid sidecar "$SC_ROUTE_PID" env WRK_BODY=bench/bodies/1k.json wrk -t2 -c32 \
            "-d${SECS}s" -s bench/wrk/route.lua -H 'X-HPP-Task: code' "$SC_ROUTE_URL/v1/route"
    fi
    if [ "$fails" = 0 ]; then status sidecar ok; else status sidecar failed "$fails checks or runs failed"; fi
}

# proxy_round ROUND BODY NGINX_URL: proxy mode (on the zmtp and on the libzmq
# engine link), the upstream directly and (when NGINX_URL is set) nginx as a
# plain reverse proxy, one wrk run each at 1 connection. Each sidecar and direct
# run also records the CPU time and context switches per request of every
# process on the path (what the latency is made of on this machine), and the
# proxy runs the mean engine and upstream times from the sidecar's /metrics.
# Fails when a run failed.
proxy_round() {
    local round=$1 f=$2 ngx=$3 fails=0
    # The build before a change goes first in odd rounds, after it in even ones.
    if [ -n "${SC_PROXYB_URL:-}" ] && [ $((round % 2)) = 1 ]; then
        proxy_run "$round" "$f" sidecar-proxy-before "$SC_PROXYB_URL" "$SC_PROXYB_PID" ||
            fails=$((fails + 1))
    fi
    proxy_run "$round" "$f" sidecar-proxy "$SC_PROXY_URL" "$SC_PROXY_PID" ||
        fails=$((fails + 1))
    if [ -n "${SC_PROXYB_URL:-}" ] && [ $((round % 2)) = 0 ]; then
        proxy_run "$round" "$f" sidecar-proxy-before "$SC_PROXYB_URL" "$SC_PROXYB_PID" ||
            fails=$((fails + 1))
    fi
    if [ -n "${SC_PROXYR_URL:-}" ]; then
        proxy_run "$round" "$f" sidecar-proxy-router "$SC_PROXYR_URL" "$SC_PROXYR_PID" ||
            fails=$((fails + 1))
    fi
    if [ -n "${SC_PROXYL_URL:-}" ]; then
        proxy_run "$round" "$f" sidecar-proxy-local "$SC_PROXYL_URL" "$SC_PROXYL_PID" ||
            fails=$((fails + 1))
    fi
    if [ -n "${SC_PROXYZ_URL:-}" ]; then
        proxy_run "$round" "$f" sidecar-proxy-libzmq "$SC_PROXYZ_URL" "$SC_PROXYZ_PID" ||
            fails=$((fails + 1))
    fi
    local procs=("engine=$ENGINE_PID" "upstream=$STUB_PID") c=${PROXY_CONNS:-1}
    local pfile=$OUT/sidecar_proxy.jsonl
    [ "$c" = 1 ] || pfile=$OUT/sidecar_proxy$c.jsonl # report.py's proxy goal reads 1 only
    snap "$TMP/cost_a" "${procs[@]}"
    if wrk_run "$TMP/direct_${c}_$round.out" "$f" "$c" "$UP_URL/v1/chat/completions"; then
        snap "$TMP/cost_b" "${procs[@]}"
        record "$pfile" --wrk "$TMP/direct_${c}_$round.out" \
            system=upstream-direct round="$round" connections="$c" body=1k cmd="$CMD" \
            --cost "$TMP/cost_a" "$TMP/cost_b"
    else
        fails=$((fails + 1))
    fi
    if [ -n "$ngx" ]; then
        if wrk_run "$TMP/nginx_proxy_${c}_$round.out" "$f" "$c" "$ngx/v1/chat/completions"; then
            record "$pfile" --wrk "$TMP/nginx_proxy_${c}_$round.out" \
                system=nginx-proxy round="$round" connections="$c" body=1k cmd="$CMD"
        else
            fails=$((fails + 1))
        fi
    fi
    [ "$fails" = 0 ]
}

# proxy_run ROUND BODY SYSTEM URL PID: one proxied wrk run of one sidecar,
# recorded as SYSTEM with its processes' costs and its /metrics phases.
proxy_run() {
    local round=$1 f=$2 system=$3 url=$4 pid=$5 c=${PROXY_CONNS:-1}
    local pfile=$OUT/sidecar_proxy.jsonl
    [ "$c" = 1 ] || pfile=$OUT/sidecar_proxy$c.jsonl
    local procs=("sidecar=$pid" "engine=$ENGINE_PID" "upstream=$STUB_PID")
    local phases=()
    python3 "$REPORT" scrape "$TMP/phases_a" "$url/metrics" &&
        phases=(--phases "$TMP/phases_a" "$TMP/phases_b")
    snap "$TMP/cost_a" "${procs[@]}"
    wrk_run "$TMP/${system}_${c}_$round.out" "$f" "$c" "$url/v1/chat/completions" \
        -H 'X-HPP-Task: code' -H 'Authorization: Bearer sk-bench' || return 1
    snap "$TMP/cost_b" "${procs[@]}"
    [ ${#phases[@]} -gt 0 ] && ! python3 "$REPORT" scrape "$TMP/phases_b" "$url/metrics" &&
        phases=()
    record "$pfile" --wrk "$TMP/${system}_${c}_$round.out" system="$system" \
        round="$round" connections="$c" body=1k cmd="$CMD" --cost "$TMP/cost_a" "$TMP/cost_b" \
        "${phases[@]}"
}

# 4. Peers in the same run, interleaved A B A B at each connection count.
scenario_peers() {
    want peers SKIP_PEERS || return 0
    log "4. peers: hpp-sidecar vs the Portkey gateway vs nginx (static ceiling)"
    if ! http_base; then
        status peers skipped "$HTTP_WHY"
        return 0
    fi
    local systems=() missing=""
    if http_sidecars; then
        systems+=(sidecar-route sidecar-proxy)
    else
        missing+=" hpp-sidecar ($HTTP_WHY)"
    fi
    systems+=(upstream-direct)
    if need_pkg node nodejs && peers_install && start_portkey; then
        PK_CONFIG=$(portkey_config "$UP_URL")
        PK_CONFIG_FILE=$OUT/portkey_config.json
        printf '%s\n' "$PK_CONFIG" >"$PK_CONFIG_FILE"
        systems+=(portkey)
    else
        missing+=" portkey"
    fi
    if need_pkg nginx nginx-light nginx && start_nginx; then
        systems+=(nginx-static)
    else
        missing+=" nginx"
    fi
    local f=bench/bodies/1k.json s ok_systems=()
    for s in "${systems[@]}"; do
        if peer_check "$s" "$f"; then
            ok_systems+=("$s")
            eval "RESOLVED_${s//-/_}=\${CHECKED#*: }"
            # Warm-up, not recorded: connection pools, and Node's JIT needs seconds.
            local warm=1
            [ "$s" = portkey ] && warm=$((QUICK == 1 ? 2 : 5))
            WRK_SECS=$warm peer_wrk "$s" "$TMP/warm_$s.out" "$f" 32 >/dev/null
        else
            missing+=" $s"
        fi
    done
    local conns="1 8 32 64" c round fails=0
    [ "$QUICK" = 1 ] && conns="1 32"
    for c in $conns; do
        # The goals compare at 32 connections: more rounds there (median taken).
        for round in $(seq 1 "$([ "$c" = 32 ] && echo "$HTTP_ROUNDS" || echo 2)"); do
            for s in "${ok_systems[@]}"; do
                if peer_wrk "$s" "$TMP/peer_${s}_${c}_$round.out" "$f" "$c"; then
                    local rv="RESOLVED_${s//-/_}"
                    record "$OUT/peers.jsonl" --wrk "$TMP/peer_${s}_${c}_$round.out" system="$s" \
                        connections="$c" round="$round" body=1k resolved="${!rv}" cmd="$CMD"
                else
                    fails=$((fails + 1))
                fi
            done
        done
    done
    [ -n "${NG_PID:-}" ] && stop "$NG_PID"
    [ -n "${PK_PID:-}" ] && stop "$PK_PID"
    if [ -z "$missing" ] && [ "$fails" = 0 ]; then
        status peers ok
    else
        status peers partial "missing:${missing:- none}; $fails runs failed"
    fi
}

peers_install() {
    if [ -f bench/peers/node_modules/@portkey-ai/gateway/package.json ]; then
        return 0
    fi
    if [ "${BENCH_NO_INSTALL:-0}" = 1 ]; then
        note "portkey not installed and BENCH_NO_INSTALL=1"
        return 1
    fi
    local cmd=(npm install --prefix bench/peers --no-audit --no-fund --ignore-scripts --loglevel=error)
    show "${cmd[@]}"
    "${cmd[@]}" >"$TMP/npm.log" 2>&1 || {
        tail -n 5 "$TMP/npm.log" | sed 's/^/   | /'
        return 1
    }
}

# peer_check SYSTEM BODY: one curl, must answer 200 with the routing evidence.
peer_check() {
    local s=$1 f=$2
    case $s in
    sidecar-route) check_reply "$s" "$SC_ROUTE_URL/v1/route" '^X-HPP-Router-Resolved-Model: .+' \
        "$f" -H 'X-HPP-Task: code' ;;
    sidecar-proxy) check_reply "$s" "$SC_PROXY_URL/v1/chat/completions" \
        '^X-HPP-Router-Resolved-Model: .+' "$f" -H 'X-HPP-Task: code' \
        -H 'Authorization: Bearer sk-bench' ;;
    upstream-direct) check_reply "$s" "$UP_URL/v1/chat/completions" '^X-Upstream-Model: .+' "$f" ;;
    portkey) check_reply "$s" "$PK_URL/v1/chat/completions" '^X-Upstream-Model: .+' "$f" \
        -H "x-portkey-config: $PK_CONFIG" -H 'x-portkey-metadata: {"task":"code"}' ;;
    nginx-static) check_reply "$s" "$NG_URL/v1/route" '^X-HPP-Router-Resolved-Model: .+' "$f" ;;
    esac
}

# peer_wrk SYSTEM OUT BODY CONNECTIONS: the same request to each system.
peer_wrk() {
    local s=$1 out=$2 f=$3 c=$4
    case $s in
    sidecar-route) wrk_run "$out" "$f" "$c" "$SC_ROUTE_URL/v1/route" -H 'X-HPP-Task: code' ;;
    sidecar-proxy) wrk_run "$out" "$f" "$c" "$SC_PROXY_URL/v1/chat/completions" \
        -H 'X-HPP-Task: code' -H 'Authorization: Bearer sk-bench' ;;
    upstream-direct) wrk_run "$out" "$f" "$c" "$UP_URL/v1/chat/completions" ;;
    portkey) wrk_run "$out" "$f" "$c" "$PK_URL/v1/chat/completions" \
        -H "x-portkey-config: $PK_CONFIG" -H 'x-portkey-metadata: {"task":"code"}' ;;
    nginx-static) wrk_run "$out" "$f" "$c" "$NG_URL/v1/route" ;;
    esac
}

# 6. Memory: RSS of a fresh engine and sidecar on the full catalog, at start and
#    after 1 M requests (engine: the ZMQ load generator; sidecar: wrk in slices).
scenario_memory() {
    want memory SKIP_MEMORY || return 0
    log "6. memory (VmRSS/VmHWM from /proc/PID/status)"
    if [ ! -x "$B/hpp-engine" ]; then
        status memory skipped "$B/hpp-engine is not built yet"
        return 0
    fi
    local target=1000000 parts=""
    [ "$QUICK" = 1 ] && target=100000
    if ! start_engine engine_mem "$BUNDLED_CATALOG" "$LITELLM"; then
        status memory failed "engine did not start"
        return 0
    fi
    local epid=$ENGINE_PID r served=0
    r=$(rss "$epid")
    record "$OUT/memory.jsonl" process=hpp-engine phase=start requests=0 vmrss_kb="${r% *}" \
        vmhwm_kb="${r#* }" catalog=bundled+litellm cmd="$(q "${ENGINE_CMD[@]}")"
    if [ -x "$B/bench/bench_engine" ]; then
        local cmd=("$B/bench/bench_engine" --endpoint "$ENGINE_EP" --mode closed --depth 64
            --requests "$target")
        show "${cmd[@]}"
        if "${cmd[@]}" >"$TMP/mem_engine.out" 2>&1; then
            r=$(rss "$epid")
            served=$target
            parts+=" engine"
            record "$OUT/memory.jsonl" --json "$TMP/mem_engine.out" process=hpp-engine \
                phase=after requests="$target" vmrss_kb="${r% *}" vmhwm_kb="${r#* }" \
                catalog=bundled+litellm cmd="$(q "${cmd[@]}")"
        else
            tail -n 3 "$TMP/mem_engine.out" | sed 's/^/   | /'
        fi
    else
        note "$B/bench/bench_engine is not built yet: no 1 M requests over ZMQ"
    fi
    if [ -x "$B/hpp-sidecar" ] && need_pkg wrk wrk && start_sidecar sidecar_mem; then
        local spid=$SC_PID done_req=0 slice=0 t0 last=""
        r=$(rss "$spid")
        record "$OUT/memory.jsonl" process=hpp-sidecar phase=start requests=0 \
            vmrss_kb="${r% *}" vmhwm_kb="${r#* }" catalog=bundled+litellm cmd="$(q "${SC_CMD[@]}")"
        t0=$(date +%s)
        # wrk runs for a time, not a count: slices of 5 s until the target or 60 s.
        while [ "$done_req" -lt "$target" ] && [ $(($(date +%s) - t0)) -lt 60 ]; do
            slice=$((slice + 1))
            WRK_SECS=5 wrk_run "$TMP/mem_sc_$slice.out" bench/bodies/1k.json 32 \
                "$SC_URL/v1/route" -H 'X-HPP-Task: code' || break
            last=$CMD
            done_req=$((done_req + $(sed -n 's/^wrk-json: {"requests":\([0-9]*\).*/\1/p' \
                "$TMP/mem_sc_$slice.out")))
        done
        r=$(rss "$spid")
        parts+=" sidecar"
        record "$OUT/memory.jsonl" process=hpp-sidecar phase=after requests="$done_req" \
            vmrss_kb="${r% *}" vmhwm_kb="${r#* }" catalog=bundled+litellm \
            cmd="$last (run $slice times)"
        # The engine served the sidecar's requests too.
        r=$(rss "$epid")
        record "$OUT/memory.jsonl" process=hpp-engine phase=after-sidecar \
            requests="$((served + done_req))" vmrss_kb="${r% *}" vmhwm_kb="${r#* }" \
            catalog=bundled+litellm cmd="(the same engine, after the sidecar's requests too)"
        stop "$spid"
    fi
    stop "$epid"
    if [ "$parts" = " engine sidecar" ]; then
        status memory ok
    else
        status memory partial "after-load numbers for:${parts:- none}"
    fi
}

# 7. Reload under load: SIGHUP every 250 ms during a load, against a baseline
#    without reloads; failed requests must be 0. About half of each reload run
#    is inside a reload window (a full-catalog recompile takes ~100+ ms), so its
#    percentiles show the latency during reloads.
RELOAD_NOTE=" ; kill -HUP <engine> every 0.25 s while it runs"

# hup_while PID ENGINE-PID: SIGHUPs the engine every 250 ms while PID runs; sets HUPS.
hup_while() {
    HUPS=0
    while kill -0 "$1" 2>/dev/null; do
        kill -HUP "$2" && HUPS=$((HUPS + 1))
        sleep 0.25 # the pacing of the reloads, not a readiness wait
    done
}

reloads_logged() { grep -c 'sighup: policy version [0-9]* serving' "$1"; }

scenario_reload() {
    want reload SKIP_RELOAD || return 0
    log "7. reload under load (SIGHUP to the engine every 250 ms)"
    if [ ! -x "$B/hpp-engine" ]; then
        status reload skipped "$B/hpp-engine is not built yet"
        return 0
    fi
    if ! start_engine engine_reload "$BUNDLED_CATALOG" "$LITELLM"; then
        status reload failed "engine did not start"
        return 0
    fi
    local epid=$ENGINE_PID elog=$TMP/engine_reload.log secs=$((SECS * 2)) mode fails=0 parts=""
    if [ -x "$B/bench/bench_engine" ]; then
        parts+=" engine"
        for mode in baseline reload; do
            local cmd=("$B/bench/bench_engine" --endpoint "$ENGINE_EP" --mode open --rate 20000
                --seconds "$secs")
            local before
            before=$(reloads_logged "$elog")
            show "${cmd[@]}"
            "${cmd[@]}" >"$TMP/reload_engine_$mode.out" 2>&1 &
            local lpid=$!
            PIDS+=("$lpid")
            HUPS=0
            [ "$mode" = reload ] && hup_while "$lpid" "$epid"
            wait "$lpid"
            local rc=$? note=""
            [ "$mode" = reload ] && note=$RELOAD_NOTE
            if [ "$rc" = 0 ]; then
                record "$OUT/reload.jsonl" --json "$TMP/reload_engine_$mode.out" target=engine \
                    mode="$mode" sighups="$HUPS" reloads_done="$(($(reloads_logged "$elog") - before))" \
                    rate=20000 cmd="$(q "${cmd[@]}")$note"
            else
                fails=$((fails + 1))
                tail -n 3 "$TMP/reload_engine_$mode.out" | sed 's/^/   | /'
            fi
        done
    else
        note "$B/bench/bench_engine is not built yet: no reload run over ZMQ"
    fi
    # Through the sidecar: every HTTP answer must be 2xx while the engine reloads.
    if [ -x "$B/hpp-sidecar" ] && need_pkg wrk wrk && start_sidecar sidecar_reload; then
        parts+=" sidecar"
        local spid=$SC_PID
        for mode in baseline reload; do
            local wout=$TMP/reload_sc_$mode.out before
            before=$(reloads_logged "$elog")
            WRK_SECS=$secs wrk_run "$wout" bench/bodies/1k.json 32 "$SC_URL/v1/route" \
                -H 'X-HPP-Task: code' >"$TMP/reload_sc_$mode.show" &
            local wpid=$!
            PIDS+=("$wpid")
            HUPS=0
            [ "$mode" = reload ] && hup_while "$wpid" "$epid"
            wait "$wpid"
            cat "$TMP/reload_sc_$mode.show"
            local c note=""
            [ "$mode" = reload ] && note=$RELOAD_NOTE
            c=$(sed -n 's/^+ //p' "$TMP/reload_sc_$mode.show" | head -n 1)
            if grep -q '^wrk-json: ' "$wout"; then
                record "$OUT/reload.jsonl" --wrk "$wout" target=sidecar mode="$mode" \
                    sighups="$HUPS" reloads_done="$(($(reloads_logged "$elog") - before))" \
                    connections=32 cmd="$c$note"
            else
                fails=$((fails + 1))
            fi
        done
        stop "$spid"
    fi
    stop "$epid"
    status_of reload "$parts" " engine sidecar" "$fails" \
        "neither bench_engine nor hpp-sidecar is built" "measured through:"
}

# 8. Several engines and CURVE. Engines behind one client: the C client
#    (bench/bench_client, resends included) with 1, 2 and 3 engines, then 3
#    with one killed (SIGKILL) mid-run: failed requests and the time until
#    requests are no longer disturbed. The same through the sidecar, when
#    its --help says --engine may be repeated (wrk: failed requests; the
#    recovery time needs per-request times, which wrk does not give). And
#    the engine link with CURVE against NULL, with the ZMQ load generator on
#    two engines started alike, when hpp-engine has --curve-secret. Each
#    part that cannot run says why in multi.jsonl. The engines load the
#    bundled catalog only: this is about links, not catalog size.
MULTI_KILL_NOTE=" ; kill -9 <one engine> after %s s"

# multi_engines N [flags]: starts N engines; sets MULTI_EPS (array) and MULTI_PIDS.
multi_engines() {
    local n=$1 i
    shift
    MULTI_EPS=()
    MULTI_PIDS=()
    for i in $(seq 1 "$n"); do
        start_engine_flags "multi_engine_$i" "$@" || return 1
        MULTI_EPS+=("$ENGINE_EP")
        MULTI_PIDS+=("$ENGINE_PID")
    done
}

# start_engine_flags NAME [flags]: an engine on the bundled catalog with extra flags.
start_engine_flags() {
    local name=$1
    shift
    start "$TMP/$name.log" "$B/hpp-engine" --policy "$POLICY" --catalog "$BUNDLED_CATALOG" \
        --listen tcp://127.0.0.1:0 "$@"
    ENGINE_PID=$PID
    wait_line "$TMP/$name.log" '^hpp-engine: ready on ' "$PID" 60 || return 1
    ENGINE_EP=$(sed -n 's/^hpp-engine: ready on //p' "$TMP/$name.log" | head -n 1)
}

multi_stop() {
    local p
    for p in "${MULTI_PIDS[@]}"; do stop "$p"; done
    MULTI_PIDS=()
}

# multi_skip PART REASON: records that a part did not run, and why.
multi_skip() {
    note "$1: $2"
    record "$OUT/multi.jsonl" part="$1" ran=0 reason="$2"
}

# sidecar_takes_engines: 0 when hpp-sidecar --help says --engine may be given
# more than once (a capability of the sidecar, read from its own words).
sidecar_takes_engines() {
    help_of "$B/hpp-sidecar" --engine | grep -qiE 'repeat|several|more than once|\.\.\.|up to [0-9]'
}

# help_of BINARY FLAG: the lines of BINARY --help about FLAG (its line, and the
# description wrapped under it, up to the next flag).
help_of() {
    "$1" --help 2>&1 | awk -v f="$2" '
        { flag = match($0, /^[ \t]*-/) }
        flag { on = (index($0, f " ") || index($0, f "=") || substr($0, length($0) - length(f) + 1) == f) }
        on'
}

# engine_has_curve: 0 when hpp-engine --help offers --curve-secret.
engine_has_curve() { "$B/hpp-engine" --help 2>&1 | grep -q -- '--curve-secret'; }

scenario_multi() {
    want multi SKIP_MULTI || return 0
    log "8. several engines, one killed; CURVE on the engine link"
    local m parts="" fails=0 n
    for m in hpp-engine bench/bench_client; do
        if [ ! -x "$B/$m" ]; then
            status multi skipped "$B/$m is not built yet"
            return 0
        fi
    done
    local secs=$SECS kill_secs=$((SECS * 2 > 4 ? SECS * 2 : 4))
    # Through the C client.
    parts+=" client"
    for n in 1 2 3; do
        if ! multi_engines "$n"; then
            fails=$((fails + 1))
            multi_stop
            continue
        fi
        local eargs=() ep
        for ep in "${MULTI_EPS[@]}"; do eargs+=(--engine "$ep"); done
        local cmd=("$B/bench/bench_client" "${eargs[@]}" --threads 4 --seconds "$secs")
        local out=$TMP/multi_client_$n.out
        show "${cmd[@]}"
        if "${cmd[@]}" >"$out" 2>&1; then
            record "$OUT/multi.jsonl" --json "$out" part=client engines="$n" cmd="$(q "${cmd[@]}")"
            sed -n 's/^  \(throughput\|latency\)/   \1/p' "$out"
        else
            fails=$((fails + 1))
            tail -n 3 "$out" | sed 's/^/   | /'
        fi
        if [ "$n" = 3 ]; then
            # The same three, one killed halfway: bench_client sends the SIGKILL
            # itself, so that it knows the instant.
            cmd=("$B/bench/bench_client" "${eargs[@]}" --threads 4 --seconds "$kill_secs"
                --kill-pid "${MULTI_PIDS[1]}" --kill-after $((kill_secs / 2)))
            out=$TMP/multi_client_kill.out
            show "${cmd[@]}"
            # Exit 1 when a request failed: the record says how many.
            "${cmd[@]}" >"$out" 2>&1
            if grep -q '"killed_at_s"' "$out"; then
                record "$OUT/multi.jsonl" --json "$out" part=client-kill engines=3 \
                    cmd="$(q "${cmd[@]}" | sed 's/--kill-pid [0-9]*/--kill-pid <engine 2>/')"
                grep 'killed pid' "$out" | sed 's/^ */   /'
            else
                fails=$((fails + 1))
                tail -n 3 "$out" | sed 's/^/   | /'
            fi
        fi
        multi_stop
    done
    # Through the sidecar.
    if [ ! -x "$B/hpp-sidecar" ]; then
        multi_skip sidecar "not run: $B/hpp-sidecar is not built"
    elif ! sidecar_takes_engines; then
        multi_skip sidecar "not run: the sidecar takes one --engine (its --help does not say --engine may be repeated)"
    elif ! http_base; then
        multi_skip sidecar "not run: $HTTP_WHY"
    else
        parts+=" sidecar"
        for n in 1 2 3; do
            multi_engines "$n" || { fails=$((fails + 1)); multi_stop; continue; }
            local sargs=() ep spid
            for ep in "${MULTI_EPS[@]}"; do sargs+=(--engine "$ep"); done
            start "$TMP/multi_sidecar_$n.log" "$B/hpp-sidecar" --listen 127.0.0.1:0 "${sargs[@]}"
            spid=$PID
            if ! wait_line "$TMP/multi_sidecar_$n.log" '^hpp-sidecar: ready on ' "$spid" 20; then
                fails=$((fails + 1))
                stop "$spid"
                multi_stop
                continue
            fi
            local url
            url="http://$(sed -n 's/^hpp-sidecar: ready on //p' "$TMP/multi_sidecar_$n.log" | head -n 1)"
            wait_http "$url/healthz" "$spid"
            local wout=$TMP/multi_sidecar_$n.out
            if wrk_run "$wout" bench/bodies/1k.json 32 "$url/v1/route" -H 'X-HPP-Task: code'; then
                record "$OUT/multi.jsonl" --wrk "$wout" part=sidecar engines="$n" connections=32 \
                    cmd="$CMD (sidecar: $(q "${sargs[@]}"))"
            else
                fails=$((fails + 1))
            fi
            if [ "$n" = 3 ]; then
                wout=$TMP/multi_sidecar_kill.out
                WRK_SECS=$kill_secs wrk_run "$wout" bench/bodies/1k.json 32 "$url/v1/route" \
                    -H 'X-HPP-Task: code' >"$TMP/multi_sidecar_kill.show" &
                local wpid=$!
                PIDS+=("$wpid")
                sleep $((kill_secs / 2)) # the pacing of the kill, not a readiness wait
                kill -9 "${MULTI_PIDS[1]}"
                wait "$wpid"
                cat "$TMP/multi_sidecar_kill.show"
                local c
                c=$(sed -n 's/^+ //p' "$TMP/multi_sidecar_kill.show" | head -n 1)
                if grep -q '^wrk-json: ' "$wout"; then
                    # shellcheck disable=SC2059 # the note is a format on purpose
                    record "$OUT/multi.jsonl" --wrk "$wout" part=sidecar-kill engines=3 \
                        connections=32 killed_at_s=$((kill_secs / 2)) \
                        cmd="$c$(printf "$MULTI_KILL_NOTE" $((kill_secs / 2)))"
                else
                    fails=$((fails + 1))
                fi
            fi
            stop "$spid"
            multi_stop
        done
    fi
    # The engine link, CURVE against NULL.
    if [ ! -x "$B/bench/bench_engine" ]; then
        multi_skip link "not run: $B/bench/bench_engine is not built"
    elif ! engine_has_curve; then
        multi_skip link "not run: hpp-engine has no --curve-secret (its --help does not offer it)"
    elif ! multi_curve_link; then
        fails=$((fails + 1))
    else
        parts+=" link"
    fi
    status_of multi "$parts" " client sidecar link" "$fails" "nothing could run" "measured:"
}

# multi_curve_link: bench_engine against an engine without and one with CURVE,
# started alike, interleaved; the keys are made by the engine's own --curve-keygen.
multi_curve_link() {
    local keys=$TMP/curve-keys allow
    rm -rf "$keys"
    if ! { "$B/hpp-engine" --curve-keygen "$keys" --curve-name engine &&
        "$B/hpp-engine" --curve-keygen "$keys" --curve-name bench; } >"$TMP/keygen.log" 2>&1; then
        note "--curve-keygen failed:"
        sed 's/^/   | /' "$TMP/keygen.log"
        return 1
    fi
    # The allow-list: a directory of .pub files or a file of keys, as the
    # engine's --help names it; bench.pub alone is either.
    allow=$keys/bench.pub
    if help_of "$B/hpp-engine" --curve-clients | grep -q DIR; then
        allow=$keys/allowed
        mkdir -p "$allow" && cp "$keys/bench.pub" "$allow/"
    fi
    start_engine_flags multi_null || return 1
    local null_ep=$ENGINE_EP null_pid=$ENGINE_PID
    if ! start_engine_flags multi_curve --curve-secret "$keys/engine.sec" --curve-clients "$allow"; then
        stop "$null_pid"
        return 1
    fi
    local curve_ep=$ENGINE_EP curve_pid=$ENGINE_PID round mode test rc=0
    for round in $(seq 1 "$REPEAT"); do
        for test in closed open; do
            for mode in null curve; do
                local cmd=("$B/bench/bench_engine" --mode "$test" --seconds "$SECS")
                [ "$test" = closed ] && cmd+=(--depth 64) || cmd+=(--rate 20000)
                if [ "$mode" = curve ]; then
                    cmd+=(--endpoint "$curve_ep" --curve-server-key "$keys/engine.pub"
                        --curve-secret "$keys/bench.sec")
                else
                    cmd+=(--endpoint "$null_ep")
                fi
                local out=$TMP/multi_link_${test}_${mode}_$round.out
                show "${cmd[@]}"
                if "${cmd[@]}" >"$out" 2>&1; then
                    record "$OUT/multi.jsonl" --json "$out" part=link mode="$mode" test="$test" \
                        round="$round" cmd="$(q "${cmd[@]}")"
                else
                    rc=1
                    tail -n 3 "$out" | sed 's/^/   | /'
                fi
            done
        done
    done
    stop "$null_pid"
    stop "$curve_pid"
    return $rc
}

# perf_summary DATA: the flat profile (self time by thread, object, symbol).
perf_summary() {
    echo "# by thread: perf report --stdio --no-children -g none --sort comm"
    perf report -i "$1" --stdio --no-children -g none --sort comm 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 8
    echo "# by object: perf report --stdio --no-children -g none --sort dso"
    perf report -i "$1" --stdio --no-children -g none --sort dso 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 8
    echo "# report:   perf report --stdio --no-children -g none --sort comm,dso,sym --percent-limit 1"
    perf report -i "$1" --stdio --no-children -g none --sort comm,dso,sym --percent-limit 1 \
        2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 60
}

# profile_pid NAME PID LOAD-CMD...: perf samples PID while LOAD-CMD runs; the
# top of the report goes to $OUT/profile_NAME.txt.
profile_pid() {
    local name=$1 pid=$2
    shift 2
    if ! need_pkg perf linux-perf; then
        note "perf not installed: no profile of $name"
        return 0
    fi
    local data=$TMP/perf_$name.data
    local pcmd=(perf record -F 999 -g -o "$data" -p "$pid")
    show "${pcmd[@]}"
    "${pcmd[@]}" >"$TMP/perf_$name.log" 2>&1 &
    local ppid=$!
    sleep 0.2 # perf attaches asynchronously; a short head start, not a readiness wait
    show "$@"
    "$@" >"$TMP/profile_load_$name.out" 2>&1
    kill -INT "$ppid" 2>/dev/null
    wait "$ppid"
    {
        echo "# perf profile of $name (pid $pid) under load"
        echo "# recorded: $(q "${pcmd[@]}")"
        echo "# load:     $(q "$@")"
        perf_summary "$data"
    } >"$OUT/profile_$name.txt"
    note "profile: $OUT/profile_$name.txt"
}

# Profiles of the components that missed a goal (PROFILE=auto) or of all (PROFILE=1,
# taken inside the scenarios).
scenario_profiles() {
    local missed c
    case $PROFILE in
    auto) missed=$(python3 "$REPORT" goals "$OUT" 2>/dev/null) ;;
    1) missed=resolve ;; # engine and sidecar were profiled inside their scenarios
    *) return 0 ;;
    esac
    [ -z "$missed" ] && return 0
    log "profiles ($([ "$PROFILE" = 1 ] && echo "PROFILE=1" || echo "missed goals")): $missed"
    need_pkg perf linux-perf || return 0
    for c in $missed; do
        [ "$(elapsed)" -ge $((BUDGET + 30)) ] && break
        case $c in
        resolve)
            if have perf && [ -x "$B/bench/bench_resolve" ]; then
                local cmd=(perf record -F 999 -g -o "$TMP/perf_resolve.data"
                    "$B/bench/bench_resolve" --policy "$POLICY" --catalog "$BUNDLED_CATALOG"
                    --catalog "$LITELLM" --seconds "$SECS")
                show "${cmd[@]}"
                "${cmd[@]}" >"$TMP/perf_resolve.log" 2>&1
                {
                    echo "# perf profile of bench_resolve (full catalog)"
                    echo "# recorded: $(q "${cmd[@]}")"
                    perf_summary "$TMP/perf_resolve.data"
                } >"$OUT/profile_resolve.txt"
            fi
            ;;
        engine)
            if start_engine engine_prof "$BUNDLED_CATALOG" "$LITELLM"; then
                profile_pid engine "$ENGINE_PID" "$B/bench/bench_engine" --endpoint "$ENGINE_EP" \
                    --mode closed --depth 64 --seconds "$SECS"
                stop "$ENGINE_PID"
            fi
            ;;
        sidecar)
            if http_sidecars; then
                profile_pid sidecar "$SC_ROUTE_PID" env WRK_BODY=bench/bodies/1k.json wrk -t2 \
                    -c32 "-d${SECS}s" -s bench/wrk/route.lua -H 'X-HPP-Task: code' \
                    "$SC_ROUTE_URL/v1/route"
            fi
            ;;
        esac
    done
}

# 10. Slow clients: BENCH_SLOW_CONNS connections (2,000) that trickle their
#    headers a byte a second into a sidecar started with --header-timeout 5,
#    while another process times GET /healthz every 10 ms on a kept-alive
#    connection; then /healthz alone, for reference. Goals: /healthz p99 at most
#    10 ms while they are open, and every one closed (408) by its deadline.
#    Both sides get a descriptor limit for the connections (ulimit -n).
scenario_slowconn() {
    want slowconn SKIP_SLOWCONN || return 0
    log "10. slow clients against the sidecar (bench/slow_clients.py)"
    local m r kind fails=0 n=${BENCH_SLOW_CONNS:-2000} ht=5
    for m in hpp-engine hpp-sidecar; do
        if [ ! -x "$B/$m" ]; then
            status slowconn skipped "$B/$m is not built yet"
            return 0
        fi
    done
    local nofile=$((n * 2 + 1024))
    if ! start_engine slow_engine "$BUNDLED_CATALOG"; then
        status slowconn failed "the engine did not start"
        return 0
    fi
    local sc=(bash -c 'ulimit -n "$0" && exec "$@"' "$nofile" "$B/hpp-sidecar" --listen 127.0.0.1:0
        --engine "$ENGINE_EP" --header-timeout "$ht")
    start "$TMP/slow_sidecar.log" "${sc[@]}"
    local sc_pid=$PID port
    if ! wait_line "$TMP/slow_sidecar.log" '^hpp-sidecar: ready on ' "$sc_pid" 20; then
        status slowconn failed "the sidecar did not start"
        stop "$ENGINE_PID"
        return 0
    fi
    port=$(sed -n 's/^hpp-sidecar: ready on 127\.0\.0\.1://p' "$TMP/slow_sidecar.log" | head -n 1)
    wait_http "http://127.0.0.1:$port/healthz" "$sc_pid"
    for r in $(seq "$REPEAT"); do
        for kind in slow baseline; do
            local cmd=(bash -c 'ulimit -n "$0" && exec "$@"' "$nofile" python3 bench/slow_clients.py
                --port "$port" --conns "$n" --header-timeout "$ht")
            [ "$kind" = baseline ] && cmd+=(--baseline --seconds 3)
            show "${cmd[@]}"
            if "${cmd[@]}" >"$TMP/slowconn_$kind.out" 2>&1; then
                record "$OUT/slowconn.jsonl" --json "$TMP/slowconn_$kind.out" kind="$kind" \
                    round="$r" header_timeout_s="$ht" cmd="$(q "${cmd[@]}")"
                note "$kind $r: $(tail -n 1 "$TMP/slowconn_$kind.out")"
            else
                fails=$((fails + 1))
                tail -n 3 "$TMP/slowconn_$kind.out" | sed 's/^/   | /'
            fi
        done
    done
    stop "$sc_pid"
    stop "$ENGINE_PID"
    [ -s "$OUT/slowconn.jsonl" ] && python3 - "$OUT/slowconn.jsonl" <<'EOF'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
for kind in ("slow", "baseline"):
    rs = [r for r in recs if r.get("kind") == kind]
    if not rs:
        continue
    def med(k):
        return statistics.median(r[k] for r in rs)
    line = "%s, median of %d: /healthz p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (
        kind, len(rs), med("healthz_p50_ms"), med("healthz_p99_ms"), med("healthz_max_ms"))
    if kind == "slow":
        line += "; %d connections: closed %d, 408 %d, not closed (worst) %d, life max %.2f s" % (
            med("conns"), med("closed"), med("got_408"), max(r["not_closed"] for r in rs),
            med("life_max_s"))
    print("   " + line)
EOF
    status_of slowconn " slow" " slow" "$fails" "nothing ran" "measured:"
}

# 9. Clients that never read (engine/README.md, "Clients that do not read"):
#    10 DEALERs (tests/integration/flood_client.py, pyzmq) each send 40,000
#    `models` requests (the largest reply of the bundled catalog) at once
#    and read nothing, while one well-behaved client pings, one ping at a
#    time, 2 ms apart. A fresh engine per repeat, so that VmHWM is this
#    flood's peak; then the flooders leave and VmRSS is read again once the
#    engine has let their replies go. Goals: peak under 64 MB, ping p99 <=
#    10 ms during the flood, the memory given back after.
FLOOD_PY=tests/integration/flood_client.py
FLOOD_CLIENTS=10
FLOOD_PER_CLIENT=40000

# flood_run REPEAT: one flood against a fresh engine; appends to flood.jsonl.
flood_run() {
    local rep=$1 per=$FLOOD_PER_CLIENT
    [ "$QUICK" = 1 ] && per=10000
    start_engine "engine_flood_$rep" "$BUNDLED_CATALOG" || return 1
    local epid=$ENGINE_PID ep=$ENGINE_EP hold=$TMP/flood_hold_$rep r0 rc ra _
    local sent=$((FLOOD_CLIENTS * per))
    r0=$(rss "$epid")
    rm -f "$hold"
    mkfifo "$hold"
    local fcmd=(/usr/bin/python3 "$FLOOD_PY" flood "$ep" --clients "$FLOOD_CLIENTS"
        --requests "$per")
    local pcmd=(/usr/bin/python3 "$FLOOD_PY" ping "$ep" --count 1000 --gap-ms 2)
    show "${fcmd[@]}"
    "${fcmd[@]}" <"$hold" >"$TMP/flood_$rep.out" 2>&1 &
    local fpid=$!
    PIDS+=("$fpid")
    exec 4>"$hold" # the flooders hold their connections until this closes
    show "${pcmd[@]}"
    "${pcmd[@]}" >"$TMP/flood_ping_$rep.out" 2>&1
    /usr/bin/python3 "$FLOOD_PY" settle "$ep" --sent "$sent" --seconds 60 \
        >"$TMP/flood_stats_$rep.json" 2>&1
    rc=$(rss "$epid")
    exec 4>&-
    wait "$fpid"
    # Gone: their replies are freed, and a second later the memory trimmed.
    local t0 waited
    t0=$(date +%s%N)
    for _ in $(seq 100); do
        ra=$(rss "$epid")
        [ "${ra% *}" -lt $((${r0% *} + 8192)) ] && break
        sleep 0.05 # polling /proc for the engine's resident size
    done
    waited=$((($(date +%s%N) - t0) / 1000000))
    local st=$TMP/flood_stats_$rep.json
    local dropped refused
    dropped=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("dropped", -1))' "$st")
    refused=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("refused", -1))' "$st")
    printf '   rss start %s kB, peak %s kB, connected %s kB, after %s kB (%s ms); %s\n' \
        "${r0% *}" "${rc#* }" "${rc% *}" "${ra% *}" "$waited" "$(cat "$TMP/flood_ping_$rep.out")"
    if ! grep -q '"p99_ms"' "$TMP/flood_ping_$rep.out"; then
        stop "$epid"
        return 1
    fi
    record "$OUT/flood.jsonl" --json "$TMP/flood_ping_$rep.out" repeat="$rep" \
        clients="$FLOOD_CLIENTS" requests="$sent" start_kb="${r0% *}" peak_kb="${rc#* }" \
        connected_kb="${rc% *}" after_kb="${ra% *}" after_ms="$waited" dropped="$dropped" \
        refused="$refused" catalog=bundled \
        cmd="$(q "${ENGINE_CMD[@]}") ; $(q "${fcmd[@]}") ; $(q "${pcmd[@]}")"
    stop "$epid"
}

scenario_flood() {
    want flood SKIP_FLOOD || return 0
    log "9. clients that never read (${FLOOD_CLIENTS} flooding DEALERs, pings meanwhile)"
    if [ ! -x "$B/hpp-engine" ]; then
        status flood skipped "$B/hpp-engine is not built yet"
        return 0
    fi
    if ! /usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null; then
        status flood skipped "/usr/bin/python3 has no pyzmq or msgpack (make deps)"
        return 0
    fi
    local rep fails=0
    for rep in $(seq "$REPEAT"); do
        flood_run "$rep" || fails=$((fails + 1))
    done
    if [ "$fails" = 0 ]; then
        status flood ok
    else
        status flood failed "$fails of $REPEAT runs failed"
    fi
}

# 12. The learned scorer (policies/SCORER.md): its cost-quality curves on the
# held-out RouteLLM prompts (bench/scorer_curves.sh: tables, JSON, PNG) and
# what it adds to a decision on an 8 KiB sample (bench_scorer, 3 runs).
scenario_scorer() {
    want scorer SKIP_SCORER || return 0
    log "12. learned scorer: cost-quality curves, decision cost"
    built scorer hpp-policy bench/bench_scorer || return 0
    if HPP_BUILD=$B bash bench/scorer_curves.sh "$OUT/scorer" >"$TMP/scorer_curves.out" 2>&1 &&
        "$B/bench/bench_scorer" 20000 3 >"$OUT/scorer/decision_cost.txt" 2>&1; then
        rm -f "$OUT"/scorer/*.model
        status scorer ok
    else
        status scorer failed "see $TMP/scorer_curves.out"
    fi
}

# 14. The ledger (engine/README.md "The ledger"): what its checks and the
#    reservation add to a decision in process (bench_ledger, 3 runs), and the
#    engine at 20k decisions/s open loop with and without it, in turns
#    (bench/ledger_open.sh, at least 15 repeats of 2 s, with a rest after each turn
#    of the ledger engine so that its work after the turn falls in no other; it
#    prints the medians and the verdict of the goal: p99 with the ledger within
#    1.25x of without).
scenario_ledger() {
    want ledger SKIP_LEDGER || return 0
    log "14. ledger: added cost per decision; 20k/s open loop with and without"
    built ledger bench/bench_ledger bench/bench_engine || return 0
    mkdir -p "$OUT/ledger"
    local i fails=0 repeats=$((REPEAT > 15 ? REPEAT : 15))
    for i in 1 2 3; do
        "$B/bench/bench_ledger" --seconds "$SECS" >>"$OUT/ledger/decision_cost.txt" 2>&1 ||
            fails=$((fails + 1))
    done
    sed 's/^/   | /' "$OUT/ledger/decision_cost.txt"
    # Through each of the engine's doors: its direct listener (open.txt) and
    # its ROUTER (open_router.txt). Each run also has a control engine (a
    # second one without the ledger): its ratio is the noise the verdict
    # sits in. The ROUTER's p99 (130-230 us) is the noisier: without one,
    # 1.36x there could not be told from the machine (bench/RESULTS.md,
    # "Fewer pages a commit").
    local door file
    for door in direct router; do
        file=$OUT/ledger/open.txt
        [ "$door" = router ] && file=$OUT/ledger/open_router.txt
        show bash bench/ledger_open.sh --repeats "$repeats" --door "$door" --control
        HPP_BUILD=$B bash bench/ledger_open.sh --repeats "$repeats" --door "$door" \
            --control >"$file" 2>&1 || fails=$((fails + 1))
        grep -v '^{' "$file" | sed 's/^/   | /'
    done
    if [ "$fails" = 0 ]; then
        status ledger ok
    else
        status ledger failed "$fails runs failed (see $OUT/ledger/)"
    fi
}

# 13. Scaling (issue goals: /v1/route at 32 connections against nginx's static
#    reply, by sidecar workers and engine threads; the engine's open loop at
#    20k/s against the ZeroMQ echo floor). The engine has the full LiteLLM
#    catalog loaded. For each engine setting (1 thread: --threads 1, routes
#    decided inline on the network thread; 2 threads: --threads 2
#    --route-workers) and each --workers (1, 2), REPEAT rounds of wrk -c32 on
#    the sidecar's /v1/route and on nginx's static reply, interleaved; then
#    bench_engine open loop at 20k/s against that engine (its ROUTER and its
#    direct listener) and against the echo server, interleaved, REPEAT runs
#    each. The sidecars use the direct listener. The sidecar at its defaults
#    (one worker per core) is profiled with perf under the same load.
#    Raw records: scaling.jsonl (wrk) and scaling_open.jsonl (bench_engine);
#    bench/scaling_report.py turns them into the RESULTS.md section.
SCALING_WORKERS=${BENCH_SCALING_WORKERS:-1 2}
SCALING_THREADS=${BENCH_SCALING_THREADS:-1 2}
scenario_scaling() {
    want scaling SKIP_SCALING || return 0
    log "13. scaling: sidecar workers x engine threads at 32 connections vs nginx; open loop vs echo"
    local m
    for m in hpp-engine hpp-sidecar bench/bench_engine; do
        if [ ! -x "$B/$m" ]; then
            status scaling skipped "$B/$m is not built yet"
            return 0
        fi
    done
    if ! need_pkg wrk wrk || ! need_pkg nginx nginx-light nginx || ! start_nginx; then
        status scaling skipped "wrk or nginx missing"
        return 0
    fi
    local f=bench/bodies/1k.json et w round fails=0 load
    for et in $SCALING_THREADS; do
        local eargs=(--threads "$et")
        [ "$et" -gt 1 ] && eargs+=(--route-workers)
        ENGINE_CMD=("$B/hpp-engine" --policy "$POLICY" --catalog "$BUNDLED_CATALOG"
            --catalog "$LITELLM" --listen tcp://127.0.0.1:0 "${eargs[@]}")
        if help_of "$B/hpp-engine" --direct | grep -q -- --direct; then
            ENGINE_CMD+=(--direct tcp://127.0.0.1:0)
        fi
        start "$TMP/scaling_engine_$et.log" "${ENGINE_CMD[@]}"
        ENGINE_PID=$PID
        if ! wait_line "$TMP/scaling_engine_$et.log" '^hpp-engine: ready on ' "$PID" 60; then
            fails=$((fails + 1))
            continue
        fi
        ENGINE_EP=$(sed -n 's/^hpp-engine: ready on //p' "$TMP/scaling_engine_$et.log" | head -n 1)
        ENGINE_DIRECT=$(sed -n 's/^hpp-engine: direct on //p' "$TMP/scaling_engine_$et.log" |
            head -n 1)
        # The sidecars on the direct listener, as on the engine's host they should be.
        local SC_ENGINE=${ENGINE_DIRECT:-$ENGINE_EP}
        local ecmd
        ecmd=$(q "${ENGINE_CMD[@]}")
        for w in $SCALING_WORKERS; do
            if ! start_sidecar "scaling_sidecar_${et}_$w" --workers "$w" ||
                ! check_reply "sidecar --workers $w" "$SC_URL/v1/route" \
                    '^X-HPP-Router-Resolved-Model: .+' "$f" -H 'X-HPP-Task: code'; then
                fails=$((fails + 1))
                continue
            fi
            local scmd
            scmd=$(q "${SC_CMD[@]}")
            WRK_SECS=1 wrk_run "$TMP/scaling_warm_ng.out" "$f" 32 "$NG_URL/v1/route" >/dev/null
            WRK_SECS=1 wrk_run "$TMP/scaling_warm.out" "$f" 32 "$SC_URL/v1/route" \
                -H 'X-HPP-Task: code' >/dev/null
            # CPU time per request of each process on the path (wrk aside).
            local procs=("sidecar=$SC_PID" "engine=$ENGINE_PID") ngprocs=() p
            for p in $(pgrep -P "$NG_PID"); do ngprocs+=("nginx_$p=$p"); done
            for round in $(seq 1 "$REPEAT"); do
                load=$(cut -d' ' -f1 /proc/loadavg)
                snap "$TMP/scaling_cost_a" "${procs[@]}"
                if wrk_run "$TMP/scaling_sc_${et}_${w}_$round.out" "$f" 32 "$SC_URL/v1/route" \
                    -H 'X-HPP-Task: code'; then
                    snap "$TMP/scaling_cost_b" "${procs[@]}"
                    record "$OUT/scaling.jsonl" --wrk "$TMP/scaling_sc_${et}_${w}_$round.out" \
                        system=sidecar-route workers="$w" engine_threads="$et" round="$round" \
                        connections=32 body=1k load="$load" cmd="$CMD" sidecar="$scmd" \
                        engine="$ecmd" --cost "$TMP/scaling_cost_a" "$TMP/scaling_cost_b"
                else
                    fails=$((fails + 1))
                fi
                snap "$TMP/scaling_cost_a" "${ngprocs[@]}"
                if wrk_run "$TMP/scaling_ng_${et}_${w}_$round.out" "$f" 32 "$NG_URL/v1/route"; then
                    snap "$TMP/scaling_cost_b" "${ngprocs[@]}"
                    record "$OUT/scaling.jsonl" --wrk "$TMP/scaling_ng_${et}_${w}_$round.out" \
                        system=nginx-static workers="$w" engine_threads="$et" round="$round" \
                        connections=32 body=1k load="$load" cmd="$CMD" \
                        --cost "$TMP/scaling_cost_a" "$TMP/scaling_cost_b"
                else
                    fails=$((fails + 1))
                fi
            done
            if [ "$et" = 1 ] && [ "$w" = "${SCALING_WORKERS##* }" ] && [ "$PROFILE" != 0 ]; then
                profile_pid "sidecar_workers_$w" "$SC_PID" env WRK_BODY="$f" wrk -t2 -c32 \
                    "-d${SECS}s" -s bench/wrk/route.lua -H 'X-HPP-Task: code' "$SC_URL/v1/route"
            fi
            stop "$SC_PID"
        done
        # Open loop at 20k/s against this engine's two doors, and the echo
        # floor, A B C A B C.
        local kinds="engine echo"
        [ -n "$ENGINE_DIRECT" ] && kinds="engine engine-direct echo"
        for round in $(seq 1 "$REPEAT"); do
            local kind
            for kind in $kinds; do
                local cmd=("$B/bench/bench_engine" --mode open --rate 20000 --seconds "$SECS")
                case $kind in
                echo) cmd+=(--echo) ;;
                engine-direct) cmd+=(--endpoint "$ENGINE_DIRECT") ;;
                *) cmd+=(--endpoint "$ENGINE_EP") ;;
                esac
                local out=$TMP/scaling_open_${kind}_${et}_$round.out
                load=$(cut -d' ' -f1 /proc/loadavg)
                show "${cmd[@]}"
                local rc=0
                "${cmd[@]}" >"$out" 2>&1 || rc=$?
                # A run with failed requests (overloaded, late) is recorded
                # too, with them: it is part of the median, not dropped.
                if grep -q '^{' "$out"; then
                    record "$OUT/scaling_open.jsonl" --json "$out" system="$kind" \
                        engine_threads="$et" round="$round" rate=20000 load="$load" \
                        exit_status="$rc" cmd="$(q "${cmd[@]}")" engine="$ecmd"
                    grep '^  latency_us\|first error' "$out" | sed "s/^ */   $kind: /"
                else
                    fails=$((fails + 1))
                    tail -n 3 "$out" | sed 's/^/   | /'
                fi
            done
        done
        stop "$ENGINE_PID"
    done
    [ -s "$OUT/scaling.jsonl" ] && python3 bench/scaling_report.py "$OUT" | sed 's/^/   /'
    if [ "$fails" = 0 ]; then status scaling ok; else status scaling failed "$fails runs failed"; fi
}

# ---------------------------------------------------------------------------
# Main

log "hpprouter benchmarks -> $OUT (build: $B, ${SECS}s per point, budget ${BUDGET}s)"
show python3 "$REPORT" machine "$OUT" --build "$B"
python3 "$REPORT" machine "$OUT" --build "$B" || exit 1

# only NAME: 0 when $ONLY is unset or names the scenario.
only() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

only floor && scenario_floor
idle_hold # when scenario 0 was skipped
only resolve && scenario_resolve
only engine && scenario_engine
only sidecar && scenario_sidecar
only peers && scenario_peers
only memory && scenario_memory
only reload && scenario_reload
only multi && scenario_multi
only flood && scenario_flood
only slowconn && scenario_slowconn
only scorer && scenario_scorer
only scaling && scenario_scaling
only ledger && scenario_ledger
[ -z "${ONLY:-}" ] && scenario_profiles
cleanup
PIDS=()
IDLE_PID=""
IDLE=default

# Keep only what the results folder needs: the logs of this run stay in raw-tmp/
# (ignored by git) for a look after a failure.
if [ "${SKIP_PLOTS:-0}" != 1 ]; then
    need_pkg gnuplot gnuplot-nox || note "gnuplot missing: no plots"
fi
rargs=("$OUT")
[ "${SKIP_PLOTS:-0}" = 1 ] && rargs+=(--no-plots)
[ "${BENCH_NO_REPORT:-0}" = 1 ] || rargs+=(--markdown bench/RESULTS.md)
show python3 "$REPORT" render "${rargs[@]}"
python3 "$REPORT" render "${rargs[@]}" || exit 1
msg=""
[ "${BENCH_NO_REPORT:-0}" = 1 ] && msg=" (RESULTS.md not updated)"
log "done in $(elapsed)s: $OUT$msg"
