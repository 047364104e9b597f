#!/usr/bin/env bash
# hpp-sidecar end to end: starts the real hpp-engine, hpp-sidecar (decision-only
# and proxy mode, plus instances pointed at a dead or stopped engine) and the
# upstream stand-in tests/integration/upstream_stub.py, all on 127.0.0.1
# ephemeral ports; waits on each readiness line; drives them with curl, with
# the official `openai` npm package (installed here into
# tests/integration/node_modules). Gateways in front of it (nginx, Caddy) are
# sidecar_gateways.sh's. Stops what it started by PID.
# Ends with "N passed, N failed, N skipped" (a client that is missing is skipped).
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
STUB=tests/integration/upstream_stub.py
names=()

source tests/integration/check_lib.bash
suite_setup
has() { has_text "$@"; }
# Stops every process still running with SIGTERM and checks that our servers
# exit 0, and under `make asan` without a sanitizer report (the leak check).
finish() {
    stop_started stub
    suite_end
}

# start NAME REGEX CMD...: runs CMD in the background, stderr to $tmp/NAME.err,
# and waits (bounded) for its readiness line; sets $ready to REGEX's group 1
# and $pid to the process id.
# The engines run the bundled policy with cooldowns out of reach: these tests
# script upstreams to fail again and again to check the proxy's own retries,
# and the sidecar's reports would otherwise rest those endpoints (that loop
# is tested in sidecar_forwarding.sh and tests/integration/test_report.c).
NOCOOL=$tmp/nocool.policy
{ cat policies/default.policy; echo 'settings { cooldown_fails 1000 }'; } >"$NOCOOL"
start_engine() { # NAME -> $ready = endpoint
    start "$1" '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 \
        --policy "$NOCOOL"
}
start_sidecar() { # NAME ARGS... -> $ready = port
    local name=$1
    shift
    start "$name" '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" --listen 127.0.0.1:0 "$@"
}

# req METHOD PORT PATH [BODY [curl args...]]: status on stdout; headers in
# $tmp/h, body in $tmp/b.
req() {
    local m=$1 p=$2 path=$3 body=${4-}
    shift 3
    [ $# -gt 0 ] && shift
    local data=()
    [ -n "$body" ] && data=(--data-binary "$body")
    curl -s -m 10 -X "$m" -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "${data[@]}" "$@" \
        "http://127.0.0.1:$p$path"
}
hdr() { grep -i "^$1:" "$tmp/h" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }
body() { cat "$tmp/b"; }
# msum PREFIX: the sum of the Prometheus samples in $tmp/b whose series starts with PREFIX.
msum() {
    python3 -c 'import sys
print(round(sum(float(l.rsplit(" ", 1)[1]) for l in open(sys.argv[2]) if l.startswith(sys.argv[1]))))' \
        "$1" "$tmp/b"
}
# jget EXPR [FILE]: evaluates a Python expression on the JSON `j` of FILE ($tmp/b).
jget() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[2])); v=eval(sys.argv[1]); print(json.dumps(v) if isinstance(v,(dict,list)) else v)' \
        "$1" "${2:-$tmp/b}" 2>&1
}
# Checks the OpenAI error shape and the code.
error_shape() { # name status want_status want_code
    check "$1: status" "$3" "$2"
    check "$1: error.code" "$4" "$(jget 'j["error"]["code"]')"
    check "$1: error has message and type" "True" \
        "$(jget 'bool(j["error"]["message"]) and j["error"]["type"] in ("invalid_request_error","permission_error","server_error")')"
}
# raw PORT BYTES: sends BYTES (Python string escapes: \r\n, \x01) on one
# loopback TCP connection, reads until the sidecar closes it (2 s at most)
# and prints "STATUS RESPONSES CLOSED DECIDED CODE": the first status, how
# many HTTP responses came, closed/open, decided when any response carried
# X-HPP-Router-Resolved-Model (else -), and the first body's error.code (-
# when it is not an OpenAI-style JSON error).
raw() {
    python3 - "$1" "$2" <<'EOF2'
import json, re, socket, sys, time
data = sys.argv[2].encode().decode("unicode_escape").encode("latin-1")
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(data)
out, closed, end = b"", False, time.monotonic() + 2
try:
    while time.monotonic() < end:
        b = s.recv(65536)
        if not b:
            closed = True
            break
        out += b
except OSError:  # a timeout, or a reset after a close with unread bytes
    closed = not isinstance(sys.exc_info()[1], socket.timeout)
statuses = re.findall(rb"HTTP/1\.[01] (\d{3}) ", out)
head, _, rest = out.partition(b"\r\n\r\n")
m = re.search(rb"(?im)^content-length: *(\d+)", head)
try:
    code = json.loads(rest[: int(m.group(1))] if m else rest)["error"]["code"]  # HTTP/1.0: no length
except Exception:
    code = "-"
print(statuses[0].decode() if statuses else "none", len(statuses), "closed" if closed else "open",
      "decided" if b"x-hpp-router-resolved-model" in out.lower() else "-", code)
EOF2
}
stub_ctl() { curl -s -m 5 "http://127.0.0.1:$SP/_control" -d "$1" >/dev/null; }
# The models the stub was asked for, one per line, oldest first.
stub_models() { curl -s -m 5 "http://127.0.0.1:$SP/_requests" | python3 -c 'import json,sys; print("\n".join(r["body"].get("model","") for r in json.load(sys.stdin)))'; }

for bin in "$ENGINE" "$SIDECAR"; do
    if [ ! -x "$bin" ]; then
        fail "binary $bin exists"
        finish
    fi
done

# Flags ----------------------------------------------------------------------
for bad in "--timeout-ms 0" "--timeout-ms x" "--listen nocolon" "--engine 127.0.0.1:5555" \
    "--upstream https://api.example.com/v1" "--max-body 12" "--max-retries 9" "--bogus" \
    "--fail-open" "--help=1" "--engine-link zmq"; do
    # shellcheck disable=SC2086
    "$SIDECAR" $bad >/dev/null 2>"$tmp/bad.err"
    check "rejects '$bad' with exit 2" 2 "$?"
    has "message for '$bad'" "hpp-sidecar:" "$(cat "$tmp/bad.err")"
done
help=$("$SIDECAR" --help)
has "--help lists the flags" "--fail-open MODEL" "$help"
# Descriptions wrap at 80 columns, like the engine's and hpp-policy's.
check "--help fits 80 columns" "" "$(printf '%s\n' "$help" | awk 'length > 80')"
has "--version names the release and protocol" "hpp-sidecar 0." "$("$SIDECAR" --version)"
"$SIDECAR" --listen 127.0.0.1:0 --upstream http://no-such-host.invalid/v1 2>"$tmp/bad.err"
check "unresolvable upstream exits 1" 1 "$?"
"$SIDECAR" --listen 127.0.0.1:0 --engine inproc://hpp-none --engine-link zmtp 2>"$tmp/bad.err"
check "zmtp link on an inproc:// endpoint exits 1" 1 "$?"
has "zmtp link on inproc://: says what it needs" "expected tcp://HOST:PORT or ipc://PATH" \
    "$(cat "$tmp/bad.err")"
"$SIDECAR" --listen 127.0.0.1:0 --engine tcp://no-such-host.invalid:5555 2>"$tmp/bad.err"
check "unresolvable engine host exits 1" 1 "$?"
has "unresolvable engine host: names it" "cannot resolve 'no-such-host.invalid'" "$(cat "$tmp/bad.err")"

# Processes --------------------------------------------------------------------
MSG='"messages":[{"role":"user","content":"Write a C function that reverses a string."}]'
start_engine engine || finish
EP=$ready
start stub '^upstream_stub.py: ready on 127\.0\.0\.1:\([0-9]*\)$' python3 "$STUB" --stream-gap-ms 400 ||
    finish
SP=$ready
# These two honour the client's group and budget (hpp.*, X-HPP-*), refused by
# default (tests/integration/sidecar_trust.sh).
start_sidecar decide --engine "$EP" --max-body 65536 --trust-client-features || finish
D=$ready
start_sidecar proxy --engine "$EP" --upstream "http://127.0.0.1:$SP/v1" --max-retries 2 \
    --trust-client-features || finish
P=$ready

# Decision-only mode -------------------------------------------------------------
s=$(req POST "$D" /v1/route "{$MSG,\"max_tokens\":200}")
check "route: 200" 200 "$s"
model=$(jget 'j["model"]')
has "the default link to a tcp:// engine is zmtp" "(zmtp link)" "$(cat "$tmp/decide.err")"
# The libzmq link: same engine, same question, same answer.
if start_sidecar zlib --engine "$EP" --engine-link libzmq; then
    has "--engine-link libzmq is used" "(libzmq link)" "$(cat "$tmp/zlib.err")"
    check "libzmq link: route 200" 200 "$(req POST "$ready" /v1/route "{$MSG,\"max_tokens\":200}")"
    check "libzmq link: the same model" "$model" "$(jget 'j["model"]')"
fi
check "route: header = JSON model" "$model" "$(hdr X-HPP-Router-Resolved-Model)"
check "route: JSON fields" "True" \
    "$(jget 'all(k in j for k in ("model","provider","tier","rule","estimated_cost_usd","fallbacks")) and j["estimated_cost_usd"] >= 0 and isinstance(j["fallbacks"], list)')"
check "route: output tokens from max_tokens" 200 "$(jget 'j["output_tokens"]')"
check "route: prompt token estimate" "True" "$(jget '10 <= j["prompt_tokens"] <= 30')"
check "route: tier header" "$(jget 'j["tier"] or ""')" "$(hdr X-HPP-Router-Tier)"

s=$(req POST "$D" /v1/chat/completions "{\"model\":\"hpprouter/auto\",$MSG}")
check "decision-only chat: 200" 200 "$s"
check "decision-only chat: empty body" 0 "$(stat -c %s "$tmp/b")"
check "decision-only chat: header" "$model" "$(hdr X-HPP-Router-Resolved-Model)"
check "decision-only chat: the endpoint's provider and own model id" \
    "$(req POST "$D" /v1/route "{\"model\":\"hpprouter/auto\",$MSG}" >/dev/null
    jget 'j["provider"] + " " + j["provider_model"]')" \
    "$(req POST "$D" /v1/chat/completions "{\"model\":\"hpprouter/auto\",$MSG}" >/dev/null
    echo "$(hdr X-HPP-Router-Provider) $(hdr X-HPP-Router-Provider-Model)")"

s=$(req POST "$D" /v1/chat/completions "" -H 'X-HPP-Task: code' -H 'X-HPP-Prompt-Tokens: 300')
check "body-less chat (auth subrequest): 200" 200 "$s"
hmodel=$(hdr X-HPP-Router-Resolved-Model)
has "body-less chat: a model" "/" "$hmodel"

req POST "$D" /v1/route "{$MSG,\"hpp\":{\"task\":\"code\"}}" >/dev/null
a=$(jget '[j["model"], j["rule"]]')
req POST "$D" /v1/route "{$MSG}" -H 'X-HPP-Task: code' >/dev/null
check "task hint: header and body hpp.task decide alike" "$a" "$(jget '[j["model"], j["rule"]]')"

s=$(req POST "$D" /v1/route "{\"model\":\"openai/gpt-4o\",$MSG}")
check "explicit model: 200" 200 "$s"
has "explicit model: resolved to itself" "openai/gpt-4o" "$(hdr X-HPP-Router-Resolved-Model)"
s=$(req POST "$D" /v1/route "{\"model\":\"openai/gpt-4o:floor\",$MSG}")
check "explicit :floor: 200" 200 "$s"
has "explicit :floor: same model" "openai/gpt-4o" "$(jget 'j["model"]')"

s=$(req POST "$D" /v1/route "{\"model\":\"nope/nothing\",$MSG}")
error_shape "unknown model" "$s" 404 unknown_model
check "unknown model: param" model "$(jget 'j["error"]["param"]')"
s=$(req POST "$D" /v1/route "{\"model\":\"openai/gpt-4o\",$MSG,\"hpp\":{\"budget_usd\":0.0000001}}")
error_shape "budget too small" "$s" 402 insufficient_budget
s=$(req POST "$D" /v1/route "{\"model\":\"openai/gpt-4o\",$MSG}" -H 'X-HPP-Budget-USD: 0.0000001')
error_shape "budget header too small" "$s" 402 insufficient_budget
s=$(req POST "$D" /v1/route '{"messages":[')
error_shape "invalid JSON" "$s" 400 invalid_json
s=$(req POST "$D" /v1/route '{"messages":[{"role":"user","content":42}]}')
error_shape "wrong type" "$s" 400 invalid_type
check "wrong type: param" "messages[0].content" "$(jget 'j["error"]["param"]')"
s=$(req POST "$D" /v1/route "{$MSG}" -H 'X-HPP-Budget-USD: lots')
error_shape "bad budget header" "$s" 400 invalid_value
s=$(req POST "$D" /v1/route "{$MSG,\"hpp\":{\"budjet\":1}}")
error_shape "unknown hpp key" "$s" 400 unknown_parameter
python3 -c "import json; print(json.dumps({'messages':[{'role':'user','content':'x'*70000}]}))" >"$tmp/big.json"
s=$(req POST "$D" /v1/route "@$tmp/big.json")
error_shape "body over --max-body" "$s" 413 body_too_large
hdrs=()
for i in $(seq 101); do hdrs+=(-H "X-Extra-$i: $i"); done
s=$(req POST "$D" /v1/route "{$MSG}" "${hdrs[@]}")
error_shape "too many headers" "$s" 431 too_many_headers
s=$(req GET "$D" /v1/nothing)
error_shape "unknown path" "$s" 404 not_found
has_text "unknown path: the message lists every endpoint, /api/* too" \
    "GET /v1/models/{id}, GET /healthz, GET /metrics, GET /api/quota-check, GET /api/usage, GET /api/v1/key)" \
    "$(jget 'j["error"]["message"]')"
s=$(req GET "$D" /v1/route)
error_shape "wrong method" "$s" 405 method_not_allowed
check "wrong method: Allow" POST "$(hdr Allow)"

# Request framing (RFC 9112 section 6.3), over raw sockets: a request whose
# length two parsers could read differently is refused with 400 and the
# connection closed, so the bytes after it are never read as a request of
# their own (the smuggled GET /healthz below must get no answer). A
# sidecar of its own: at the end its engine must have been asked nothing.
RB='{"messages":[{"role":"user","content":"hi"}]}'
SMUG='GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
SMUG_LEN=$((${#RB} + 34)) # a request body, then the smuggled request
if start_sidecar guard --engine "$EP"; then
    G=$ready
    check "two Content-Lengths: 400, closed, nothing routed or smuggled" \
        "400 1 closed - duplicate_content_length" \
        "$(raw "$G" "POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: ${#RB}\r\nContent-Length: $SMUG_LEN\r\n\r\n$RB$SMUG")"
    check "two equal Content-Lengths: refused as well" "400 1 closed - duplicate_content_length" \
        "$(raw "$G" "POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: ${#RB}\r\ncontent-length: ${#RB}\r\n\r\n$RB")"
    check "Content-Length with a sign: 400, closed" "400 1 closed - invalid_content_length" \
        "$(raw "$G" "POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: +${#RB}\r\n\r\n$RB")"
    # This libevent refuses these itself, with its own HTML 400 page; the
    # sidecar's check covers builds that do not.
    check "Transfer-Encoding with Content-Length: 400, closed, nothing routed" "400 1 closed -" \
        "$(raw "$G" "POST /v1/route HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2d\r\n$RB\r\n0\r\n\r\n" | cut -d' ' -f1-4)"
    check "Transfer-Encoding other than chunked: 400, closed, nothing smuggled" \
        "400 1 closed - unsupported_transfer_encoding" \
        "$(raw "$G" "POST /v1/route HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n$SMUG")"
    check "control character in a header value: 400, closed" "400 1 closed - invalid_header" \
        "$(raw "$G" "POST /v1/route HTTP/1.1\r\nHost: x\r\nX-Trace: a\x01b\r\nContent-Length: ${#RB}\r\n\r\n$RB")"
    check "DEL in an X-HPP header value: 400, closed" "400 1 closed - invalid_header" \
        "$(raw "$G" "POST /v1/route HTTP/1.1\r\nHost: x\r\nX-HPP-Group: team\x7f\r\nContent-Length: ${#RB}\r\n\r\n$RB")"
    check "control character on an unknown path: refused before the 404" \
        "400 1 closed - invalid_header" \
        "$(raw "$G" "GET /nothing HTTP/1.1\r\nHost: x\r\nX-Trace: a\x1bb\r\n\r\n")"
    # A POST with no body would be routed as an empty request (0 tokens).
    check "route, Content-Length 0: 400" "400 1 closed - invalid_json" \
        "$(raw "$G" "POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")"
    error_shape "route, no body and no Content-Length" "$(req POST "$G" /v1/route "")" 400 invalid_json
    error_shape "route, no body, hint headers do not stand in for it" \
        "$(req POST "$G" /v1/route "" -H 'X-HPP-Task: code')" 400 invalid_json
    check "route, HTTP/1.0 without Content-Length: 400" "400 1 closed - invalid_json" \
        "$(raw "$G" "POST /v1/route HTTP/1.0\r\nHost: x\r\n\r\n$RB")"
    error_shape "chat, no body and no hint header" "$(req POST "$G" /v1/chat/completions "")" \
        400 invalid_json
    check "chat, HTTP/1.0 without Content-Length or hint: 400" "400 1 closed - invalid_json" \
        "$(raw "$G" "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\n\r\n")"
    check "guard: its engine was asked nothing" "0 0" \
        "$(req GET "$G" /metrics >/dev/null
        echo "$(msum hpp_sidecar_engine_duration_seconds_count) $(msum hpp_sidecar_decisions_total)")"
fi
# What stays accepted: HTAB and non-ASCII bytes in values, and the auth
# subrequest shape (no body, hint headers) over HTTP/1.0 too, which nginx
# sends unless told proxy_http_version 1.1.
check "HTAB and UTF-8 in a header value: routed" "200 1 closed decided -" \
    "$(raw "$D" "POST /v1/route HTTP/1.1\r\nHost: x\r\nX-Trace: a\tcaf\xc3\xa9\r\nConnection: close\r\nContent-Length: ${#RB}\r\n\r\n$RB")"
check "auth subrequest over HTTP/1.0: routed" "200 1 closed decided -" \
    "$(raw "$D" "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nX-HPP-Task: code\r\n\r\n")"

# Many requests in flight at once: every answer must be the decision for its
# own request (the engine link matches replies to calls by id).
python3 - "$D" >"$tmp/conc" 2>&1 <<'EOF2'
import http.client, json, sys, threading
port = int(sys.argv[1])
models = ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "openai/gpt-5"]
bad = []
def worker(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(25):
        want = models[(k + i) % len(models)]
        c.request("POST", "/v1/route", json.dumps({"model": want, "messages": [
            {"role": "user", "content": "request %d/%d" % (k, i)}]}))
        r = c.getresponse()
        body = r.read()
        got = r.getheader("X-HPP-Router-Resolved-Model")
        if r.status != 200 or got != want or json.loads(body)["model"] != want:
            bad.append((k, i, r.status, want, got))
threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
[t.start() for t in threads]
[t.join() for t in threads]
print("%d mismatches %s" % (len(bad), bad[:3]))
EOF2
check "400 concurrent requests, each answered with its own decision" "0 mismatches []" "$(cat "$tmp/conc")"

s=$(req GET "$D" /v1/models)
check "models: 200" 200 "$s"
check "models: list with hpprouter/auto first" "list hpprouter/auto" "$(jget 'j["object"] + " " + j["data"][0]["id"]')"
check "models: catalog models with the gateway's pricing (USD per 1M, null where n/a)" "True" \
    "$(jget 'len(j["data"]) > 3 and all(m["object"] == "model" and all(k in m["pricing"] for k in ("input", "output", "cache_write", "cache_read")) and all(v is None or isinstance(v, (int, float)) for v in m["pricing"].values()) for m in j["data"][1:])')"
check "models: gpt-4o listed" "True" "$(jget 'any(m["id"] == "openai/gpt-4o" for m in j["data"])')"
cp "$tmp/b" "$tmp/models"
# A model with a paid and a free endpoint is two entries: the plain id at the
# paid price, and ID:free at $0.
check "models: plain id priced as the paid endpoint" "True" \
    "$(jget '[m["pricing"]["input"] > 0 for m in j["data"] if m["id"] == "google/gemma-2-9b-it"] == [True]' "$tmp/models")"
check "models: the :free variant is its own entry at \$0" "0 0" \
    "$(jget '" ".join("%g" % m["pricing"][k] for m in j["data"] if m["id"] == "google/gemma-2-9b-it:free" for k in ("input", "output"))' "$tmp/models")"
s=$(req GET "$D" /v1/models/openai/gpt-4o)
check "models/{id}: 200" 200 "$s"
check "models/{id}: one model object" "model openai/gpt-4o" "$(jget 'j["object"] + " " + j["id"]')"
check "models/{id}: same entry as in the list" "True" \
    "$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=[m for m in json.load(open(sys.argv[2]))["data"] if m["id"]=="openai/gpt-4o"]; print(b == [a])' "$tmp/b" "$tmp/models")"
s=$(req GET "$D" /v1/models/openai%2Fgpt-4o)
check "models/{id}: percent-encoded slash" "openai/gpt-4o" "$(jget 'j["id"]')"
s=$(req GET "$D" /v1/models/hpprouter/auto)
check "models/{id}: the virtual model" "hpprouter/auto None" "$(jget 'j["id"] + " " + str(j["pricing"])')"
error_shape "models/{id}: unknown model" "$(req GET "$D" /v1/models/acme/nothing)" 404 model_not_found

s=$(req GET "$D" /healthz)
check "healthz: 200" 200 "$s"
check "healthz: ok" ok "$(jget 'j["status"]')"

s=$(req GET "$D" /metrics)
check "metrics: 200" 200 "$s"
m=$(body)
has "metrics: requests by route and status" 'hpp_sidecar_requests_total{route="/v1/route",status="200"}' "$m"
has "metrics: 413 counted" 'hpp_sidecar_requests_total{route="/v1/route",status="413"} 1' "$m"
has "metrics: decisions by model and tier" "hpp_sidecar_decisions_total{model=\"$model\"" "$m"
has "metrics: latency histogram" 'hpp_sidecar_request_duration_seconds_bucket{route="/v1/route",le="+Inf"}' "$m"
has "metrics: engine errors by code" 'hpp_sidecar_engine_errors_total{kind="status",code="unknown_model"} 1' "$m"
# Every route reply is timed: the decisions plus the engine's refusals.
check "metrics: engine round trips, one per answered route call" \
    "$(($(msum hpp_sidecar_decisions_total) + $(msum 'hpp_sidecar_engine_errors_total{kind="status"')))" \
    "$(msum hpp_sidecar_engine_duration_seconds_count)"
check "metrics: engine round trips: +Inf bucket = count" \
    "$(msum hpp_sidecar_engine_duration_seconds_count)" \
    "$(msum 'hpp_sidecar_engine_duration_seconds_bucket{le="+Inf"}')"
check "metrics: no upstream call in decision-only mode" 0 \
    "$(msum hpp_sidecar_upstream_duration_seconds_count)"

# Proxy mode -------------------------------------------------------------------------
stub_ctl '{"reset":true}'
s=$(req POST "$P" /v1/chat/completions "{\"model\":\"hpprouter/auto\",$MSG,\"temperature\":0.2,\"hpp\":{\"task\":\"code\"}}" \
    -H 'Authorization: Bearer sk-test-xyz' -H 'X-HPP-Group: default')
check "proxy: 200" 200 "$s"
pm=$(hdr X-HPP-Router-Resolved-Model)
ppm=$(hdr X-HPP-Router-Provider-Model)
has "proxy: resolved header" "/" "$pm"
if [ -n "$ppm" ]; then ok "proxy: provider's own id in a header"; else fail "proxy: provider's own id in a header" "none"; fi
check "proxy: answer comes from the upstream" "echo $ppm" "$(jget 'j["choices"][0]["message"]["content"]')"
curl -s "http://127.0.0.1:$SP/_requests" >"$tmp/seen"
check "proxy: upstream saw the provider's own model id" "$ppm" "$(jget 'j[-1]["body"]["model"]' "$tmp/seen")"
check "proxy: upstream told the resolved model" "$pm" \
    "$(jget 'j[-1]["headers"]["x-hpp-router-resolved-model"]' "$tmp/seen")"
check "proxy: hpp object removed" "False" "$(jget '"hpp" in j[-1]["body"]' "$tmp/seen")"
check "proxy: other fields kept" "0.2" "$(jget 'j[-1]["body"]["temperature"]' "$tmp/seen")"
check "proxy: Authorization passed through" "Bearer sk-test-xyz" \
    "$(jget 'j[-1]["headers"]["authorization"]' "$tmp/seen")"
# OpenRouter's models list: the engine decides among it; the upstream must not
# see it, or it could answer with another model than the one decided.
stub_ctl '{"reset":true}'
s=$(req POST "$P" /v1/chat/completions \
    "{\"model\":\"hpprouter/auto\",$MSG,\"models\":[\"openai/gpt-4o-mini\",\"openai/gpt-4o\"]}")
check "proxy with models: 200" 200 "$s"
curl -s "http://127.0.0.1:$SP/_requests" >"$tmp/seen"
check "proxy with models: the list is not forwarded" "False" "$(jget '"models" in j[-1]["body"]' "$tmp/seen")"
check "proxy with models: the decided model is" "$(hdr X-HPP-Router-Provider-Model)" \
    "$(jget 'j[-1]["body"]["model"]' "$tmp/seen")"
check "proxy: X-HPP hints not forwarded" "False" "$(jget '"x-hpp-group" in j[-1]["headers"]' "$tmp/seen")"
check "proxy: path" "/v1/chat/completions" "$(jget 'j[-1]["path"]' "$tmp/seen")"

# Streaming: the first events must reach the client before the upstream's
# 400 ms pause ends, i.e. they are not buffered until the end.
python3 - "$P" >"$tmp/stream" 2>&1 <<'EOF'
import http.client, json, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("POST", "/v1/chat/completions", json.dumps({"model": "hpprouter/auto", "stream": True,
          "messages": [{"role": "user", "content": "hi"}]}), {"Content-Type": "application/json"})
r = c.getresponse()
t0 = time.monotonic(); times = []; text = ""; done = False
for line in r:
    line = line.decode().strip()
    if not line.startswith("data: "):
        continue
    times.append(time.monotonic() - t0)
    if line == "data: [DONE]":
        done = True
        continue
    # The final usage chunk (asked for by the sidecar) has no choices.
    for ch in json.loads(line[6:])["choices"]:
        text += ch["delta"].get("content") or ""
print(r.status, r.getheader("Content-Type"), r.getheader("X-HPP-Router-Resolved-Model"))
print("streamed" if times[-1] - times[1] > 0.3 else "buffered %s" % times)
print(done, text)
EOF
read -r st ct sm <<<"$(sed -n 1p "$tmp/stream")"
check "stream: 200" 200 "$st"
check "stream: SSE content type" "text/event-stream" "$ct"
has "stream: resolved header" "/" "$sm"
check "stream: events arrive as sent" streamed "$(sed -n 2p "$tmp/stream")"
check "stream: whole answer and [DONE]" "True echo $sm" "$(sed -n 3p "$tmp/stream")"

# The upstream dies mid-stream: the client must see a broken transfer, not a
# complete-looking one, and the sidecar keeps serving.
req POST "$D" /v1/route "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" >/dev/null
stub_ctl "{\"reset\":true,\"cut\":[\"$(jget 'j["provider_model"]')\"]}"
curl -s -N -m 5 -o "$tmp/cut" "http://127.0.0.1:$P/v1/chat/completions" \
    -d '{"stream":true,"messages":[{"role":"user","content":"hi"}]}'
rc=$?
if [ "$rc" -ne 0 ]; then
    ok "cut stream: client sees a broken transfer (curl exit $rc)"
else
    fail "cut stream: client sees a broken transfer" "curl exit 0: $(head -c 200 "$tmp/cut")"
fi
has "cut stream: the first event was streamed" '"role": "assistant"' "$(cat "$tmp/cut")"
stub_ctl '{"reset":true}'
check "cut stream: sidecar still serves" 200 "$(req POST "$P" /v1/chat/completions "{$MSG}")"

# A plain (non-streamed) answer is collected and sent in one reply with the
# upstream's Content-Length; cut halfway, nothing reached the client yet, so
# it gets a clean 502 instead of a truncated body.
curl -s -D "$tmp/h" -o "$tmp/plain" "http://127.0.0.1:$P/v1/chat/completions" -d "{$MSG}"
check "plain answer: Content-Length is the body's" "$(wc -c <"$tmp/plain" | tr -d ' ')" \
    "$(hdr Content-Length)"
check "plain answer: not chunked" "" "$(hdr Transfer-Encoding)"
has "plain answer: resolved header" "/" "$(hdr X-HPP-Router-Resolved-Model)"
req POST "$D" /v1/route "{$MSG}" >/dev/null
stub_ctl "{\"reset\":true,\"cut\":[\"$(jget 'j["provider_model"]')\"]}"
upstream_errors() {
    curl -s -m 5 "http://127.0.0.1:$P/metrics" |
        sed -n 's/^hpp_sidecar_upstream_responses_total{class="error"} //p' | grep . || echo 0
}
errors_before=$(upstream_errors)
error_shape "cut plain answer" "$(req POST "$P" /v1/chat/completions "{$MSG}")" 502 \
    upstream_unavailable
check "cut plain answer: counted once (2xx), not also as an upstream error" \
    "$errors_before" "$(upstream_errors)"
stub_ctl '{"reset":true}'
check "cut plain answer: sidecar still serves" 200 "$(req POST "$P" /v1/chat/completions "{$MSG}")"

# 429 then 5xx: the next fallbacks; retries are counted.
req POST "$D" /v1/route "{$MSG}" >/dev/null
first=$(jget 'j["provider_model"]')
stub_ctl "{\"reset\":true,\"fail\":{\"$first\":429}}"
s=$(req POST "$P" /v1/chat/completions "{$MSG}")
check "429: answered 200 by a fallback" 200 "$s"
mapfile -t seen < <(stub_models)
check "429: two upstream calls" 2 "${#seen[@]}"
check "429: first call used the decision" "$first" "${seen[0]:-}"
check "429: retry used another endpoint" "${seen[1]:-}" "$(hdr X-HPP-Router-Provider-Model)"
if [ "${seen[1]:-}" != "$first" ]; then ok "429: fallback differs"; else fail "429: fallback differs"; fi

stub_ctl "{\"reset\":true,\"fail\":{\"$first\":500,\"${seen[1]:-x}\":503}}"
s=$(req POST "$P" /v1/chat/completions "{$MSG}")
check "5xx: answered 200 after two retries" 200 "$s"
check "5xx: three upstream calls" 3 "$(stub_models | wc -w)"

# Every model fails: bounded by --max-retries 2, the last answer goes through.
fail_all=$(req POST "$D" /v1/route "{$MSG}" >/dev/null; jget '"{" + ",".join("\"%s\":500" % m for m in [j["provider_model"]] + [f["provider_model"] for f in j["fallbacks"]]) + "}"')
stub_ctl "{\"reset\":true,\"fail\":$fail_all}"
s=$(req POST "$P" /v1/chat/completions "{$MSG}")
check "all fail: upstream status passed through" 500 "$s"
check "all fail: 1 + --max-retries calls" 3 "$(stub_models | wc -w)"
check "all fail: upstream error body passed through" server_error "$(jget 'j["error"]["type"]')"

# 402: once, with the free answer the engine gives for a zero budget.
stub_ctl "{\"reset\":true,\"fail\":{\"$first\":402}}"
s=$(req POST "$P" /v1/chat/completions "{$MSG}")
check "402: answered 200 by the free fallback" 200 "$s"
mapfile -t seen < <(stub_models)
check "402: two upstream calls" 2 "${#seen[@]}"
free=$(req POST "$D" /v1/route "{$MSG,\"hpp\":{\"budget_usd\":0}}" >/dev/null; jget 'j["provider_model"]')
check "402: the free model is the zero-budget decision" "$free" "${seen[1]:-}"
check "402: free model cost" 0 "$(jget 'j["estimated_cost_usd"]')"

stub_ctl "{\"reset\":true,\"fail\":{\"$first\":402,\"$free\":402}}"
s=$(req POST "$P" /v1/chat/completions "{$MSG}")
check "402 twice: the second 402 goes to the client" 402 "$s"
check "402 twice: upstream error body" insufficient_quota "$(jget 'j["error"]["code"]')"
check "402 twice: retried once only" 2 "$(stub_models | wc -w)"
stub_ctl '{"reset":true}'

s=$(req GET "$P" /metrics)
m=$(body)
has "metrics: 429 retries" 'hpp_sidecar_upstream_retries_total{reason="429"} 1' "$m"
has "metrics: 5xx retries" 'hpp_sidecar_upstream_retries_total{reason="5xx"} 4' "$m"
has "metrics: 402 retries" 'hpp_sidecar_upstream_retries_total{reason="402"} 2' "$m"
# Every attempt that got response headers is timed, retried ones included.
check "metrics: upstream times, one per answered attempt" \
    "$(msum 'hpp_sidecar_upstream_responses_total{class="' | tr -d ' ')" \
    "$(($(msum hpp_sidecar_upstream_duration_seconds_count) + $(msum 'hpp_sidecar_upstream_responses_total{class="error"')))"

s=$(req POST "$P" /v1/chat/completions "")
error_shape "proxy: empty body" "$s" 400 invalid_json

start_sidecar updown --engine "$EP" --upstream "http://127.0.0.1:1/v1" &&
    s=$(req POST "$ready" /v1/chat/completions "{$MSG}") &&
    error_shape "upstream down" "$s" 502 upstream_unavailable

# Engine down or late ------------------------------------------------------------------
if start_sidecar dead --engine tcp://127.0.0.1:1 --timeout-ms 300; then
    t0=$(date +%s%N)
    s=$(req POST "$ready" /v1/route "{$MSG}")
    ms=$((($(date +%s%N) - t0) / 1000000))
    error_shape "no engine" "$s" 503 engine_unavailable
    if [ "$ms" -lt 1000 ]; then
        ok "no engine: answered at once (${ms} ms)"
    else
        fail "no engine: slow" "${ms} ms"
    fi
    s=$(req GET "$ready" /healthz)
    error_shape "no engine: healthz" "$s" 503 engine_unavailable
fi
if start_engine engine2; then
    EP2=$ready
    epid=$pid
    start_sidecar late --engine "$EP2" --timeout-ms 300 && L=$ready
    start_sidecar open --engine "$EP2" --timeout-ms 300 --fail-open openai/gpt-4o-mini && O=$ready
    # It fails open only for a group it has seen allowed the model, so it
    # must have asked the engine before the stall.
    await_line "$tmp/open.err" '/group default may use openai\/gpt-4o-mini/p' "" >/dev/null
    check "before the stall: 200" 200 "$(req POST "$L" /v1/route "{$MSG}")"
    kill -STOP "$epid"
    t0=$(date +%s%N)
    s=$(req POST "$L" /v1/route "{$MSG}")
    ms=$((($(date +%s%N) - t0) / 1000000))
    error_shape "stalled engine" "$s" 503 engine_timeout
    if [ "$ms" -ge 250 ] && [ "$ms" -lt 2000 ]; then
        ok "stalled engine: 503 after --timeout-ms (${ms} ms)"
    else
        fail "stalled engine: timing" "${ms} ms"
    fi
    s=$(req POST "$O" /v1/chat/completions "{$MSG}")
    check "fail-open: 200" 200 "$s"
    check "fail-open: the configured model" openai/gpt-4o-mini "$(hdr X-HPP-Router-Resolved-Model)"
    check "fail-open: flagged" true "$(hdr X-HPP-Router-Fail-Open)"
    s=$(req POST "$O" /v1/route "{$MSG}")
    check "fail-open route: JSON says so" "True openai/gpt-4o-mini" "$(jget 'j["fail_open"], j["model"]' | tr -d '(),'"'")"
    kill -CONT "$epid"
    # The engine answers the stale requests late; the sidecar drops them and serves again.
    for _ in $(seq 100); do
        s=$(req POST "$L" /v1/route "{$MSG}")
        [ "$s" = 200 ] && break
        sleep 0.05
    done
    check "after the stall: 200 again" 200 "$s"
    # Engine restart on the same endpoint: ZeroMQ reconnects by itself.
    kill "$epid" && wait "$epid" 2>/dev/null
    s=$(req POST "$L" /v1/route "{$MSG}")
    error_shape "engine stopped" "$s" 503 engine_unavailable
    start engine3 '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen "$EP2" --threads 1 \
        --policy "$NOCOOL"
    for _ in $(seq 100); do
        s=$(req POST "$L" /v1/route "{$MSG}")
        [ "$s" = 200 ] && break
        sleep 0.05
    done
    check "engine restarted: reconnected, 200" 200 "$s"
    m=$(req GET "$L" /metrics >/dev/null; body)
    has "metrics: engine timeouts" 'hpp_sidecar_engine_errors_total{kind="timeout",code=""} 1' "$m"
fi

# The official openai npm client ------------------------------------------------------
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    skip "openai npm client" "node/npm not installed"
elif [ ! -d tests/integration/node_modules/openai ] &&
    ! timeout 180 npm install --prefix tests/integration --no-audit --no-fund --loglevel=error \
        --fetch-retries=1 --fetch-timeout=30000 >"$tmp/npm.log" 2>&1; then
    skip "openai npm client" "npm install failed (registry unreachable?): $(tail -n 2 "$tmp/npm.log")"
else
    SIDECAR_URL="http://127.0.0.1:$P/v1" STUB_URL="http://127.0.0.1:$SP" \
        node tests/integration/sidecar_openai.mjs >"$tmp/node.out" 2>&1
    rc=$?
    while read -r line; do
        case "$line" in
        "ok "*) ok "openai client: ${line#ok }" ;;
        "not ok "*) fail "openai client: ${line#not ok }" ;;
        esac
    done <"$tmp/node.out"
    [ "$rc" -eq 0 ] || fail "openai client script exit" "$(tail -n 5 "$tmp/node.out")"
fi

finish
