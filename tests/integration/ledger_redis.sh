#!/usr/bin/env bash
# The ledger's Redis store with real processes: its own redis-server on a
# unix socket in a temporary folder (no TCP, no persistence), hpp-engines
# with --ledger redis+unix:SOCK on 127.0.0.1 ephemeral ports, and
# ledger_load.py for the load. Checks: two engines on one Redis under
# concurrent load spend a key down to zero, the final balance equals the
# start less the exact sum of the settled charges, and the overspend is
# less than one reservation (so never more than the reservations in
# flight); a Redis that goes away answers ledger_unavailable and serves
# again when it is back, without restarting the engine; the password file:
# a file others may read, a wrong password (never printed) and the right
# one. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
LOAD=tests/integration/ledger_load.py
PY=/usr/bin/python3
MODEL=openai/gpt-4o-mini

source tests/integration/check_lib.bash
source tests/integration/redis_lib.bash
suite_setup

if ! redis_start redis; then
    skip "redis store" "$redis_why"
    suite_end
fi
if ! "$ENGINE" --help 2>&1 | grep -q -- '--ledger'; then
    skip "redis store" "hpp-engine has no --ledger flag in this build"
    suite_end
fi

KEY_CLEAR=sk-ledger-redis-test-1
KEY=sha256:$(printf '%s' "$KEY_CLEAR" | sha256sum | cut -d' ' -f1)
printf '%s group=default account=team-a\n' "$KEY" >"$tmp/keys"

# start_engine NAME ARGS...: an engine on a loopback ephemeral port with the
# ledger on Redis; $ep = its endpoint, $pid. Returns 1 when it exits.
start_engine() {
    local name=$1
    shift
    "$ENGINE" --listen tcp://127.0.0.1:0 --threads 2 --keys "$tmp/keys" "$@" \
        2>"$tmp/$name.err" >/dev/null &
    pid=$!
    pids+=("$pid")
    ep=$(await_line "$tmp/$name.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$pid" 500)
}
op() { "$PY" "$LOAD" op "$@"; }
jq1() { "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1"; }

# ---- Two engines, one Redis, concurrent load --------------------------------
start_engine e1 --ledger "redis+unix:$redis_sock" --ledger-node 1 && e1=$ep || e1=""
start_engine e2 --ledger "redis+unix:$redis_sock" --ledger-node 2 && e2=$ep || e2=""
if [ -z "$e1" ] || [ -z "$e2" ]; then
    fail "two engines start on one Redis" "$(tail -n 3 "$tmp/e1.err" "$tmp/e2.err")"
    suite_end
fi
ok "two engines start on one Redis"

# $0.05 and one odd picodollar-free amount: the load's costs are whole
# microdollars, the start a whole number of them too.
rep=$(op "$e1" '{"op": "ledger", "action": "topup", "account": "team-a", "amount_usd": 0.05}')
start_pd=$(jq1 'd.get("balance_pd")' <<<"$rep")
check "topup through engine 1" 50000000000 "$start_pd"
rep=$(op "$e2" "{\"op\": \"ledger\", \"action\": \"key\", \"key\": \"$KEY\"}")
check "engine 2 sees engine 1's top-up" 50000000000 "$(jq1 'd.get("balance_pd")' <<<"$rep")"

out=$("$PY" "$LOAD" spend --engine "$e1" --engine "$e2" --key "$KEY" --model "$MODEL" \
    --workers 4 2>"$tmp/load.err")
rc=$?
check "load: every reply a decision or insufficient_balance" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out $(tail -n 5 "$tmp/load.err")"
settled=$(jq1 'd["settled_pd"]' <<<"$out")
maxres=$(jq1 'd["max_reserved_pd"]' <<<"$out")
decisions=$(jq1 'd["decisions"]' <<<"$out")
echo "load: $out"

rep=$(op "$e1" "{\"op\": \"ledger\", \"action\": \"key\", \"key\": \"$KEY\"}")
balance=$(jq1 'd.get("balance_pd")' <<<"$rep")
check "final balance = start - exact sum of settled charges" "$((start_pd - settled))" "$balance"
check "key's spend = the sum of settled charges" "$settled" "$(jq1 'd.get("spent_pd")' <<<"$rep")"
check "key's settled requests = the decisions reported" "$decisions" \
    "$(jq1 'd.get("requests")' <<<"$rep")"
check "no reservation left in flight" 0 "$(jq1 'd.get("reserved_pd")' <<<"$rep")"
check "spent down to zero (balance <= 0)" 1 "$([ "$balance" -le 0 ] && echo 1 || echo 0)"
check "overspend < one reservation ($maxres pd), so <= the reservations in flight" 1 \
    "$([ $((-balance)) -lt "$maxres" ] && echo 1 || echo 0)"
check "both engines decided (decisions by node id 1 and 2)" "1 1" \
    "$(jq1 '" ".join(str(int(d["nodes"].get(n, 0) > 0)) for n in ("1", "2"))' <<<"$out")"
rep=$(op "$e2" "{\"op\": \"route\", \"model\": \"$MODEL\", \"key\": \"$KEY\", \"prompt_tokens\": 10}")
check "a spent key is refused" insufficient_balance "$(jq1 'd["error"]["code"]' <<<"$rep")"

# ---- Redis goes away, and comes back ----------------------------------------
redis_stop
rep=$(op "$e1" "{\"op\": \"route\", \"model\": \"$MODEL\", \"key\": \"$KEY\", \"prompt_tokens\": 10}")
check "Redis down: ledger_unavailable" ledger_unavailable "$(jq1 'd["error"]["code"]' <<<"$rep")"
has_text "Redis down: the message says why" "redis+unix:" "$(jq1 'd["error"]["message"]' <<<"$rep")"
check "Redis down: the engine still runs" 0 "$(kill -0 "$pid" 2>/dev/null; echo $?)"
if redis_start redis; then
    # The new Redis is empty (no persistence in the tests): top up again. The
    # store reconnects by itself within its 100 ms backoff: poll for it.
    code=""
    for _ in $(seq 100); do
        rep=$(op "$e1" '{"op": "ledger", "action": "topup", "account": "team-a", "amount_usd": 1}')
        code=$(jq1 'd.get("error", {}).get("code", "ok")' <<<"$rep")
        [ "$code" = ok ] && break
        sleep 0.02
    done
    check "Redis back: the engine serves again without a restart" ok "$code"
    # e2's pooled connections date from the old Redis; a top-up is sent only
    # once (resending one whose answer was lost could count it twice), so
    # it must not go out on a connection the old server closed.
    rep=$(op "$e2" '{"op": "ledger", "action": "topup", "account": "team-b", "amount_usd": 1}')
    check "Redis back: the first top-up on the other engine goes through" ok \
        "$(jq1 'd.get("error", {}).get("code", "ok")' <<<"$rep")"
    rep=$(op "$e2" "{\"op\": \"route\", \"model\": \"$MODEL\", \"key\": \"$KEY\", \"prompt_tokens\": 10}")
    check "Redis back: a route reserves again" True "$(jq1 'd["ok"]' <<<"$rep")"
else
    fail "Redis restarts" "$redis_why"
fi
for n in e1 e2; do no_san_report "$n: no sanitizer report" "$tmp/$n.err"; done

# ---- The password file ------------------------------------------------------
redis_stop
PW=ledger-redis-test-pw-1
if redis_start redis-auth --requirepass "$PW"; then
    printf '# the ledger password\n%s\n' "$PW" >"$tmp/secret"
    chmod 644 "$tmp/secret"
    start_engine bad1 --ledger "redis+unix:$redis_sock" --ledger-secret "$tmp/secret"
    check "a secret file others may read: the engine does not start" "" "$ep"
    has_line "... and says why" "must not be readable by others" "$tmp/bad1.err"
    printf 'not-the-password\n' >"$tmp/secret"
    chmod 600 "$tmp/secret"
    start_engine bad2 --ledger "redis+unix:$redis_sock" --ledger-secret "$tmp/secret"
    check "a wrong password: the engine does not start" "" "$ep"
    has_line "... and says Redis refused AUTH" "AUTH refused" "$tmp/bad2.err"
    check "... without printing the password" 0 "$(grep -c 'not-the-password' "$tmp/bad2.err")"
    start_engine bad4 --ledger "redis://user:$PW@127.0.0.1:6379"
    check "a password in the address: the engine does not start" "" "$ep"
    has_line "... and says where a password goes" "ledger-secret FILE" "$tmp/bad4.err"
    check "... without repeating the password" 0 "$(grep -c "$PW" "$tmp/bad4.err")"
    start_engine bad3 --ledger "redis+unix:$redis_sock"
    check "no password for a Redis that wants one: the engine does not start" "" "$ep"
    printf '%s\n' "$PW" >"$tmp/secret"
    start_engine good --ledger "redis+unix:$redis_sock" --ledger-secret "$tmp/secret"
    if [ -n "$ep" ]; then
        ok "the right password (0600): the engine starts"
        rep=$(op "$ep" '{"op": "ledger", "action": "topup", "account": "team-a", "amount_usd": 2}')
        check "... and the ledger works" 2000000000000 "$(jq1 'd.get("balance_pd")' <<<"$rep")"
        check "the password is never in the engine's output" 0 "$(grep -c "$PW" "$tmp/good.err")"
        no_san_report "good: no sanitizer report" "$tmp/good.err"
    else
        fail "the right password (0600): the engine starts" "$(tail -n 3 "$tmp/good.err")"
    fi
    check "the password is never in the engine's argv" 0 \
        "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -c "$PW")"
else
    fail "redis-server with a password starts" "$redis_why"
fi

suite_end
