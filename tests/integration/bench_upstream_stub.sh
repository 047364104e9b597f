#!/usr/bin/env bash
# The upstream stand-in (bench/upstream_stub.c) that the benchmarks and the
# sidecar tests put behind every proxy: starts the real binary on an ephemeral
# 127.0.0.1 port, waits for its readiness line, checks what it answers with
# curl, stops it by PID. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
STUB=$BUILD/bench/upstream_stub
source tests/integration/check_lib.bash
suite_setup
has() { has_text "$@"; }

# start NAME ARGS...: runs the stub, sets $port; the ready line is the probe.
start() {
    local name=$1
    shift
    "$STUB" "$@" 2>"$tmp/$name.err" &
    pids+=($!)
    port=$(await_line "$tmp/$name.err" \
        's/^upstream_stub: ready on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "${pids[-1]}") && return 0
    fail "$name starts" "$(cat "$tmp/$name.err")"
    return 1
}

post() { # port body [extra curl args] -> "status|headers+body"
    local p=$1 b=$2
    shift 2
    curl -s -i -m 5 "$@" -H 'Content-Type: application/json' -d "$b" \
        "http://127.0.0.1:$p/v1/chat/completions" | tr -d '\r'
}
status_of() { head -n 1 <<<"$1" | cut -d' ' -f2; }

if [ ! -x "$STUB" ]; then
    fail "binary $STUB exists"
    suite_end
fi

# Flags: bad values exit 2 with a message naming the flag.
for bad in "--status 99" "--status abc" "--model-status noequals" "--delay-ms -1" \
    "--chunks 0" "--listen nocolon" "--bogus"; do
    # shellcheck disable=SC2086
    "$STUB" $bad >/dev/null 2>"$tmp/bad.err"
    rc=$?
    check "rejects '$bad' with exit 2" 2 "$rc"
    has "message for '$bad'" "upstream_stub:" "$(cat "$tmp/bad.err")"
done
has "--help lists the flags" "--model-status MODEL=CODE" "$("$STUB" --help)"

if start plain --model-status 'bad/model=402' --model-status 'slow/model=429'; then
    r=$(post "$port" '{"messages":[{"role":"user","content":"say \"model\":\"x\""}],"model":"openai/gpt-4o"}' \
        -H 'Authorization: Bearer sk-test')
    check "chat answers 200" 200 "$(status_of "$r")"
    has "echoes the model in the body" '"model":"openai/gpt-4o","choices"' "$r"
    has "echoes the model in a header" "X-Upstream-Model: openai/gpt-4o" "$r"
    has "echoes the Authorization" "X-Upstream-Authorization: Bearer sk-test" "$r"
    has "is a chat.completion" '"object":"chat.completion"' "$r"

    r=$(post "$port" '{"model":"openai/gpt-4o","stream":true,"messages":[]}')
    check "stream answers 200" 200 "$(status_of "$r")"
    has "stream is SSE" "Content-Type: text/event-stream" "$r"
    check "stream has 3 content chunks + stop + DONE" 5 "$(grep -c '^data: ' <<<"$r")"
    check "stream ends with [DONE]" "data: [DONE]" "$(grep '^data: ' <<<"$r" | tail -n 1)"

    r=$(post "$port" '{"model":"bad/model","messages":[]}')
    check "per-model status 402" 402 "$(status_of "$r")"
    has "402 has an OpenAI error body" '"type":"insufficient_quota","code":402' "$r"
    check "per-model status 429" 429 "$(status_of "$(post "$port" '{"model":"slow/model"}')")"
    check "other models still 200" 200 "$(status_of "$(post "$port" '{"model":"ok/model"}')")"

    check "invalid JSON is 400" 400 "$(status_of "$(post "$port" '{"model":"x",}')")"
    check "trailing bytes are 400" 400 "$(status_of "$(post "$port" '{"model":"x"} x')")"
    check "no model is 400" 400 "$(status_of "$(post "$port" '{"messages":[]}')")"
    check "model not a string is 400" 400 "$(status_of "$(post "$port" '{"model":7}')")"
    deep=$(printf '%.0s[' $(seq 100))
    check "deep nesting is 400" 400 "$(status_of "$(post "$port" "{\"model\":\"m\",\"x\":$deep}")")"
    check "GET chat is 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/chat/completions")"
    check "unknown path is 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope")"
    check "healthz" ok "$(curl -s "http://127.0.0.1:$port/healthz")"

    stats=$(curl -s "http://127.0.0.1:$port/stats")
    has "stats count requests" '"requests":5,' "$stats"
    has "stats count errors sent" '"errors_sent":2,' "$stats"
    has "stats count bad requests" '"bad":7,' "$stats"
    has "stats keep the last model" '"last_model":"ok/model"' "$stats"
    still=$(post "$port" '{"model":"after/bad"}')
    check "still serving after bad input" 200 "$(status_of "$still")"
fi

if start failfirst --status 503 --fail-first 2; then
    a=$(status_of "$(post "$port" '{"model":"m"}')")
    b=$(status_of "$(post "$port" '{"model":"m"}')")
    c=$(status_of "$(post "$port" '{"model":"m"}')")
    check "--fail-first 2: 503 503 200" "503 503 200" "$a $b $c"
fi

if start paced --delay-ms 150 --chunks 2 --chunk-delay-ms 100; then
    t0=$(date +%s%N)
    r=$(post "$port" '{"model":"m"}')
    dt=$((($(date +%s%N) - t0) / 1000000))
    check "delayed answer 200" 200 "$(status_of "$r")"
    if [ "$dt" -ge 140 ]; then ok "--delay-ms delays ($dt ms)"; else fail "--delay-ms delays" "$dt ms"; fi
    # A client that leaves mid-stream must not take the stub down.
    curl -s -m 0.2 -d '{"model":"m","stream":true}' "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
    r=$(post "$port" '{"model":"m","stream":true}')
    check "paced stream complete after a client left" 4 "$(grep -c '^data: ' <<<"$r")"
    kill "${pids[-1]}"
    wait "${pids[-1]}"
    check "SIGTERM exits 0" 0 "$?"
fi

# Under `make asan` the stub is built with sanitizers: a report in its stderr
# fails (the stubs are stopped first, for the leak check's report).
cleanup_stubs() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    pids=()
}
cleanup_stubs
no_san_report "no sanitizer report from the stub" "$tmp"/*.err

suite_end
