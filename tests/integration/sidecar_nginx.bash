#!/usr/bin/env bash
# nginx auth_request in front of a decision-only hpp-sidecar (the
# configuration documented in sidecar/README.md): nginx asks the sidecar for
# the decision with a body-less subrequest, copies X-HPP-Router-Resolved-Model
# onto the proxied request and the response. Run by sidecar.sh with the
# sidecar's and the upstream stand-in's ports; prints "ok NAME" / "FAIL NAME".
# (Named .bash, not .sh, so the test runner does not run it on its own.)
set -u
if [ $# -ne 2 ]; then
    echo "usage: sidecar_nginx.bash SIDECAR_PORT STUB_PORT (run by sidecar.sh)" >&2
    exit 2
fi
SIDECAR_PORT=$1
STUB_PORT=$2
tmp=$(mktemp -d)
npid=""
cleanup() {
    [ -n "$npid" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { echo "ok   $1"; }
fail() { echo "FAIL $1${2:+: $2}"; }
check() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected [$2], got [$3]"; fi; }

write_conf() { # PORT
    cat >"$tmp/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;

    upstream hpp_sidecar { server 127.0.0.1:$SIDECAR_PORT; keepalive 16; }
    upstream llm_gateway { server 127.0.0.1:$STUB_PORT; keepalive 16; }

    server {
        listen 127.0.0.1:$1;

        location = /_ready { return 200 "ready\n"; }

        location = /v1/chat/completions {
            auth_request /_hpp_route;
            auth_request_set \$hpp_model \$upstream_http_x_hpp_router_resolved_model;
            proxy_set_header X-HPP-Router-Resolved-Model \$hpp_model;
            add_header X-HPP-Router-Resolved-Model \$hpp_model always;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_pass http://llm_gateway;
        }

        location = /_hpp_route {
            internal;
            proxy_pass http://hpp_sidecar/v1/chat/completions;
            proxy_method POST;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
}

# nginx cannot bind port 0 and report it: try a few random high ports.
port=""
for _ in 1 2 3 4 5; do
    p=$((20000 + RANDOM % 30000))
    write_conf "$p"
    nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log" &
    npid=$!
    for _ in $(seq 200); do
        if curl -s -m 1 "http://127.0.0.1:$p/_ready" 2>/dev/null | grep -q ready; then
            port=$p
            break 2
        fi
        kill -0 "$npid" 2>/dev/null || break
        sleep 0.01
    done
    kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
    npid=""
done
if [ -z "$port" ]; then
    fail "nginx starts" "$(tail -n 3 "$tmp/error.log" 2>/dev/null)"
    exit 1
fi
ok "nginx starts"

body='{"model":"hpprouter/auto","messages":[{"role":"user","content":"hello"}]}'
curl -s -m 5 -o "$tmp/b" -D "$tmp/h" "http://127.0.0.1:$port/v1/chat/completions" \
    -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-nginx' -H 'X-HPP-Task: code' \
    -d "$body" >/dev/null
status=$(head -n 1 "$tmp/h" | cut -d' ' -f2)
check "request through nginx: 200" 200 "$status"
model=$(grep -i '^X-HPP-Router-Resolved-Model:' "$tmp/h" | cut -d' ' -f2- | tr -d '\r')
# The same decision straight from the sidecar for the same headers.
want=$(curl -s -m 5 -D - -o /dev/null -X POST "http://127.0.0.1:$SIDECAR_PORT/v1/chat/completions" \
    -H 'X-HPP-Task: code' | grep -i '^X-HPP-Router-Resolved-Model:' | cut -d' ' -f2- | tr -d '\r')
check "response header from the sidecar's decision" "$want" "$model"
seen=$(curl -s -m 5 "http://127.0.0.1:$STUB_PORT/_requests" | python3 -c '
import json, sys
r = json.load(sys.stdin)[-1]
print(r["headers"].get("x-hpp-router-resolved-model", "-"), r["headers"].get("authorization", "-"), r["body"]["model"])')
check "upstream got the header, the key and the untouched body" "$want Bearer sk-nginx hpprouter/auto" "$seen"
