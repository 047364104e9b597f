#!/usr/bin/env bash
# OpenRouter's `provider` object and `models` array end to end: starts the
# real hpp-engine and hpp-sidecar (decision-only) on 127.0.0.1 ephemeral
# ports, posts chat bodies that carry them with curl, and checks the decision
# the sidecar reports (X-HPP-Router-Resolved-Model, X-HPP-Router-Provider and
# the /v1/route JSON) or the 400 that names a field the router cannot honour.
# Uses the bundled policy and catalog, and no X-HPP-* header.
# Ends with "N passed, N failed, N skipped". Stops what it started by PID.
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
source tests/integration/check_lib.bash
suite_setup

# start NAME REGEX CMD...: runs CMD, stderr to $tmp/NAME.err, waits for the
# readiness line and sets $ready to REGEX's group 1.
start() {
    local name=$1 re=$2
    shift 2
    "$@" 2>"$tmp/$name.err" >/dev/null &
    pids+=($!)
    ready=$(await_line "$tmp/$name.err" "s/$re/\\1/p" "$!" 250) && return 0
    fail "$name starts" "$(tail -n 5 "$tmp/$name.err")"
    return 1
}
# post PATH BODY: the status; headers in $tmp/h, body in $tmp/b.
post() {
    curl -s -m 10 -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' --data-binary "$2" \
        "http://127.0.0.1:$SC$1"
}
hdr() { grep -i "^$1:" "$tmp/h" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }
jget() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($1)" "$tmp/b" 2>&1; }

start engine '^hpp-engine: ready on \(tcp:.*\)$' "$BUILD/hpp-engine" --listen tcp://127.0.0.1:0 \
    --threads 1 || suite_end
EP=$ready
# --trust-client-features: one case states its budget in the body (hpp.budget_usd),
# which a sidecar refuses by default (sidecar/README.md, "Keys and trust").
start sidecar '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$BUILD/hpp-sidecar" \
    --listen 127.0.0.1:0 --engine "$EP" --trust-client-features || suite_end
SC=$ready
MSG='"messages":[{"role":"user","content":"Say hello in French."}]'

# provider.order / only / ignore pick the endpoint of a named model --------------
# openai/gpt-4o: openai and openrouter at $2.50/$10, azure dearer.
post /v1/chat/completions "{\"model\":\"openai/gpt-4o\",$MSG}" >/dev/null
check "no provider object: the cheapest endpoint" "openai" "$(hdr X-HPP-Router-Provider)"
s=$(post /v1/chat/completions "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"order\":[\"Azure\",\"openai\"]}}")
check "provider.order: 200" 200 "$s"
check "provider.order: the model" "openai/gpt-4o" "$(hdr X-HPP-Router-Resolved-Model)"
check "provider.order: its first provider serves" "azure" "$(hdr X-HPP-Router-Provider)"
post /v1/route "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"order\":[\"azure\",\"openai\"]}}" >/dev/null
check "provider.order: fallbacks follow it" "openai" "$(jget 'j["fallbacks"][0]["provider"]')"
post /v1/chat/completions "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"only\":[\"openrouter\"]}}" >/dev/null
check "provider.only" "openrouter" "$(hdr X-HPP-Router-Provider)"
post /v1/route "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"ignore\":[\"openai\",\"azure\"]}}" >/dev/null
check "provider.ignore" "openrouter" "$(jget 'j["provider"]')"
check "provider.ignore: no fallback of an ignored provider" "True" \
    "$(jget 'all(f["provider"] not in ("openai","azure") for f in j["fallbacks"])')"
post /v1/route "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"order\":[\"azure\"],\"allow_fallbacks\":false}}" >/dev/null
check "allow_fallbacks false: only the ordered provider" "azure []" \
    "$(jget 'j["provider"] + " " + str(j["fallbacks"])')"
s=$(post /v1/route "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"max_price\":{\"prompt\":1}}}")
check "max_price below every endpoint: 422 no_candidate" "422 no_candidate" "$s $(jget 'j["error"]["code"]')"

# models: fallbacks only from the list -------------------------------------------
post /v1/chat/completions "{$MSG}" >/dev/null
auto=$(hdr X-HPP-Router-Resolved-Model)
s=$(post /v1/chat/completions "{$MSG,\"models\":[\"anthropic/claude-sonnet-4\",\"openai/gpt-4o-mini\"]}")
check "models without model: 200" 200 "$s"
check "models without model: the first of the list, not auto's $auto" "anthropic/claude-sonnet-4" \
    "$(hdr X-HPP-Router-Resolved-Model)"
post /v1/route "{$MSG,\"models\":[\"anthropic/claude-sonnet-4\",\"openai/gpt-4o-mini\"]}" >/dev/null
check "models: every fallback is listed" "True" \
    "$(jget 'all(f["model"] in ("anthropic/claude-sonnet-4","openai/gpt-4o-mini") for f in j["fallbacks"]) and j["fallbacks"][-1]["model"] == "openai/gpt-4o-mini"')"
post /v1/route "{\"model\":\"hpprouter/auto\",$MSG,\"models\":[\"openai/gpt-4o\",\"openai/gpt-4o-mini\"]}" >/dev/null
check "auto with models: chooses among them" "True" \
    "$(jget 'all(m in ("openai/gpt-4o","openai/gpt-4o-mini") for m in [j["model"]] + [f["model"] for f in j["fallbacks"]])')"
s=$(post /v1/chat/completions "{\"model\":\"openai/o1\",$MSG,\"models\":[\"openai/gpt-4o-mini\"],\"hpp\":{\"budget_usd\":0.002}}")
check "model over budget: the next of models answers" "200 openai/gpt-4o-mini" \
    "$s $(hdr X-HPP-Router-Resolved-Model)"
s=$(post /v1/route "{$MSG,\"models\":[\"openai/gpt-4o-mini\",\"acme/nope\"]}")
check "models: an unknown entry is 404 naming it" "404 models[1]: unknown model 'acme/nope'" \
    "$s $(jget 'j["error"]["message"]')"

# What the router cannot honour is a 400 naming the field --------------------------
s=$(post /v1/chat/completions "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"sort\":\"latency\",\"preferred_max_latency\":2}}")
check "provider.sort latency and preferred_max_latency: honoured (measured from reports)" 200 "$s"
s=$(post /v1/chat/completions "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"sort\":\"fastest\"}}")
check "provider.sort fastest: 400" 400 "$s"
check "provider.sort fastest: param" "provider.sort" "$(jget 'j["error"]["param"]')"
s=$(post /v1/chat/completions "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"data_collection\":\"deny\"}}")
check "provider.data_collection: 400 naming it" "400 provider.data_collection" \
    "$s $(jget 'j["error"]["param"]')"
s=$(post /v1/chat/completions "{\"model\":\"openai/gpt-4o\",$MSG,\"provider\":{\"sort\":\"price\",\"require_parameters\":true}}")
check "provider.sort price and require_parameters: accepted" "200 openai" "$s $(hdr X-HPP-Router-Provider)"

for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=()
no_san_report "engine and sidecar: no sanitizer report" "$tmp/engine.err" "$tmp/sidecar.err"
suite_end
