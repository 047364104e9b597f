#!/usr/bin/env bash
# bench/ledger_open.sh - the ledger's cost at a fixed request rate: one engine
# without a ledger and one with `--ledger sqlite:` (routes carry a key whose
# account holds $1,000,000), loaded open loop by bench_engine in turns, so
# both see the same machine: short runs, many of them, in the order BA AB BA...
# so that a drift of the machine's noise falls on both. Prints one JSON line
# per run, then the medians, each engine's quiet turns (the 10th percentile
# of its per-turn p99) and the verdict of the goal (p99 with the ledger
# within 1.25x of without).
#
#   bench/ledger_open.sh [--rate PER_S] [--seconds S] [--repeats N] [--hold S]
#                        [--gap S] [--door direct|router] [--control]
#                        [--also NAME=ENGINE]...
#
# --control: a third engine, also without the ledger, in the same turns
# (order rotated). Its ratio to the first is what the machine's noise alone
# gives two identical engines: the resolution of the verdict.
#
# --also NAME=ENGINE: one more engine with the ledger, the binary ENGINE (a
# build of a change, say), in the same turns, reported as NAME with its
# ratio and its per-round median. Builds compared in one run see the same
# machine; compared across runs, an hour's noise (0.86x-1.53x for two
# identical engines) hides a 10% change (bench/RESULTS.md, "The journal's
# bytes set the tail"). Repeat it for several.
#
# --door: which of the engine's doors the load goes through: its direct
# listener (default; the network thread reads, decides and writes) or its
# ROUTER (libzmq's I/O thread hands each request over and back).
#
# --hold: the ledger's reservation hold (default 1 s). The routes are never
# reported, so every reservation ends by expiry: at 1 s the ledger run is a
# steady state in which a reservation expires for each one made, inside the
# run itself. A longer hold moves that work out of the run (at 10 s, into the
# next run, often the one without the ledger, where it made the ratio look
# better and noisier), and at the default 300 s more than 52 s of load passes
# the store's 1,048,576 reservations in flight (later runs refused).
#
# --gap: seconds of rest after each turn of the ledger engine (default: the
# hold + 2). Its work does not stop with its load: the reservations of the
# turn expire for one hold after it, and the writer commits, syncs and
# checkpoints them. Without the rest that work falls in the next turn: the
# other engine's, which makes the ratio look better, or, as the order
# rotates, the ledger engine's own next one, which makes it look worse
# (bench/RESULTS.md, "The 20k/s tail with the turns kept apart").
#
# Loopback only; each engine is stopped by PID when the script ends.
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${HPP_BUILD:-build}
rate=20000 seconds=2 repeats=15 hold=1 door=direct control=0 gap=
also=() # NAME=ENGINE of each --also
while [ $# -gt 0 ]; do
    case "$1" in
    --rate | --seconds | --repeats | --hold | --gap | --door | --also)
        [ -n "${2:-}" ] || { echo "ledger_open.sh: $1: a value is missing" >&2; exit 2; }
        ;;& # then the flag's own case
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --gap) gap=$2; shift 2 ;;
    --door) door=$2; shift 2 ;;
    --also) also+=("$2"); shift 2 ;;
    --control) control=1; shift ;;
    -h | --help) sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ledger_open.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
# need FLAG VALUE PATTERN WHAT: exits 2 naming the flag unless VALUE is WHAT.
need() {
    # shellcheck disable=SC2254 # the pattern is the caller's, on purpose
    case "$2" in '' | $3) echo "ledger_open.sh: $1: expected $4, got '$2'" >&2; exit 2 ;; esac
}
need --rate "$rate" '*[!0-9]*' "a whole number of requests a second"
need --seconds "$seconds" '*[!0-9.]*' "seconds"
need --repeats "$repeats" '*[!0-9]*' "a whole number"
need --hold "$hold" '*[!0-9]*' "whole seconds"
gap=${gap:-$((hold + 2))}
need --gap "$gap" '*[!0-9.]*' "seconds"
case "$door" in direct | router) ;; *) echo "ledger_open.sh: --door: expected direct or router, got '$door'" >&2; exit 2 ;; esac
for b in hpp-engine hpp-ledger bench/bench_engine; do
    [ -x "$BUILD/$b" ] || { echo "ledger_open.sh: $BUILD/$b is missing: make first" >&2; exit 2; }
done
for a in "${also[@]}"; do
    name=${a%%=*}
    [ "$name" = "$a" ] && name= # no '='
    case "$name" in '' | *[!a-z0-9_]* | plain | ledger | control)
        echo "ledger_open.sh: --also: expected NAME=ENGINE, NAME of a-z 0-9 _ other than plain, ledger, control; got '$a'" >&2; exit 2 ;;
    esac
    [ -x "${a#*=}" ] || { echo "ledger_open.sh: --also $name: '${a#*=}' is not an executable" >&2; exit 2; }
    # Its state file is named after it: two engines on one file would write over each other.
    case " ${seen:-} " in *" $name "*) echo "ledger_open.sh: --also $name: given twice" >&2; exit 2 ;; esac
    seen="${seen:-} $name"
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

# Starts an engine with the given flags, its stderr in LOG; sets $ep (its
# ROUTER) and $load_ep (the door the load goes through) once it prints its
# readiness line.
start_engine() {
    local log=$1 bin=${ENGINE_BIN:-$BUILD/hpp-engine}
    shift
    "$bin" --listen tcp://127.0.0.1:0 --direct tcp://127.0.0.1:0 "$@" \
        >/dev/null 2>"$log" &
    pids+=($!)
    local i
    for ((i = 0; i < 400; i++)); do
        ep=$(sed -n 's/.*ready on \(tcp:[^ ]*\).*/\1/p' "$log" | head -1)
        load_ep=$ep
        [ "$door" = direct ] && load_ep=$(sed -n 's/^hpp-engine: direct on //p' "$log" | head -1)
        [ -n "$ep" ] && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.025 # polling the readiness line
    done
    echo "ledger_open.sh: the engine did not start: $(tail -3 "$log")" >&2
    return 1
}

start_engine "$tmp/plain.log" || exit 1
plain=$load_ep
kinds="plain ledger"
if [ "$control" = 1 ]; then
    start_engine "$tmp/control.log" || exit 1
    control_ep=$load_ep
    kinds="plain ledger control"
fi
start_engine "$tmp/ledger.log" --keys "$tmp/keys" --ledger "sqlite:$tmp/ledger.db" \
    --ledger-hold "$hold" || exit 1
ledger=$load_ep
"$BUILD/hpp-ledger" topup --engine "$ep" --account bench --usd 1000000 >/dev/null || exit 1
declare -A also_ep # each --also engine's door, by name
for a in "${also[@]}"; do
    name=${a%%=*}
    ENGINE_BIN=${a#*=} start_engine "$tmp/$name.log" --keys "$tmp/keys" \
        --ledger "sqlite:$tmp/$name.db" --ledger-hold "$hold" || exit 1
    also_ep[$name]=$load_ep
    "$BUILD/hpp-ledger" topup --engine "$ep" --account bench --usd 1000000 >/dev/null || exit 1
    kinds="$kinds $name"
done
echo "door: $door (without the ledger $plain, with it $ledger)"

for ((r = 1; r <= repeats; r++)); do
    # Rotated each round: BA AB BA ... (BCA CAB ABC ... with --control)
    read -ra k <<<"$kinds"
    n=${#k[@]} order=()
    for ((j = 0; j < n; j++)); do order+=("${k[$(((j + r) % n))]}"); done
    for kind in "${order[@]}"; do
        ep=$plain args=()
        [ "$kind" = ledger ] && ep=$ledger args=(--key "$hash")
        [ "$kind" = control ] && ep=$control_ep
        [ -n "${also_ep[$kind]:-}" ] && ep=${also_ep[$kind]} args=(--key "$hash")
        line=$("$BUILD/bench/bench_engine" --endpoint "$ep" --mode open --rate "$rate" \
            --seconds "$seconds" --warmup 0.5 --json "${args[@]}")
        echo "{\"run\":$r,\"engine\":\"$kind\",\"result\":$line}"
        [ "${args[*]}" ] && sleep "$gap" # after a ledger's turn: the rest described under --gap
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
rounds = {}
for r in runs:
    rounds.setdefault(r["run"], {})[r["engine"]] = r["result"]["p99_us"]
def per_round(kind):  # the median over rounds of KIND's p99 over the same round's without the ledger
    return statistics.median(v[kind] / v["plain"] for v in rounds.values())
print(f"per-round median of the p99 ratio: {per_round('ledger'):.2f}")
def quiet(kind):  # the 10th percentile of KIND's per-turn p99: its quiet turns
    v = sorted(r["result"]["p99_us"] for r in runs if r["engine"] == kind)
    return v[(len(v) - 1) // 10]
# The machine's stalls set the median turn's p99 (the plain engine's moved
# 78-104 us between runs, its quiet turns' 68-79 us): the quiet turns show
# what an engine adds with less of that noise (bench/RESULTS.md, "The
# ledger's tail taken apart"). Shown beside the verdict, not instead of it.
for kind in ["ledger"] + sorted({r["engine"] for r in runs} - {"plain", "ledger"}):
    print(f"quiet turns' p99 (10th percentile): {kind} {quiet(kind):.1f} us,"
          f" without ledger {quiet('plain'):.1f} us ({quiet(kind) - quiet('plain'):+.1f} us)")
for name in sorted({r["engine"] for r in runs} - {"plain", "ledger", "control"}):
    print(f"{name} (--also): median p99 {med(name, 'p99'):.1f} us,"
          f" ratio {med(name, 'p99') / med('plain', 'p99'):.2f}, per-round median {per_round(name):.2f}")
if any(r["engine"] == "control" for r in runs):
    c = med("control", "p99")
    print(f"control (a second engine without the ledger): median p99 {c:.1f} us,"
          f" ratio {c / med('plain', 'p99'):.2f} (the machine's noise alone)")
errors = sum(r["result"]["errors"] + r["result"]["failed"] for r in runs)
print(f"errors: {errors} (a run with errors measures refusals, not the ledger)")
ratio = med("ledger", "p99") / med("plain", "p99")
print(f"goal (p99 with the ledger within 1.25x of without): {'met' if ratio <= 1.25 else 'missed'}"
      f" ({ratio:.2f}x, median of {len(runs) // len({r['engine'] for r in runs})} runs each)")
EOF
