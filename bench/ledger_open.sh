#!/usr/bin/env bash
# bench/ledger_open.sh - the ledger's cost at a fixed request rate: one engine
# without a ledger and one with `--ledger sqlite:` (routes carry a key whose
# account holds $1,000,000), loaded open loop by bench_engine in turns, so
# both see the same machine. Prints one JSON line per run, then the medians.
#
#   bench/ledger_open.sh [--rate PER_S] [--seconds S] [--repeats N]
#
# Loopback only; each engine is stopped by PID when the script ends.
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${HPP_BUILD:-build}
rate=20000 seconds=5 repeats=3
while [ $# -gt 0 ]; do
    case "$1" in
    --rate) rate=${2:?}; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    --repeats) repeats=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ledger_open.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
for b in hpp-engine hpp-ledger bench/bench_engine; do
    [ -x "$BUILD/$b" ] || { echo "ledger_open.sh: $BUILD/$b is missing: make first" >&2; exit 2; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

hash="sha256:$(printf %s sk-bench-ledger | sha256sum | cut -d' ' -f1)"
(umask 077 && echo "$hash group=default account=bench free_daily_requests_funded=1000000000" >"$tmp/keys")

# Starts an engine with the given flags, its stderr in LOG; sets $ep once it
# prints its readiness line.
start_engine() {
    local log=$1
    shift
    "$BUILD/hpp-engine" --listen tcp://127.0.0.1:0 "$@" >/dev/null 2>"$log" &
    pids+=($!)
    local i
    for ((i = 0; i < 400; i++)); do
        ep=$(sed -n 's/.*ready on \(tcp:[^ ]*\).*/\1/p' "$log" | head -1)
        [ -n "$ep" ] && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.025 # polling the readiness line
    done
    echo "ledger_open.sh: the engine did not start: $(tail -3 "$log")" >&2
    return 1
}

start_engine "$tmp/plain.log" || exit 1
plain=$ep
start_engine "$tmp/ledger.log" --keys "$tmp/keys" --ledger "sqlite:$tmp/ledger.db" || exit 1
ledger=$ep
"$BUILD/hpp-ledger" topup --engine "$ledger" --account bench --usd 1000000 >/dev/null || exit 1

for ((r = 1; r <= repeats; r++)); do
    for kind in plain ledger; do
        ep=$plain args=()
        [ "$kind" = ledger ] && ep=$ledger args=(--key "$hash")
        line=$("$BUILD/bench/bench_engine" --endpoint "$ep" --mode open --rate "$rate" \
            --seconds "$seconds" --warmup 1 --json "${args[@]}")
        echo "{\"run\":$r,\"engine\":\"$kind\",\"result\":$line}"
    done
done | tee "$tmp/runs.jsonl"

python3 - "$tmp/runs.jsonl" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(kind, key):
    return statistics.median(r["result"][key + "_us"] for r in runs if r["engine"] == kind)
for key in ("p50", "p99"):
    a, b = med("plain", key), med("ledger", key)
    print(f"median {key}: without ledger {a:.1f} us, with ledger {b:.1f} us, ratio {b / a:.2f}")
EOF
