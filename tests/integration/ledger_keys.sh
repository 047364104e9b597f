#!/usr/bin/env bash
# hpp-ledger and the sidecar's read endpoints, end to end, on 127.0.0.1
# ephemeral ports: `keys add` prints a key once and writes only its hash
# (mode 0600 for a new file, the old mode kept, parallel runs lose no line,
# a broken file is refused at FILE:LINE:COL), `keys list` shows hashes,
# `keys revoke` makes the sidecar answer 401 after SIGHUP; then, with an
# engine that keeps a ledger (--ledger sqlite:...), balance set / topup /
# usage over the engine's ledger op, and GET /api/quota-check, /api/usage
# and /api/v1/key of a key that spends its limit down until the engine
# refuses it. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
LEDGER=$BUILD/hpp-ledger
names=()

source tests/integration/check_lib.bash
suite_setup
has() { has_text "$@"; }
finish() {
    local i rc
    for i in "${!pids[@]}"; do
        kill -0 "${pids[$i]}" 2>/dev/null || continue
        kill -TERM "${pids[$i]}"
        wait "${pids[$i]}"
        rc=$?
        check "${names[$i]} exits 0 on SIGTERM" 0 "$rc"
        no_san_report "${names[$i]}: no sanitizer report" "$tmp/${names[$i]}.err"
    done
    pids=()
    suite_end
}
# start NAME REGEX CMD...: runs CMD in the background, stderr to
# $tmp/NAME.err, waits for its readiness line; $ready = REGEX's group 1.
start_engine() { # NAME ARGS... -> $ready = endpoint, $pid
    local name=$1
    shift
    start "$name" '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 \
        --threads 1 "$@"
}
start_sidecar() { # NAME ARGS... -> $ready = port, $pid
    local name=$1
    shift
    start "$name" '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" \
        --listen 127.0.0.1:0 "$@"
}
# req PORT PATH BODY [curl args...]: POST (GET when BODY is -), status on
# stdout; the body in $tmp/b.
req() {
    local p=$1 path=$2 body=$3
    shift 3
    local data=(--data-binary "$body")
    [ "$body" = - ] && data=()
    curl -s -m 10 -o "$tmp/b" -w '%{http_code}' "${data[@]}" "$@" "http://127.0.0.1:$p$path"
}
jget() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[2])); v=eval(sys.argv[1]); print(json.dumps(v) if isinstance(v,(dict,list)) else v)' \
        "$1" "${2:-$tmp/b}" 2>&1
}
MSG='"messages":[{"role":"user","content":"Write a C function that reverses a string."}]'

for bin in "$ENGINE" "$SIDECAR" "$LEDGER"; do
    [ -x "$bin" ] || {
        fail "binary $bin exists"
        finish
    }
done

# hpp-ledger keys: the file --------------------------------------------------------------
K=$tmp/keys
key_a=$("$LEDGER" keys add --file "$K" --group partner --limit-usd 5 --comment "build bot" 2>"$tmp/e")
check "keys add: exit 0" 0 "$?"
check "keys add: the key is printed, once, on stdout" 1 "$(grep -c '^sk-hpp-v1-[0-9a-f]\{64\}$' <<<"$key_a")"
hash_a=$(printf '%s' "$key_a" | "$SIDECAR" --hash-key)
has "keys add: stderr names the hash and the reload" "added $hash_a (group partner)" "$(cat "$tmp/e")"
has "keys add: ... SIGHUP" "SIGHUP" "$(cat "$tmp/e")"
check "keys add: the file holds the hash and the fields" \
    "$hash_a group=partner limit_usd=5   # build bot" "$(cat "$K")"
if grep -q -- "$key_a" "$K" "$tmp/e"; then fail "keys add: the key is nowhere but stdout"; else ok "keys add: the key is nowhere but stdout"; fi
check "keys add: a new file is mode 600" 600 "$(stat -c %a "$K")"
key_b=$("$LEDGER" keys add --file "$K" --group trial --account acme --daily-requests 100 \
    --free-daily-requests 5 --free-daily-requests-funded 50 2>/dev/null)
hash_b=$(printf '%s' "$key_b" | "$SIDECAR" --hash-key)
check "keys add: a second key, another line" 2 "$(grep -c . "$K")"
chmod 640 "$K"
"$LEDGER" keys add --file "$K" --group default >/dev/null 2>&1
check "keys add: the file's mode is kept" 640 "$(stat -c %a "$K")"
chmod 600 "$K"

# Parallel runs take turns on FILE.lock: none loses another's line.
before=$(grep -c . "$K")
for i in $(seq 1 12); do "$LEDGER" keys add --file "$K" --group "g$i" >/dev/null 2>&1 & done
wait
check "12 keys add at once: 12 more lines" $((before + 12)) "$(grep -c . "$K")"
"$LEDGER" keys list --file "$K" >/dev/null 2>"$tmp/e"
check "12 keys add at once: the file still parses" 0 "$?"

list=$("$LEDGER" keys list --file "$K")
has "keys list: the hash" "$hash_b" "$list"
has "keys list: group, account, limits" "trial            acme                   none       none      100 active" "$list"
if grep -q 'sk-hpp' <<<"$list"; then fail "keys list: never a key"; else ok "keys list: never a key"; fi
check "keys list --json: the account" acme \
    "$("$LEDGER" keys list --file "$K" --json | python3 -c 'import json,sys; print([k for k in json.load(sys.stdin) if k["group"]=="trial"][0]["account"])')"

# Errors and exit codes.
"$LEDGER" keys add --file "$K" --group 'a b' >/dev/null 2>"$tmp/e"
check "keys add, bad group: exit 2" 2 "$?"
"$LEDGER" keys add --file "$K" --group g --limit-usd 1e3 >/dev/null 2>"$tmp/e"
check "keys add, bad limit: exit 2" 2 "$?"
has "keys add, bad limit: says which" "--limit-usd" "$(cat "$tmp/e")"
"$LEDGER" keys add --group g >/dev/null 2>"$tmp/e"
check "keys add without --file: exit 2" 2 "$?"
"$LEDGER" keys add --file "$K" --group g --key "$hash_a" >/dev/null 2>"$tmp/e"
check "keys add --key (an option of another command): exit 2" 2 "$?"
"$LEDGER" frobnicate >/dev/null 2>&1
check "an unknown command: exit 2" 2 "$?"
printf '%s group=x colour=blue\n' "$hash_a" >"$tmp/bad.keys"
"$LEDGER" keys add --file "$tmp/bad.keys" --group g >"$tmp/o" 2>"$tmp/e"
check "keys add to a broken file: exit 1" 1 "$?"
has "keys add to a broken file: FILE:LINE:COL" "$tmp/bad.keys:1:$((${#hash_a} + 10)): unknown key 'colour'" "$(cat "$tmp/e")"
check "keys add to a broken file: no key printed, the file untouched" "0 1" \
    "$(wc -c <"$tmp/o") $(grep -c . "$tmp/bad.keys")"
"$LEDGER" keys revoke --file "$K" --hash "sha256:$(printf '0%.0s' {1..64})" 2>"$tmp/e"
check "keys revoke of a hash not in the file: exit 1" 1 "$?"
"$LEDGER" keys revoke --file "$K" --hash nothex 2>/dev/null
check "keys revoke --hash not a hash: exit 2" 2 "$?"
for c in "" "keys add" "keys revoke" "keys list" "balance set" topup usage; do
    # shellcheck disable=SC2086 # the command's words
    out=$("$LEDGER" $c --help)
    check "hpp-ledger $c --help: exit 0" 0 "$?"
    check "hpp-ledger $c --help fits 80 columns" "" "$(printf '%s\n' "$out" | awk 'length > 80')"
done

# Revoked: 401 at the sidecar after SIGHUP ------------------------------------------------
start_engine engine || finish
EP=$ready
start_sidecar sc_keys --engine "$EP" --keys "$K" || finish
SC=$ready
SCPID=$pid
s=$(req "$SC" /v1/route "{$MSG}" -H "Authorization: Bearer $key_a")
check "a key hpp-ledger made routes" 200 "$s"
[ "$s" = 200 ] || cat "$tmp/b"
printf '%s\n' "$key_a" | "$LEDGER" keys revoke --file "$K" --key-stdin 2>"$tmp/e"
check "keys revoke --key-stdin: exit 0" 0 "$?"
has "keys revoke: says to reload" "revoked $hash_a" "$(cat "$tmp/e")"
check "keys revoke: the line keeps its comment" "$hash_a group=partner limit_usd=5 revoked=1   # build bot" \
    "$(grep "^$hash_a" "$K")"
"$LEDGER" keys revoke --file "$K" --hash "$hash_a" 2>"$tmp/e"
check "keys revoke twice: exit 0" 0 "$?"
has "keys revoke twice: says so" "already revoked" "$(cat "$tmp/e")"
check "revoked, before the reload: still served" 200 \
    "$(req "$SC" /v1/route "{$MSG}" -H "Authorization: Bearer $key_a")"
n=$(grep -c . "$K")
kill -HUP "$SCPID"
await_line "$tmp/sc_keys.err" "/reloaded, $n keys/p" "$SCPID" >/dev/null
check "revoked, after SIGHUP: 401" 401 "$(req "$SC" /v1/route "{$MSG}" -H "Authorization: Bearer $key_a")"
check "revoked: error.code" invalid_api_key "$(jget 'j["error"]["code"]')"
has "revoked: says so" "revoked" "$(jget 'j["error"]["message"]')"
check "another key still routes" 200 \
    "$(req "$SC" /v1/route "{\"model\":\"google/gemma-2-9b-it\",$MSG}" -H "Authorization: Bearer $key_b")"
check "GET /api/usage without a key: 401" 401 "$(req "$SC" /api/usage -)"
check "GET /api/usage with the revoked key: 401" 401 \
    "$(req "$SC" /api/usage - -H "Authorization: Bearer $key_a")"
check "POST /api/usage: 405" 405 "$(req "$SC" /api/usage '{}' -H "Authorization: Bearer $key_b")"
start_sidecar sc_nokeys --engine "$EP" || finish
check "GET /api/usage of a sidecar without --keys: 404" 404 "$(req "$ready" /api/usage -)"
has "... says it needs --keys" "--keys" "$(jget 'j["error"]["message"]')"

# With the engine's ledger ------------------------------------------------------------------
if ! "$ENGINE" --help 2>&1 | grep -q -- '--ledger '; then
    skip "the ledger endpoints" "this hpp-engine has no --ledger"
    finish
fi
L=$tmp/ledger.keys
key_c=$("$LEDGER" keys add --file "$L" --group default --account acme --limit-usd 0.01 2>/dev/null)
hash_c=$(printf '%s' "$key_c" | "$SIDECAR" --hash-key)
start stub '^upstream_stub.py: ready on 127\.0\.0\.1:\([0-9]*\)$' python3 \
    tests/integration/upstream_stub.py --cost 0.004 || finish
SP=$ready
start_engine eng_ledger --keys "$L" --ledger "sqlite:$tmp/ledger.db" || finish
LEP=$ready
start_sidecar sc_ledger --engine "$LEP" --keys "$L" --upstream "http://127.0.0.1:$SP/v1" || finish
LSC=$ready
A=(-H "Authorization: Bearer $key_c")

# Money over the engine's ledger op.
out=$("$LEDGER" topup --engine "$LEP" --account acme --usd 2.5)
check "topup: exit 0, the new balance" "acme balance 2.5 USD" "$out"
out=$("$LEDGER" balance set --engine "$LEP" --account acme --usd 1)
check "balance set: the balance" "acme balance 1 USD" "$out"
"$LEDGER" topup --engine "$LEP" --account acme --usd 0 2>/dev/null
check "topup of 0: exit 2" 2 "$?"
"$LEDGER" topup --engine tcp://127.0.0.1:1 --timeout-ms 300 --account acme --usd 1 2>"$tmp/e"
check "topup, no engine there: exit 3" 3 "$?"
has "topup, no engine there: says so" "no answer in 300 ms" "$(cat "$tmp/e")"
"$LEDGER" usage --engine "$LEP" --key "sha256:$(printf '0%.0s' {1..64})" 2>"$tmp/e"
check "usage of a key the engine does not know: exit 1" 1 "$?"
has "... the engine's code" "unknown_key" "$(cat "$tmp/e")"
has "usage --key: the key's limit" "limit_usd            0.01" \
    "$("$LEDGER" usage --engine "$LEP" --key "$hash_c")"
has "usage --account: the account's balance" "acme" \
    "$("$LEDGER" usage --engine "$LEP" --account acme | grep -E '^acme +1 ')"

# The read endpoints before any spend.
check "quota-check: 200" 200 "$(req "$LSC" /api/quota-check - "${A[@]}")"
check "quota-check: remaining, balance, limit" "0.01 False 1 0.01" \
    "$(jget '" ".join(str(j[k]) for k in ("remaining_usd","exhausted","balance_usd","limit_usd"))')"

# Spend the key down: each answer costs 0.004 (the stub's usage.cost), the
# sidecar reports it, the engine settles it; the 4th request finds the
# limit of 0.01 spent (0.012) and is refused before anything is charged.
# requests_settled N: waits (bounded) until the engine counts N settled.
requests_settled() {
    local i
    for i in $(seq 1 200); do
        req "$LSC" /api/usage - "${A[@]}" >/dev/null
        [ "$(jget 'j["requests"]')" = "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
CHAT="{\"model\":\"openai/gpt-4o-mini\",$MSG}"
codes=""
for n in 1 2 3 4; do
    s=$(req "$LSC" /v1/chat/completions "$CHAT" "${A[@]}")
    codes+="$s "
    [ "$s" = 200 ] || break
    requests_settled "$n" || fail "request $n: settled" "$(cat "$tmp/b")"
    req "$LSC" /api/quota-check - "${A[@]}" >/dev/null
    codes+="$(jget 'j["remaining_usd"]') "
done
check "spend-down: 200s while the limit lasts, then refused" \
    "200 0.006 200 0.002 200 0 402 " "$codes"
check "spend-down: the refusal names the check" key_limit_reached "$(jget 'j["error"]["code"]')"
check "usage: 200" 200 "$(req "$LSC" /api/usage - "${A[@]}")"
check "usage: requests, tokens, cost" "3 54 0.012" \
    "$(jget '" ".join(str(j[k]) for k in ("requests","total_tokens","total_cost_usd"))')"
check "usage: remaining" 0 "$(jget 'j["remaining_usd"]')"
req "$LSC" /api/quota-check - "${A[@]}" >/dev/null
check "quota-check: exhausted" True "$(jget 'j["exhausted"]')"
check "/api/v1/key: 200" 200 "$(req "$LSC" /api/v1/key - "${A[@]}")"
check "/api/v1/key: usage, limit, limit_remaining" "0.012 0.01 0" \
    "$(jget '" ".join(str(j["data"][k]) for k in ("usage","limit","limit_remaining"))')"
check "/api/v1/key: the label is the hash's start" "${hash_c:0:19}..." "$(jget 'j["data"]["label"]')"
check "hpp-ledger usage --json: the exact spend in picodollars" 12000000000 \
    "$("$LEDGER" usage --engine "$LEP" --key "$hash_c" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["spent_pd"])')"
check "the account paid what the key spent" "0.988" \
    "$("$LEDGER" usage --engine "$LEP" --account acme | awk '$1 == "acme" { print $2 }')"
finish
