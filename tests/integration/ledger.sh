#!/usr/bin/env bash
# The ledger end to end: a real hpp-engine (127.0.0.1, ephemeral port) with
# --keys and --ledger, and a gateway stand-in (ledger_client.py, pyzmq)
# that routes with `key`, reports attempts and uses the ledger op. Covers
# each check in its order and each refusal (unknown_key, model_not_allowed,
# insufficient_balance, key_limit_reached, daily_limit_reached, the free
# counts), reservation and settlement (double reports, several attempts of
# one decision, an attempt with no answer, a decision never reported
# expiring), the key file's reload, and a kill -9 under load: after the
# restart every acknowledged settlement is there. The embedded store also:
# a kill -9 before any commit (everything published comes back from the
# ring file), a damaged ring and a missing ring directory (the start and
# --check refuse, saying where and why).
#
# LEDGER_STORE=sqlite (default) or redis selects the store; redis starts
# its own redis-server on a unix socket in the temporary folder.
# Stops what it started by PID. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
PY=/usr/bin/python3
STORE_KIND=${LEDGER_STORE:-sqlite}

source tests/integration/check_lib.bash
suite_setup

if ! "$PY" -c 'import zmq, msgpack' 2>/dev/null; then
    skip "ledger" "$PY has no pyzmq or msgpack (make deps)"
    suite_end
fi

RING=() # the embedded store's ring files, in the suite's folder
case "$STORE_KIND" in
sqlite)
    STORE=sqlite:$tmp/ledger.db
    mkdir -m 700 "$tmp/ring"
    RING=(--ledger-ring-dir "$tmp/ring")
    ;;
redis)
    if ! command -v redis-server >/dev/null; then
        skip "ledger (redis)" "redis-server is not installed"
        suite_end
    fi
    redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 \
        --dir "$tmp" --save '' --appendonly yes >"$tmp/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do
        redis-cli -s "$tmp/redis.sock" ping 2>/dev/null | grep -q PONG && break
        sleep 0.05
    done
    STORE=redis+unix:$tmp/redis.sock
    ;;
*)
    fail "LEDGER_STORE" "expected sqlite or redis, got '$STORE_KIND'"
    suite_end
    ;;
esac

hash() { printf 'sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"; }
K_NEW=$(hash sk-new) K_LIM=$(hash sk-limited) K_DAY=$(hash sk-daily) K_REQ=$(hash sk-requests)
K_TRIAL=$(hash sk-trial) K_FREE=$(hash sk-free) K_REV=$(hash sk-revoked) K_PAY=$(hash sk-payer)
K_UNKNOWN=$(hash sk-nobody) K_LATE=$(hash sk-late) K_CRASH=$(hash sk-crash) K_STEP=$(hash sk-step)
K_RING=$(hash sk-ring)
cat >"$tmp/keys" <<EOF
# the ledger suite's keys
$K_NEW group=default account=acme
$K_PAY group=partner account=acme
$K_LIM group=default account=rich limit_usd=0.0008
$K_DAY group=default account=rich daily_usd=0.0008
$K_REQ group=default account=rich daily_requests=2
$K_TRIAL group=trial account=rich
$K_FREE group=default account=poor free_daily_requests=2 free_daily_requests_funded=3
$K_REV group=default account=rich revoked=1
$K_CRASH group=default account=crash
$K_STEP group=stepper account=stepper
$K_RING group=default account=ring
EOF
chmod 600 "$tmp/keys"

# start NAME ARGS...: an engine with the suite's keys and store; $ep, $pid.
start() {
    local name=$1
    shift
    "$ENGINE" --listen tcp://127.0.0.1:0 --threads 2 --keys "$tmp/keys" --ledger "$STORE" \
        "${RING[@]}" "$@" 2>"$tmp/$name.err" &
    pid=$!
    pids+=("$pid")
    ep=$(await_line "$tmp/$name.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$pid" 250)
    [ -n "$ep" ] || fail "$name starts" "$(tail -n 5 "$tmp/$name.err")"
}
# One client for the whole suite, on two FIFOs (file descriptors 7 and 8,
# inherited by the $(...) subshells that call it).
mkfifo "$tmp/client.in" "$tmp/client.out"
"$PY" tests/integration/ledger_client.py <"$tmp/client.in" >"$tmp/client.out" 2>"$tmp/client.err" &
pids+=($!)
exec 7>"$tmp/client.in" 8<"$tmp/client.out"
# call JSON...: one request per argument, to the engine at $ep; the replies
# one a line.
call() {
    local _ line
    printf '@%s\n' "$ep" >&7
    printf '%s\n' "$@" >&7
    for _ in "$@"; do
        IFS= read -r -t 30 line <&8 || { echo '{"error":{"code":"client_gone"}}'; continue; }
        printf '%s\n' "$line"
    done
}
# get JQ JSON: a field of a reply.
get() { jq -r "$1" <<<"$2"; }
# code JSON...: the error code of one call.
code() { get '.error.code // "ok"' "$(call "$@")"; }
route() { # KEY [MODEL]: a route of 1000 prompt tokens, 500 output
    printf '{"op":"route","prompt_tokens":1000,"output_tokens":500,"key":"%s"%s}' "$1" \
        "${2:+,\"model\":\"$2\"}"
}
keyinfo() { call "{\"op\":\"ledger\",\"action\":\"key\",\"key\":\"$1\"}"; }
topup() { call "{\"op\":\"ledger\",\"action\":\"topup\",\"account\":\"$1\",\"amount_usd\":$2}"; }
# The decision id is a 64-bit integer: read as text (jq's numbers are doubles).
decision_id() { sed -n 's/.*"decision_id": \([0-9]*\).*/\1/p' <<<"$1"; }
attempt() { # DECISION_REPLY STATUS [COST_USD]
    local d=$1
    printf '{"decision":%s,"model":"%s","provider":"%s","status":%s%s}' \
        "$(decision_id "$d")" "$(get .model "$d")" "$(get .provider "$d")" "$2" \
        "${3:+,\"cost_usd\":$3,\"prompt_tokens\":1000,\"completion_tokens\":200}"
}
report() { call "{\"op\":\"report\",\"ack\":true,\"attempts\":[$(
    IFS=,
    echo "$*"
)]}"; }

# Flags and files ------------------------------------------------------------------
"$ENGINE" --ledger "$STORE" >/dev/null 2>"$tmp/e"
check "--ledger without --keys: usage error" 2 "$?"
has_text "--ledger without --keys: says why" "--ledger needs --keys" "$(cat "$tmp/e")"
"$ENGINE" --ledger bogus:x --keys "$tmp/keys" >/dev/null 2>"$tmp/e"
check "--ledger with an unknown store: usage error" 2 "$?"
"$ENGINE" --ledger-hold 0 >/dev/null 2>"$tmp/e"
check "--ledger-hold 0: usage error" 2 "$?"
"$ENGINE" --ledger-day-offset 15 >/dev/null 2>"$tmp/e"
check "--ledger-day-offset 15: usage error" 2 "$?"
printf '%s group=a bogus=1\n' "$K_NEW" >"$tmp/bad.keys"
"$ENGINE" --listen tcp://127.0.0.1:0 --keys "$tmp/bad.keys" --ledger "$STORE" >/dev/null \
    2>"$tmp/e"
check "a bad key file at startup: usage error" 2 "$?"
has_text "a bad key file: FILE:LINE named" "$tmp/bad.keys:1:" "$(cat "$tmp/e")"
# --check reads the key file and opens the store as a start would.
"$ENGINE" --check --keys "$tmp/bad.keys" >/dev/null 2>"$tmp/e"
check "--check with a bad key file: usage error" 2 "$?"
has_text "--check: the key file's FILE:LINE named" "$tmp/bad.keys:1:" "$(cat "$tmp/e")"
"$ENGINE" --check --keys "$tmp/keys" --ledger "$STORE" >/dev/null 2>"$tmp/e"
check "--check with the suite's keys and store: ok" 0 "$?"
has_text "--check counts the keys" "$tmp/keys: $(grep -c '^sha256:' "$tmp/keys") keys" "$(cat "$tmp/e")"
if [ "$STORE_KIND" = sqlite ]; then
    bad_store=sqlite:$tmp/no-such-dir/ledger.db
else
    bad_store=redis+unix:$tmp/no-such.sock
fi
"$ENGINE" --check --keys "$tmp/keys" --ledger "$bad_store" >/dev/null 2>"$tmp/e"
check "--check with a store that cannot open: usage error" 2 "$?"
has_text "--check: the store's error names it" "${bad_store#*:}" "$(cat "$tmp/e")"

start engine --metrics-listen 127.0.0.1:0
metrics=$(sed -n 's|^hpp-engine: metrics on \(http://.*/metrics\)$|\1|p' "$tmp/engine.err")
if [ "$STORE_KIND" = sqlite ]; then
    check "the state file is private (0600)" 600 "$(stat -c %a "$tmp/ledger.db")"
    # One engine per state file: a second one is refused while it runs.
    "$ENGINE" --listen tcp://127.0.0.1:0 --keys "$tmp/keys" --ledger "$STORE" >/dev/null \
        2>"$tmp/e"
    check "a second engine on the state file: usage error" 2 "$?"
    has_line "a second engine: says the file is in use, naming it once" \
        "hpp-engine: error: --ledger $tmp/ledger.db: the state file is in use by another process" \
        "$tmp/e"
    # A deploy checks before it restarts the engine: the file is not read, and the check passes.
    "$ENGINE" --check --keys "$tmp/keys" --ledger "$STORE" >/dev/null 2>"$tmp/e"
    check "--check of a state file in use: ok" 0 "$?"
    has_text "--check of a state file in use: says so" \
        "ledger.db: in use by another process (an engine running on it), not read" "$(cat "$tmp/e")"
    has_text "--check of a state file in use: still reads the key file" \
        "$tmp/keys: $(grep -c '^sha256:' "$tmp/keys") keys" "$(cat "$tmp/e")"
fi

# The checks, in order --------------------------------------------------------------
check "no key: unknown_key" unknown_key "$(code '{"op":"route","prompt_tokens":10}')"
check "a key not in the file: unknown_key" unknown_key "$(code "$(route "$K_UNKNOWN")")"
check "a revoked key: unknown_key" unknown_key "$(code "$(route "$K_REV")")"
check "a malformed key: bad_request" bad_request \
    "$(code '{"op":"route","prompt_tokens":10,"key":"sha256:XYZ"}')"
check "group before money: trial may not use gpt-5" model_not_allowed \
    "$(code "$(route "$K_TRIAL" openai/gpt-5)")"
check "a paid model on an empty account: insufficient_balance" insufficient_balance \
    "$(code "$(route "$K_NEW")")"
r=$(keyinfo "$K_NEW")
check "refusals reserve and count nothing" "0 0" "$(get '"\(.reserved_pd) \(.day_requests)"' "$r")"

# Reservation and settlement --------------------------------------------------------
r=$(topup acme 0.5)
check "topup: the new balance, exact" 500000000000 "$(get .balance_pd "$r")"
topup rich 10 >/dev/null
d=$(call "$(route "$K_NEW")")
check "a route with money: ok" ok "$(get '.error.code // "ok"' "$d")"
check "the decision reserves its estimate" "$(get .cost_pusd.total "$d")" "$(get .reserved_pd "$d")"
check "remaining_usd after the reservation" \
    "$((500000000000 - $(get .cost_pusd.total "$d")))" "$(get .remaining_pd "$d")"
r=$(keyinfo "$K_NEW")
check "ledger key: reserved, one request today" "$(get .reserved_pd "$d") 1" \
    "$(get '"\(.reserved_pd) \(.day_requests)"' "$r")"
check "ledger key: the account's and the day's reservations" \
    "$(get .reserved_pd "$d") $(get .reserved_pd "$d")" \
    "$(get '"\(.account_reserved_pd) \(.day_reserved_pd)"' "$r")"
r=$(report "$(attempt "$d" 200 0.000123)")
check "report with ack: acknowledged" 1 "$(get .attempts "$r")"
r=$(keyinfo "$K_NEW")
check "settled at the reported cost; reservation gone" "123000000 0 1" \
    "$(get '"\(.spent_pd) \(.reserved_pd) \(.requests)"' "$r")"
check "the account pays exactly" $((500000000000 - 123000000)) "$(get .balance_pd "$r")"
check "tokens counted" "1000 200" "$(get '"\(.prompt_tokens) \(.completion_tokens)"' "$r")"
report "$(attempt "$d" 200 0.000123)" >/dev/null
r=$(keyinfo "$K_NEW")
check "a report delivered twice settles once" "123000000 1" "$(get '"\(.spent_pd) \(.requests)"' "$r")"

# Several attempts of one decision: only the one that answered pays.
d=$(call "$(route "$K_PAY")")
report "$(attempt "$d" 429 0.5)" "$(attempt "$d" 502 0.25)" "$(attempt "$d" 200 0.0001)" >/dev/null
r=$(keyinfo "$K_PAY")
check "retries of one request: charged once, for the attempt that answered" "100000000 1 0" \
    "$(get '"\(.spent_pd) \(.requests) \(.reserved_pd)"' "$r")"
# No attempt answered: nothing charged, the reservation released.
d=$(call "$(route "$K_PAY")")
report "$(attempt "$d" 503 0.5)" >/dev/null
r=$(keyinfo "$K_PAY")
check "no answer: nothing charged, released" "100000000 1 0" \
    "$(get '"\(.spent_pd) \(.requests) \(.reserved_pd)"' "$r")"
# A 2xx without cost_usd or tokens: the estimate is charged.
d=$(call "$(route "$K_PAY")")
report "$(attempt "$d" 200)" >/dev/null
r=$(keyinfo "$K_PAY")
check "an answer without cost: the estimate is charged" \
    "$((100000000 + $(get .reserved_pd "$d")))" "$(get .spent_pd "$r")"
acct=$(call '{"op":"ledger","action":"accounts"}')
check "accounts: acme's balance is the top-up less both keys' spend" \
    "$((500000000000 - 123000000 - $(get .spent_pd "$r")))" \
    "$(get '.accounts[] | select(.account == "acme") | .balance_pd' "$acct")"

# Limits ------------------------------------------------------------------------------
call "$(route "$K_LIM")" >/dev/null
call "$(route "$K_LIM")" >/dev/null
check "the key's limit spent by reservations: key_limit_reached" key_limit_reached \
    "$(code "$(route "$K_LIM")")"
call "$(route "$K_DAY")" >/dev/null
call "$(route "$K_DAY")" >/dev/null
check "the day's money reserved: daily_limit_reached" daily_limit_reached \
    "$(code "$(route "$K_DAY")")"
call "$(route "$K_REQ")" "$(route "$K_REQ")" >/dev/null
check "daily_requests reached: daily_limit_reached" daily_limit_reached \
    "$(code "$(route "$K_REQ")")"
FREE=google/gemma-2-9b-it:free
check "a free model on an empty account: served" ok "$(code "$(route "$K_FREE" $FREE)")"
d=$(call "$(route "$K_FREE" $FREE)")
check "a free model reserves nothing" 0 "$(get .reserved_pd "$d")"
check "free_daily_requests reached: daily_limit_reached" daily_limit_reached \
    "$(code "$(route "$K_FREE" $FREE)")"
topup poor 1 >/dev/null
check "a funded account gets free_daily_requests_funded" ok "$(code "$(route "$K_FREE" $FREE)")"
check "... and no more" daily_limit_reached "$(code "$(route "$K_FREE" $FREE)")"

# The ledger op's refusals.
check "ledger key: unknown key" unknown_key \
    "$(code "{\"op\":\"ledger\",\"action\":\"key\",\"key\":\"$K_UNKNOWN\"}")"
check "ledger topup: amount must be positive" bad_request \
    "$(code '{"op":"ledger","action":"topup","account":"a","amount_usd":-1}')"
check "ledger: an unknown action" bad_request "$(code '{"op":"ledger","action":"steal"}')"
r=$(call '{"op":"ledger","action":"set_balance","account":"acme","balance_usd":2}')
check "set_balance: the balance, exact" 2000000000000 "$(get .balance_pd "$r")"

# The key file reloads with the policy -------------------------------------------------
check "a key added to the file: unknown before SIGHUP" unknown_key "$(code "$(route "$K_LATE")")"
printf '%s group=default account=acme\n' "$K_LATE" >>"$tmp/keys"
kill -HUP "$pid"
await_line "$tmp/engine.err" 's/.*\(sighup: policy version 2 serving\).*/\1/p' "$pid" 250 >/dev/null
check "... known after it" ok "$(code "$(route "$K_LATE")")"
printf 'garbage\n' >>"$tmp/keys"
kill -HUP "$pid"
await_line "$tmp/engine.err" 's/.*\(sighup: policy version 3 serving\).*/\1/p' "$pid" 250 >/dev/null
check "a bad key file on reload: the last good table keeps serving" ok "$(code "$(route "$K_LATE")")"
has_line "... and the log says so" "the last good key table keeps serving" "$tmp/engine.err"
sed -i '$d' "$tmp/keys"

st=$(call '{"op":"stats"}')
check "stats: the ledger's counters" "sqlite-or-redis 3 1" \
    "$(get '"\(if .ledger.store == "'"$STORE_KIND"'" then "sqlite-or-redis" else .ledger.store end) \(.ledger.settled) \(.ledger.duplicates)"' "$st")"
check "stats: refusals counted by check" 1 "$(get .errors.key_limit_reached "$st")"
m=$(curl -s "$metrics")
has_text "metrics: settlements counted" 'hpp_engine_ledger_total{event="settled"} 3' "$m"
has_text "metrics: refusals by code" 'hpp_engine_errors_total{code="insufficient_balance"} 1' "$m"

kill -TERM "$pid"
wait "$pid"
check "engine stops cleanly" 0 "$?"
no_san_report "engine: no sanitizer report" "$tmp/engine.err"
pids=("${pids[@]/$pid/}")

# A decision never reported: released after --ledger-hold -------------------------------
start hold --ledger-hold 1
check "balances survive a restart" 2000000000000 "$(get .balance_pd "$(keyinfo "$K_NEW")")"
d=$(call "$(route "$K_NEW")")
[ "$(get .reserved_pd "$d")" -gt 0 ] && ok "a decision reserves under a short hold" ||
    fail "a decision reserves under a short hold" "$d"
for _ in $(seq 100); do
    [ "$(get .reserved_pd "$(keyinfo "$K_NEW")")" = 0 ] && break
    sleep 0.1
done
check "an unreported decision releases its reservation after the hold" 0 \
    "$(get .reserved_pd "$(keyinfo "$K_NEW")")"
check "... and is counted as expired" 1 "$(get .ledger.expired "$(call '{"op":"stats"}')")"
report "$(attempt "$d" 200 0.5)" >/dev/null
check "a report after the release charges nothing" 123000000 \
    "$(get .spent_pd "$(keyinfo "$K_NEW")")"
kill -TERM "$pid"
wait "$pid"
pids=("${pids[@]/$pid/}")

# step_down: the key's money runs low, the tier steps down, then free -----------------
cp policies/default.policy "$tmp/step.policy"
printf '\ngroup stepper models "*" step_down $1 budget, $0.0005 free\n' >>"$tmp/step.policy"
start step --policy "$tmp/step.policy"
call '{"op":"ledger","action":"set_balance","account":"stepper","balance_usd":5}' >/dev/null
d=$(call "$(route "$K_STEP")")
check "step_down: money enough, the rule's tier" "mid openai/gpt-4o-mini" "$(get '"\(.tier) \(.model)"' "$d")"
report "$(attempt "$d" 200 0.00045)" >/dev/null
call '{"op":"ledger","action":"set_balance","account":"stepper","balance_usd":0.5}' >/dev/null
d=$(call "$(route "$K_STEP")")
check "step_down: below \$1, stepped down to budget" budget "$(get .tier "$d")"
report "$(attempt "$d" 200 0.0001)" >/dev/null
call '{"op":"ledger","action":"set_balance","account":"stepper","balance_usd":0}' >/dev/null
d=$(call "$(route "$K_STEP")")
check "step_down: money spent, a free model instead of insufficient_balance" "ok free 0" \
    "$(get '"\(.error.code // "ok") \(.tier) \(.reserved_pd)"' "$d")"
check "step_down: the free model is counted in the free requests" 1 \
    "$(get .day_free_requests "$(keyinfo "$K_STEP")")"
kill -TERM "$pid"
wait "$pid"
pids=("${pids[@]/$pid/}")

# kill -9 under load ------------------------------------------------------------------
# A gateway routes and reports (with ack) as fast as it can while a second
# client floods routes; the engine is killed -9 mid-way. After a restart
# the key's spend must hold every acknowledged charge, and at most the one
# report in flight besides, and the account must equal top-up less spend.
start crash
topup crash 100 >/dev/null
"$PY" - "$ep" "$K_CRASH" "$tmp/acked" >"$tmp/load.out" 2>&1 <<'EOF' &
import sys, threading, time
import msgpack, zmq
ep, key, acked_path = sys.argv[1:4]
ctx = zmq.Context.instance()
def flood():
    s = ctx.socket(zmq.DEALER); s.setsockopt(zmq.LINGER, 0); s.connect(ep)
    n = 0
    while True:
        for _ in range(64):
            s.send_multipart([b"", msgpack.packb({"v": 1, "op": "route", "prompt_tokens": 10,
                                                  "key": key})])
        for _ in range(64):
            if not s.poll(2000):
                return
            s.recv_multipart()
threading.Thread(target=flood, daemon=True).start()
s = ctx.socket(zmq.DEALER); s.setsockopt(zmq.LINGER, 0); s.connect(ep)
acked = 0
i = 0
out = open(acked_path, "w")
while True:
    i += 1
    s.send_multipart([b"", msgpack.packb({"v": 1, "id": i, "op": "route", "prompt_tokens": 100,
                                          "key": key})])
    if not s.poll(2000):
        break
    d = msgpack.unpackb(s.recv_multipart()[-1], raw=False)
    if not d.get("ok"):
        continue
    cost = 1000000 + i  # picodollars, distinct per call
    s.send_multipart([b"", msgpack.packb({"v": 1, "id": i, "op": "report", "ack": True,
        "attempts": [{"decision": d["decision_id"], "model": d["model"],
                      "provider": d["provider"], "status": 200, "cost_usd": cost / 1e12}]})])
    out.write("sent %d\n" % cost); out.flush()
    if not s.poll(2000):
        break
    r = msgpack.unpackb(s.recv_multipart()[-1], raw=False)
    if r.get("ok"):
        acked += cost
        out.write("acked %d %d\n" % (cost, acked)); out.flush()
EOF
loader=$!
pids+=("$loader")
for _ in $(seq 3000); do # at most a minute, however loaded the machine
    n=$(grep -c '^acked' "$tmp/acked" 2>/dev/null)
    [ "${n:-0}" -ge 100 ] && break
    sleep 0.02
done
kill -9 "$pid"
wait "$pid" 2>/dev/null
wait "$loader" 2>/dev/null
pids=("${pids[@]/$pid/}")
acked=$(awk '/^acked/ { a = $3 } END { print a + 0 }' "$tmp/acked")
last=$(awk '/^sent/ { s = $2 } END { print s + 0 }' "$tmp/acked")
nacked=$(grep -c '^acked' "$tmp/acked")
[ "$nacked" -ge 100 ] && ok "load: 100 settlements acknowledged before the kill" ||
    fail "load: 100 settlements acknowledged before the kill" "only $nacked; $(tail -n 3 "$tmp/load.out")"
start restart
r=$(keyinfo "$K_CRASH")
spent=$(get .spent_pd "$r")
if [ "$spent" = "$acked" ] || [ "$spent" = "$((acked + last))" ]; then
    ok "kill -9: every acknowledged charge survives ($nacked charges, $acked pd)"
else
    fail "kill -9: every acknowledged charge survives" "spent $spent, acknowledged $acked, in flight $last"
fi
check "kill -9: the account is top-up less spend, exactly" "$((100000000000000 - spent))" \
    "$(get .balance_pd "$r")"
kill -TERM "$pid"
wait "$pid"
check "restarted engine stops cleanly" 0 "$?"
pids=("${pids[@]/$pid/}")

# kill -9 before any commit ----------------------------------------------------------
# The writer commits about once a second; what the engine published before
# it died is in its ring file, which the next start commits. Reservations
# and a report without `ack`, then kill -9 at once (well inside the second).
if [ "$STORE_KIND" = sqlite ]; then
    ring_files() { find "$tmp/ring" -name '*.ring' | wc -l; }
    # start_refused ERR ARGS...: a start that should fail (its status); in
    # the background and tracked, so that one that starts cannot hang the suite.
    start_refused() {
        local errf=$1 p
        shift
        "$ENGINE" --listen tcp://127.0.0.1:0 --keys "$tmp/keys" --ledger "$STORE" "$@" \
            2>"$errf" &
        p=$!
        pids+=("$p")
        wait "$p"
    }
    check "ring: a clean stop removes the ring file" 0 "$(ring_files)"
    start ring1
    topup ring 1 >/dev/null # synced: the writer is idle again after it
    d1=$(call "$(route "$K_RING")") d2=$(call "$(route "$K_RING")") d3=$(call "$(route "$K_RING")")
    # A report without `ack` has no reply: sent on a socket of its own, then
    # waited for in the key's spend.
    "$PY" - "$ep" "{\"v\":1,\"op\":\"report\",\"attempts\":[$(attempt "$d1" 200 0.000123)]}" <<'EOF'
import json, sys
import msgpack, zmq
s = zmq.Context.instance().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 2000)
s.connect(sys.argv[1])
s.send_multipart([b"", msgpack.packb(json.loads(sys.argv[2]))])
s.close()
EOF
    for _ in $(seq 200); do
        before=$(keyinfo "$K_RING")
        [ "$(get .spent_pd "$before")" = 123000000 ] && break
        sleep 0.01
    done
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    pids=("${pids[@]/$pid/}")
    check "ring: the file outlives kill -9" 1 "$(ring_files)"
    "$ENGINE" --check --keys "$tmp/keys" --ledger "$STORE" "${RING[@]}" >/dev/null 2>"$tmp/e"
    check "ring: --check reads it and passes" 0 "$?"
    has_line "ring: --check says what the start will commit" \
        "ledger: $tmp/ledger.db: its ring $tmp/ring/" "$tmp/e"
    has_line "ring: --check counts the changes" \
        "holds 5 changes the last run did not commit; the next start commits them" "$tmp/e"
    check "ring: --check leaves it for the start" 1 "$(ring_files)"
    start ring2
    after=$(keyinfo "$K_RING")
    check "kill -9 before a commit: the reservations are there" "$(get .reserved_pd "$before")" \
        "$(get .reserved_pd "$after")"
    check "kill -9 before a commit: the settle without ack is there" 123000000 \
        "$(get .spent_pd "$after")"
    check "kill -9 before a commit: the day's requests are there" "$(get .day_requests "$before")" \
        "$(get .day_requests "$after")"
    has_line "kill -9 before a commit: the start says what it took from the ring" \
        "ledger: $tmp/ledger.db: the last run stopped without closing it: 5 changes it made and had not committed were committed from its ring $tmp/ring/" \
        "$tmp/ring2.err"
    report "$(attempt "$d1" 200 0.000123)" >/dev/null
    check "kill -9 before a commit: the report delivered again settles nothing more" \
        "123000000 1" "$(get '"\(.spent_pd) \(.requests)"' "$(keyinfo "$K_RING")")"
    # A damaged ring is refused with where and why, and the state file is left as it was.
    d4=$(call "$(route "$K_RING")")
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    pids=("${pids[@]/$pid/}")
    ring=$(find "$tmp/ring" -name '*.ring')
    printf X | dd of="$ring" bs=1 seek=0 conv=notrunc status=none
    start_refused "$tmp/ring3.err" "${RING[@]}"
    check "a damaged ring: the engine does not start" 2 "$?"
    has_line "a damaged ring: says which file, where and what to do" \
        "hpp-engine: error: --ledger $tmp/ledger.db: its ring $ring: byte 0: not a ring file of this store (no \"HPPRING1\") (--ledger-ring-lost starts from the state file alone: the changes it holds past the state file are then lost)" \
        "$tmp/ring3.err"
    "$ENGINE" --check --keys "$tmp/keys" --ledger "$STORE" "${RING[@]}" >/dev/null 2>"$tmp/e"
    check "a damaged ring: --check fails too" 2 "$?"
    has_line "a damaged ring: --check names it" "its ring $ring: byte 0: not a ring file" "$tmp/e"
    # Started with another ring directory after a crash in this boot: the
    # ring it needs is not there, and it says so rather than lose it.
    mkdir -m 700 "$tmp/ring-other"
    start_refused "$tmp/ring6.err" --ledger-ring-dir "$tmp/ring-other"
    check "ring in another directory after a crash: the engine does not start" 2 "$?"
    has_line "ring in another directory after a crash: says where it looked and what to do" \
        "the last run stopped without closing it, and its ring is not at $tmp/ring-other/hpp-ledger-" \
        "$tmp/ring6.err"
    start ring4 --ledger-ring-lost
    has_line "--ledger-ring-lost: starts, says what is lost and keeps the damaged ring" \
        "started without the last run's ring (--ledger-ring-lost): $ring: byte 0: not a ring file of this store (no \"HPPRING1\"); its changes since its last commit are lost; the ring is kept as $ring.bad" \
        "$tmp/ring4.err"
    check "--ledger-ring-lost: the state file's own state (the last reservation lost)" \
        "$(get .reserved_pd "$after")" "$(get .reserved_pd "$(keyinfo "$K_RING")")"
    check "--ledger-ring-lost: the damaged ring kept" 1 "$(find "$tmp/ring" -name '*.ring.bad' | wc -l)"
    kill -TERM "$pid"
    wait "$pid"
    pids=("${pids[@]/$pid/}")
    check "ring: removed again by a clean stop" 0 "$(ring_files)"
    start_refused "$tmp/ring5.err" --ledger-ring-dir "$tmp/no-such-dir"
    check "a ring directory that does not exist: the engine does not start" 2 "$?"
    start_refused "$tmp/ring7.err" --ledger-ring-dir ""
    check "an empty ring directory: usage error" 2 "$?"
    has_line "an empty ring directory: says so" \
        "--ledger-ring-dir: a directory is missing" "$tmp/ring7.err"
    has_line "a ring directory that does not exist: says which and why" \
        "hpp-engine: error: --ledger $tmp/ledger.db: its ring: $tmp/no-such-dir/hpp-ledger-" \
        "$tmp/ring5.err"
    has_line "a ring directory that does not exist: the system's words" \
        ".ring.tmp: cannot create: No such file or directory" "$tmp/ring5.err"
    : "$d2" "$d3" "$d4"
else
    # The ring is the embedded store's: its flags with another are a usage
    # error, not a flag that does nothing (timeout: a start would not return).
    timeout 10 "$ENGINE" --listen tcp://127.0.0.1:0 --keys "$tmp/keys" --ledger "$STORE" \
        --ledger-ring-dir "$tmp" 2>"$tmp/ring-other.err"
    check "ring: --ledger-ring-dir with this store is a usage error" 2 "$?"
    has_line "ring: --ledger-ring-dir with this store says why" \
        "--ledger-ring-dir needs --ledger sqlite:PATH" "$tmp/ring-other.err"
fi
no_san_report "engines: no sanitizer report" "$tmp"/*.err

suite_end
