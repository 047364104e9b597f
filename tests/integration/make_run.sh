#!/usr/bin/env bash
# `make run`, the README's first command: engine and sidecar start on the
# bundled policy and catalog, the sidecar answers with the resolved-model
# header as soon as it says it is ready, Ctrl-C (SIGINT to the process group)
# stops both, and an engine that cannot start ends make run with its error
# and no sidecar. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
tmp=$(mktemp -d)
groups=()
# shellcheck disable=SC2317 # run by the EXIT trap (suite_end exits)
cleanup() {
    local g
    for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
source tests/integration/check_lib.bash
has() { has_text "$@"; }

# A free loopback port for the engine: make run has to name it to both.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# run_make LOG ARGS...: `make run` in its own process group (like a terminal's
# foreground job); sets $mk (its pid, also the group id).
run_make() {
    local logf=$1
    shift
    local san=()
    [ "${HPP_SAN:-0}" = 1 ] && san=(SAN=1)
    setsid make --no-print-directory run BUILD="$BUILD" "${san[@]}" "$@" >"$logf" 2>&1 &
    mk=$!
    groups+=("$mk")
}
# alive PGID: processes left in the group.
alive() { pgrep -g "$1" 2>/dev/null | wc -l; }

eport=$(free_port)
run_make "$tmp/run.log" ENGINE_LISTEN="tcp://127.0.0.1:$eport" SIDECAR_LISTEN=127.0.0.1:0 \
    STATE="$tmp/state1"
sport=$(await_line "$tmp/run.log" 's/^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' \
    "$mk" 1000)
if [ -z "$sport" ]; then
    fail "make run: the sidecar says it is ready" "$(tail -n 5 "$tmp/run.log")"
else
    ok "make run: the sidecar says it is ready"
    has_line "make run: the engine said so first" "hpp-engine: ready on tcp://127.0.0.1:$eport" \
        "$tmp/run.log"
    # Without CURVE the sidecar asks the engine on its direct listener.
    has_line "make run: the engine's direct listener is a socket in STATE" \
        "hpp-engine: direct on ipc://$tmp/state1/engine-0.sock" "$tmp/run.log"
    has_line "make run: the sidecar asks it there" \
        "engine ipc://$tmp/state1/engine-0.sock (zmtp link)" "$tmp/run.log"
    # At once, as a user who pastes the README's curl: no 503 while the engine starts.
    out=$(curl -si "http://127.0.0.1:$sport/v1/route" -H 'X-HPP-Task: code' \
        -d '{"model":"hpprouter/auto","messages":[{"role":"user","content":"hi"}]}')
    has "make run: the README's curl answers 200" "HTTP/1.1 200" "$out"
    has "make run: with the resolved model" "X-HPP-Router-Resolved-Model: " "$out"
fi
kill -INT -- "-$mk"
for _ in $(seq 200); do
    [ "$(alive "$mk")" = 0 ] && break
    sleep 0.05
done
check "make run: Ctrl-C stops engine and sidecar" 0 "$(alive "$mk")"
has_line "make run: the engine logged its stop" "info engine: stopped" "$tmp/run.log"
if grep -q "second stop signal" "$tmp/run.log"; then
    fail "make run: Ctrl-C lets the engine drain" "$(grep "second stop" "$tmp/run.log")"
else
    ok "make run: Ctrl-C lets the engine drain"
fi
has_line "make run: the sidecar logged its stop" "info sidecar: stopped" "$tmp/run.log"
if [ -e "$tmp/state1/engine-0.sock" ]; then
    fail "make run: the direct listener's socket goes with the engine" "$tmp/state1/engine-0.sock is left"
else
    ok "make run: the direct listener's socket goes with the engine"
fi

# The engine's port taken: make run fails with the engine's error, no sidecar.
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(30)' >"$tmp/busy.port" &
holder=$!
for _ in $(seq 100); do [ -s "$tmp/busy.port" ] && break; sleep 0.02; done
busy=$(cat "$tmp/busy.port")
run_make "$tmp/busy.log" ENGINE_LISTEN="tcp://127.0.0.1:$busy" SIDECAR_LISTEN=127.0.0.1:0
for _ in $(seq 200); do
    kill -0 "$mk" 2>/dev/null || break
    sleep 0.05
done
kill -0 "$mk" 2>/dev/null && kill -TERM -- "-$mk" # still up after 10 s: a failure, never a hang
wait "$mk"
rc=$?
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
if [ "$rc" -ne 0 ]; then ok "make run: an engine that cannot bind fails it"; else fail "make run: an engine that cannot bind fails it" "exit 0"; fi
has_line "make run: with the engine's error" "cannot bind: Address already in use" "$tmp/busy.log"
if grep -q "hpp-sidecar: ready" "$tmp/busy.log"; then
    fail "make run: no sidecar without an engine" "$(cat "$tmp/busy.log")"
else
    ok "make run: no sidecar without an engine"
fi
check "make run: nothing left running" 0 "$(alive "$mk")"

# ENGINES=2: two engines on consecutive ports behind the one sidecar.
# free_pair: a free loopback port whose next port is free too.
free_pair() {
    python3 -c 'import socket
for _ in range(50):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
    finally:
        a.close(); b.close()'
}
# run_engines NAME CURVE STATE: make run with two engines, CURVE=0 or 1 and
# its state in STATE; checks that both serve behind the sidecar (on their
# ports over CURVE, on their direct listeners in STATE without) and that
# Ctrl-C stops everything.
run_engines() {
    local name=$1 curve=$2 state=$3 p want
    p=$(free_pair)
    want="engines tcp://127.0.0.1:$p tcp://127.0.0.1:$((p + 1))"
    [ "$curve" = 0 ] && want="engines ipc://$state/engine-0.sock ipc://$state/engine-1.sock"
    run_make "$tmp/$name.log" ENGINES=2 ENGINE_LISTEN="tcp://127.0.0.1:$p" SIDECAR_LISTEN=127.0.0.1:0 \
        CURVE="$curve" STATE="$state"
    sport=$(await_line "$tmp/$name.log" 's/^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' \
        "$mk" 1000)
    if [ -z "$sport" ]; then
        fail "$name: the sidecar says it is ready" "$(tail -n 5 "$tmp/$name.log")"
    else
        ok "$name: the sidecar says it is ready"
        has_line "$name: engine 1 ready" "hpp-engine: ready on tcp://127.0.0.1:$p" "$tmp/$name.log"
        has_line "$name: engine 2 ready" "hpp-engine: ready on tcp://127.0.0.1:$((p + 1))" "$tmp/$name.log"
        has_line "$name: the sidecar has both" "$want" "$tmp/$name.log"
        out=$(curl -si "http://127.0.0.1:$sport/v1/route" -H 'X-HPP-Task: code' \
            -d '{"model":"hpprouter/auto","messages":[{"role":"user","content":"hi"}]}')
        has "$name: the README's curl answers 200" "HTTP/1.1 200" "$out"
        up=$(curl -s "http://127.0.0.1:$sport/healthz")
        has "$name: both engines up" '"engines_up":2' "$up"
    fi
    kill -INT -- "-$mk"
    for _ in $(seq 200); do
        [ "$(alive "$mk")" = 0 ] && break
        sleep 0.05
    done
    check "$name: Ctrl-C stops the engines and the sidecar" 0 "$(alive "$mk")"
    check "$name: both engines logged their stop" 2 "$(grep -c 'info engine: stopped' "$tmp/$name.log")"
}
run_engines "ENGINES=2 CURVE=0" 0 "$tmp/state0"
if ! "$BUILD/hpp-engine" --help 2>/dev/null | grep -q -- --curve-keygen; then
    skip "make run: ENGINES=2 over CURVE" "hpp-engine --help lists no --curve-keygen (this engine has no CURVE)"
else
    run_engines "ENGINES=2 (CURVE)" 1 "$tmp/state"
    has_line "ENGINES=2 (CURVE): the sidecar uses CURVE" "link, CURVE)" "$tmp/ENGINES=2 (CURVE).log"
    check "ENGINES=2 (CURVE): the secret keys are private" "600 600" \
        "$(stat -c %a "$tmp/state/keys/engine.sec" "$tmp/state/keys/sidecar.sec" | tr '\n' ' ' | sed 's/ $//')"
fi

# Under `make asan` make run builds with SAN=1 and the servers' reports land
# in these logs; in any other run there is nothing to check.
no_san_report "make run: no sanitizer report" "$tmp"/*.log

suite_end
