#!/usr/bin/env bash
# hpp-sidecar under pressure from its clients and its upstream: starts the real
# hpp-engine, hpp-sidecar and the upstream stand-in tests/integration/upstream_stub.py
# on 127.0.0.1 ephemeral ports (readiness lines as probes), and checks:
#   - out of file descriptors (ulimit -n 64, 200 connections): the sidecar does
#     not spin on accept() nor flood its log, and serves again afterwards;
#   - --max-connections: the connection past the limit gets 503 and is closed,
#     and is counted;
#   - deadlines per request, not per byte: headers or a body trickled a byte at
#     a time are cut (408) at --header-timeout / --body-timeout, and a
#     kept-alive connection without a request is closed at --idle-timeout;
#   - proxy mode: upstream response headers over the limits (64 KiB in all,
#     8 KiB a line) are answered 502, not passed to the client;
#   - long bodies: a 1 MiB long-context body whose deciding fields come after
#     2,000 messages is routed on all of them (both modes, forwarded whole), one
#     cut short is refused with where it ends, and --max-body still holds.
# Stops what it started by PID. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
STUB=tests/integration/upstream_stub.py
names=()

source tests/integration/check_lib.bash
suite_setup

trap 'stop_started stub >/dev/null 2>&1; rm -rf "$tmp"' EXIT

# start NAME REGEX CMD...: as in sidecar.sh; sets $ready (REGEX's group 1) and $pid.
SC_READY='^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$'
# start_sidecar NAME ARGS...: the sidecar on an ephemeral port, against the engine.
start_sidecar() {
    local name=$1
    shift
    start "$name" "$SC_READY" "$SIDECAR" --listen 127.0.0.1:0 --engine "$EP" "$@"
}
# healthz PORT: the status of GET /healthz, waiting (bounded) for the sidecar
# to take connections again.
healthz() {
    local code _
    for _ in $(seq 50); do
        code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/healthz")
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    echo "$code"
}
metrics() { curl -s -m 5 "http://127.0.0.1:$1/metrics"; }
# metric PORT SERIES: the value of one series of /metrics (0 when absent).
metric() {
    metrics "$1" | awk -v s="$2" '$1 == s { v = $2 } END { print v + 0 }'
}

# flood PORT PID N HOLD: opens N connections at once and holds them HOLD
# seconds; prints the CPU time the process PID used meanwhile and the time
# that passed, both in clock ticks. Then closes them.
flood() {
    python3 - "$@" <<'EOF'
import os, socket, sys, time
port, pid, n, hold = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
def cpu():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime
socks = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    socks.append(s)
t0, c0 = time.monotonic(), cpu()
time.sleep(hold)
c1, t1 = cpu(), time.monotonic()
print(c1 - c0, round((t1 - t0) * os.sysconf("SC_CLK_TCK")))
for s in socks:
    s.close()
EOF
}

# over_limit PORT N: opens N connections, each answering a GET /healthz, then
# one more; prints that one's status line and error code, whether it was
# closed, then the refused and open connection counts /metrics gives on the
# first connection.
over_limit() {
    python3 - "$@" <<'EOF'
import json, re, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
def get(s, path):
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    want = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < want:
        body += s.recv(65536)
    return head, body
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    get(s, "/healthz")
    held.append(s)
extra = socket.create_connection(("127.0.0.1", port), timeout=5)
out = b""
closed = "open"
try:
    while True:
        b = extra.recv(65536)
        if not b:
            closed = "closed"
            break
        out += b
except socket.timeout:
    pass
except OSError:
    closed = "closed"
head, _, body = out.partition(b"\r\n\r\n")
try:
    code = json.loads(body)["error"]["code"]
except ValueError:
    code = "-"
print(head.split(b"\r\n")[0].decode() or "-", code, closed)
_, text = get(held[0], "/metrics")
vals = dict(l.split() for l in text.decode().splitlines()
            if l.startswith("hpp_sidecar_connections_"))
print(vals.get("hpp_sidecar_connections_refused_total"), vals.get("hpp_sidecar_connections_open"))
EOF
}

# trickle PORT HEAD BODY: sends HEAD (Python escapes) then BODY, one byte every
# 200 ms for the part given as TRICKLE_PART (head or body; the other at once),
# reading what comes meanwhile. Prints "closed STATUS CODE" when the sidecar
# closed the connection before the last byte was due (STATUS and CODE of its
# answer, - when none), else "open".
trickle() {
    python3 - "$@" <<'EOF'
import json, os, select, socket, sys
port = int(sys.argv[1])
head = sys.argv[2].encode().decode("unicode_escape").encode("latin-1")
body = sys.argv[3].encode()
slow = os.environ["TRICKLE_PART"]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
out, closed = b"", False
def drain(wait):
    global out, closed
    while not closed and select.select([s], [], [], wait)[0]:
        try:
            b = s.recv(65536)
        except OSError:
            b = b""
        if not b:
            closed = True
        out += b
        wait = 0.05
def send(data):
    global closed
    try:
        s.sendall(data)
    except OSError:
        closed = True
if slow == "head":
    parts, rest = [head[i:i + 1] for i in range(len(head))], body
else:
    send(head)
    parts, rest = [body[i:i + 1] for i in range(len(body))], b""
for p in parts:
    if closed:
        break
    send(p)
    drain(0.2)
if not closed:
    print("open")
    sys.exit()
h, _, b = out.partition(b"\r\n\r\n")
status = h.split(b" ")[1].decode() if h.startswith(b"HTTP/1.1 ") else "-"
try:
    code = json.loads(b)["error"]["code"]
except ValueError:
    code = "-"
print("closed", status, code)
EOF
}

# after_request PORT WAIT: one GET /healthz on a kept-alive connection, then
# waits up to WAIT seconds for the sidecar to close it; prints the status and
# "closed" or "open".
after_request() {
    python3 - "$@" <<'EOF'
import select, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(65536)
status = data.split(b" ")[1].decode()
end = time.monotonic() + float(sys.argv[2])
state = "open"
while time.monotonic() < end:
    if select.select([s], [], [], 0.1)[0]:
        try:
            b = s.recv(65536)
        except OSError:
            b = b""
        if not b:
            state = "closed"
            break
print(status, state)
EOF
}

start engine '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1 ||
    suite_end
EP=$ready

# --- Out of file descriptors ---------------------------------------------------
# 200 connections to a sidecar allowed 64 descriptors: with its default
# --max-connections (what the limit leaves) and with a limit the descriptors
# cannot reach (accept() then fails with EMFILE). Either way its CPU time over
# the 2 s stays a small part of it (a loop on accept() takes most of a core)
# and its log stays short (one line per accept() once took 300,000 lines a
# second), and it answers /healthz once the connections are gone.
for variant in default max1000; do
    extra=()
    [ "$variant" = max1000 ] && extra=(--max-connections 1000)
    start "fd_$variant" "$SC_READY" bash -c 'ulimit -n 64 && exec "$@"' sh \
        "$SIDECAR" --listen 127.0.0.1:0 --engine "$EP" "${extra[@]}" || continue
    port=$ready
    check "fd $variant: /healthz before" 200 "$(healthz "$port")"
    lines0=$(wc -l <"$tmp/fd_$variant.err")
    read -r cpu wall < <(flood "$port" "$pid" 200 2)
    if [ "$((cpu * 4))" -lt "$wall" ]; then
        ok "fd $variant: 200 connections, ulimit -n 64: CPU ${cpu} of ${wall} ticks"
    else
        fail "fd $variant: 200 connections, ulimit -n 64: CPU" "${cpu} of ${wall} ticks (a spin?)"
    fi
    check "fd $variant: /healthz after the connections are gone" 200 "$(healthz "$port")"
    lines=$(($(wc -l <"$tmp/fd_$variant.err") - lines0))
    if [ "$lines" -le 20 ]; then
        ok "fd $variant: log bounded ($lines lines)"
    else
        fail "fd $variant: log bounded" "$lines lines: $(tail -n 3 "$tmp/fd_$variant.err")"
    fi
    if [ "$variant" = max1000 ]; then
        has_line "fd $variant: the failed accept is logged" "accept: Too many open files" \
            "$tmp/fd_$variant.err"
        n=$(metric "$port" hpp_sidecar_accept_errors_total)
        if [ "$n" -ge 1 ]; then ok "fd $variant: accept errors counted ($n)"; else
            fail "fd $variant: accept errors counted" "$n"; fi
    else
        n=$(metric "$port" hpp_sidecar_connections_refused_total)
        if [ "$n" -ge 1 ]; then ok "fd $variant: connections past the default limit refused ($n)"; else
            fail "fd $variant: connections past the default limit refused" "$n"; fi
        has_line "fd $variant: the refusals are logged" "connection refused (503)" \
            "$tmp/fd_$variant.err"
    fi
done

# --- --max-connections ------------------------------------------------------------
if start_sidecar maxconn --max-connections 3; then
    port=$ready
    mapfile -t got < <(over_limit "$port" 3)
    check "max-connections 3: the 4th connection gets 503 and is closed" \
        "HTTP/1.1 503 Service Unavailable too_many_connections closed" "${got[0]:-}"
    check "max-connections 3: refused 1, open 3 (/metrics on a held connection)" "1 3" \
        "${got[1]:-}"
    check "max-connections 3: served again once they are closed" 200 "$(healthz "$port")"
fi

# --- Deadlines per request -------------------------------------------------------
if start_sidecar slow --header-timeout 1 --body-timeout 1 --idle-timeout 1; then
    port=$ready
    # 50 header bytes at 5 a second: 10 s, closed at about 1 s.
    check "header trickled a byte at a time: 408 and closed at --header-timeout" \
        "closed 408 request_timeout" \
        "$(TRICKLE_PART='head' trickle "$port" 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaa\r\n\r\n' '')"
    body='{"model":"hpprouter/auto","messages":[{"role":"user","content":"hi"}]}'
    check "body trickled a byte at a time: 408 and closed at --body-timeout" \
        "closed 408 request_timeout" \
        "$(TRICKLE_PART=body trickle "$port" "POST /v1/route HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\nContent-Length: ${#body}\\r\\n\\r\\n" "$body")"
    check "kept alive without a request: closed at --idle-timeout" "200 closed" \
        "$(after_request "$port" 10)"
    check "header deadline: counted" 1 "$(metric "$port" 'hpp_sidecar_client_timeouts_total{phase="header"}')"
    check "body deadline: counted" 1 "$(metric "$port" 'hpp_sidecar_client_timeouts_total{phase="body"}')"
    n=$(metric "$port" 'hpp_sidecar_client_timeouts_total{phase="idle"}')
    if [ "$n" -ge 1 ]; then ok "idle deadline: counted ($n)"; else fail "idle deadline: counted" "$n"; fi
    # A request sent whole, slowly but within the deadlines, is answered.
    check "a request within its deadlines is answered" 200 \
        "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")"
fi

# --- Upstream response headers (proxy mode) ----------------------------------
if start stub '^upstream_stub.py: ready on 127\.0\.0\.1:\([0-9]*\)$' python3 "$STUB" &&
    SP=$ready && start_sidecar proxy --upstream "http://127.0.0.1:$SP/v1"; then
    port=$ready
    chat='{"model":"hpprouter/auto","messages":[{"role":"user","content":"hi"}]}'
    # big_header LINES BYTES: the status and error code of a chat completion
    # whose upstream answer carries LINES headers of BYTES bytes.
    big_header() {
        curl -s -m 5 "http://127.0.0.1:$SP/_control" -d "{\"reset\":true,\"big_header\":[$1,$2]}" \
            >/dev/null
        local s
        s=$(curl -s -m 10 -o "$tmp/b" -w '%{http_code}' "http://127.0.0.1:$port/v1/chat/completions" \
            -H 'Content-Type: application/json' -d "$chat")
        echo "$s $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["code"])' \
            "$tmp/b" 2>/dev/null || echo -)"
    }
    check "upstream header of 2 MB: 502" "502 upstream_invalid_response" "$(big_header 1 2097152)"
    check "upstream header line over 8 KiB: 502" "502 upstream_invalid_response" \
        "$(big_header 1 9000)"
    has_text "upstream header line over 8 KiB: the message gives the limit" "8 KiB" "$(cat "$tmp/b")"
    check "upstream headers over 64 KiB in all: 502" "502 upstream_invalid_response" \
        "$(big_header 12 6000)"
    check "upstream headers within the limits: passed on" "200 -" "$(big_header 7 6000)"

    # --- Long bodies -------------------------------------------------------------
    # A long-context request of about 1 MiB: 2,000 messages, then what decides
    # (max_tokens, a tool); the same cut before its last brace.
    python3 - "$tmp" <<'EOF'
import json, sys
words = "route model budget tokens cache provider answer context window prompt".split()
msgs = [{"role": "user" if i % 2 == 0 else "assistant",
         "content": " ".join(words[(i + k * k) % 10] for k in range(75))} for i in range(2000)]
body = {"model": "hpprouter/auto", "messages": msgs, "max_tokens": 7,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]}
text = json.dumps(body, separators=(",", ":"))
open(sys.argv[1] + "/long.json", "w").write(text)
open(sys.argv[1] + "/long_cut.json", "w").write(text[:-1])
EOF
    curl -s -m 5 "http://127.0.0.1:$SP/_control" -d '{"reset":true}' >/dev/null
    if start_sidecar long; then
        lp=$ready
        route() {
            curl -s -m 30 -o "$tmp/r" -w '%{http_code}' "http://127.0.0.1:$lp/v1/route" \
                -H 'Content-Type: application/json' --data-binary @"$1"
        }
        field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/r" "$1"; }
        check "1 MiB body, deciding fields after 2,000 messages: routed" 200 "$(route "$tmp/long.json")"
        check "1 MiB body: max_tokens after the messages is read" 7 "$(field output_tokens)"
        n=$(field prompt_tokens)
        if [ "${n:-0}" -gt 150000 ]; then
            ok "1 MiB body: every message counted ($n prompt tokens)"
        else
            fail "1 MiB body: every message counted" "$n prompt tokens"
        fi
        check "1 MiB body cut before its last brace: 400" 400 "$(route "$tmp/long_cut.json")"
        # Bodies past one socket read (4 KiB in libevent 2.1) are read ahead in
        # one go: a 40 KB body with the next request behind it in the same
        # write, then a body that comes in two parts, on one connection.
        check "kept alive: a 40 KB body, a request pipelined behind it, a body in two parts" \
            "200 11 200 13 200 17" "$(python3 - "$lp" <<'EOF'
import json, socket, sys, time
port = int(sys.argv[1])
def req(n, size):
    body = json.dumps({"model": "hpprouter/auto", "max_tokens": n,
                       "messages": [{"role": "user", "content": "x" * size}]}).encode()
    return (b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(req(11, 40000) + req(13, 10))
third = req(17, 30000)
buf, out = b"", []
def answer():
    global buf
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n")
             if l.lower().startswith(b"content-length:")][0])
    while len(buf) < n:
        buf += s.recv(65536)
    body, buf = buf[:n], buf[n:]
    out.append("%s %s" % (head.split()[1].decode(), json.loads(body).get("output_tokens")))
answer()
answer()
s.sendall(third[:5000])
time.sleep(0.2)
s.sendall(third[5000:])
answer()
print(" ".join(out))
EOF
)"
        has_text "... and the error says where it ends" \
            "column $(($(stat -c %s "$tmp/long_cut.json") + 1))" "$(cat "$tmp/r")"
    fi
    if start_sidecar long_limit --max-body 1000000; then
        check "--max-body 1000000: the 1 MiB body is 413" 413 \
            "$(curl -s -m 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ready/v1/route" \
                -H 'Content-Type: application/json' --data-binary @"$tmp/long.json")"
    fi
    check "proxy: the 1 MiB body is answered" 200 \
        "$(curl -s -m 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/chat/completions" \
            -H 'Content-Type: application/json' --data-binary @"$tmp/long.json")"
    curl -s -m 10 "http://127.0.0.1:$SP/_requests" >"$tmp/seen"
    check "proxy: forwarded whole (messages, max_tokens, tools)" "2000 7 1" \
        "$(python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))[-1]["body"]
print(len(r["messages"]), r["max_tokens"], len(r["tools"]))' "$tmp/seen" 2>&1)"
fi

stop_started stub
suite_end
