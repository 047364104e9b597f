#!/usr/bin/env bash
# hpp-sidecar --local-engine: decisions in the sidecar's own process. Starts
# the real hpp-engine, the upstream stand-in (tests/integration/upstream_stub.py)
# and two sidecars on the same files, one asking the engine and one deciding
# itself, all on 127.0.0.1 ephemeral ports, readiness lines as probes.
# Checks:
#   - flags: --policy/--catalog without --local-engine, and --local-engine
#     with an engine link, exit 2 naming the flag; a policy that does not
#     compile exits 1 with its file:line:col;
#   - the same requests (hints, sizes, vision, a named model, a budget too
#     small) get the same decision headers from both sidecars, in
#     decision-only mode and proxied;
#   - a provider that answers 429 is retried on a fallback and reported to
#     the sidecar's own engine: the next request goes elsewhere;
#   - /metrics shows the in-process engine up with its policy version; the
#     ledger's endpoints answer 503 (there is no ledger in process);
#   - SIGHUP: a policy that does not compile keeps the serving version (and
#     says where); a changed policy serves at once, in every worker.
# Stops what it started by PID. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
STUB=tests/integration/upstream_stub.py
CAT=policies/catalog.json
pids=()
names=()

source tests/integration/check_lib.bash
suite_setup

finish() {
    stop_started stub
    suite_end
}

# post PORT PATH BODY [HEADER...]: status; headers in $tmp/h, body in $tmp/b.
post() {
    local port=$1 path=$2 body=$3
    shift 3
    curl -s -m 10 -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' --data-binary "$body" \
        "$@" "http://127.0.0.1:$port$path"
}
# The decision headers of the last answer, one line.
decision() {
    grep -i '^X-HPP-Router-\(Resolved-Model\|Provider\|Tier\|Rule\|Estimated-Cost-USD\|Error\):' \
        "$tmp/h" | tr -d '\r' | sort | tr '\n' ' '
}
hdr() { grep -i "^$1:" "$tmp/h" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }

# 1. Flags --------------------------------------------------------------------------
"$SIDECAR" --policy policies/default.policy >/dev/null 2>"$tmp/f1"
check "--policy without --local-engine: exit 2" 2 "$?"
has_line "--policy without --local-engine: says so" "--policy is for --local-engine" "$tmp/f1"
"$SIDECAR" --local-engine --engine tcp://127.0.0.1:1 >/dev/null 2>"$tmp/f2"
check "--local-engine with --engine: exit 2" 2 "$?"
has_line "--local-engine with --engine: names it" "--engine names an hpp-engine link" "$tmp/f2"
"$SIDECAR" --local-engine --engine-link auto >/dev/null 2>"$tmp/f2"
check "--local-engine with --engine-link auto: exit 2" 2 "$?"
printf 'tier budget max $1\nroute x when {\n' >"$tmp/bad.policy"
"$SIDECAR" --local-engine --listen 127.0.0.1:0 --policy "$tmp/bad.policy" >/dev/null 2>"$tmp/f3"
check "a policy that does not compile: exit 1" 1 "$?"
has_line "... with its file and line" "$tmp/bad.policy:2:" "$tmp/f3"
has_text "--help lists --local-engine" "--local-engine" "$("$SIDECAR" --help)"

# 2. The same decisions as the engine's --------------------------------------------
cp policies/default.policy "$tmp/p.policy"
start stub '^upstream_stub.py: ready on 127\.0\.0\.1:\([0-9]*\)$' python3 "$STUB" || finish
SP=$ready
start engine '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 \
    --policy "$tmp/p.policy" --catalog "$CAT" || finish
EP=$ready
start remote '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" --listen 127.0.0.1:0 \
    --engine "$EP" --trust-client-features || finish
RP=$ready
start local '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" --listen 127.0.0.1:0 \
    --local-engine --policy "$tmp/p.policy" --catalog "$CAT" --workers 2 \
    --trust-client-features || finish
LP=$ready
KEY=sk-local-test-key
(umask 077 && echo "$(printf %s "$KEY" | "$SIDECAR" --hash-key) group=default" >"$tmp/keys")
start proxy '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" --listen 127.0.0.1:0 \
    --local-engine --policy "$tmp/p.policy" --catalog "$CAT" --workers 1 \
    --upstream "http://127.0.0.1:$SP/v1" --keys "$tmp/keys" || finish
PP=$ready
has_line "the log says where decisions are made" "engine in this process (local link)" \
    "$tmp/local.err"

bodies=(
    '{"model":"hpprouter/auto","messages":[{"role":"user","content":"hi"}]}'
    '{"model":"hpprouter/auto","messages":[{"role":"user","content":"def f(x):\n    return x  # fix this traceback"}]}'
    '{"model":"hpprouter/auto","messages":[{"role":"user","content":"prove the theorem step by step"}],"max_tokens":4000}'
    '{"model":"hpprouter/auto","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}'
    '{"model":"hpprouter/auto:floor","messages":[{"role":"user","content":"summarize this"}]}'
    '{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hello"}]}'
    '{"model":"hpprouter/auto","messages":[{"role":"user","content":"hello"}],"hpp":{"budget_usd":0.0000001}}'
    '{"model":"no/such-model","messages":[{"role":"user","content":"hello"}]}'
)
for i in "${!bodies[@]}"; do
    rs=$(post "$RP" /v1/route "${bodies[$i]}")
    want="$rs $(decision)"
    ls=$(post "$LP" /v1/route "${bodies[$i]}")
    check "request $i: the same status and decision headers" "$want" "$ls $(decision)"
done
check "the requests above include a refusal" 404 "$(post "$LP" /v1/route "${bodies[7]}")"

# 3. Proxied, and reports ---------------------------------------------------------
body='{"model":"hpprouter/auto","messages":[{"role":"user","content":"def g(): pass  # segfault"}]}'
s=$(post "$PP" /v1/chat/completions "$body" -H "Authorization: Bearer $KEY")
check "proxied: 200" 200 "$s"
first="$(hdr X-HPP-Router-Resolved-Model) $(hdr X-HPP-Router-Provider)"
upmodel=$(hdr X-HPP-Router-Provider-Model)
has_line "proxied: the upstream answered for the chosen model" "echo $upmodel" "$tmp/b"
curl -s -m 5 -o /dev/null --data-binary "{\"fail\":{\"$upmodel\":429}}" \
    "http://127.0.0.1:$SP/_control"
s=$(post "$PP" /v1/chat/completions "$body" -H "Authorization: Bearer $KEY")
check "a 429 is retried on a fallback: 200" 200 "$s"
check "... and answered by another endpoint" 1 \
    "$([ "$(hdr X-HPP-Router-Resolved-Model) $(hdr X-HPP-Router-Provider)" != "$first" ] && echo 1)"
# Three failures start a cooldown (the engine's default): two more, then
# the decision itself, without any upstream call, goes elsewhere.
post "$PP" /v1/chat/completions "$body" -H "Authorization: Bearer $KEY" >/dev/null
post "$PP" /v1/chat/completions "$body" -H "Authorization: Bearer $KEY" >/dev/null
post "$PP" /v1/route "$body" -H "Authorization: Bearer $KEY" >/dev/null
check "after three reported 429s the decision itself moves" 1 \
    "$([ "$(hdr X-HPP-Router-Resolved-Model) $(hdr X-HPP-Router-Provider)" != "$first" ] && echo 1)"

# 4. /metrics and the ledger's endpoints ---------------------------------------------
curl -s -m 5 "http://127.0.0.1:$LP/metrics" >"$tmp/m"
has_line "/metrics: the in-process engine is up" 'hpp_sidecar_engine_up{engine="local"} 1' "$tmp/m"
check "/metrics: its policy version" 1 \
    "$(grep -cE '^hpp_sidecar_engine_policy_info\{engine="local",hash="[0-9a-f]{64}",version="1"\} 1$' "$tmp/m")"
s=$(curl -s -m 5 -o "$tmp/b" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    "http://127.0.0.1:$PP/api/v1/key")
check "/api/v1/key: 503, no ledger in process" 503 "$s"
has_line "... and says why" "no ledger" "$tmp/b"

# --engine local is --local-engine (the packaged unit always gives --engine).
start unit '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" --listen 127.0.0.1:0 \
    --engine local --policy "$tmp/p.policy" --catalog "$CAT" --workers 1 \
    --trust-client-features || finish
UP=$ready
rs=$(post "$RP" /v1/route "${bodies[1]}")
want="$rs $(decision)"
check "--engine local: the same decision" "$want" "$(post "$UP" /v1/route "${bodies[1]}") $(decision)"
"$SIDECAR" --engine local --engine tcp://127.0.0.1:1 >/dev/null 2>"$tmp/f4"
check "--engine local with another engine: exit 2" 2 "$?"

# 5. SIGHUP --------------------------------------------------------------------------
lpid=${pids[3]}
printf '\nroute broken when {\n' >>"$tmp/p.policy"
kill -HUP "$lpid"
await_line "$tmp/local.err" '/reload rejected/p' "$lpid" 100 >/dev/null
has_line "SIGHUP, bad policy: rejected, version 1 keeps serving" \
    "reload rejected (1 errors), version 1 keeps serving" "$tmp/local.err"
has_line "... with its file and line" "p.policy:" "$tmp/local.err"
s=$(post "$LP" /v1/route "${bodies[0]}")
check "... and it still answers" 200 "$s"
# Every request to one model: the decision must follow the new policy in each worker.
# (The default policy with a first rule that takes everything: a policy
# without its groups or hints would be refused by the gate, as above.)
awk '/^route / && !done { print "route everything {\n    tier standard\n    prefer \"openai/gpt-4o\"\n}"; done = 1 } { print }' \
    policies/default.policy >"$tmp/p.policy"
kill -HUP "$lpid"
await_line "$tmp/local.err" '/policy version 2 serving/p' "$lpid" 100 >/dev/null
has_line "SIGHUP, changed policy: version 2 serves" "SIGHUP: policy version 2 serving" "$tmp/local.err"
moved=0
for _ in 1 2 3 4 5 6; do # new connections, spread over both workers
    post "$LP" /v1/route "${bodies[0]}" >/dev/null
    [ "$(hdr X-HPP-Router-Resolved-Model) $(hdr X-HPP-Router-Rule)" = "openai/gpt-4o everything" ] &&
        moved=$((moved + 1))
done
check "every answer after it follows the new policy" 6 "$moved"

finish
