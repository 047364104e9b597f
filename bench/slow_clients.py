#!/usr/bin/env python3
"""slow_clients.py - slow clients against hpp-sidecar, and /healthz meanwhile.

Opens --conns connections to the sidecar at once (127.0.0.1 only), each
sending the headers of a request one byte every --gap seconds (a header line
that never ends), and watches when the sidecar closes each one. Meanwhile a
second process asks GET /healthz on one kept-alive connection every
--probe-ms and times each answer. It stops when every slow connection is
closed or --header-timeout + --grace seconds after the last one opened.

Prints one JSON object: how many connections were opened and closed by the
sidecar, how long they lived (seconds, from connect to the sidecar's close),
how many got the 408 answer, and the /healthz latencies (ms: p50, p99, max)
while they were open. --baseline only times /healthz, for --seconds.
"""
import argparse
import collections
import json
import multiprocessing
import selectors
import socket
import sys
import time

REQ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def probe(port, period, stop, out):
    """GET /healthz every `period` seconds on one kept-alive connection."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat, bad = [], 0
    nxt = time.monotonic()
    while not stop.is_set():
        t0 = time.perf_counter()
        s.sendall(REQ)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(body) < n:
            body += s.recv(65536)
        lat.append((time.perf_counter() - t0) * 1000.0)
        if not head.startswith(b"HTTP/1.1 200"):
            bad += 1
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))
    out.send((lat, bad))


def slow(port, conns, gap, deadline, grace):
    sel = selectors.DefaultSelector()
    socks = {}
    t_start = time.monotonic()
    for _ in range(conns):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks[s.fileno()] = {"s": s, "t0": time.monotonic(), "sent": 0, "got": b""}
        sel.register(s, selectors.EVENT_READ)
    t_opened = time.monotonic()
    line = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100000
    lives, got408, open_ = [], 0, dict(socks)
    end = t_opened + deadline + grace
    due = collections.deque((0.0, fd) for fd in socks)  # (when, fd): all share one gap
    while open_ and time.monotonic() < end:
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, fd = due.popleft()
            c = open_.get(fd)
            if c is None:
                continue
            try:
                c["s"].send(line[c["sent"]:c["sent"] + 1])
                c["sent"] += 1
            except OSError:
                pass  # not connected yet, or closed: the read side reports it
            due.append((now + gap, fd))
        for key, _ in sel.select(timeout=0.01):
            c = open_.get(key.fd)
            if c is None:
                continue
            try:
                b = c["s"].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                b = b""
            c["got"] += b
            if not b:
                lives.append(time.monotonic() - c["t0"])
                if c["got"].startswith(b"HTTP/1.1 408"):
                    got408 += 1
                sel.unregister(c["s"])
                c["s"].close()
                del open_[key.fd]
    for c in open_.values():
        c["s"].close()
    return {
        "conns": conns, "open_s": round(t_opened - t_start, 3), "closed": len(lives),
        "not_closed": len(open_), "got_408": got408,
        "life_p50_s": round(pct(lives, 50), 3) if lives else None,
        "life_max_s": round(max(lives), 3) if lives else None,
        "all_closed_s": round(time.monotonic() - t_opened, 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True, help="the sidecar's port on 127.0.0.1")
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--gap", type=float, default=1.0, help="seconds between two bytes")
    ap.add_argument("--header-timeout", type=float, default=5.0,
                    help="the sidecar's --header-timeout (seconds)")
    ap.add_argument("--grace", type=float, default=3.0,
                    help="seconds past the deadline before giving up on a connection")
    ap.add_argument("--probe-ms", type=float, default=10.0)
    ap.add_argument("--baseline", action="store_true", help="only time /healthz")
    ap.add_argument("--seconds", type=float, default=3.0, help="--baseline: how long")
    a = ap.parse_args()
    stop = multiprocessing.Event()
    rx, tx = multiprocessing.Pipe(duplex=False)
    p = multiprocessing.Process(target=probe, args=(a.port, a.probe_ms / 1000.0, stop, tx))
    p.start()
    if a.baseline:
        time.sleep(a.seconds)
        res = {"conns": 0}
    else:
        res = slow(a.port, a.conns, a.gap, a.header_timeout, a.grace)
    stop.set()
    lat, bad = rx.recv()
    p.join()
    res.update({"healthz_n": len(lat), "healthz_bad": bad,
                "healthz_p50_ms": round(pct(lat, 50), 3) if lat else None,
                "healthz_p99_ms": round(pct(lat, 99), 3) if lat else None,
                "healthz_max_ms": round(max(lat), 3) if lat else None})
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
