#!/usr/bin/env bash
# bench/report.py, the generator of bench/RESULTS.md: records parsed from a
# wrk summary and from a load generator's JSON line, goals judged met or
# missed from the numbers, every command cited, bad input refused.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
R=bench/report.py
source tests/integration/check_lib.bash
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

has() { has_line "$@"; }

# A wrk run as bench/wrk/route.lua prints it.
wrk_out() { # file rps p50 p99 status_errors
    cat >"$1" <<EOF
Running 3s test @ http://127.0.0.1:1/v1/route
Requests/sec: $2
wrk-json: {"requests":$(($2 * 3)),"duration_us":3000000,"bytes":1000,"rps":$2,"errors":{"connect":0,"read":0,"write":0,"status":$5,"timeout":0},"latency_us":{"min":5,"max":9000,"mean":$3,"stdev":1,"p50":$3,"p75":$3,"p90":$3,"p99":$4,"p99.9":$4,"p99.99":$4},"cdf_us":[[50,$3],[99,$4],[100,9000]]}
EOF
}

d=$tmp/res
mkdir -p "$d"
for round in 1 2; do
    wrk_out "$tmp/sc.out" 30000 300 900 0
    python3 $R record "$d/peers.jsonl" --wrk "$tmp/sc.out" system=sidecar-route connections=32 \
        round=$round cmd="wrk -c32 sidecar"
    wrk_out "$tmp/pk.out" 600 40000 200000 0
    python3 $R record "$d/peers.jsonl" --wrk "$tmp/pk.out" system=portkey connections=32 \
        round=$round cmd="wrk -c32 portkey"
    wrk_out "$tmp/px.out" 5000 150 400 0
    python3 $R record "$d/sidecar_proxy.jsonl" --wrk "$tmp/px.out" system=sidecar-proxy \
        round=$round cmd="wrk -c1 proxy"
    wrk_out "$tmp/up.out" 20000 40 100 0
    python3 $R record "$d/sidecar_proxy.jsonl" --wrk "$tmp/up.out" system=upstream-direct \
        round=$round cmd="wrk -c1 direct"
    wrk_out "$tmp/ng.out" 9000 90 300 0
    python3 $R record "$d/sidecar_proxy.jsonl" --wrk "$tmp/ng.out" system=nginx-proxy \
        round=$round cmd="wrk -c1 nginx proxy"
done
# Cost per request: CPU time and context switches of named processes between
# two snapshots. A spinning process must show CPU time, a sleeping one none,
# and a process that does not exist is left out.
bash -c 'end=$((SECONDS + 10)); while [ $SECONDS -lt $end ]; do :; done' &
busy=$!
sleep 30 &
idle=$!
python3 $R procsnap "$tmp/a.json" sidecar=$busy engine=$idle upstream=999999999
sleep 0.3
python3 $R procsnap "$tmp/b.json" sidecar=$busy engine=$idle upstream=999999999
kill "$busy" "$idle" 2>/dev/null
wait "$busy" "$idle" 2>/dev/null
wrk_out "$tmp/cost.out" 100 150 400 0
python3 $R record "$tmp/cost.jsonl" --wrk "$tmp/cost.out" system=sidecar-proxy round=9 \
    --cost "$tmp/a.json" "$tmp/b.json" cmd=x
costs=$(python3 -c 'import json,sys; c = json.loads(open(sys.argv[1]).readline())["cost"]
print(c["sidecar"]["cpu_us"] > 100, c["engine"]["cpu_us"] == 0, "upstream" in c)' \
    "$tmp/cost.jsonl")
check "procsnap + record --cost: busy, idle, gone" "True True False" "$costs"
cat "$tmp/cost.jsonl" >>"$d/sidecar_proxy.jsonl"

first=$(head -n 1 "$d/peers.jsonl")
case $first in *'"system":"sidecar-route","connections":32,"round":1'*) ok "record keeps fields, numbers as numbers" ;;
*) fail "record keeps fields" "$first" ;; esac
case $first in *'"failed":0'*) ok "record sums the wrk errors into failed" ;; *) fail "failed count" "$first" ;; esac

# A load generator's last JSON line wins over earlier output.
printf 'warming up\n{"rps": 1}\n{"p50_ns": 800, "p99_ns": 7000, "allocs_per_decision": 0, "models": 3000}\n' \
    >"$tmp/resolve.out"
python3 $R record "$d/resolve.jsonl" --json "$tmp/resolve.out" catalog=litellm cmd="bench_resolve x"
case $(cat "$d/resolve.jsonl") in *'"p99_ns":7000'*'"catalog":"litellm"'*) ok "record --json takes the last object" ;;
*) fail "record --json" "$(cat "$d/resolve.jsonl")" ;; esac

# The ZeroMQ echo round trip of scenario 0, quoted beside the proxy goal.
printf '{"rps": 7000, "p50_us": 125, "p99_us": 300}\n' >"$tmp/echo.out"
python3 $R record "$d/floor_echo.jsonl" --json "$tmp/echo.out" mode=closed depth=1 cmd=echo

check "goals: components that missed one" "resolve sidecar" "$(python3 $R goals "$d")"

python3 $R render "$d" --markdown "$tmp/RESULTS.md" --no-plots
check "render exits 0" 0 $?
md=$tmp/RESULTS.md
has "30x goal met with the ratio" "| 50.0x (30,000 vs 600 req/s) | met |" "$md"
has "p99 goal met as a fraction" "| 1/222.2 (900 us vs 200.0 ms) | met |" "$md"
has "proxy overhead goal missed, nginx's hop beside it" \
    "| +110 us (150 us vs 40 us) (nginx as a plain reverse proxy, no decision, on this machine: +50 us; a ZeroMQ round trip, no decision: 125 us p50) | **missed** |" "$md"
has "resolver p99 missed" "| 7,000 ns | **missed** |" "$md"
has "resolver p50 met" "| 800 ns | met |" "$md"
has "unmeasured goals are said so" "| not measured | not measured |" "$md"
has "commands are cited" "[1] wrk -c32 sidecar" "$md"
has "second command cited" "[2] wrk -c32 portkey" "$md"
has "skipped scenarios are listed" "| 2. engine over ZMQ | not run |" "$md"
has "csv written" "system,connections,round" "$d/peers.csv"
if grep -qE '^\| sidecar-proxy \| 9 \| [0-9.]+ us, [0-9.]+ \| - \| - \| [0-9.]+ us \|$' "$md"; then
    ok "cost per request rendered"
else
    fail "cost per request rendered" "$(grep -F '| 9 |' "$md")"
fi

# Engine goal points measured three times: the verdict is the median's, and
# every run is listed; the other points are single runs.
e=$tmp/eng
mkdir -p "$e"
for run in 1 2 3; do
    rps=$((run == 1 ? 200000 : run == 2 ? 320000 : 310000))
    p99=$((run == 1 ? 900 : run == 2 ? 150 : 180))
    printf '{"rps": %d, "p50_us": 900, "p99_us": 2000}\n' "$rps" >"$tmp/c.out"
    python3 $R record "$e/engine_closed.jsonl" --json "$tmp/c.out" depth=1024 round=$run cmd=c$run
    printf '{"rps": 20000, "p50_us": 100, "p99_us": %d, "p999_us": 1000, "max_us": 2000, "failed": 0}\n' \
        "$p99" >"$tmp/o.out"
    python3 $R record "$e/engine_open.jsonl" --json "$tmp/o.out" rate=20000 round=$run cmd=o$run
done
printf '{"rps": 330000, "p50_us": 500, "p99_us": 900}\n' >"$tmp/c.out"
python3 $R record "$e/engine_closed.jsonl" --json "$tmp/c.out" depth=256 round=1 cmd=c256
python3 $R render "$e" --markdown "$tmp/ENG.md" --no-plots
has "pipelined goal: the best depth by median, every run listed" \
    "| 330,000/s at depth 256 | met |" "$tmp/ENG.md"
grep -v '"depth":256' "$e/engine_closed.jsonl" >"$tmp/c.jsonl" && mv "$tmp/c.jsonl" "$e/engine_closed.jsonl"
python3 $R render "$e" --markdown "$tmp/ENG.md" --no-plots
has "pipelined goal met by the median of three" \
    "| 310,000/s at depth 1024 (median of 3 runs: 200,000, 320,000, 310,000) | met |" "$tmp/ENG.md"
has "open-loop goal met by the median p99, one bad run listed" \
    "| 180 us (median of 3 runs: 900 us, 150 us, 180 us) | met |" "$tmp/ENG.md"
has "each run is a row" "| hpp-engine | 20,000 | 2 | 20,000 | 100 us | 150 us |" "$tmp/ENG.md"

# Idle states held for the run (run.sh "Idle states"): the verdicts use the
# held runs; the runs with the machine's own setting are quoted beside them and
# listed as rows of their own, and the wake-up table shows both meter runs.
i=$tmp/idle
cp -r "$e" "$i"
python3 $R record "$i/idle.jsonl" held=1 us=0 cmd="cpu_latency --us 0 COMMAND"
sed -i 's/}$/,"idle":"held"}/' "$i/engine_open.jsonl"
printf '{"rps": 20000, "p50_us": 160, "p99_us": 2500, "p999_us": 5000, "max_us": 9000, "failed": 0}\n' \
    >"$tmp/o.out"
python3 $R record "$i/engine_open.jsonl" --json "$tmp/o.out" rate=20000 round=1 cmd=own idle=default
for idle in default held; do
    p=$([ $idle = held ] && echo 3 || echo 50)
    printf '{"overall": {}, "wake": {"cross_cpu": {"cpus": [0, 1], "p50_us": %d, "p99_us": %d, "p999_us": 1, "max_us": 1, "count": 9}}}\n' \
        "$p" "$((p * 3))" >"$tmp/h.out"
    python3 $R record "$i/floor_hiccup.jsonl" --json "$tmp/h.out" cmd="hiccup $idle" idle=$idle
done
python3 $R render "$i" --markdown "$tmp/IDLE.md" --no-plots
has "open-loop verdict from the held runs, the machine's own quoted" \
    "| 180 us (median of 3 runs: 900 us, 150 us, 180 us) (cross-CPU wake-up p99 9 us); idle states left to the machine: 2500 us | met |" \
    "$tmp/IDLE.md"
has "the machine's own run is a row of its own" \
    "| hpp-engine, machine's own idle states | 20,000 | 1 | 20,000 | 160 us | 2500 us |" "$tmp/IDLE.md"
has "wake-ups both ways" "| cross-CPU | machine's own | cpu0 <-> cpu1 | 50 us | 150 us |" "$tmp/IDLE.md"
has "wake-ups both ways (held)" "| cross-CPU | held at 0 us | cpu0 <-> cpu1 | 3 us | 9 us |" "$tmp/IDLE.md"
has "machine table says how" "| idle states | exit latency held at 0 us" "$tmp/IDLE.md"
has "a run before the mark existed says so" "| idle states | left to the machine (not recorded" \
    "$tmp/ENG.md"
# A run that could not hold them (not root) says why, and judges what it has.
n=$tmp/nohold
cp -r "$e" "$n"
python3 $R record "$n/idle.jsonl" held=0 us=0 \
    reason="cpu_latency: /dev/cpu_dma_latency: Permission denied" idle=default
python3 $R render "$n" --markdown "$tmp/NOHOLD.md" --no-plots
has "not held: the reason" \
    "| idle states | left to the machine (cpu_latency: /dev/cpu_dma_latency: Permission denied) |" \
    "$tmp/NOHOLD.md"
has "not held: the goals judged on the runs there are" \
    "| 180 us (median of 3 runs: 900 us, 150 us, 180 us) | met |" "$tmp/NOHOLD.md"

# The phases of a proxied request, read from a sidecar's /metrics before and
# after a run (here a static file served on an ephemeral loopback port).
mkdir -p "$tmp/www"
metrics_at() { # engine_sum engine_count upstream_sum upstream_count
    printf '# TYPE hpp_sidecar_engine_duration_seconds histogram\nhpp_sidecar_engine_duration_seconds_bucket{le="+Inf"} %s\nhpp_sidecar_engine_duration_seconds_sum %s\nhpp_sidecar_engine_duration_seconds_count %s\nhpp_sidecar_upstream_duration_seconds_sum %s\nhpp_sidecar_upstream_duration_seconds_count %s\n' \
        "$2" "$1" "$2" "$3" "$4" >"$tmp/www/metrics"
}
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$tmp/www" >"$tmp/www.log" 2>&1 &
www=$!
wport=$(await_line "$tmp/www.log" 's/^Serving HTTP on 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$www")
metrics_at 0.5 10 1.0 10
python3 $R scrape "$tmp/pa.json" "http://127.0.0.1:$wport/metrics"
check "scrape: exits 0" 0 $?
metrics_at 0.54 1010 1.03 1010 # 1000 requests: 40 us engine, 30 us upstream on average
python3 $R scrape "$tmp/pb.json" "http://127.0.0.1:$wport/metrics"
kill "$www"
wait "$www" 2>/dev/null
wrk_out "$tmp/ph.out" 5000 150 400 0
python3 $R record "$tmp/ph.jsonl" --wrk "$tmp/ph.out" system=sidecar-proxy round=1 cmd=x \
    --phases "$tmp/pa.json" "$tmp/pb.json"
check "record --phases: mean engine and upstream us" "40 30" "$(python3 -c 'import json,sys
p = json.loads(open(sys.argv[1]).readline())["phases"]
print(round(p["engine_us"]), round(p["upstream_us"]))' "$tmp/ph.jsonl")"
mkdir -p "$tmp/ph"
cp "$tmp/ph.jsonl" "$tmp/ph/sidecar_proxy.jsonl"
python3 $R render "$tmp/ph" --markdown "$tmp/PH.md" --no-plots
has "phases rendered: mean, engine, upstream, rest" "| sidecar-proxy | 1 | 150 us | 40 us | 30 us | 80 us |" \
    "$tmp/PH.md"
python3 $R scrape "$tmp/pc.json" "http://127.0.0.1:$wport/metrics" 2>"$tmp/err"
rc=$?
if [ "$rc" -ne 0 ] && grep -q "report.py scrape: http://127.0.0.1:$wport/metrics" "$tmp/err"; then
    ok "scrape: a server that is gone is an error with the URL"
else
    fail "scrape: a server that is gone" "rc=$rc $(cat "$tmp/err")"
fi

# Scenario 8, several engines: the C client's runs and its kill run, a kill
# through the sidecar that failed requests (the goal is missed), the parts
# that could not run with their reasons, and CURVE against NULL (medians).
mu=$tmp/multi
mkdir -p "$mu"
for n in 1 2 3; do
    printf '{"tool": "bench_client", "engines": %d, "rps": %d, "p50_us": 80, "p99_us": 200, "failed": 0, "resent": 0}\n' \
        "$n" $((40000 - n * 1000)) >"$tmp/m.out"
    python3 $R record "$mu/multi.jsonl" --json "$tmp/m.out" part=client engines=$n cmd="client $n"
done
printf '{"tool": "bench_client", "engines": 3, "requests": 190000, "rps": 30000, "failed": 0, "resent": 2, "max_us": 101000, "killed_at_s": 3.0, "recovery_ms": 99.4}\n' \
    >"$tmp/m.out"
python3 $R record "$mu/multi.jsonl" --json "$tmp/m.out" part=client-kill engines=3 cmd="client kill"
python3 $R record "$mu/multi.jsonl" part=sidecar ran=0 reason="not run: the sidecar takes one --engine"
python3 $R record "$mu/multi.jsonl" part=link ran=0 reason="not run: hpp-engine has no --curve-secret"
python3 $R record "$mu/status.jsonl" scenario=multi status=partial reason="measured: client"
python3 $R render "$mu" --markdown "$tmp/MULTI.md" --no-plots
has "multi: scenario listed with its status" "| 8. several engines, CURVE | partial | measured: client |" \
    "$tmp/MULTI.md"
has "multi: one row per engine count" "| C client | 2 | 38,000 | 80 us | 200 us | 0 | 0 | [2] |" \
    "$tmp/MULTI.md"
has "multi: the kill row with its recovery" "| C client | 3 | 3 s | 190,000 | 0 | 2 | 101.0 ms | 99 ms | [4] |" \
    "$tmp/MULTI.md"
has "multi: kill goal met" \
    "| one engine of three killed under load: no failed request, through the C client | many engines | 0 failed of 190,000, back to normal 99 ms after the kill | met |" \
    "$tmp/MULTI.md"
has "multi: a part not run says why" "- sidecar: not run: the sidecar takes one --engine" "$tmp/MULTI.md"
if grep -q '| sidecar /v1/route' "$tmp/MULTI.md"; then
    fail "multi: no row for a part that did not run" "$(grep '| sidecar /v1/route' "$tmp/MULTI.md")"
else
    ok "multi: no row for a part that did not run"
fi
# A kill through the sidecar that lost requests misses the goal; CURVE vs NULL.
wrk_out "$tmp/sk.out" 20000 300 5000 7
python3 $R record "$mu/multi.jsonl" --wrk "$tmp/sk.out" part=sidecar-kill engines=3 connections=32 \
    killed_at_s=3 cmd="wrk kill"
for round in 1 2 3; do
    for mode in null curve; do
        if [ $mode = null ]; then
            rps=$((400000 + round * 1000)) p99=150 curve=false
        else
            rps=$((300000 + round * 1000)) p99=180 curve=true
        fi
        printf '{"rps": %d, "p50_us": 100, "p99_us": %d, "failed": 0, "curve": %s}\n' "$rps" \
            "$p99" "$curve" >"$tmp/l.out"
        python3 $R record "$mu/multi.jsonl" --json "$tmp/l.out" part=link mode=$mode test=closed \
            round=$round cmd="link $mode $round"
    done
done
python3 $R render "$mu" --markdown "$tmp/MULTI.md" --no-plots
has "multi: a kill that failed requests misses the goal" \
    "| one engine of three killed under load: no failed request, through the sidecar (wrk) | many engines | 7 failed of 60,000 | **missed** |" \
    "$tmp/MULTI.md"
has "multi: CURVE row, median of its runs" "| closed loop, depth 64 | CURVE | 3 | 302,000 | 100 us | 180 us | 0 |" \
    "$tmp/MULTI.md"
has "multi: CURVE against NULL in one line" "CURVE keeps 75% of the pipelined decisions/s." "$tmp/MULTI.md"
check "goals: a kill that failed requests names the multi component" "multi" "$(python3 $R goals "$mu")"
# --with: scenario 8 from a run of it alone, named in the report.
python3 $R render "$e" --markdown "$tmp/WITH.md" --no-plots --with "$mu"
has "--with: the section is there" "| C client | 3 | 3 s | 190,000 |" "$tmp/WITH.md"
has "--with: and says where it comes from" "Measured in a run of this scenario alone: [$mu]" "$tmp/WITH.md"
has "--with: its status" "| 8. several engines, CURVE | partial | measured: client |" "$tmp/WITH.md"
has "--with: the regenerating command names it" "--markdown $tmp/WITH.md --with $mu\`" "$tmp/WITH.md"
python3 $R render "$e" --markdown "$tmp/NOWITH.md" --no-plots
has "without --with: not measured" "| 8. several engines, CURVE | not run |" "$tmp/NOWITH.md"

# Bad input: exit non-zero with a message, never a traceback.
printf 'no summary here\n' >"$tmp/bad.out"
python3 $R record "$d/x.jsonl" --wrk "$tmp/bad.out" 2>"$tmp/err"
rc=$?
if [ "$rc" -ne 0 ] && grep -q "no 'wrk-json:' line" "$tmp/err"; then ok "wrk output without summary refused"; else fail "wrk output without summary refused" "rc=$rc $(cat "$tmp/err")"; fi
python3 $R record "$d/x.jsonl" notakeyvalue 2>"$tmp/err"
rc=$?
if [ "$rc" -ne 0 ] && grep -q "expected key=value" "$tmp/err"; then ok "bad field refused"; else fail "bad field refused" "rc=$rc"; fi
python3 $R bogus 2>"$tmp/err"
check "unknown command exits 2" 2 $?
if grep -q Traceback "$tmp/err"; then fail "no traceback"; else ok "no traceback"; fi

suite_end
