#!/usr/bin/env bash
# scorer_curves.sh OUTDIR - the cost-quality curves of the learned scorer on
# the RouteLLM data (data/routellm), held-out test split, and its decision
# cost. Deterministic: the models are trained with seed 1.
#
# Models, all trained on the `fit` split (70% of prompts), the threshold of
# each chosen on `valid` (10%) as the lowest that reaches 95% of the strong
# model's accuracy, then everything measured on `test` (20%), never seen:
#   combined  GSM8K + MMLU, default settings (= policies/examples/difficulty.model)
#   gsm8k     GSM8K only, --words 1
#   mmlu      MMLU only, --chars 3
# (settings chosen by 8-fold cross-validation over train, policies/SCORER.md).
#
# Writes OUTDIR/{curves.md, *.json, curves.dat, curves.png (with gnuplot)}
# and prints curves.md.
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 2
B=${HPP_BUILD:-build}
OUT=${1:?usage: scorer_curves.sh OUTDIR}
mkdir -p "$OUT"
S=gpt-4-1106-preview
W=mistralai/Mixtral-8x7B-Instruct-v0.1
CAT=data/routellm/catalog.json
GSM=data/routellm/gsm8k/gsm8k_responses.csv
MMLU=(data/routellm/mmlu_responses/*.csv)
P=$B/hpp-policy

train() { # NAME FLAGS DATA...
    local name=$1 flags=$2
    shift 2
    # shellcheck disable=SC2086 # flags are words
    "$P" train-scorer --strong $S --weak $W --split fit --seed 1 $flags -o "$OUT/$name.model" "$@" \
        2>/dev/null || exit 1
}
train combined "" "$GSM" "${MMLU[@]}"
train gsm8k "--words 1" "$GSM"
train mmlu "--chars 3" "${MMLU[@]}"
if cmp -s "$OUT/combined.model" policies/examples/difficulty.model; then
    same="the same file as policies/examples/difficulty.model"
else
    same="DIFFERS from policies/examples/difficulty.model (retrain it)"
fi

curve() { # MODEL SPLIT CAP JSON DATA... [--threshold T]
    local model=$1 split=$2 cap=$3 json=$4
    shift 4
    "$P" curve --strong $S --weak $W --catalog $CAT --model "$OUT/$model.model" --split "$split" \
        --max-cost "$cap" --format json "$@" >"$OUT/$json" || exit 1
}
jq_() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

{
    echo "| data (test prompts) | scorer | threshold (from valid) | strong calls | quality | cost | quality at cost cap | cost at quality 0.95 | random at the same cost | oracle (quality, cost) |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$OUT/curves.md"
: >"$OUT/curves.dat"
for row in "GSM8K 0.5 combined" "GSM8K 0.5 gsm8k" "MMLU 0.4 combined" "MMLU 0.4 mmlu"; do
    read -r data cap model <<<"$row"
    if [ "$data" = GSM8K ]; then files=("$GSM"); else files=("${MMLU[@]}"); fi
    tag=${data,,}_$model
    curve "$model" valid "$cap" "${tag}_valid.json" "${files[@]}"
    t=$(jq_ "$OUT/${tag}_valid.json" 'j["meets_target"]["threshold"] if j["meets_target"] else 1')
    curve "$model" test "$cap" "${tag}_test.json" "${files[@]}" --threshold "$t"
    python3 - "$OUT/${tag}_test.json" "$data" "$model" "$t" "$cap" >>"$OUT/curves.md" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
a, m, c = j["at_threshold"], j["meets_target"], j["at_max_cost"]
o = j["oracle"]
# The random router at the cost the threshold point has: the strong share
# that costs as much.
wc = j["weak_cost"]
share = (a["cost"] - wc) / (1 - wc)
rq = j["weak_accuracy"] / j["strong_accuracy"] + share * (1 - j["weak_accuracy"] / j["strong_accuracy"])
print(f"| {sys.argv[2]} ({j['examples']}) | {sys.argv[3]} | {float(sys.argv[4]):.3f} | "
      f"{a['strong_share']:.1%} | **{a['quality']:.3f}** | **{a['cost']:.3f}** | "
      f"{c['quality']:.3f} at {float(sys.argv[5]):.2f} | {m['cost']:.3f} | {rq:.3f} | "
      f"{o['quality']:.3f}, {o['cost']:.3f} |")
EOF
    python3 - "$OUT/${tag}_test.json" "$tag" >>"$OUT/curves.dat" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"# {sys.argv[2]}: cost quality random_quality")
for p in j["points"]:
    print(p["cost"], p["quality"], p["random_quality"])
print()
print()
EOF
done
{
    echo
    echo "Models trained with seed 1 on the fit split; combined.model is $same."
} >>"$OUT/curves.md"

if command -v gnuplot >/dev/null; then
    (cd "$OUT" && gnuplot <<'EOF'
set terminal pngcairo size 900,560 font 'sans,10'
set output 'curves.png'
set title 'Learned scorer on held-out RouteLLM prompts (GPT-4 vs Mixtral): quality vs cost'
set xlabel 'cost, fraction of always-strong'
set ylabel 'quality, fraction of the strong model'
set key bottom right
set grid
plot 'curves.dat' index 0 using 1:2 with linespoints title 'GSM8K, combined', \
     '' index 1 using 1:2 with linespoints title 'GSM8K, gsm8k-only', \
     '' index 0 using 1:3 with lines dashtype 2 title 'GSM8K, random', \
     '' index 2 using 1:2 with linespoints title 'MMLU, combined', \
     '' index 3 using 1:2 with linespoints title 'MMLU, mmlu-only', \
     '' index 2 using 1:3 with lines dashtype 2 title 'MMLU, random', \
     0.95 with lines dashtype 3 title '95% of strong'
EOF
    )
fi
cat "$OUT/curves.md"
