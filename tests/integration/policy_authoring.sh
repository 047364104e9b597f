#!/usr/bin/env bash
# hpp-policy for policy authors: one --policy FILE for every command (the
# older positional form still works), check --format json for editors, fmt
# (--check for CI, --write in place; idempotent on every policy of the
# repository; formatted policies decide as before), provider lists and
# min_context seen through explain, "did you mean" in check's output.
# Ends with "N passed, N failed, N skipped".
set -u
# shellcheck source=tests/integration/cli_lib.bash
source "$(dirname "$0")/cli_lib.bash"

D=policies/default.policy
C=policies/cases/default.cases

# --policy for every command that reads a policy ------------------------------
run "check --policy" 0 check --policy "$D"
has "check --policy says ok" "$D: ok (5 tiers" "$tmp/out"
run "check FILE (older form)" 0 check "$D"
run "check: policy given twice" 2 check --policy "$D" "$D"
has "check: says it is given twice" "the policy is given twice" "$tmp/err"
run "test --policy" 0 test --policy "$D" "$C"
has "test --policy runs the cases" "74 passed, 0 failed" "$tmp/out"
run "test POLICY CASES (older form)" 0 test "$D" "$C"
run "test --policy without cases" 2 test --policy "$D"
run "explain --policy" 0 explain --policy policies/examples/budgets.policy \
    --request '{"meta": {"mode": "offline"}}'
has "explain --policy uses that policy" "rule offline" "$tmp/out"
run "explain POLICY (older form)" 0 explain policies/examples/budgets.policy \
    --request '{"meta": {"mode": "offline"}}'
has "explain POLICY uses that policy" "rule offline" "$tmp/out"
run "route --policy" 0 route --policy policies/examples/budgets.policy --meta mode=offline
for cmd in check test explain route fmt; do
    run "$cmd --help" 0 "$cmd" --help
    has "$cmd --help lists --policy" "--policy FILE" "$tmp/out"
done

# check --format json ----------------------------------------------------------
cat >"$tmp/typo.policy" <<'EOF'
tier budget max 0.15
route r when hints has code { tier budgte }
EOF
run "check --format json on errors" 2 check --format json --policy "$tmp/typo.policy"
check "json: three diagnostics" 3 "$(json "$tmp/out" 'len(d)')"
check "json: money code" "money 1 17 21 error" \
    "$(json "$tmp/out" '" ".join(str(d[0][k]) for k in ("code","line","col","end_col","severity"))')"
check "json: quote code" "quote" "$(json "$tmp/out" 'd[1]["code"]')"
check "json: did you mean" "True" "$(json "$tmp/out" '"did you mean '"'"'budget'"'"'" in d[2]["message"]')"
check "json: nothing on stderr" "" "$(cat "$tmp/err")"
run "check --format json on a clean policy" 0 check --format json --policy "$D"
check "json: empty array" "[]" "$(cat "$tmp/out")"
run "check --format yaml" 2 check --format yaml

# did you mean, in the text output ---------------------------------------------
run "check with typos" 2 check "$tmp/typo.policy"
has "unknown tier: did you mean" "error: unknown tier 'budgte'; did you mean 'budget'?" "$tmp/err"
has "money without \$" "error: tier max is money in USD per 1M tokens: write \$0.15" "$tmp/err"
has "unquoted hint word" "error: hint words are quoted: write has \"code\"" "$tmp/err"

# A cases file that names a rule, tier or model that does not exist.
printf 'a hints=code prompt_tokens=500 => rule=cod tier=standrd\nb prompt_tokens=10 => model=openai/gpt-4o-mni\n' >"$tmp/typo.cases"
run "test with misspelt expectations" 1 test --policy "$D" "$tmp/typo.cases"
has "no such rule" "  -   rule: cod  (no such rule; did you mean 'code'?)" "$tmp/out"
has "no such tier" "  -   tier: standrd  (no such tier; did you mean 'standard'?)" "$tmp/out"
has "no such model" "  -   model: openai/gpt-4o-mni  (no such model; did you mean 'openai/gpt-4o-mini'?)" "$tmp/out"

# fmt ----------------------------------------------------------------------------
run "fmt --check on the shipped policies" 0 fmt --check "$D" policies/examples/*.policy \
    policies/examples/shared/*.policy
check "fmt --check lists nothing" "" "$(cat "$tmp/out")"
# Idempotent on every policy in the repository; text with errors is refused.
n=0
while IFS= read -r f; do
    "$P" fmt "$f" >"$tmp/f1" 2>"$tmp/ferr"
    rc=$?
    if [ "$rc" = 2 ]; then
        has_text "fmt refuses $f with its errors" "error:" "$(cat "$tmp/ferr")"
        continue
    fi
    "$P" fmt - <"$tmp/f1" >"$tmp/f2" 2>&1
    if cmp -s "$tmp/f1" "$tmp/f2"; then n=$((n + 1)); else fail "fmt is idempotent on $f"; fi
done < <(git ls-files '*.policy')
[ "$n" -ge 20 ] && ok "fmt is idempotent on every policy in the repo ($n files)" \
    || fail "fmt is idempotent on every policy in the repo" "only $n files"

printf 'tier  b   max $0.15  # cheap\nroute   r   {tier b}\n' >"$tmp/messy.policy"
chmod 640 "$tmp/messy.policy"
run "fmt --check on a messy file" 1 fmt --check "$tmp/messy.policy"
has "fmt --check names it" "$tmp/messy.policy" "$tmp/out"
run "fmt prints" 0 fmt "$tmp/messy.policy"
has "fmt output" "tier b  max \$0.15  # cheap" "$tmp/out"
has "fmt output, rule" "route r { tier b }" "$tmp/out"
cp "$tmp/out" "$tmp/want"
run "fmt -w" 0 fmt -w "$tmp/messy.policy"
check "fmt -w rewrote the file" "" "$(cmp "$tmp/want" "$tmp/messy.policy" 2>&1)"
check "fmt -w kept the mode" "640" "$(stat -c %a "$tmp/messy.policy")"
left=("$tmp"/*fmt-*)
check "fmt -w left no temporary file" "" "$([ -e "${left[0]}" ] && printf '%s ' "${left[@]}")"
run "fmt --check after -w" 0 fmt --check "$tmp/messy.policy"
run "fmt --write --check" 2 fmt --write --check "$tmp/messy.policy"
printf 'tier b max $0.15\nroute r when { tier b }\n' >"$tmp/broken.policy"
cp "$tmp/broken.policy" "$tmp/broken.orig"
run "fmt -w on a syntax error" 2 fmt -w "$tmp/broken.policy"
has "fmt: the error is located" "$tmp/broken.policy:2:14: error:" "$tmp/err"
check "fmt -w left the broken file alone" "" "$(cmp "$tmp/broken.orig" "$tmp/broken.policy" 2>&1)"
# A formatted policy decides exactly as before: the default cases still pass.
cp -r policies "$tmp/pol"
sed -e 's/^tier \([a-z]*\) */tier    \1   /' -e 's/^    or /       or    /' "$D" >"$tmp/pol/default.policy"
run "fmt --check sees the reformatting" 1 fmt --check "$tmp/pol/default.policy"
run "fmt -w the mangled default policy" 0 fmt -w "$tmp/pol/default.policy"
check "fmt restores the shipped layout" "" "$(cmp "$D" "$tmp/pol/default.policy" 2>&1)"
run "formatted policy passes the cases" 0 test --policy "$tmp/pol/default.policy" "$C"
has "formatted policy: every case" "74 passed, 0 failed" "$tmp/out"

# provider lists and min_context through explain ------------------------------------
cat >"$tmp/prov.policy" <<'EOF'
tier standard  max $10
tier premium
group oa  models "openai/*"  deny_providers "azure", "openrouter"
route wide when hints has "wide" { tier standard  min_context 200k }
route d { tier standard }
EOF
run "check provider lists" 0 check --policy "$tmp/prov.policy"
run "explain a group's provider list" 0 explain --policy "$tmp/prov.policy" \
    --request '{"group": "oa", "prompt_tokens": 100}'
has_text "explain names policy_provider" "policy_provider" "$(cat "$tmp/out")"
if grep -E 'via (azure|openrouter)' "$tmp/out" >/dev/null; then
    fail "the group never reaches azure or openrouter" "$(grep -E 'via' "$tmp/out")"
else
    ok "the group never reaches azure or openrouter"
fi
run "explain min_context" 0 explain --policy "$tmp/prov.policy" \
    --request '{"hints": ["wide"], "prompt_tokens": 100}' --format json
check "min_context: a 200k window" "True" \
    "$(json "$tmp/out" 'd["model"].startswith("anthropic/") or d["model"].startswith("moonshotai/")')"
has_text "explain names min_context" '"reason":"min_context"' "$(tr -d ' ' <"$tmp/out")"

suite_end
