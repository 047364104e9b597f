#!/usr/bin/env bash
# Quality-aware routing end to end: hpp-policy train-scorer (deterministic,
# located errors on bad data), hpp-policy curve (text and JSON), explain
# showing the score, and the example quality policy served by the real
# hpp-engine behind the real hpp-sidecar on 127.0.0.1 ephemeral ports, where
# the score rule decides and a request's metadata threshold.difficulty moves
# it. Stops what it started by PID.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
POLICY=$BUILD/hpp-policy
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
S=gpt-4-1106-preview
W=mistralai/Mixtral-8x7B-Instruct-v0.1
GSM=data/routellm/gsm8k/gsm8k_responses.csv
CAT=data/routellm/catalog.json
QP=policies/examples/quality.policy

source tests/integration/check_lib.bash
suite_setup

# train-scorer -------------------------------------------------------------------
"$POLICY" train-scorer --strong $S --weak $W --seed 3 -o "$tmp/a.model" $GSM 2>"$tmp/err"
check "train-scorer: exit 0" 0 $?
has_text "train-scorer: says what it trained on" "examples (train split)" "$(cat "$tmp/err")"
"$POLICY" train-scorer --strong $S --weak $W --seed 3 -o "$tmp/b.model" $GSM 2>/dev/null
"$POLICY" train-scorer --strong $S --weak $W --seed 4 -o "$tmp/c.model" $GSM 2>/dev/null
if cmp -s "$tmp/a.model" "$tmp/b.model"; then ok "train-scorer: same seed, same file"; else
    fail "train-scorer: same seed, same file"
fi
if cmp -s "$tmp/a.model" "$tmp/c.model"; then fail "train-scorer: another seed, another file"; else
    ok "train-scorer: another seed, another file"
fi
has_text "train-scorer: the model file's header" "hpp-scorer 1" "$(head -n 1 "$tmp/a.model")"

# The JSONL form of the same rows trains the same model.
python3 - "$GSM" "$tmp/gsm.jsonl" "$S" "$W" <<'EOF'
import csv, json, sys
with open(sys.argv[1], newline="") as f, open(sys.argv[2], "w") as out:
    for r in csv.DictReader(f):
        o = {"prompt": r["prompt"]}
        for m in sys.argv[3:5]:
            o[m] = r[m] == "True"
            o[m + "_response"] = r[m + "_response"]
        out.write(json.dumps(o) + "\n")
EOF
"$POLICY" train-scorer --strong $S --weak $W --seed 3 -o "$tmp/j.model" "$tmp/gsm.jsonl" 2>/dev/null
if cmp -s "$tmp/a.model" "$tmp/j.model"; then ok "train-scorer: JSONL = CSV"; else
    fail "train-scorer: JSONL = CSV" "$(diff "$tmp/a.model" "$tmp/j.model" | head -n 4)"
fi

printf 'prompt,%s,%s\n"ok",True,False\n"open,True,True\n' $S $W >"$tmp/bad.csv"
out=$("$POLICY" train-scorer --strong $S --weak $W -o "$tmp/x.model" "$tmp/bad.csv" 2>&1)
check "train-scorer: bad CSV exits 2" 2 $?
has_text "train-scorer: bad CSV located" "bad.csv:3:1: error: quoted field never closed" "$out"
out=$("$POLICY" train-scorer --strong nobody --weak $W -o "$tmp/x.model" $GSM 2>&1)
has_text "train-scorer: unknown model column named" "no column 'nobody'" "$out"

# curve ---------------------------------------------------------------------------
out=$("$POLICY" curve --strong $S --weak $W --catalog $CAT --policy $QP $GSM)
check "curve: exit 0" 0 $?
has_text "curve: text table" "strong  quality     cost  threshold   random" "$out"
"$POLICY" curve --strong $S --weak $W --catalog $CAT --policy $QP --format json --threshold 0.17 \
    --max-cost 0.5 $GSM >"$tmp/c.json"
check "curve --format json: 21 points, always-weak and always-strong ends" "21 True True" \
    "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); p=j["points"]
print(len(p), abs(p[0]["quality"] - j["weak_accuracy"] / j["strong_accuracy"]) < 1e-3,
      p[-1]["quality"] == 1 and p[-1]["cost"] == 1)' "$tmp/c.json")"
check "curve: the target point meets the target" "True" \
    "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["meets_target"]["quality"] >= 0.95)' "$tmp/c.json")"
out=$("$POLICY" curve --strong $S --weak $W --catalog policies/catalog.json --model "$tmp/a.model" $GSM 2>&1)
has_text "curve: a model missing from the catalog is named" "model '$S' is not in the catalog" "$out"

# explain -------------------------------------------------------------------------
out=$("$POLICY" explain $QP --catalog $CAT --request '{"text": "What is 17 * 23?"}')
has_text "explain: shows the score" "scores:    difficulty=0." "$out"
out=$("$POLICY" explain $QP --catalog $CAT --format json --request '{"text": "x"}')
has_text "explain --format json: scores" '"scores":{"difficulty":0.' "$out"

# The policy hash covers the scorer's model: two engines with the same policy
# file and different models must not report the same hash.
mkdir -p "$tmp/q"
cp policies/examples/quality.policy "$tmp/q/"
cp "$tmp/a.model" "$tmp/q/difficulty.model"
hash_a=$("$ENGINE" --check --policy "$tmp/q/quality.policy" --catalog $CAT 2>&1 |
    sed -n 's/^hpp-engine: policy hash //p')
cp "$tmp/c.model" "$tmp/q/difficulty.model"
hash_c=$("$ENGINE" --check --policy "$tmp/q/quality.policy" --catalog $CAT 2>&1 |
    sed -n 's/^hpp-engine: policy hash //p')
if [ -n "$hash_a" ] && [ "$hash_a" != "$hash_c" ]; then
    ok "policy hash: another scorer model, another hash"
else
    fail "policy hash: another scorer model, another hash" "[$hash_a] [$hash_c]"
fi

# Through the engine and the sidecar ------------------------------------------------
for bin in "$ENGINE" "$SIDECAR"; do
    if [ ! -x "$bin" ]; then
        fail "binary $bin exists"
        suite_end
    fi
done
"$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 --policy $QP --catalog $CAT 2>"$tmp/engine.err" &
pids+=($!)
EP=$(await_line "$tmp/engine.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$!" 250) ||
    { fail "engine starts" "$(tail -n 5 "$tmp/engine.err")"; suite_end; }
"$SIDECAR" --listen 127.0.0.1:0 --engine "$EP" 2>"$tmp/sidecar.err" >/dev/null &
pids+=($!)
SP=$(await_line "$tmp/sidecar.err" 's/^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$!" 250) ||
    { fail "sidecar starts" "$(tail -n 5 "$tmp/sidecar.err")"; suite_end; }

route() { # TEXT [METADATA-JSON] -> "rule model"
    local body
    body=$(python3 -c 'import json,sys
b={"model":"hpprouter/auto","messages":[{"role":"user","content":sys.argv[1]}]}
if len(sys.argv) > 2: b["metadata"]=json.loads(sys.argv[2])
print(json.dumps(b))' "$@")
    curl -s -m 10 "http://127.0.0.1:$SP/v1/route" --data-binary "$body" |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print(j.get("rule"), j.get("model"))'
}
# The sidecar's answer is the engine's: the same rule hpp-policy explain gives
# for the same body (one prompt scores above the threshold, one below).
rules=""
for text in "What is 17 * 23?" \
    "Janet has 3 times as many marbles as Tom, who has 12 more than Ann. If Ann has 7, how many marbles do the three have together?" \
    "Which of the following best describes the function of the mitochondria? A. protein synthesis B. energy production C. storage D. transport
Answer:"; do
    want=$("$POLICY" explain $QP --catalog $CAT --format json --request "$(python3 -c 'import json,sys
print(json.dumps({"model":"hpprouter/auto","messages":[{"role":"user","content":sys.argv[1]}]}))' "$text")" |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print(j.get("rule"), j.get("model"))')
    check "sidecar: scored rule as hpp-policy explain (${text:0:20}...)" "$want" "$(route "$text")"
    rules+=" ${want%% *}"
done
case "$rules" in *hard*rest* | *rest*hard*) ok "sidecar: the score sent prompts both ways" ;;
*) fail "sidecar: the score sent prompts both ways" "rules:$rules" ;; esac
check "sidecar: threshold.difficulty 0 sends it to the strong model" \
    "hard openai/gpt-4-1106-preview" "$(route "What is 17 * 23?" '{"threshold.difficulty":"0"}')"
check "sidecar: threshold.difficulty 1 keeps it on the cheap model" \
    "rest mistralai/mixtral-8x7b-instruct" "$(route "What is 17 * 23?" '{"threshold.difficulty":"1"}')"

# Both stop cleanly (under `make asan`: without a sanitizer report).
for i in 1 0; do
    name=$([ $i = 0 ] && echo engine || echo sidecar)
    kill -TERM "${pids[$i]}"
    wait "${pids[$i]}"
    check "$name exits 0 on SIGTERM" 0 $?
    no_san_report "$name: no sanitizer report" "$tmp/$name.err"
done
pids=()
suite_end
