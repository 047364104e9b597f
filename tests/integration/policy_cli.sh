#!/usr/bin/env bash
# hpp-policy check, test, explain and route, run as a policy author would:
# exit codes (0 ok, 1 failed test / error decision, 2 bad input or usage),
# located diagnostics with caret, the "N passed, N failed" line, JSON
# decisions, OpenAI bodies, includes relative to the including file.
# Ends with "N passed, N failed, N skipped".
set -u
# shellcheck source=tests/integration/cli_lib.bash
source "$(dirname "$0")/cli_lib.bash"

# check -------------------------------------------------------------------------
run "check default policy" 0 check policies/default.policy
has "check says ok" "policies/default.policy: ok (5 tiers" "$tmp/out"
run "check examples" 0 check policies/examples/teams.policy
run "check default policy on LiteLLM" 0 check \
    --catalog litellm:tests/data/litellm/model_prices_and_context_window.json
has "model missing from that catalog is a warning" \
    "warning: model 'ollama/solidity-master:2' is not in the catalog" "$tmp/err"

cat >"$tmp/bad.policy" <<'EOF'
tier budget max $0.15
route a when tools { tier midd }
route b when prompt_tokens > "x" { tier budget }
EOF
run "check reports errors" 2 check "$tmp/bad.policy"
has "first error located" "$tmp/bad.policy:2:27: error: unknown tier 'midd'" "$tmp/err"
has "second error located" "$tmp/bad.policy:3:14: error: type mismatch" "$tmp/err"
has "source line shown" "    route a when tools { tier midd }" "$tmp/err"
has "caret under the token" "                              ^^^^" "$tmp/err"
has "summary line" "2 errors, 0 warnings" "$tmp/err"
run "check missing file" 2 check "$tmp/none.policy"
run "check usage" 2 check --frobnicate
run "check help" 0 check --help
has "help lists --catalog" "--catalog FILE" "$tmp/out"
for v in --version -V version; do
    run "hpp-policy $v" 0 "$v"
    has "hpp-policy $v prints the version" "hpp-policy 0." "$tmp/out"
done
run "hpp-policy -h" 0 -h
has "hpp-policy -h lists the commands" "commands:" "$tmp/out"
# The bundled policy and catalog are found from any working directory.
root=$PWD
out=$(cd "$tmp" && "$root/$P" check 2>&1)
check "check from another directory: exit 0" 0 "$?"
has_text "check from another directory: the bundled policy" "default.policy: ok" "$out"
out=$(cd "$tmp" && "$root/${HPP_BUILD:-build}/hpp-engine" --check 2>&1)
check "hpp-engine --check from another directory: exit 0" 0 "$?"
has_text "hpp-engine --check from another directory: ok" "ok: 0 errors" "$out"
for bin in hpp-engine hpp-sidecar; do
    out=$("${HPP_BUILD:-build}/$bin" -V 2>&1)
    has_text "$bin -V prints the version" "$bin 0." "$out"
    out=$("${HPP_BUILD:-build}/$bin" -h 2>&1)
    has_text "$bin -h prints the usage" "usage: $bin" "$out"
done

# Includes are relative to the including file, from any working directory.
mkdir -p "$tmp/sub"
printf 'tier any\n' >"$tmp/sub/tiers.policy"
printf 'include "sub/tiers.policy"\nroute r { tier any }\n' >"$tmp/top.policy"
run "include relative to the file" 0 check "$tmp/top.policy"
printf 'include "top2.policy"\n' >"$tmp/loop.policy"
printf 'include "loop.policy"\ntier t\n' >"$tmp/top2.policy"
run "include cycle" 2 check "$tmp/loop.policy"
has "cycle reported at the include" "error: include cycle:" "$tmp/err"

# test ---------------------------------------------------------------------------
run "default cases pass" 0 test policies/default.policy policies/cases/default.cases
n=$(grep -cE '^[a-z]' policies/cases/default.cases)
check "every case ran" "$n passed, 0 failed" "$(tail -n 1 "$tmp/out")"
cat >"$tmp/wrong.cases" <<'EOF'
good  hints=code => model=anthropic/claude-sonnet-4
wrong hints=chat => model=openai/o1 tier=budget
EOF
run "a failing case" 1 test policies/default.policy "$tmp/wrong.cases"
has "failure header" "FAIL $tmp/wrong.cases:2: wrong" "$tmp/out"
has "expected value" "  -   model: openai/o1" "$tmp/out"
has "actual value" "  +   model: meta-llama/llama-3.1-8b-instruct" "$tmp/out"
check "summary alone on the last line" "1 passed, 1 failed" "$(tail -n 1 "$tmp/out")"
printf 'x colour=red => model=a/b\n' >"$tmp/bad.cases"
run "malformed cases" 2 test policies/default.policy "$tmp/bad.cases"
has "cases error located" "$tmp/bad.cases:1:3: error: unknown request key" "$tmp/err"
run "test usage" 2 test policies/default.policy

# explain --------------------------------------------------------------------------
run "explain features" 0 explain --request '{"prompt_tokens": 800, "text": "pragma solidity ^0.8.0;"}'
has "decision line" "decision:  ollama/solidity-master:2 via ollama, tier free, rule solidity" \
    "$tmp/out"
has "hints line" "hints:     solidity code" "$tmp/out"
has "candidate table" "chosen" "$tmp/out"
run "explain OpenAI body" 0 explain --format json --request \
    '{"model": "hpprouter/auto", "max_tokens": 200, "messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}'
check "image request gets a vision model" "openai/gpt-4o-mini" "$(json "$tmp/out" 'd["model"]')"
check "explain JSON has a trace" "True" "$(json "$tmp/out" 'len(d["trace"]["candidates"]) > 0')"
printf '{"prompt_tokens": 100, "budget_usd": 0, "images": 1}' >"$tmp/req.json"
run "explain from a file, error decision" 1 explain --request "@$tmp/req.json"
has "insufficient budget" "decision:  insufficient_budget" "$tmp/out"
# Reasoning and cache writes are in the estimate; max_tokens 0 is refused.
run "explain reasoning and cache writes" 0 explain --format json --request \
    '{"prompt_tokens": 1000, "model": "openai/o1", "output_tokens": 100, "reasoning_tokens": 5000, "cache_write_tokens": 400}'
check "reasoning billed as output" "0.306 0.321" \
    "$(json "$tmp/out" 'd["cost"]["output"], d["cost"]["total"]' | tr -d "(),")"
run "explain OpenAI body with hpp reasoning" 0 explain --format json --request \
    '{"model": "openai/o1", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], "hpp": {"prompt_tokens": 1000, "reasoning_tokens": 5000}}'
check "hpp.reasoning_tokens billed" "0.321" "$(json "$tmp/out" 'd["cost"]["total"]')"
run "explain max_tokens 0" 2 explain --request \
    '{"model": "openai/o1", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}'
has "max_tokens 0 located" "max_tokens: must be at least 1" "$tmp/err"
run "route over max output" 1 route --model openai/gpt-4o-mini --output-tokens 20000
has "names the max output" "max output is smaller" "$tmp/out"
run "explain bad JSON" 2 explain --request '{"prompt_tokens": '
run "explain wrong type" 2 explain --request '{"tools": "sometimes"}'
run "explain unknown key" 2 explain --request '{"colour": "red"}'

# route ------------------------------------------------------------------------------
run "route code" 0 route --task code --prompt-tokens 2000
check "route picks Claude" "anthropic/claude-sonnet-4" "$(json "$tmp/out" 'd["model"]')"
check "route cost is exact" "0.021" "$(json "$tmp/out" 'd["cost"]["total"]')"
check "route fallbacks" "8" "$(json "$tmp/out" 'len(d["fallbacks"])')"
run "route budget and group" 0 route --text "hi there" --prompt-tokens 500 --group partner
check "group multiplier" "7.2e-05" "$(json "$tmp/out" 'd["cost"]["total"]')"
run "route floor" 0 route --model openai/gpt-5:floor
check "floor endpoint" "openai" "$(json "$tmp/out" 'd["provider"]')"
# A plain id means the paid endpoints; only ID:free asks for the free one.
run "route plain id of a model with a :free endpoint" 0 route --model google/gemma-2-9b-it
check "plain id: the paid endpoint" "google/gemma-2-9b-it budget" \
    "$(json "$tmp/out" 'd["native_id"], d["tier"]' | tr -d "(),'")"
check "plain id: it costs money" "True" "$(json "$tmp/out" 'd["cost"]["total"] > 0')"
check "plain id: no free fallback" "[]" \
    "$(json "$tmp/out" '[f for f in d["fallbacks"] if f["provider"] == "openrouter"]')"
run "route :free" 0 route --model google/gemma-2-9b-it:free
check ":free: the free endpoint" "google/gemma-2-9b-it:free 0" \
    "$(json "$tmp/out" 'd["native_id"], d["cost"]["total"]' | tr -d "(),'")"
# A per-call model does not win a cheap chat on a $0 per-token price.
printf '{"data":[{"id":"acme/percall","owned_by":"acme","context_length":100000,"pricing":{"per_request":0.02}}]}' \
    >"$tmp/percall.json"
run "route cheap chat with a per-call model in the catalog" 0 route --catalog policies/catalog.json \
    --catalog "$tmp/percall.json" --prompt-tokens 100 --output-tokens 100 --text "hi there"
check "cheap chat: llama at \$0.000012" "meta-llama/llama-3.1-8b-instruct 1.2e-05" \
    "$(json "$tmp/out" 'd["model"], d["cost"]["total"]' | tr -d "(),'")"
run "route the per-call model by name" 0 route --catalog policies/catalog.json \
    --catalog "$tmp/percall.json" --model acme/percall
check "per-call model: premium at the reference size" "premium 0.02" \
    "$(json "$tmp/out" 'd["tier"], d["cost"]["total"]' | tr -d "(),'")"
# Long-prompt prices (OpenRouter's pricing.overrides) apply above the threshold.
OR=tests/data/openrouter/openrouter_models_2026-08-01.json
run "route gemini-2.5-pro, short prompt" 0 route --catalog "$OR" --model google/gemini-2.5-pro \
    --prompt-tokens 100000 --output-tokens 1000
check "short prompt: \$1.25/\$10" "0.135" "$(json "$tmp/out" 'd["cost"]["total"]')"
run "route gemini-2.5-pro, long prompt" 0 route --catalog "$OR" --model google/gemini-2.5-pro \
    --prompt-tokens 250000 --output-tokens 1000
check "long prompt: \$2.50/\$15" "0.64" "$(json "$tmp/out" 'd["cost"]["total"]')"
run "route not allowed" 1 route --model openai/o1 --group trial
check "not allowed status" "model_not_allowed" "$(json "$tmp/out" 'd["status"]')"
run "route other policy" 0 route --policy policies/examples/budgets.policy --meta mode=offline
check "offline rule" "offline" "$(json "$tmp/out" 'd["rule"]')"
HPP_POLICY=policies/examples/budgets.policy "$P" route --budget 0.6 >"$tmp/out" 2>"$tmp/err"
check "HPP_POLICY picks the policy" "flagship" "$(json "$tmp/out" 'd["tier"]')"
run "route negative tokens" 2 route --prompt-tokens -1
has "flag named" "--prompt-tokens: must be an integer from 0 to 100000000" "$tmp/err"
run "route NaN budget" 2 route --budget nan
# step_down with the ledger's remaining money (--remaining).
cp policies/default.policy "$tmp/step.policy"
printf '\ngroup team models "*" step_down $1 budget, $0.0005 free\n' >>"$tmp/step.policy"
run "route: money enough, no step" 0 route --policy "$tmp/step.policy" --group team \
    --prompt-tokens 1000 --remaining 5
check "route: the rule's tier" "mid" "$(json "$tmp/out" 'd["tier"]')"
run "route: below \$1, stepped down" 0 route --policy "$tmp/step.policy" --group team \
    --prompt-tokens 1000 --remaining 0.5
check "route: the budget tier" "budget" "$(json "$tmp/out" 'd["tier"]')"
run "explain: money spent, free" 0 explain --policy "$tmp/step.policy" --remaining -0.2 \
    --request '{"prompt_tokens": 1000, "group": "team"}'
has "explain says why" "stepped down to tier 'free'" "$tmp/out"
run "route: a bad --remaining" 2 route --policy "$tmp/step.policy" --remaining lots
run "route unknown flag" 2 route --colour red
run "route stray argument" 2 route extra

suite_end
