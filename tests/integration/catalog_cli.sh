#!/usr/bin/env bash
# hpp-policy catalog and cost, run as a user would: the issue's cost examples,
# endpoint choice (:floor, :free, --provider, provider spellings), text and
# JSON output, every catalog format, and bad input (exit 2, located errors).
# Ends with "N passed, N failed, N skipped".
set -u
# shellcheck source=tests/integration/cli_lib.bash
source "$(dirname "$0")/cli_lib.bash"

# The issue's examples --------------------------------------------------------
run "cost claude-3.5-sonnet 1000+500" 0 cost --model anthropic/claude-3.5-sonnet --in 1000 --out 500
has "text total is \$0.0105" "total     \$0.0105" "$tmp/out"
has "text names the floor endpoint" "endpoint  anthropic claude-3-5-sonnet-20241022 (floor" "$tmp/out"

cat >"$tmp/prices.json" <<'EOF'
{"object": "list", "data": [
  {"id": "t/a", "object": "model", "owned_by": "t", "pricing": {"input": 0.20, "output": 0.60}},
  {"id": "t/b", "object": "model", "owned_by": "t", "pricing": {"input": "10", "output": "30"}},
  {"id": "t/c", "object": "model", "owned_by": "t", "pricing": {"input": 0.3, "output": 0.6}}]}
EOF
for c in "t/a 1000000 1500000 1.1" "t/b 25000 100000 3.25" "t/c 4000 8000 0.006"; do
    # shellcheck disable=SC2086 # split into model, in, out, cost
    set -- $c
    run "cost $1 $2+$3" 0 cost --catalog "$tmp/prices.json" --model "$1" --in "$2" --out "$3" \
        --format json
    check "cost $1 total" "$4" "$(json "$tmp/out" 'd["cost_usd"]["total"]')"
done
# exact decimals in the JSON text, not doubles
run "json text" 0 cost --model anthropic/claude-3.5-sonnet --in 1000 --out 500 --format json
has "json total written exactly" '"total": 0.0105}' "$tmp/out"
check "json parts" "0.003 0.0075 anthropic floor" \
    "$(json "$tmp/out" '" ".join(str(x) for x in (d["cost_usd"]["input"], d["cost_usd"]["output"], d["provider"], d["endpoint"]))')"

# Endpoint choice ---------------------------------------------------------------
run ":free" 0 cost --model google/gemma-2-9b-it:free --in 5000 --out 5000 --format json
check ":free picks the free endpoint" "google/gemma-2-9b-it:free 0 True" \
    "$(json "$tmp/out" 'd["native_id"], d["cost_usd"]["total"], d["free"]' | tr -d "(),'")"
run ":floor" 0 cost --model meta-llama/llama-3.1-8b-instruct:floor --in 1000000 --out 1000000
has ":floor is the cheapest" "total     \$0.12" "$tmp/out"
run "--provider" 0 cost --model anthropic/claude-3.5-sonnet --provider bedrock --in 1 --out 1 \
    --format json
check "--provider picks its endpoint" "anthropic.claude-3-5-sonnet-20241022-v2:0" \
    "$(json "$tmp/out" 'd["native_id"]')"
run "bedrock spelling" 0 cost --model anthropic.claude-3-5-sonnet-20241022-v2:0 --in 1000 --out 500
has "bedrock id finds the model" "model     anthropic/claude-3.5-sonnet" "$tmp/out"
run "all parts" 0 cost --model openai/gpt-5 --in 1000 --out 100 --reasoning 900 --cache-read 10000 \
    --images 2 --format json
check "reasoning bills as output, cache read" "0.00125 0.01 0.00125 0.0125" \
    "$(json "$tmp/out" '" ".join(str(d["cost_usd"][k]) for k in ("input","output","cache","total"))')"
run "no free endpoint" 2 cost --model openai/o1:free --in 1 --out 1
has "says there is no free endpoint" "no free" "$tmp/err"
run "provider not serving it" 2 cost --model openai/o1 --provider groq
has "lists the providers it has" "(it has: openai azure)" "$tmp/err"

# Listing ------------------------------------------------------------------------
run "catalog json" 0 catalog --format json
check "bundled catalog: 11 models, 27 endpoints" "11 27" \
    "$(json "$tmp/out" 'd["models"], d["endpoints"]' | tr -d '(),')"
check "gemma floor is its cheapest paid endpoint, not :free" "google/gemma-2-9b-it False" \
    "$(json "$tmp/out" '[(e["native_id"], e["free"]) for m in d["data"] if m["id"]=="google/gemma-2-9b-it" for e in m["endpoints"] if e["floor"]][0]' | tr -d "(),'")"
run "catalog text" 0 catalog
has "text lists a model with caps" "openai/gpt-4o  context 128000  max output 16384  caps vision,tools,json" "$tmp/out"
has "text marks the floor" "* openrouter       google/gemma-2-9b-it " "$tmp/out"
run "every format at once" 0 catalog --format json \
    --catalog litellm:tests/data/litellm/model_prices_and_context_window.json \
    --catalog tests/data/openrouter/openrouter_models_2026-08-01.json \
    --catalog tests/data/portkey/pricing/anthropic.json \
    --catalog portkey:tests/data/portkey/general/anthropic.json --catalog policies/catalog.json
check "merged: claude-3.5-sonnet from 8+ providers" "True" \
    "$(json "$tmp/out" 'len({e["provider"] for m in d["data"] if m["id"]=="anthropic/claude-3.5-sonnet" for e in m["endpoints"]}) >= 8')"
cp policies/catalog.json "$tmp/env.json"
HPP_CATALOG=$tmp/env.json "$P" catalog --format json >"$tmp/out" 2>&1
check "HPP_CATALOG names the default catalog" "$tmp/env.json" \
    "$(json "$tmp/out" 'd["data"][0]["endpoints"][0]["source"]')"

# Help and bad input -------------------------------------------------------------
run "cost --help" 0 cost --help
for flag in --model --provider --in --out --cache-read --cache-write --reasoning --images \
    --catalog --format; do
    has "cost --help lists $flag" "  $flag" "$tmp/out"
done
run "catalog --help" 0 catalog --help
has "catalog --help lists --format" "--format text|json" "$tmp/out"
run "missing --model" 2 cost --in 1
run "unknown model" 2 cost --model nobody/nothing
has "names the unknown model" "unknown model 'nobody/nothing'" "$tmp/err"
run "negative count" 2 cost --model openai/gpt-5 --in -3
has "says what a count is" "--in: expected a whole number" "$tmp/err"
run "count too large" 2 cost --model openai/gpt-5 --out 100000001
run "unknown flag" 2 catalog --colour
run "flag without value" 2 cost --model
run "bad format" 2 catalog --format xml
run "missing file" 2 catalog --catalog "$tmp/none.json"
has "io error names the file" "$tmp/none.json: error: cannot open" "$tmp/err"
head -c 1500 policies/catalog.json >"$tmp/trunc.json"
run "truncated catalog" 2 catalog --catalog "$tmp/trunc.json"
check "truncated: file:line:col: error:" "1" "$(grep -cE "^$tmp/trunc.json:[0-9]+:[0-9]+: error: " "$tmp/err")"
printf '{"data":[{"id":"a/b","pricing":{"input":"1","output":"-2"}}]}' >"$tmp/neg.json"
run "negative price" 2 cost --catalog "$tmp/neg.json" --model a/b
has "negative price located" "$tmp/neg.json: at data[0].pricing.output: error: negative price" "$tmp/err"
printf '{"providers":["x"],"data":[{"id":"a/b","provider":"y","pricing":{"input":1}}]}' >"$tmp/prov.json"
run "unknown provider" 2 catalog --catalog "$tmp/prov.json"
has "unknown provider located" "at data[0]: error: unknown provider \"y\"" "$tmp/err"
printf '{"data":[{"id":"a/b","pricing":{"input":1}},{"id":"a/b","pricing":{"input":2}}]}' >"$tmp/dup.json"
run "duplicate id" 2 catalog --catalog "$tmp/dup.json"
has "duplicate located" "at data[1].id: error: duplicate model id" "$tmp/err"

suite_end
