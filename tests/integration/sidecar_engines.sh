#!/usr/bin/env bash
# hpp-sidecar with several engines: starts three real hpp-engines and
# sidecars pointed at all of them, on 127.0.0.1 ephemeral ports, and checks
# the spread of calls, the per-engine metrics, that calls in flight on an
# engine killed with SIGKILL are sent to the others (both links), that a
# steady load sees no error while one engine is killed, that the restarted
# engine gets traffic again, 503 with every engine down, the policy pings
# (hashes compared once the engine reports them), the flags, sidecars on the
# engine's direct listener (TCP and a unix socket), and CURVE against a
# CURVE engine (skipped, with the reason, when the engine has no
# --curve-secret). Stops what it started by PID.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
names=()

source tests/integration/check_lib.bash
suite_setup
has() { has_text "$@"; }
# Stops every process still running and checks that the sidecars exit 0,
# and under `make asan` without a sanitizer report.
finish() {
    local i rc
    for i in "${!pids[@]}"; do
        kill -0 "${pids[$i]}" 2>/dev/null || continue
        kill -CONT "${pids[$i]}" 2>/dev/null
        kill -TERM "${pids[$i]}"
        wait "${pids[$i]}"
        rc=$?
        case "${names[$i]}" in sc*) ;; *) continue ;; esac
        check "${names[$i]} exits 0 on SIGTERM" 0 "$rc"
        no_san_report "${names[$i]}: no sanitizer report" "$tmp/${names[$i]}.err"
    done
    pids=()
    suite_end
}
# start NAME REGEX CMD...: runs CMD in the background, stderr to
# $tmp/NAME.err, waits for its readiness line; $ready = REGEX's group 1.
ENGINE_READY='^hpp-engine: ready on \(tcp:.*\)$'
start_engine() { # NAME [ARGS...] -> $ready = endpoint, $pid
    local name=$1
    shift
    start "$name" "$ENGINE_READY" "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 "$@"
}
# One worker: the round robin, the resends and their counts checked here are
# those of one loop's engine set (each worker has its own, sidecar_workers.sh).
start_sidecar() { # NAME ARGS... -> $ready = port
    local name=$1
    shift
    start "$name" '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" \
        --listen 127.0.0.1:0 --workers 1 "$@"
}
MSG='{"messages":[{"role":"user","content":"Write a C function that reverses a string."}]}'
route() { # PORT -> status
    curl -s -m 10 -o "$tmp/b" -w '%{http_code}' --data-binary "$MSG" "http://127.0.0.1:$1/v1/route"
}
metrics() { curl -s -m 5 "http://127.0.0.1:$1/metrics" >"$tmp/m"; }
# mval SERIES: the value of one sample of $tmp/m (empty when absent).
# mval SERIES: the value of the first sample line that starts with SERIES
# (HELP and TYPE lines name the series too, after "# ").
mval() { awk -v k="$1 " 'index($0, k) == 1 { print $NF; exit }' "$tmp/m"; }
# await_metric PORT SERIES VALUE: polls /metrics (5 s at most) until SERIES = VALUE.
await_metric() {
    local _
    for _ in $(seq 100); do
        metrics "$1"
        [ "$(mval "$2")" = "$3" ] && return 0
        sleep 0.05
    done
    return 1
}
# burst PORT N: N route requests at once; prints their statuses, sorted and counted.
burst() {
    local i
    for i in $(seq "$2"); do
        curl -s -m 10 -o /dev/null -w '%{http_code}\n' --data-binary "$MSG" \
            "http://127.0.0.1:$1/v1/route" &
    done | sort | uniq -c | awk '{printf "%s%sx%s", (NR > 1 ? " " : ""), $1, $2}'
    wait
}

for bin in "$ENGINE" "$SIDECAR"; do
    [ -x "$bin" ] || {
        fail "binary $bin exists"
        finish
    }
done

# Flags -----------------------------------------------------------------------
nine=()
for i in $(seq 9); do nine+=(--engine "tcp://127.0.0.1:$((6000 + i))"); done
"$SIDECAR" --listen 127.0.0.1:0 "${nine[@]}" >/dev/null 2>"$tmp/bad.err"
check "nine engines: exit 2" 2 "$?"
has "nine engines: says the limit" "at most 8 engines" "$(cat "$tmp/bad.err")"
"$SIDECAR" --engine tcp://127.0.0.1:6001 --engine tcp://127.0.0.1:6001 2>"$tmp/bad.err"
check "an engine given twice: exit 2" 2 "$?"
echo x >"$tmp/some.key"
"$SIDECAR" --curve-secret "$tmp/some.key" 2>"$tmp/bad.err"
check "--curve-secret alone: exit 2" 2 "$?"
has "--curve-secret alone: names the other flag" "--engine-curve-server-key" "$(cat "$tmp/bad.err")"
"$SIDECAR" --engine-curve-server-key "$tmp/some.key" 2>"$tmp/bad.err"
check "--engine-curve-server-key alone: exit 2" 2 "$?"
"$SIDECAR" --engine-link zmtp --engine-curve-server-key "$tmp/some.key" \
    --curve-secret "$tmp/some.key" 2>"$tmp/bad.err"
check "--engine-link zmtp with CURVE: exit 2" 2 "$?"
has "--engine-link zmtp with CURVE: says why" "only the NULL mechanism" "$(cat "$tmp/bad.err")"
help=$("$SIDECAR" --help)
for f in --engine-curve-server-key --curve-secret "repeat it for several"; do
    has "--help: $f" "$f" "$help"
done
check "--help fits 80 columns" "" "$(printf '%s\n' "$help" | awk 'length > 80')"

# Three engines, one sidecar ---------------------------------------------------
start_engine eA || finish
EA=$ready
start_engine eB || finish
EB=$ready
PB=$pid
start_engine eC || finish
EC=$ready

# The spread, the metrics, and a call in flight on a killed engine: for
# each link kind, engine B is stopped (SIGSTOP) so that the calls it gets
# wait there, then killed (SIGKILL closes its connections): its calls must
# be answered by A and C, each once.
failover() { # LINK
    local link=$1 name=sc_$1
    start_sidecar "$name" --engine "$EA" --engine "$EB" --engine "$EC" --engine-link "$link" \
        --timeout-ms 3000 || return 1
    local P=$ready
    has "$link: one link per engine" "engines $EA $EB $EC ($link link)" "$(cat "$tmp/$name.err")"
    for e in "$EA" "$EB" "$EC"; do
        await_metric "$P" "hpp_sidecar_engine_up{engine=\"$e\"}" 1 ||
            fail "$link: $e up" "$(grep engine_up "$tmp/m")"
    done
    ok "$link: /metrics shows the three engines up"
    for _ in $(seq 30); do route "$P" >>"$tmp/$name.st"; done
    check "$link: 30 routes, all 200" 30 "$(grep -o 200 "$tmp/$name.st" | wc -l)"
    metrics "$P"
    check "$link: round robin, 10 calls each" "10 10 10" \
        "$(mval "hpp_sidecar_engine_calls_total{engine=\"$EA\"}") $(mval "hpp_sidecar_engine_calls_total{engine=\"$EB\"}") $(mval "hpp_sidecar_engine_calls_total{engine=\"$EC\"}")"
    has "$link: policy info per engine" "hpp_sidecar_engine_policy_info{engine=\"$EB\",hash=" \
        "$(cat "$tmp/m")"
    # Healthz says how many engines are up.
    curl -s -m 5 "http://127.0.0.1:$P/healthz" >"$tmp/h"
    has "$link: healthz counts the engines" '"engines_up":3,"engines":3' "$(cat "$tmp/h")"
}

failover zmtp
ZP=$ready
failover libzmq
LP=$ready

metrics "$ZP"
zcalls=$(mval "hpp_sidecar_engine_calls_total{engine=\"$EB\"}")
metrics "$LP"
lcalls=$(mval "hpp_sidecar_engine_calls_total{engine=\"$EB\"}")
kill -STOP "$PB"
burst "$ZP" 6 >"$tmp/zb" &
zb=$!
burst "$LP" 6 >"$tmp/lb" &
lb=$!
# Both sidecars have two calls parked on B once it has been sent its share.
await_metric "$ZP" "hpp_sidecar_engine_calls_total{engine=\"$EB\"}" $((zcalls + 2)) ||
    fail "zmtp: B got its share" "$(grep calls_total "$tmp/m")"
await_metric "$LP" "hpp_sidecar_engine_calls_total{engine=\"$EB\"}" $((lcalls + 2)) ||
    fail "libzmq: B got its share" "$(grep calls_total "$tmp/m")"
t0=$(date +%s%N)
kill -KILL "$PB"
wait "$PB" 2>/dev/null
wait "$zb" "$lb"
ms=$((($(date +%s%N) - t0) / 1000000))
check "zmtp: calls parked on a killed engine are answered by the others" "6x200" "$(cat "$tmp/zb")"
check "libzmq: calls parked on a killed engine are answered by the others" "6x200" "$(cat "$tmp/lb")"
if [ "$ms" -lt 2500 ]; then
    ok "resent within the deadline, not after it (${ms} ms after the kill)"
else
    fail "resent within the deadline" "${ms} ms"
fi
for p in "$ZP" "$LP"; do
    metrics "$p"
    check "port $p: resends counted on the killed engine" 2 \
        "$(mval "hpp_sidecar_engine_resends_total{engine=\"$EB\"}")"
    check "port $p: the killed engine is down" 0 "$(mval "hpp_sidecar_engine_up{engine=\"$EB\"}")"
    check "port $p: no engine error counted" "0" \
        "$(mval 'hpp_sidecar_engine_errors_total{kind="unavailable",code=""}')"
done
has "zmtp: the lost engine is logged" "engine $EB went away with calls in flight: 2 sent" \
    "$(cat "$tmp/sc_zmtp.err")"

# A steady load while an engine is killed ----------------------------------------
# Engine B again on its port, then a load of /v1/route on four keep-alive
# connections for 4 s; engine C is killed with SIGKILL once the load runs.
start restartB "$ENGINE_READY" "$ENGINE" --listen "$EB" --threads 1 || finish
await_metric "$ZP" "hpp_sidecar_engine_up{engine=\"$EB\"}" 1 ||
    fail "zmtp: the restarted engine is up again" "$(grep engine_up "$tmp/m")"
PC=${pids[2]}
cat >"$tmp/load.py" <<'EOF'
import http.client, sys, threading, time
port, seconds, body = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3].encode()
counts, lock, started = {}, threading.Lock(), threading.Event()
end = time.monotonic() + seconds
def worker():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.monotonic() < end:
        try:
            c.request("POST", "/v1/route", body)
            r = c.getresponse()
            r.read()
            k = r.status
        except Exception as e:  # a broken connection counts as an error
            k = type(e).__name__
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with lock:
            counts[k] = counts.get(k, 0) + 1
            if sum(counts.values()) == 200:
                print("running", flush=True)
threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
total = sum(counts.values())
print("total %d non2xx %d %s" % (total, total - counts.get(200, 0),
      " ".join("%s:%d" % kv for kv in sorted(counts.items(), key=str))), flush=True)
EOF
/usr/bin/python3 "$tmp/load.py" "$ZP" 4 "$MSG" >"$tmp/load.out" 2>&1 &
load=$!
if await_line "$tmp/load.out" '/^running$/p' "$load" 500 >/dev/null; then
    kill -KILL "$PC"
    wait "$PC" 2>/dev/null
    wait "$load"
    result=$(sed -n 's/^total /total /p' "$tmp/load.out")
    echo "load: $result"
    n=$(awk '{print $2}' <<<"$result")
    bad=$(awk '{print $4}' <<<"$result")
    check "load: no error while an engine is killed ($result)" 0 "$bad"
    if [ "${n:-0}" -ge 500 ]; then ok "load: $n requests"; else fail "load: too few requests" "$result"; fi
    metrics "$ZP"
    check "load: the killed engine is down" 0 "$(mval "hpp_sidecar_engine_up{engine=\"$EC\"}")"
    echo "load: calls resent from the killed engine: $(mval "hpp_sidecar_engine_resends_total{engine=\"$EC\"}")"
else
    fail "load: starts" "$(cat "$tmp/load.out")"
fi

# The killed engine restarted on its port gets traffic again.
start restartC "$ENGINE_READY" "$ENGINE" --listen "$EC" --threads 1 || finish
if await_metric "$ZP" "hpp_sidecar_engine_up{engine=\"$EC\"}" 1; then
    ok "restart: the engine is up again"
    before=$(mval "hpp_sidecar_engine_calls_total{engine=\"$EC\"}")
    for _ in $(seq 9); do route "$ZP" >/dev/null; done
    metrics "$ZP"
    after=$(mval "hpp_sidecar_engine_calls_total{engine=\"$EC\"}")
    check "restart: it gets its share again" 3 "$((after - before))"
else
    fail "restart: the engine is up again" "$(grep engine_up "$tmp/m")"
fi

# Policies: the same files give the same hash; an engine on another policy
# is a disagreement, counted and logged. Engines that report no hash
# (before the engine sends policy_hash) cannot be compared.
metrics "$ZP"
hashA=$(sed -n "s/^hpp_sidecar_engine_policy_info{engine=\"${EA//\//\\/}\",hash=\"\([^\"]*\)\".*/\1/p" "$tmp/m")
if [ -z "$hashA" ]; then
    skip "policy disagreement" "the engine reports no policy_hash in its ping reply yet"
else
    check "policy: same files, same hash" 1 \
        "$(grep -c "^hpp_sidecar_engine_policy_info{engine=\"$EB\",hash=\"$hashA\"" "$tmp/m")"
    check "policy: no disagreement among equal engines" 0 \
        "$(mval hpp_sidecar_engine_policy_disagreements_total)"
    if start_engine eD --policy policies/examples/budgets.policy; then
        ED=$ready
        if start_sidecar sc_mixed --engine "$EA" --engine "$ED"; then
            M=$ready
            # Pings go out each second: wait for both engines' reports.
            for _ in $(seq 100); do
                metrics "$M"
                [ "$(mval hpp_sidecar_engine_policy_disagreements_total)" != 0 ] && break
                sleep 0.05
            done
            has "policy: a different policy is a disagreement" \
                "hpp_sidecar_engine_policy_disagreements_total " "$(grep -v ' 0$' "$tmp/m")"
            has "policy: the disagreement is logged" "engines serve different policies" \
                "$(cat "$tmp/sc_mixed.err")"
        fi
    fi
fi

# Every engine down: 503 at once (or the fail-open model).
start_sidecar sc_down --engine tcp://127.0.0.1:1 --engine tcp://127.0.0.1:2 --timeout-ms 300 &&
    check "all engines down: 503" 503 "$(route "$ready")" &&
    has "all engines down: engine_unavailable" engine_unavailable "$(cat "$tmp/b")"
# --fail-open answers only a group it saw allowed the model while an engine
# was up: never with engines that never were, and after they all went away.
start_sidecar sc_neverup --engine tcp://127.0.0.1:1 --engine tcp://127.0.0.1:2 \
    --fail-open openai/gpt-4o-mini && check "engines never up, --fail-open: 503" 503 "$(route "$ready")"
if start_engine eOpen; then
    EO=$ready
    eopid=$pid
    start_sidecar sc_open --engine "$EO" --engine tcp://127.0.0.1:2 --fail-open openai/gpt-4o-mini &&
        {
            OP=$ready
            await_line "$tmp/sc_open.err" '/group default may use/p' "" >/dev/null
            kill -KILL "$eopid"
            wait "$eopid" 2>/dev/null
            check "all engines down, --fail-open: 200" 200 "$(route "$OP")"
        }
fi

# Direct listener -------------------------------------------------------------------
# The engine's --direct (engine/eng_direct.h): sidecars on it over TCP (both
# links) and over a unix socket answer as one on the ROUTER.
decision() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["model"], d["provider"], [f["model"] for f in d["fallbacks"]])' "$1"; }
if start_engine eDirT --direct tcp://127.0.0.1:0; then
    RT=$ready
    DT=$(sed -n 's/^hpp-engine: direct on //p' "$tmp/eDirT.err" | head -n 1)
    has "direct: the engine names its direct endpoint" "tcp://127.0.0.1:" "$DT"
    start_sidecar sc_router --engine "$RT" && PR=$ready
    start_sidecar sc_dt --engine "$DT" && {
        PT=$ready
        has "direct: the sidecar picks the zmtp link" "(zmtp link)" "$(cat "$tmp/sc_dt.err")"
        check "direct over TCP: served" 200 "$(route "$PT")"
        cp "$tmp/b" "$tmp/b_direct"
        check "the same on the ROUTER: served" 200 "$(route "$PR")"
        check "direct over TCP: the same decision as on the ROUTER" \
            "$(decision "$tmp/b")" "$(decision "$tmp/b_direct")"
    }
    start_sidecar sc_dtz --engine "$DT" --engine-link libzmq &&
        check "direct over TCP, libzmq link: served" 200 "$(route "$ready")"
fi
if start_engine eDirU --direct "ipc://$tmp/engine.sock"; then
    check "direct over a unix socket: the socket is mode 0660" 660 \
        "$(stat -c %a "$tmp/engine.sock" 2>/dev/null)"
    start_sidecar sc_du --engine "ipc://$tmp/engine.sock" && {
        has "direct over a unix socket: the zmtp link" "(zmtp link)" "$(cat "$tmp/sc_du.err")"
        check "direct over a unix socket: served" 200 "$(route "$ready")"
    }
fi
"$SIDECAR" --listen 127.0.0.1:0 --engine "ipc://" 2>"$tmp/badipc.err" >/dev/null
check "an empty socket path: exit 1 (as any engine endpoint that cannot work)" 1 "$?"
has "... saying why" "socket path must be 1-" "$(cat "$tmp/badipc.err")"

# CURVE -----------------------------------------------------------------------------
if ! "$ENGINE" --help 2>/dev/null | grep -q -- --curve-secret; then
    skip "CURVE engine and sidecar" "hpp-engine --help lists no --curve-secret (this engine has no CURVE)"
else
    k=$tmp/keys
    for n in engine sidecar stranger; do
        "$ENGINE" --curve-keygen "$k" --curve-name "$n" >/dev/null 2>"$tmp/keygen.err" ||
            fail "keygen $n" "$(cat "$tmp/keygen.err")"
    done
    printf '%s sidecar\n' "$(grep -v '^#' "$k/sidecar.pub" | head -n 1 | cut -d' ' -f1)" \
        >"$tmp/clients"
    if start_engine eCurve --curve-secret "$k/engine.sec" --curve-clients "$tmp/clients"; then
        EZ=$ready
        start_sidecar sc_curve --engine "$EZ" --engine-curve-server-key "$k/engine.pub" \
            --curve-secret "$k/sidecar.sec" && {
            CP=$ready
            has "CURVE: the libzmq link is picked" "(libzmq link, CURVE)" "$(cat "$tmp/sc_curve.err")"
            await_metric "$CP" "hpp_sidecar_engine_up{engine=\"$EZ\"}" 1
            check "CURVE: a known key is served" 200 "$(route "$CP")"
        }
        start_sidecar sc_stranger --engine "$EZ" --engine-curve-server-key "$k/engine.pub" \
            --curve-secret "$k/stranger.sec" --timeout-ms 300 && {
            SP=$ready
            await_line "$tmp/sc_stranger.err" '/refused us/p' "" 250 >/dev/null
            check "CURVE: an unknown key is not served" 503 "$(route "$SP")"
            has "CURVE: the refusal is logged" "the engine refused us" "$(cat "$tmp/sc_stranger.err")"
        }
        start_sidecar sc_wrongserver --engine "$EZ" --engine-curve-server-key "$k/stranger.pub" \
            --curve-secret "$k/sidecar.sec" --timeout-ms 300 &&
            check "CURVE: a wrong server key is not served" 503 "$(route "$ready")"
        start_sidecar sc_plain --engine "$EZ" --timeout-ms 300 &&
            check "CURVE: a sidecar without keys is not served" 503 "$(route "$ready")"
        # The direct listener speaks no CURVE: a TCP one is refused next to
        # it; a unix socket, whose file mode is the check, is not.
        "$ENGINE" --listen tcp://127.0.0.1:0 --curve-secret "$k/engine.sec" \
            --curve-clients "$tmp/clients" --direct tcp://127.0.0.1:0 >/dev/null 2>"$tmp/cd.err"
        check "CURVE: --direct over TCP is refused (exit 2)" 2 "$?"
        has "CURVE: ... saying why" "with --curve-secret it must be an ipc:// path" \
            "$(cat "$tmp/cd.err")"
        start_engine eCurveU --curve-secret "$k/engine.sec" --curve-clients "$tmp/clients" \
            --direct "ipc://$tmp/curve.sock" &&
            start_sidecar sc_curve_ipc --engine "ipc://$tmp/curve.sock" &&
            check "CURVE: the unix socket serves a sidecar without keys" 200 "$(route "$ready")"
        secret=$(grep -v '^#' "$k/sidecar.sec" | head -n 1 | cut -d' ' -f1)
        if grep -qF -- "$secret" "$tmp"/sc_*.err; then
            fail "CURVE: the secret key never appears in a log"
        else
            ok "CURVE: the secret key never appears in a log"
        fi
    fi
fi

finish
