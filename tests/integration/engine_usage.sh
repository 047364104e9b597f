#!/usr/bin/env bash
# Usage records end to end: the real hpp-engine (127.0.0.1, ephemeral port)
# with --decision-log makes decisions for two key groups (default, and
# "partner" at x0.8 in the bundled policy), a gateway (pyzmq) reports the
# attempts made on them, with token counts, and `hpp-policy usage` joins
# the log's outcome lines to their decisions. The expected figures are
# computed here, independently, from the catalog's prices with exact
# decimals: the tool must show the reported tokens and the real cost at the
# endpoint's price with the group's multiplier. Stops what it started by PID.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
TOOL=$BUILD/hpp-policy
PY=/usr/bin/python3

source tests/integration/check_lib.bash
suite_setup

if ! "$PY" -c 'import zmq, msgpack' 2>/dev/null; then
    skip "usage records" "$PY has no pyzmq or msgpack (make deps)"
    suite_end
fi

log=$tmp/decisions.log
"$ENGINE" --listen tcp://127.0.0.1:0 --threads 2 --policy policies/default.policy \
    --catalog policies/catalog.json --decision-log "$log" 2>"$tmp/engine.err" &
pid=$!
pids+=("$pid")
ep=$(await_line "$tmp/engine.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "$pid" 250)
[ -n "$ep" ] || fail "engine starts" "$(tail -n 5 "$tmp/engine.err")"

# The gateway: four decisions (two per group, one of them refused: an
# unknown model), their attempts reported with `ack` (so they are applied
# before the engine stops), and one attempt naming no decision. Prints the
# expected summary as JSON.
"$PY" - "$ep" >"$tmp/expected.json" 2>"$tmp/gateway.err" <<'EOF'
import json, sys
from decimal import Decimal, ROUND_HALF_UP
import msgpack, zmq

ep = sys.argv[1]
cat = json.load(open("policies/catalog.json"))
models = {m["id"]: m for m in cat["data"]}

def price(model, provider):
    m = models[model]
    p = dict(m["pricing"])
    for e in m["endpoints"]:
        if e["provider"].lower() == provider.lower():
            p.update(e.get("pricing") or {})
    return p

def list_cost(model, provider, a):
    """pUSD at the endpoint's list price: per-1M USD price x 1e6 per token."""
    p = price(model, provider)
    cached = a.get("cached_tokens", 0)
    c = (Decimal(str(p["input"])) * (a["prompt_tokens"] - cached)
         + Decimal(str(p["cache_read"] or 0)) * cached
         + Decimal(str(p["output"])) * a["completion_tokens"]) * 10**6
    assert c == c.to_integral_value(), c
    return int(c)

s = zmq.Context.instance().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(ep)
rid = 0
def call(body):
    global rid
    rid += 1
    body = dict(body, v=1, id=rid)
    s.send_multipart([b"", msgpack.packb(body)])
    if not s.poll(10000):
        sys.exit("no reply to %r" % body)
    r = msgpack.unpackb(s.recv_multipart()[-1], raw=False)
    assert r.get("id") == rid, r
    return r

groups = {}
def group_row(g):
    return groups.setdefault(g, dict(requests=0, attempts=0, failed=0, prompt_tokens=0,
                                      completion_tokens=0, cost_pusd=0, estimate_pusd=0))
reqs = [
    ("partner", "openai/gpt-5", [(429, 0, 0, 0), (200, 1200, 345, 200)]),
    ("partner", "anthropic/claude-sonnet-4", [(200, 5000, 777, 0)]),
    ("default", "openai/gpt-4o-mini", [(200, 900, 100, 300)]),
    ("default", "openai/gpt-5", []),  # no outcome
]
mult = {"partner": Decimal("0.8"), "default": Decimal(1)}
for g, model, attempts in reqs:
    d = call({"op": "route", "model": model, "group": g, "prompt_tokens": 1000, "output_tokens": 500})
    assert d.get("model") == model, d
    row = group_row(g)
    row["requests"] += 1
    row["estimate_pusd"] += d["cost_pusd"]["total"]
    listc = 0
    report = []
    for st, pt, ct, cached in attempts:
        a = {"decision": d["decision_id"], "model": d["model"], "provider": d["provider"],
             "status": st, "latency_ms": 120.5}
        if pt:
            a.update(prompt_tokens=pt, completion_tokens=ct, cached_tokens=cached, cost_usd=0.5)
            listc += list_cost(d["model"], d["provider"], a)
        report.append(a)
        row["attempts"] += 1
        row["failed"] += st >= 300
        row["prompt_tokens"] += pt
        row["completion_tokens"] += ct
    if report:
        r = call({"op": "report", "ack": True, "attempts": report})
        assert r.get("attempts") == len(report), r
    row["cost_pusd"] += int((listc * mult[g]).to_integral_value(ROUND_HALF_UP))
r = call({"op": "route", "model": "no/such-model", "prompt_tokens": 10})
assert "error" in r or r.get("status") != "ok", r
r = call({"op": "report", "ack": True, "attempts": [
    {"model": "openai/gpt-5", "provider": "openai", "error": "timeout"}]})
assert r.get("attempts") == 1, r
print(json.dumps(groups, sort_keys=True))
EOF
check "gateway: decisions made and reports acknowledged" 0 "$?"
[ -s "$tmp/expected.json" ] || fail "gateway" "$(tail -n 5 "$tmp/gateway.err")"

# SIGTERM flushes every engine thread's pending lines.
kill -TERM "$pid"
wait "$pid"
check "engine stops cleanly" 0 "$?"
pids=()

check "log: an outcome line per attempt reported" 5 "$(grep -c '"type":"outcome"' "$log")"
check "log: decision lines typed, with the group multiplier" 2 \
    "$(grep '"type":"decision"' "$log" | grep -c '"multiplier_permille":800')"
out=$(grep '"type":"outcome"' "$log" | grep '"status":200' | grep -c '"prompt_tokens":1200,"completion_tokens":345,"cached_tokens":200,"cost_usd":[0-9.e-]*,"cost_pusd":[0-9]*,"provider_cost_usd":0.5')
check "log: an outcome carries tokens, the engine's cost and the provider's" 1 "$out"

"$TOOL" usage --log "$log" --format json --by group >"$tmp/usage.json" 2>"$tmp/usage.err"
check "hpp-policy usage exits 0" 0 "$?"
cmp=$("$PY" - "$tmp/expected.json" "$tmp/usage.json" <<'EOF'
import json, sys
want = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))
rows = {r["name"]: r for r in got["group"]}
bad = []
for g, w in want.items():
    r = rows.get(g)
    if not r:
        bad.append("no row %s" % g)
        continue
    for k, v in w.items():
        if r[k] != v:
            bad.append("%s.%s: %r, expected %r" % (g, k, r[k], v))
t = got["totals"]
for k, v in (("decisions", 5), ("refused", 1), ("outcomes", 5), ("unmatched_outcomes", 1),
             ("decisions_without_outcome", 1), ("bad_lines", 0)):
    if t[k] != v:
        bad.append("totals.%s: %r, expected %r" % (k, t[k], v))
print("; ".join(bad) or "ok")
EOF
)
check "usage: per-group tokens, real cost at catalog price x multiplier, estimates, counts" ok "$cmp"

# The partner's real cost must differ from list price: the multiplier is applied.
partner_list=$(grep '"type":"outcome"' "$log" | grep -E '"model":"(openai/gpt-5|anthropic/claude-sonnet-4)"' |
    sed -n 's/.*"cost_pusd":\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { printf "%.0f\n", s }')
partner_real=$("$PY" -c 'import json,sys; print([r for r in json.load(open(sys.argv[1]))["group"] if r["name"]=="partner"][0]["cost_pusd"])' "$tmp/usage.json")
check "usage: partner cost is 0.8 x the outcomes' list cost" \
    "$(( (partner_list * 8 + 5) / 10 ))" "$partner_real"

# A damaged log: bad lines are reported with their number and skipped.
{ head -n 2 "$log"; echo '{"type":"outcome","decision_id":"x"'; tail -n +3 "$log"; } >"$tmp/bad.log"
"$TOOL" usage --log "$tmp/bad.log" --by model >"$tmp/bad.out" 2>"$tmp/bad.err"
check "usage: a damaged log still exits 0" 0 "$?"
has_text "usage: the bad line's number is reported" "bad.log:3: bad line skipped" "$(cat "$tmp/bad.err")"
has_text "usage: text table by model" "openai/gpt-5" "$(cat "$tmp/bad.out")"
"$TOOL" usage --by nothing --log "$log" >/dev/null 2>&1
check "usage: a bad --by is a usage error" 2 "$?"
"$TOOL" usage >/dev/null 2>&1
check "usage: --log is required" 2 "$?"
no_san_report "engine and tool: no sanitizer report" "$tmp/engine.err" "$tmp/usage.err" "$tmp/bad.err"

suite_end
