#!/usr/bin/env bash
# Faithful forwarding in proxy mode: the endpoint the engine chose, its own
# model id, its credential and its price reach the provider, and what the
# client, the metrics and the access log are told is the endpoint that
# answered. Starts the real hpp-engine (bundled policy and catalog), four
# upstream stand-ins (tests/integration/upstream_stub.py, one per provider:
# openai, azure, openrouter, groq) and hpp-sidecar with an --upstreams file,
# all on 127.0.0.1 ephemeral ports, readiness lines as probes. Checks:
#   - `:free` is forwarded as the provider's `...:free` id, also after a 402;
#   - `:floor` and every choice reach the chosen provider's upstream with the
#     provider's own model id and that upstream's credential;
#   - after a 429, the headers, the metrics and the access log describe the
#     endpoint that answered, and the log lists every attempt;
#   - an explicit model is retried at its other endpoints;
#   - a pooled connection the upstream closed is retried on a new one;
#   - only providers with an upstream are chosen; the body's `provider`
#     object is not forwarded; SIGHUP reloads the file (a bad one keeps the
#     last good table) and reopens the access log;
#   - a per-call model does not win a cheap chat; long-prompt, cache-write
#     and reasoning prices are in the estimate.
# Stops what it started by PID. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
STUB=tests/integration/upstream_stub.py
MSG='"messages":[{"role":"user","content":"hello there"}]'
names=()

source tests/integration/check_lib.bash
suite_setup

finish() {
    stop_started 'stub-*'
    suite_end
}

# req METHOD PORT PATH [BODY [curl args...]]: status; headers in $tmp/h, body in $tmp/b.
req() {
    local m=$1 p=$2 path=$3 body=${4-}
    shift 3
    [ $# -gt 0 ] && shift
    local data=()
    [ -n "$body" ] && data=(--data-binary "$body")
    curl -s -m 10 -X "$m" -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "${data[@]}" "$@" \
        "http://127.0.0.1:$p$path"
}
hdr() { grep -i "^$1:" "$tmp/h" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }
# jget EXPR [FILE]: a Python expression on the JSON `j` of FILE ($tmp/b).
jget() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[2])); v=eval(sys.argv[1]); print(json.dumps(v) if isinstance(v,(dict,list)) else v)' \
        "$1" "${2:-$tmp/b}" 2>&1
}
# The stubs, one per provider: port, control, what each received.
declare -A SP
stub_ctl() { curl -s -m 5 -o /dev/null -X POST --data-binary "$2" "http://127.0.0.1:${SP[$1]}/_control"; }
reset_all() { local p; for p in "${!SP[@]}"; do stub_ctl "$p" '{"reset":true}'; done; }
seen() { curl -s -m 5 "http://127.0.0.1:${SP[$1]}/_requests" >"$tmp/seen-$1"; }
# models PROVIDER: the model ids the provider's stub received, in order.
models() { seen "$1"; jget '" ".join(r["body"]["model"] for r in j)' "$tmp/seen-$1"; }
calls() { seen "$1"; jget 'len(j)' "$tmp/seen-$1"; }

for p in openai azure openrouter groq; do
    start "stub-$p" '^upstream_stub.py: ready on 127\.0\.0\.1:\([0-9]*\)$' python3 "$STUB" ||
        finish
    SP[$p]=$ready
done
start_stub_b() {
    start stub-groq2 '^upstream_stub.py: ready on 127\.0\.0\.1:\([0-9]*\)$' python3 "$STUB" || finish
    SP[groq2]=$ready
}
start engine '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 ||
    finish
EP=$ready

# Credentials: one from the environment, one from the file (mode 0600).
ups=$tmp/upstreams
write_upstreams() { # GROQ_PORT
    cat >"$ups.new" <<EOF
# provider  base URL                                  options
openai      http://127.0.0.1:${SP[openai]}/v1         key_env=HPP_TEST_OPENAI_KEY
azure       http://127.0.0.1:${SP[azure]}/openai/v1   key=az-secret-1 key_header=api-key
openrouter  http://127.0.0.1:${SP[openrouter]}/api/v1 key_env=HPP_TEST_OR_KEY
groq        http://127.0.0.1:$1/openai/v1
EOF
    chmod 600 "$ups.new"
    mv "$ups.new" "$ups"
}
write_upstreams "${SP[groq]}"
export HPP_TEST_OPENAI_KEY=sk-openai-test HPP_TEST_OR_KEY=sk-or-test
# One worker: section 5 checks the reuse of a pooled upstream connection,
# and each worker has its own pool (a second curl may reach another worker).
start sidecar '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" --listen 127.0.0.1:0 \
    --workers 1 --engine "$EP" --upstreams "$ups" --access-log "$tmp/access.log" || finish
P=$ready
SC_PID=$pid

# 1. `:free` keeps its suffix upstream --------------------------------------------------
reset_all
s=$(req POST "$P" /v1/chat/completions "{\"model\":\"google/gemma-2-9b-it:free\",$MSG}")
check ":free: 200" 200 "$s"
check ":free: OpenRouter got the free id" "google/gemma-2-9b-it:free" "$(models openrouter)"
check ":free: provider header" openrouter "$(hdr X-HPP-Router-Provider)"
check ":free: provider-model header" "google/gemma-2-9b-it:free" "$(hdr X-HPP-Router-Provider-Model)"
check ":free: estimate" 0 "$(hdr X-HPP-Router-Estimated-Cost-USD)"
# Its report names the free endpoint (ID:free), not the paid one at the
# same provider: explain of the :free id shows one attempt, the plain id none.
freehealth=$(/usr/bin/python3 - "$EP" <<'PY'
import sys, time, msgpack, zmq
s = zmq.Context().socket(zmq.DEALER)
s.connect(sys.argv[1])
def attempts(model):
    s.send(msgpack.packb({"v": 1, "id": 1, "op": "explain", "model": model, "prompt_tokens": 10}))
    if not s.poll(2000):
        return "none"
    c = [c for c in msgpack.unpackb(s.recv())["trace"]["candidates"] if c["provider"] == "openrouter"]
    return c[0].get("health", {}).get("attempts", 0) if c else "none"
end = time.monotonic() + 5
while time.monotonic() < end and attempts("google/gemma-2-9b-it:free") == 0:
    time.sleep(0.05)
print(attempts("google/gemma-2-9b-it:free"), attempts("google/gemma-2-9b-it"))
s.close(0)
PY
)
check ":free: reported against the free endpoint only" "1 0" "$freehealth"

# A plain id is the paid model, at the paid endpoint's own id.
reset_all
s=$(req POST "$P" /v1/chat/completions "{\"model\":\"google/gemma-2-9b-it\",$MSG}")
check "plain id: 200" 200 "$s"
check "plain id: the paid endpoint's id" "google/gemma-2-9b-it" "$(models openrouter)"

# The free fallback after a 402 goes out as `...:free` too.
s=$(req POST "$P" /v1/route "{$MSG}")
first_p=$(jget 'j["provider"]')
first_pm=$(jget 'j["provider_model"]')
reset_all
stub_ctl "$first_p" "{\"fail\":{\"$first_pm\":402}}"
s=$(req POST "$P" /v1/chat/completions "{$MSG}")
check "402: answered by the free fallback" 200 "$s"
check "402: the first call went to the decision" "$first_pm" "$(models "$first_p" | cut -d' ' -f1)"
check "402: the free call kept its :free id" "google/gemma-2-9b-it:free" \
    "$(models openrouter | awk '{print $NF}')"
check "402: headers name the free endpoint" "openrouter google/gemma-2-9b-it:free 0" \
    "$(hdr X-HPP-Router-Provider) $(hdr X-HPP-Router-Provider-Model) $(hdr X-HPP-Router-Estimated-Cost-USD)"

# 2. `:floor` reaches the chosen provider with its id and credential ----------------------
# The proxy's /v1/route answers what its chat route calls: the cheapest
# endpoint for this request among the providers that have an upstream.
FLOOR="{\"model\":\"meta-llama/llama-3.1-8b-instruct:floor\",$MSG}"
s=$(req POST "$P" /v1/route "$FLOOR")
fl_p=$(jget 'j["provider"]')
fl_pm=$(jget 'j["provider_model"]')
case "$fl_p" in openai | azure | openrouter | groq) ok ":floor: a reachable provider ($fl_p)" ;;
*) fail ":floor: a reachable provider" "$fl_p" ;; esac
reset_all
s=$(req POST "$P" /v1/chat/completions "$FLOOR")
check ":floor: 200" 200 "$s"
check ":floor: the floor's provider answered" "$fl_p $fl_pm" \
    "$(hdr X-HPP-Router-Provider) $(hdr X-HPP-Router-Provider-Model)"
check ":floor: its upstream got the provider's id" "$fl_pm" "$(models "$fl_p")"
check ":floor: one upstream call in all" 1 \
    "$(($(calls openai) + $(calls azure) + $(calls openrouter) + $(calls groq)))"

# A provider whose own id differs from the catalog's: groq's.
GROQ="{\"model\":\"meta-llama/llama-3.1-8b-instruct\",$MSG,\"provider\":{\"order\":[\"groq\"]}}"
reset_all
s=$(req POST "$P" /v1/chat/completions "$GROQ" -H 'Authorization: Bearer client-key-1')
check "groq: 200" 200 "$s"
check "groq: got its own id, not the catalog's" "llama-3.1-8b-instant" "$(models groq)"
check "groq: its path under its base URL" "/openai/v1/chat/completions" \
    "$(jget 'j[0]["path"]' "$tmp/seen-groq")"
# groq has no credential: the client's Authorization goes through.
check "groq: client Authorization passed to a keyless upstream" "Bearer client-key-1" \
    "$(jget 'j[0]["headers"].get("authorization")' "$tmp/seen-groq")"
reset_all
s=$(req POST "$P" /v1/chat/completions "{\"model\":\"meta-llama/llama-3.1-8b-instruct\",$MSG,\"provider\":{\"order\":[\"openrouter\"]}}" \
    -H 'Authorization: Bearer client-key-3')
check "openrouter: its key from the environment" "Bearer sk-or-test" \
    "$(seen openrouter; jget 'j[0]["headers"].get("authorization")' "$tmp/seen-openrouter")"

reset_all
s=$(req POST "$P" /v1/chat/completions "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"order\":[\"azure\"]}}" \
    -H 'Authorization: Bearer client-key-2')
check "provider order: 200" 200 "$s"
check "provider order: azure got its deployment id" "gpt-4o-2024-11-20" "$(models azure)"
check "provider order: azure's key in its header" "az-secret-1" \
    "$(jget 'j[0]["headers"].get("api-key")' "$tmp/seen-azure")"
check "provider order: the client's key is not passed on" "None" \
    "$(jget 'j[0]["headers"].get("authorization")' "$tmp/seen-azure")"
check "provider order: the provider object is not forwarded" "False" \
    "$(jget '"provider" in j[0]["body"]' "$tmp/seen-azure")"
if grep -q 'az-secret-1\|sk-openai-test\|sk-or-test' "$tmp/sidecar.err"; then
    fail "no credential in the sidecar's log" "$(grep -m1 'az-secret-1\|sk-openai-test\|sk-or-test' "$tmp/sidecar.err")"
else
    ok "no credential in the sidecar's log"
fi

# 3 and 4. An explicit model's 429 is retried at its other endpoints, and the
# answer describes the endpoint that answered. ------------------------------------------
s=$(req POST "$P" /v1/route "{\"model\":\"openai/gpt-4o\",$MSG}")
d_p=$(jget 'j["provider"]')
d_pm=$(jget 'j["provider_model"]')
f_p=$(jget 'j["fallbacks"][0]["provider"]')
f_pm=$(jget 'j["fallbacks"][0]["provider_model"]')
f_tier=$(jget 'j["fallbacks"][0]["tier"]')
f_cost=$(jget 'j["fallbacks"][0]["estimated_cost_usd"]')
check "gpt-4o: the first fallback is gpt-4o elsewhere" "openai/gpt-4o" "$(jget 'j["fallbacks"][0]["model"]')"
if [ "$f_p" != "$d_p" ]; then ok "gpt-4o: at another provider"; else fail "gpt-4o: at another provider" "$f_p"; fi
reset_all
stub_ctl "$d_p" "{\"fail\":{\"$d_pm\":429}}"
curl -s -m 5 "http://127.0.0.1:$P/metrics" >"$tmp/m0"
s=$(req POST "$P" /v1/chat/completions "{\"model\":\"openai/gpt-4o\",$MSG}")
check "429: answered by gpt-4o's next endpoint" 200 "$s"
check "429: the first provider was called once" "$d_pm" "$(models "$d_p")"
check "429: the next endpoint got its own id" "$f_pm" "$(models "$f_p")"
check "429: the answer is the next endpoint's" "echo $f_pm" "$(jget 'j["choices"][0]["message"]["content"]')"
check "429: headers: model, provider, provider model" "openai/gpt-4o $f_p $f_pm" \
    "$(hdr X-HPP-Router-Resolved-Model) $(hdr X-HPP-Router-Provider) $(hdr X-HPP-Router-Provider-Model)"
check "429: headers: the answering endpoint's tier" "$f_tier" "$(hdr X-HPP-Router-Tier)"
check "429: headers: the answering endpoint's estimate" "$f_cost" "$(hdr X-HPP-Router-Estimated-Cost-USD)"
check "429: headers: two attempts" 2 "$(hdr X-HPP-Router-Attempts)"
line=$(tail -n 1 "$tmp/access.log")
check "access log: the answering endpoint" "200 openai/gpt-4o $f_p $f_pm" \
    "$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["status"], j["model"], j["provider"], j["provider_model"])' "$line" 2>&1)"
check "access log: every attempt with its status" "$d_p:429 $f_p:200" \
    "$(python3 -c 'import json,sys; print(" ".join("%s:%d" % (a["provider"], a["status"]) for a in json.loads(sys.argv[1])["attempts"]))' "$line" 2>&1)"
check "access log: no prompt text" "" "$(grep -o 'hello there' "$tmp/access.log")"
check "access log: whole JSON lines" "True" \
    "$(python3 -c 'import json,sys; print(all(isinstance(json.loads(l), dict) for l in open(sys.argv[1])))' "$tmp/access.log" 2>&1)"
curl -s -m 5 "http://127.0.0.1:$P/metrics" >"$tmp/m1"
series="hpp_sidecar_decisions_total{model=\"openai/gpt-4o\",tier=\"$f_tier\"}"
before=$(awk -v s="$series" '$1 == s {v = $2} END {print v + 0}' "$tmp/m0")
after=$(awk -v s="$series" '$1 == s {v = $2} END {print v + 0}' "$tmp/m1")
check "429: the metrics count the answering endpoint once" 1 "$((after - before))"

# The sidecar reported both attempts to the engine (the report op, fire and
# forget): the engine's explain shows the 429 in the first endpoint's health
# and the answer in the next one's (polled: reports are not answered).
health=$(/usr/bin/python3 - "$EP" "$d_p" "$f_p" <<'PY'
import sys, time, msgpack, zmq
ep, first, nxt = sys.argv[1:4]
s = zmq.Context().socket(zmq.DEALER)
s.connect(ep)
end = time.monotonic() + 5
got = "none"
while time.monotonic() < end:
    s.send(msgpack.packb({"v": 1, "id": 1, "op": "explain", "model": "openai/gpt-4o",
                          "prompt_tokens": 10}))
    if not s.poll(2000):
        break
    cands = {c["provider"]: c.get("health") for c in msgpack.unpackb(s.recv())["trace"]["candidates"]}
    h1, h2 = cands.get(first), cands.get(nxt)
    if h1 and h2:
        got = "%s:%d:%.1f %s:%d:%.1f" % (first, h1["attempts"], h1["error_rate"],
                                          nxt, h2["attempts"], h2["error_rate"])
        break
    time.sleep(0.05)
print(got)
s.close(0)
PY
)
check "429: both attempts reported to the engine" "$d_p:1:1.0 $f_p:1:0.0" "$health"

# 5. A pooled connection the upstream closed is retried on a new one --------------------
reset_all
s=$(req POST "$P" /v1/chat/completions "$GROQ")
check "keep-alive: first answer" 200 "$s"
stub_ctl groq '{"drop_reused":true}'
s=$(req POST "$P" /v1/chat/completions "$GROQ")
check "keep-alive: the dropped connection is replaced, not a 502" 200 "$s"
check "keep-alive: the upstream dropped one request" 1 \
    "$(curl -s -m 5 "http://127.0.0.1:${SP[groq]}/_dropped" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dropped"])')"
check "keep-alive: groq answered on the new connection" "llama-3.1-8b-instant llama-3.1-8b-instant" \
    "$(models groq)"
stub_ctl groq '{"drop_reused":false}'

# 6. Only providers with an upstream are chosen ---------------------------------------------
reset_all
for task in code chat math solidity; do
    s=$(req POST "$P" /v1/route "{$MSG,\"hpp\":{\"task\":\"$task\"}}")
    p=$(jget 'j.get("provider", j.get("error", {}).get("code"))')
    case "$p" in
    openai | azure | openrouter | groq) ok "auto ($task): a reachable provider ($p)" ;;
    *) fail "auto ($task): a reachable provider" "$p" ;;
    esac
done
s=$(req POST "$P" /v1/chat/completions "{\"model\":\"ollama/gpt-oss:120b\",$MSG}")
if [ "$s" -ge 400 ] && [ "$s" -lt 500 ]; then
    ok "a model served only by an unreachable provider is refused ($s)"
else
    fail "a model served only by an unreachable provider is refused" "$s"
fi
s=$(req POST "$P" /v1/chat/completions "{$MSG,\"provider\":{\"only\":[\"ollama\"]}}")
check "provider.only with no upstream: 400" 400 "$s"
check "provider.only with no upstream: code" no_reachable_provider "$(jget 'j["error"]["code"]')"
check "nothing reached an upstream" "0 0 0 0" \
    "$(calls openai) $(calls azure) $(calls openrouter) $(calls groq)"

# 7. SIGHUP: the upstream file again, the access log reopened -------------------------------
start_stub_b
write_upstreams "${SP[groq2]}"
mv "$tmp/access.log" "$tmp/access.log.1"
kill -HUP "$SC_PID"
if await_line "$tmp/sidecar.err" '/SIGHUP: .*upstreams.* reloaded/p' "$SC_PID" >/dev/null; then
    ok "SIGHUP: the upstream file is reloaded"
else
    fail "SIGHUP: the upstream file is reloaded" "$(tail -n 3 "$tmp/sidecar.err")"
fi
await_line "$tmp/sidecar.err" '/SIGHUP: .*access.log reopened/p' "$SC_PID" >/dev/null
reset_all
s=$(req POST "$P" /v1/chat/completions "$GROQ")
check "SIGHUP: groq's new upstream answers" "200 llama-3.1-8b-instant" "$s $(models groq2)"
check "SIGHUP: the old one is no longer called" 0 "$(calls groq)"
check "SIGHUP: the access log is written at its path again" 1 "$(wc -l <"$tmp/access.log" | tr -d ' ')"
printf 'groq http://127.0.0.1:1/v1 colour=blue\n' >"$ups"
kill -HUP "$SC_PID"
if err=$(await_line "$tmp/sidecar.err" '/keeping the 4 upstreams/p' "$SC_PID"); then
    has_text "SIGHUP, bad file: the error names the line" "upstreams:1:" "$err"
else
    fail "SIGHUP, bad file: logged" "$(tail -n 3 "$tmp/sidecar.err")"
fi
reset_all
s=$(req POST "$P" /v1/chat/completions "$GROQ")
check "SIGHUP, bad file: the last good table serves" "200 llama-3.1-8b-instant" "$s $(models groq2)"

# 8-10. Prices a request's size changes, through a second engine and a
# decision-only sidecar: a per-call model does not win a cheap chat, a long
# prompt is billed at the long-prompt prices, cache writes and reasoning
# tokens are in the estimate.
cat >"$tmp/percall.json" <<'EOF'
{"object":"list","providers":["acme"],"data":[
 {"id":"acme/percall","provider":"acme","pricing":{"per_request":0.02},"context_length":100000}]}
EOF
cat >"$tmp/longctx.json" <<'EOF'
{"data":[{"id":"acme/longctx","context_length":1000000,
 "pricing":{"prompt":"0.000001","completion":"0.000002","input_cache_write":"0.00000125",
  "overrides":[{"min_prompt_tokens":200000,"prompt":"0.000004","completion":"0.000008"}]}}]}
EOF
start engine2 '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 \
    --catalog policies/catalog.json --catalog "$tmp/percall.json" --catalog "openrouter:$tmp/longctx.json" ||
    finish
start sidecar2 '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" --listen 127.0.0.1:0 \
    --engine "$ready" --trust-client-features || finish
P2=$ready
s=$(req POST "$P2" /v1/route "{$MSG,\"max_tokens\":100}")
check "per-call: a cheap chat is not given the \$0.02-a-call model" "True" \
    "$(jget 'j["model"] != "acme/percall" and j["estimated_cost_usd"] < 0.001')"
s=$(req POST "$P2" /v1/route "{\"model\":\"acme/percall\",$MSG}")
check "per-call: its estimate is the fee" "0.02" "$(jget 'j["estimated_cost_usd"]')"
cost() { # HPP_JSON: the estimate for acme/longctx with these hpp keys
    req POST "$P2" /v1/route "{\"model\":\"acme/longctx\",$MSG,\"hpp\":$1}" >/dev/null
    jget 'j.get("estimated_cost_usd", j)'
}
check "long prompt: below the threshold, the usual prices" "0.102" \
    "$(cost '{"prompt_tokens":100000,"output_tokens":1000}')"
check "long prompt: above it, the long-prompt prices" "1.008" \
    "$(cost '{"prompt_tokens":250000,"output_tokens":1000}')"
check "reasoning tokens are billed as output" "0.104" \
    "$(cost '{"prompt_tokens":100000,"output_tokens":1000,"reasoning_tokens":1000}')"
check "cache writes at the cache-write price" "0.1145" \
    "$(cost '{"prompt_tokens":100000,"output_tokens":1000,"cache_write_tokens":50000}')"

# Bad files at startup: exit 1 with the line.
printf 'acme http://127.0.0.1:1/v1 key=sk-abc\n' >"$tmp/loose"
chmod 644 "$tmp/loose"
"$SIDECAR" --listen 127.0.0.1:0 --engine "$EP" --upstreams "$tmp/loose" 2>"$tmp/loose.err"
check "a key in a file others can read: exit 1" 1 "$?"
has_text "a key in a file others can read: says so" "readable by group or others" "$(cat "$tmp/loose.err")"
check "a key in a file others can read: the key is not quoted" "" "$(grep -o 'sk-abc' "$tmp/loose.err")"
"$SIDECAR" --listen 127.0.0.1:0 --engine "$EP" --upstreams "$ups" --upstream http://127.0.0.1:1/v1 \
    2>"$tmp/both.err"
check "--upstream with --upstreams: exit 2" 2 "$?"

finish
