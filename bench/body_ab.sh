#!/usr/bin/env bash
# body_ab.sh - the body-size rounds of scenario 3 alone, for two builds in turns.
#
#   bash bench/body_ab.sh BUILD_A BUILD_B [ROUNDS] [SECONDS]
#
# Starts, for each build directory, an engine (default policy, bundled and full
# LiteLLM catalog, as bench/run.sh does) and a decision-only sidecar, then runs
# ROUNDS rounds (default 5) of wrk at 32 connections on /v1/route posting the
# 1 KB and the 32 KB body (SECONDS each, default 2), A then B in every round,
# with the CPU time each request cost the sidecar and the engine (schedstat of
# all their threads, as report.py procsnap). Prints one JSON line per run and a
# table of the medians. Talks to 127.0.0.1 only; stops what it started.
# Run it under `nice -n -10` on a shared machine: the children inherit it.
set -u
cd "$(dirname "$0")/.." || exit 2
A=${1:?usage: body_ab.sh BUILD_A BUILD_B [ROUNDS] [SECONDS]}
B=${2:?usage: body_ab.sh BUILD_A BUILD_B [ROUNDS] [SECONDS]}
ROUNDS=${3:-5}
SECS=${4:-2}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# wait_line FILE REGEX PID: until FILE has a line matching REGEX (20 s at most).
wait_line() {
    local _
    for _ in $(seq 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# up NAME BUILD: engine + sidecar of BUILD; sets URL_NAME, EPID_NAME, SPID_NAME.
up() {
    local n=$1 b=$2 ep
    "$b/hpp-engine" --policy policies/default.policy --catalog policies/catalog.json \
        --catalog litellm:tests/data/litellm/model_prices_and_context_window.json \
        --listen tcp://127.0.0.1:0 >"$TMP/e_$n.log" 2>&1 &
    PIDS+=($!)
    eval "EPID_$n=$!"
    wait_line "$TMP/e_$n.log" '^hpp-engine: ready on ' $! || { echo "engine $n failed" >&2; exit 1; }
    ep=$(sed -n 's/^hpp-engine: ready on //p' "$TMP/e_$n.log" | head -n 1)
    "$b/hpp-sidecar" --listen 127.0.0.1:0 --engine "$ep" >"$TMP/s_$n.log" 2>&1 &
    PIDS+=($!)
    eval "SPID_$n=$!"
    wait_line "$TMP/s_$n.log" '^hpp-sidecar: ready on ' $! || { echo "sidecar $n failed" >&2; exit 1; }
    eval "URL_$n=http://$(sed -n 's/^hpp-sidecar: ready on //p' "$TMP/s_$n.log" | head -n 1)"
}

cpu() { python3 -c '
import os, sys
t = 0
for pid in sys.argv[1:]:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            t += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except OSError:
            pass
    print(t, end=" ")
' "$@"; }

up a "$A"
up b "$B"
for round in $(seq 1 "$ROUNDS"); do
    for n in a b; do
        for body in 1k 32k; do
            url=URL_$n spid=SPID_$n epid=EPID_$n
            read -r s0 e0 <<<"$(cpu "${!spid}" "${!epid}")"
            env WRK_BODY="bench/bodies/$body.json" wrk -t2 -c32 "-d${SECS}s" --timeout 5s \
                -s bench/wrk/route.lua -H 'X-HPP-Task: code' "${!url}/v1/route" >"$TMP/w.out" 2>&1
            read -r s1 e1 <<<"$(cpu "${!spid}" "${!epid}")"
            python3 - "$TMP/w.out" "$n" "$body" "$round" "$s0" "$s1" "$e0" "$e1" "$(cut -d' ' -f1 /proc/loadavg)" <<'EOF'
import json, sys
out, n, body, rnd, s0, s1, e0, e1, load = sys.argv[1:]
line = [l for l in open(out) if l.startswith("wrk-json: ")]
if not line:
    print(json.dumps({"build": n, "body": body, "round": int(rnd), "error": open(out).read()[-300:]}))
    sys.exit(0)
w = json.loads(line[0][len("wrk-json: "):])
req = max(w["requests"], 1)
print(json.dumps({"build": n, "body": body, "round": int(rnd), "rps": round(w["rps"]),
                  "non2xx": w.get("errors", {}).get("status", 0),
                  "sidecar_us": round((int(s1) - int(s0)) / req / 1000, 1),
                  "engine_us": round((int(e1) - int(e0)) / req / 1000, 1), "load": float(load)}))
EOF
        done
    done
done | tee "$TMP/runs.jsonl"
python3 - "$TMP/runs.jsonl" "$A" "$B" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if '"rps"' in l]
names = {"a": sys.argv[2], "b": sys.argv[3]}
print("\n| build | body | req/s (median) | sidecar CPU/req | engine CPU/req | runs | load |")
print("|---|---|---|---|---|---|---|")
for n in "ab":
    med = {}
    for body in ("1k", "32k"):
        r = [x for x in runs if x["build"] == n and x["body"] == body]
        if not r:
            continue
        m = lambda k: statistics.median(x[k] for x in r)
        med[body] = m("rps")
        runs_txt = ", ".join(format(x["rps"], ",") for x in r)
        load = f"{min(x['load'] for x in r)}-{max(x['load'] for x in r)}"
        print(f"| {names[n]} | {body} | {m('rps'):,.0f} | {m('sidecar_us')} us | "
              f"{m('engine_us')} us | {runs_txt} | {load} |")
    if "1k" in med and "32k" in med:
        print(f"| {names[n]} | 32k/1k | {100 * med['32k'] / med['1k']:.0f}% | | | | |")
EOF
