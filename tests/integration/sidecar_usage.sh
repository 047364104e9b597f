#!/usr/bin/env bash
# Usage reports in proxy mode: the sidecar reads what every proxied answer
# used and tells the engine (the report op). Starts the real hpp-engine
# (bundled policy and catalog), one upstream stand-in
# (tests/integration/upstream_stub.py, returning OpenAI's usage with
# OpenRouter's `cost`) and hpp-sidecar --upstream, all on 127.0.0.1
# ephemeral ports, readiness lines as probes. Checks:
#   - a plain answer's usage (tokens, cached, reasoning, cost) is read: the
#     access log shows what was reported, and the engine's explain shows the
#     endpoint's throughput, which only a report with output tokens sets;
#   - a stream whose client did not ask for usage is forwarded with
#     stream_options.include_usage, its final usage chunk is read (and passed
#     on to the client), and the engine gets its first-token time and
#     throughput;
#   - a client's own stream_options are forwarded as they are (include_usage
#     false: no usage chunk, nothing to report).
# Stops what it started by PID. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
STUB=tests/integration/upstream_stub.py
MSG='"messages":[{"role":"user","content":"hello there"}]'
pids=()
names=()

source tests/integration/check_lib.bash
suite_setup

finish() {
    stop_started stub
    suite_end
}

# chat PORT BODY: status; headers in $tmp/h, body in $tmp/b.
chat() {
    curl -s -m 10 -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' --data-binary "$2" \
        "http://127.0.0.1:$1/v1/chat/completions"
}
hdr() { grep -i "^$1:" "$tmp/h" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }
# py EXPR FILE: a Python expression on the JSON `j` of FILE.
py() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[2])); v=eval(sys.argv[1]); print(json.dumps(v, sort_keys=True) if isinstance(v,(dict,list)) else v)' \
        "$1" "$2" 2>&1
}
# The body the stub received last.
last_sent() { curl -s -m 5 "http://127.0.0.1:$SP/_requests" >"$tmp/seen"; py "$1" "$tmp/seen"; }
# The usage figures of the last access log line's last attempt.
logged() {
    tail -n 1 "$tmp/access.log" >"$tmp/line"
    python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["attempts"][-1]; print(" ".join("%s=%s" % (k, a.get(k)) for k in sys.argv[2:]))' \
        "$tmp/line" "$@" 2>&1
}
# health MODEL PROVIDER FIELD...: the endpoint's figures in the engine's
# explain, polled until a report counted (reports are not answered).
health() {
    /usr/bin/python3 - "$EP" "$@" <<'PY'
import sys, time, msgpack, zmq
ep, model, provider, fields = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
s = zmq.Context().socket(zmq.DEALER)
s.connect(ep)
end = time.monotonic() + 5
got = "no report"
while time.monotonic() < end:
    s.send(msgpack.packb({"v": 1, "id": 1, "op": "explain", "model": model, "prompt_tokens": 10}))
    if not s.poll(2000):
        break
    cands = msgpack.unpackb(s.recv())["trace"]["candidates"]
    h = next((c.get("health") for c in cands if c["provider"] == provider), None)
    if h and all(h.get(f) is not None and h[f] >= 0 for f in fields):
        got = " ".join("%s>0" % f if h[f] > 0 else "%s=%s" % (f, h[f]) for f in fields)
        break
    time.sleep(0.05)
print(got)
s.close(0)
PY
}

start stub '^upstream_stub.py: ready on 127\.0\.0\.1:\([0-9]*\)$' python3 "$STUB" --cost 0.00042 ||
    finish
SP=$ready
start engine '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 ||
    finish
EP=$ready
start sidecar '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" --listen 127.0.0.1:0 \
    --engine "$EP" --upstream "http://127.0.0.1:$SP/v1" --access-log "$tmp/access.log" || finish
P=$ready

# 1. A plain answer: its usage and the provider's cost are reported -------------------
s=$(chat "$P" "{\"model\":\"openai/gpt-4o\",$MSG}")
check "plain: 200" 200 "$s"
prov=$(hdr X-HPP-Router-Provider)
check "plain: the answer is the client's, usage included" 7 "$(py 'j["usage"]["completion_tokens"]' "$tmp/b")"
check "plain: the reported usage and cost" \
    "prompt_tokens=11 completion_tokens=7 cached_tokens=4 reasoning_tokens=2 cost_usd=0.00042" \
    "$(logged prompt_tokens completion_tokens cached_tokens reasoning_tokens cost_usd)"
check "plain: the engine measured the endpoint's throughput" "tokens_per_s>0" \
    "$(health openai/gpt-4o "$prov" tokens_per_s)"

# 2. A stream whose client did not ask for usage: asked for, read, reported -----------
s=$(chat "$P" "{\"model\":\"meta-llama/llama-3.1-8b-instruct\",\"stream\":true,$MSG}")
check "stream: 200" 200 "$s"
prov=$(hdr X-HPP-Router-Provider)
check "stream: forwarded with include_usage" '{"include_usage": true}' \
    "$(last_sent 'j[-1]["body"].get("stream_options")')"
check "stream: the client gets the events and [DONE]" "data: [DONE]" "$(grep -o 'data: \[DONE\]' "$tmp/b")"
check "stream: the usage chunk is passed on (choices empty)" 1 \
    "$(grep -c '"choices": \[\], "usage": {"prompt_tokens": 11' "$tmp/b")"
check "stream: the reported usage and cost" \
    "prompt_tokens=11 completion_tokens=7 cost_usd=0.00042" \
    "$(logged prompt_tokens completion_tokens cost_usd)"
check "stream: a first-token time is reported" True \
    "$(py 'j["attempts"][-1]["ttft_ms"] > 0' "$tmp/line")"
check "stream: the engine measured first token and throughput" "ttft_ms>0 tokens_per_s>0" \
    "$(health meta-llama/llama-3.1-8b-instruct "$prov" ttft_ms tokens_per_s)"

# 3. The client's own stream_options are kept -----------------------------------------
s=$(chat "$P" "{\"model\":\"openai/gpt-5\",\"stream\":true,\"stream_options\":{\"include_usage\":false},$MSG}")
check "own options: 200" 200 "$s"
check "own options: forwarded as sent" '{"include_usage": false}' \
    "$(last_sent 'j[-1]["body"].get("stream_options")')"
check "own options: no usage chunk" 0 "$(grep -c '"usage": {' "$tmp/b")"
check "own options: no usage reported" "prompt_tokens=None completion_tokens=None" \
    "$(logged prompt_tokens completion_tokens)"
s=$(chat "$P" "{\"model\":\"openai/gpt-5\",\"stream\":true,\"stream_options\":{\"include_usage\":true},$MSG}")
check "own include_usage: forwarded once, as sent" '{"include_usage": true}' \
    "$(last_sent 'j[-1]["body"].get("stream_options")')"
check "own include_usage: reported" "completion_tokens=7" "$(logged completion_tokens)"

finish
