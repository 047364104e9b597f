#!/usr/bin/env bash
# Gateways in front of a decision-only hpp-sidecar: the auth route
# (GET or POST /v1/chat/completions) as forward-auth callers use it, the
# refusal mapping of --auth-refusal-status, and real nginx (auth_request) and
# Caddy (forward_auth) processes in front of it, each with its own
# configuration (tests/integration/gateways/) on a free loopback port, before
# the upstream stand-in tests/integration/upstream_stub.py. nginx-light and
# caddy are installed from Debian when missing (gateway_lib.bash); the
# services the packages come with are never started nor used. Everything runs
# on 127.0.0.1 and is stopped by PID.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
STUB=tests/integration/upstream_stub.py
CONF=tests/integration/gateways
names=()

# shellcheck source=tests/integration/check_lib.bash
source tests/integration/check_lib.bash
# shellcheck source=tests/integration/gateway_lib.bash
source tests/integration/gateway_lib.bash
suite_setup

# start NAME REGEX CMD...: CMD in the background, stderr in $tmp/NAME.err;
# waits for its readiness line and sets $ready to REGEX's group 1.
start() {
    local name=$1 re=$2
    shift 2
    "$@" 2>"$tmp/$name.err" >/dev/null &
    pids+=("$!")
    names+=("$name")
    ready=$(await_line "$tmp/$name.err" "s/$re/\\1/p" "$!" 250) && return 0
    fail "$name starts" "$(tail -n 5 "$tmp/$name.err")"
    return 1
}
start_sidecar() { # NAME ARGS... -> $ready = port
    local name=$1
    shift
    start "$name" '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" --listen 127.0.0.1:0 "$@"
}
# Stops what is still running; our servers must exit 0 on SIGTERM, without a
# sanitizer report under `make asan`.
finish() {
    local i name rc
    for i in "${!names[@]}"; do
        name=${names[$i]}
        kill -0 "${pids[$i]}" 2>/dev/null || continue
        kill -TERM "${pids[$i]}"
        wait "${pids[$i]}"
        rc=$?
        [ "$name" = stub ] && continue
        check "$name exits 0 on SIGTERM" 0 "$rc"
        case "$name" in nginx | caddy) continue ;; esac
        no_san_report "$name: no sanitizer report" "$tmp/$name.err"
    done
    suite_end
}

# req METHOD PORT PATH [BODY [curl args...]]: the status; headers in $tmp/h,
# body in $tmp/b.
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
# code: error.code of the JSON body in $tmp/b, or - when it is not one.
code() {
    python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["error"]["code"])
except Exception: print("-")' "$tmp/b"
}
# The stand-in upstream's recorded requests: how many, and the last one's
# resolved-model header, Authorization and body model.
stub_count() { curl -s -m 5 "http://127.0.0.1:$SP/_requests" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
stub_last() {
    curl -s -m 5 "http://127.0.0.1:$SP/_requests" | python3 -c 'import json, sys
r = json.load(sys.stdin)
r = r[-1] if r else {"headers": {}, "body": {}}
h = r["headers"]
print(h.get("x-hpp-router-resolved-model", "-"), h.get("authorization", "-"), r["body"].get("model", "-"))'
}
# The last recorded request's endpoint headers: provider and provider model.
stub_endpoint() {
    curl -s -m 5 "http://127.0.0.1:$SP/_requests" | python3 -c 'import json, sys
r = json.load(sys.stdin)
h = r[-1]["headers"] if r else {}
print(h.get("x-hpp-router-provider", "-"), h.get("x-hpp-router-provider-model", "-"))'
}
# shellcheck disable=SC2317 # render, nginx_conf and caddy_conf are called by gw_start
# render TEMPLATE OUT PORT: the gateway configuration with its placeholders
# replaced.
render() {
    sed -e "s|@DIR@|$tmp|g" -e "s|@PORT@|$3|g" -e "s|@DECIDE@|$D|g" -e "s|@STRICT@|$S|g" \
        -e "s|@UPSTREAM@|$SP|g" "$1" >"$2"
}
# shellcheck disable=SC2317
nginx_conf() { render "$CONF/nginx.conf" "$tmp/nginx.conf" "$1"; }
# shellcheck disable=SC2317
caddy_conf() { render "$CONF/Caddyfile" "$tmp/Caddyfile" "$1"; }

for bin in "$ENGINE" "$SIDECAR"; do
    if [ ! -x "$bin" ]; then
        fail "binary $bin exists"
        finish
    fi
done

# Flags -------------------------------------------------------------------------
for bad in "--auth-refusal-status 500" "--auth-refusal-status 200" "--auth-refusal-status x" \
    "--auth-refusal-status"; do
    # shellcheck disable=SC2086
    "$SIDECAR" $bad >/dev/null 2>"$tmp/bad.err"
    check "rejects '$bad' with exit 2" 2 "$?"
    has_text "message for '$bad'" "--auth-refusal-status" "$(cat "$tmp/bad.err")"
done
"$SIDECAR" --listen 127.0.0.1:0 --upstream http://127.0.0.1:9/v1 --auth-refusal-status 403 \
    >/dev/null 2>"$tmp/bad.err"
check "--auth-refusal-status with --upstream: exit 2" 2 "$?"
has_text "--auth-refusal-status with --upstream: says why" "decision-only" "$(cat "$tmp/bad.err")"
has_text "--help lists --auth-refusal-status" "--auth-refusal-status N" "$("$SIDECAR" --help)"

# Processes -----------------------------------------------------------------------
start engine '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 ||
    finish
EP=$ready
start stub '^upstream_stub.py: ready on 127\.0\.0\.1:\([0-9]*\)$' python3 "$STUB" || finish
SP=$ready
start_sidecar decide --engine "$EP" || finish
D=$ready
start_sidecar strict --engine "$EP" --auth-refusal-status 403 || finish
S=$ready
start_sidecar proxy --engine "$EP" --upstream "http://127.0.0.1:$SP/v1" || finish
P=$ready
# An engine endpoint where nothing listens: every decision is a 503.
start_sidecar strict_down --engine tcp://127.0.0.1:1 --auth-refusal-status 403 || finish
SD=$ready

BODY='{"model":"hpprouter/auto","messages":[{"role":"user","content":"hello"}]}'
BODY_NOPE='{"model":"nope/nope","messages":[{"role":"user","content":"hello"}]}'

# GET and HEAD on the auth route (forward auth) -----------------------------------------------
check "POST, hint headers only: 200" 200 "$(req POST "$D" /v1/chat/completions "" -H 'X-HPP-Task: code')"
want=$(hdr X-HPP-Router-Resolved-Model)
# The auth answer names the endpoint too: its provider and the provider's own id.
want_ep="$(hdr X-HPP-Router-Provider) $(hdr X-HPP-Router-Provider-Model)"
req POST "$D" /v1/route "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"hpp\":{\"task\":\"code\"}}" >/dev/null
check "auth answer: provider headers = the decision's endpoint" \
    "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["provider"], j["provider_model"])' "$tmp/b")" \
    "$want_ep"
check "GET, hint headers only: 200" 200 "$(req GET "$D" /v1/chat/completions "" -H 'X-HPP-Task: code')"
check "GET: the decision of the same POST" "$want" "$(hdr X-HPP-Router-Resolved-Model)"
check "GET: empty body" 0 "$(stat -c %s "$tmp/b")"
# What Traefik's forwardAuth adds to the client's headers: informational only.
fwd=(-H 'X-Forwarded-Method: POST' -H 'X-Forwarded-Proto: https' -H 'X-Forwarded-Host: llm.example.com'
    -H 'X-Forwarded-Uri: /v1/chat/completions?x=1' -H 'X-Forwarded-For: 203.0.113.7, 10.0.0.1')
check "GET with X-Forwarded-* and X-HPP-Model: 200" 200 \
    "$(req GET "$D" /v1/chat/completions "" "${fwd[@]}" -H 'X-HPP-Model: openai/gpt-4o')"
check "GET with X-Forwarded-*: the requested model" "openai/gpt-4o" "$(hdr X-HPP-Router-Resolved-Model)"
check "GET with X-Forwarded-Method: GET changes nothing" "200 $want" \
    "$(req GET "$D" /v1/chat/completions "" -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Uri: /v1/models' \
        -H 'X-HPP-Task: code') $(hdr X-HPP-Router-Resolved-Model)"
check "POST without body or hint: 400 invalid_json" "400 invalid_json" \
    "$(req POST "$D" /v1/chat/completions "") $(code)"
post_msg=$(cat "$tmp/b")
check "GET without hint: 400 invalid_json" "400 invalid_json" "$(req GET "$D" /v1/chat/completions "") $(code)"
check "GET without hint: the POST's answer" "$post_msg" "$(cat "$tmp/b")"
check "GET with X-Forwarded-* but no hint: 400 invalid_json" "400 invalid_json" \
    "$(req GET "$D" /v1/chat/completions "" "${fwd[@]}") $(code)"
# Traefik's forwardBody sends the client's body with the GET: read like a POST's.
check "GET with a body: routed on the body" "200 openai/gpt-4o-mini" \
    "$(req GET "$D" /v1/chat/completions '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' \
        -H 'Content-Type: application/json') $(hdr X-HPP-Router-Resolved-Model)"
check "GET, unknown model: 404 unknown_model" "404 unknown_model" \
    "$(req GET "$D" /v1/chat/completions "" -H 'X-HPP-Model: nope/nope') $(code)"
check "default: no X-HPP-Router-Error" "" "$(hdr X-HPP-Router-Error)"
# HAProxy's Lua auth-request asks with HEAD: the decision in the headers.
head_req() { curl -s -m 10 --head -o /dev/null -D "$tmp/h" -w '%{http_code}' "$@"; }
check "HEAD, hint headers: 200 and the decision" "200 $want" \
    "$(head_req "http://127.0.0.1:$D/v1/chat/completions" -H 'X-HPP-Task: code') $(hdr X-HPP-Router-Resolved-Model)"
check "HEAD without hint: 400" 400 "$(head_req "http://127.0.0.1:$D/v1/chat/completions")"
check "HEAD, mapped: 403 with the code" "403 unknown_model" \
    "$(head_req "http://127.0.0.1:$S/v1/chat/completions" -H 'X-HPP-Model: nope/nope') $(hdr X-HPP-Router-Error)"
# Two requests on one connection, a HEAD first: what libevent 2.1 would send
# as the HEAD answer's body must not arrive in front of the second answer.
keepalive_after_head() { # PORT HEAD_HEADERS: the status line of the second answer
    python3 - "$1" "$2" <<'EOF2'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(("HEAD /v1/chat/completions HTTP/1.1\r\nHost: x\r\n%s\r\n"
           "GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-HPP-Task: code\r\n"
           "Connection: close\r\n\r\n" % sys.argv[2].replace("|", "\r\n")).encode())
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except OSError:
    pass
first, _, rest = out.partition(b"\r\n\r\n")
print(first.split(b"\r\n")[0].decode(), "|", rest.split(b"\r\n")[0].decode(errors="replace"))
EOF2
}
check "HEAD refusal then GET on one connection: no body in between" \
    "HTTP/1.1 403 Forbidden | HTTP/1.1 200 OK" "$(keepalive_after_head "$S" 'X-HPP-Model: nope/nope|')"
check "HEAD decision then GET on one connection" \
    "HTTP/1.1 200 OK | HTTP/1.1 200 OK" "$(keepalive_after_head "$D" 'X-HPP-Task: code|')"
check "PUT: 405 with Allow: POST, GET, HEAD" "405 method_not_allowed POST, GET, HEAD" \
    "$(req PUT "$D" /v1/chat/completions "" -H 'X-HPP-Task: code') $(code) $(hdr Allow)"
check "proxy mode has no auth route: GET 405, Allow: POST" "405 method_not_allowed POST" \
    "$(req GET "$P" /v1/chat/completions "" -H 'X-HPP-Task: code') $(code) $(hdr Allow)"
check "GET /v1/route stays 405" "405 POST" "$(req GET "$D" /v1/route "" -H 'X-HPP-Task: code') $(hdr Allow)"

# --auth-refusal-status 403 ------------------------------------------------------------
check "mapped: a decision is still 200" "200 $want" \
    "$(req GET "$S" /v1/chat/completions "" -H 'X-HPP-Task: code') $(hdr X-HPP-Router-Resolved-Model)"
check "mapped: no X-HPP-Router-Error on a decision" "" "$(hdr X-HPP-Router-Error)"
# refused METHOD PORT NAME CODE [curl args]: 403, the code in the header and the body.
refused() {
    local m=$1 p=$2 name=$3 want_code=$4
    shift 4
    check "mapped: $name -> 403 $want_code" "403 $want_code $want_code" \
        "$(req "$m" "$p" /v1/chat/completions "" "$@") $(hdr X-HPP-Router-Error) $(code)"
}
refused GET "$S" "400 (no hint)" invalid_json
refused POST "$S" "400 (bad hint)" invalid_value -H 'X-HPP-Prompt-Tokens: -3'
refused GET "$S" "404 (unknown model)" unknown_model -H 'X-HPP-Model: nope/nope'
refused GET "$S" "422 (too long for any model)" no_candidate -H 'X-HPP-Prompt-Tokens: 100000000'
refused GET "$S" "422 (no free variant)" no_free_variant -H 'X-HPP-Model: openai/gpt-4o:free'
refused PUT "$S" "405" method_not_allowed -H 'X-HPP-Task: code'
check "mapped 405 keeps Allow" "POST, GET, HEAD" "$(hdr Allow)"
refused GET "$SD" "503 (engine down)" engine_unavailable -H 'X-HPP-Task: code'
refused POST "$S" "400 (malformed body)" invalid_json -d '{"model":'
check "mapped: only the auth route (/v1/route keeps 404)" "404 unknown_model " \
    "$(req POST "$S" /v1/route "$BODY_NOPE") $(code) $(hdr X-HPP-Router-Error)"

# nginx auth_request --------------------------------------------------------------
BODY='{"model":"hpprouter/auto","messages":[{"role":"user","content":"hello"}]}'
if ! need_pkg nginx nginx-light; then
    skip "nginx auth_request" "$pkg_why"
elif ! gw_start nginx nginx_conf nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log"; then
    fail "nginx starts" "$(tail -n 3 "$tmp/nginx-error.log" "$tmp/nginx.log" 2>/dev/null)"
else
    N=$gw_port
    names+=(nginx)
    ok "nginx starts"
    # (GET subrequest, the documented configuration)
    check "nginx: 200" 200 "$(req POST "$N" /v1/chat/completions "$BODY" -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer sk-nginx' -H 'X-HPP-Task: code')"
    check "nginx: response header from the sidecar's decision" "$want" "$(hdr X-HPP-Router-Resolved-Model)"
    check "nginx: the upstream got the header, the key and the untouched body" \
        "$want Bearer sk-nginx hpprouter/auto" "$(stub_last)"
    check "nginx: the upstream got the endpoint (provider, provider model)" "$want_ep" "$(stub_endpoint)"
    check "nginx, POST subrequest (earlier configuration): 200, same decision" "200 $want" \
        "$(req POST "$N" /post/v1/chat/completions "$BODY" -H 'X-HPP-Task: code') $(hdr X-HPP-Router-Resolved-Model)"
    check "nginx, default statuses: a 404 refusal becomes nginx's 500" 500 \
        "$(req POST "$N" /v1/chat/completions "$BODY" -H 'X-HPP-Model: nope/nope')"
    check "nginx, mapped: decision 200" "200 $want" \
        "$(req POST "$N" /strict/v1/chat/completions "$BODY" -H 'X-HPP-Task: code') $(hdr X-HPP-Router-Resolved-Model)"
    n0=$(stub_count)
    check "nginx, mapped: a 404 refusal arrives as 403 with its code (header and body)" \
        "403 unknown_model unknown_model" \
        "$(req POST "$N" /strict/v1/chat/completions "$BODY" -H 'X-HPP-Model: nope/nope') $(hdr X-HPP-Router-Error) $(code)"
    check "nginx, mapped: a 422 refusal arrives as 403 no_candidate" "403 no_candidate" \
        "$(req POST "$N" /strict/v1/chat/completions "$BODY" -H 'X-HPP-Prompt-Tokens: 100000000') $(hdr X-HPP-Router-Error)"
    check "nginx, mapped: no hint arrives as 403 invalid_json" "403 invalid_json" \
        "$(req POST "$N" /strict/v1/chat/completions "$BODY") $(hdr X-HPP-Router-Error)"
    check "nginx: refused requests never reached the upstream" "$n0" "$(stub_count)"
fi

# Caddy forward_auth ------------------------------------------------------------------
if ! need_pkg caddy caddy; then
    skip "Caddy forward_auth" "$pkg_why"
elif ! HOME=$tmp XDG_DATA_HOME=$tmp/caddy-data XDG_CONFIG_HOME=$tmp/caddy-config \
    gw_start caddy caddy_conf caddy run --config "$tmp/Caddyfile" --adapter caddyfile; then
    fail "Caddy starts" "$(tail -n 3 "$tmp/caddy.log")"
else
    C=$gw_port
    names+=(caddy)
    ok "Caddy starts"
    check "Caddy: 200" 200 "$(req POST "$C" /v1/chat/completions "$BODY" -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer sk-caddy' -H 'X-HPP-Task: code')"
    check "Caddy: the upstream got the resolved model, the key and the untouched body" \
        "$want Bearer sk-caddy hpprouter/auto" "$(stub_last)"
    check "Caddy: the upstream got the endpoint (provider, provider model)" "$want_ep" "$(stub_endpoint)"
    check "Caddy, X-HPP-Model: the upstream got that model" "openai/gpt-4o" \
        "$(req POST "$C" /v1/chat/completions "$BODY" -H 'X-HPP-Model: openai/gpt-4o' >/dev/null
        stub_last | cut -d' ' -f1)"
    n0=$(stub_count)
    check "Caddy: a refusal arrives as the sidecar sent it (404, JSON)" "404 unknown_model" \
        "$(req POST "$C" /v1/chat/completions "$BODY" -H 'X-HPP-Model: nope/nope') $(code)"
    check "Caddy, mapped: a refusal arrives as 403 with its code" "403 unknown_model unknown_model" \
        "$(req POST "$C" /strict/v1/chat/completions "$BODY" -H 'X-HPP-Model: nope/nope') $(hdr X-HPP-Router-Error) $(code)"
    # forward_auth never sends the body: with no hint header there is nothing to decide on.
    check "Caddy: a body without hint headers is refused (400 invalid_json)" "400 invalid_json" \
        "$(req POST "$C" /v1/chat/completions "$BODY") $(code)"
    check "Caddy: refused requests never reached the upstream" "$n0" "$(stub_count)"
fi

finish
