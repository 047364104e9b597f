#!/usr/bin/python3
"""flood_client.py - peers that ask hpp-engine for a lot and read nothing back,
and a well-behaved peer that measures ping round trips meanwhile.

  flood_client.py flood ENDPOINT [--clients N] [--requests N] [--op OP]
      N DEALER sockets (N connections, N peers for the engine), each sending
      --requests requests of op OP (default models, the largest reply) without
      ever reading a reply. Prints "flooded N" on stdout once every request is
      handed to libzmq, then holds the connections open until stdin closes or
      SIGTERM, and exits 0 (closing them: the peers leave).
  flood_client.py ping ENDPOINT [--count N] [--gap-ms MS]
      One REQ-like DEALER sending ping after ping, one at a time, and printing
      one JSON line {"count", "answered", "p50_ms", "p99_ms", "max_ms"}.
  flood_client.py stats ENDPOINT
      The engine's stats reply, as one JSON line.
  flood_client.py settle ENDPOINT --sent N [--op OP] [--seconds S]
      Asks stats (every 50 ms, at most S seconds, default 30) until the engine
      has taken all N requests of op OP (answered or refused), then prints the
      stats reply; exits 1 if it never did.
  flood_client.py pipeline ENDPOINT [--depth N] [--op OP]
      A well-behaved client: sends N requests at once, reads the N replies,
      prints {"sent", "ok", "errors", "first_error"}.

Only loopback endpoints are accepted. Uses pyzmq and msgpack (/usr/bin/python3).
"""
import argparse
import json
import signal
import sys
import time

import msgpack
import zmq


def loopback(ep):
    if not ep.startswith(("tcp://127.", "tcp://localhost:", "ipc://")):
        raise SystemExit(f"flood_client.py: {ep}: loopback endpoints only")
    return ep


def request(op, rid):
    body = {"v": 1, "id": rid, "op": op}
    if op in ("route", "explain"):
        body["prompt_tokens"] = 100 + rid % 1000
    return msgpack.packb(body)


def flood(args):
    ctx = zmq.Context()
    socks = []
    for _ in range(args.clients):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.SNDHWM, 0)  # queue everything here: the engine paces the reads
        s.setsockopt(zmq.RCVHWM, 1)  # and take back as little as possible
        s.setsockopt(zmq.RCVBUF, 4096)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(args.endpoint)
        socks.append(s)
    body = request(args.op, 1)
    for i in range(args.requests):
        for s in socks:
            s.send(body, copy=True)
    print(f"flooded {args.clients * args.requests}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    for s in socks:
        s.close(linger=0)
    ctx.term()
    return 0


def client(ep):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep)
    return s


def call(s, op, rid, timeout_ms):
    s.send_multipart([b"", request(op, rid)])
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        left = int((deadline - time.monotonic()) * 1000)
        if left <= 0 or not s.poll(left):
            return None
        frames = s.recv_multipart()
        reply = msgpack.unpackb(frames[-1], raw=False)
        if reply.get("id") == rid:
            return reply


def ping(args):
    s = client(args.endpoint)
    times = []
    for i in range(args.count):
        t0 = time.perf_counter()
        r = call(s, "ping", i + 1, 2000)
        if r is not None and r.get("ok"):
            times.append((time.perf_counter() - t0) * 1000)
        if args.gap_ms:
            time.sleep(args.gap_ms / 1000)  # pacing of the pings, not a wait for readiness
    times.sort()

    def pct(p):
        return round(times[min(len(times) - 1, int(len(times) * p))], 3) if times else None

    print(json.dumps({"count": args.count, "answered": len(times), "p50_ms": pct(0.5),
                      "p99_ms": pct(0.99), "max_ms": round(times[-1], 3) if times else None}))
    return 0 if len(times) == args.count else 1


def stats(args):
    r = call(client(args.endpoint), "stats", 1, 5000)
    if r is None:
        print("{}")
        return 1
    print(json.dumps(r))
    return 0


def settle(args):
    s = client(args.endpoint)
    deadline = time.monotonic() + args.seconds
    rid = 0
    while True:
        rid += 1
        r = call(s, "stats", rid, 5000)
        taken = (r["requests"].get(args.op, 0) + r.get("refused", 0)) if r else 0
        if taken >= args.sent or time.monotonic() > deadline:
            print(json.dumps(r or {}))
            return 0 if taken >= args.sent else 1
        time.sleep(0.05)  # polling interval of the engine's counters


def pipeline(args):
    s = client(args.endpoint)
    for i in range(args.depth):
        s.send_multipart([b"", request(args.op, i + 1)])
    ok = errors = 0
    first_error = ""
    for _ in range(args.depth):
        if not s.poll(10000):
            break
        reply = msgpack.unpackb(s.recv_multipart()[-1], raw=False)
        if reply.get("ok"):
            ok += 1
        else:
            errors += 1
            first_error = first_error or reply.get("error", {}).get("message", "")
    print(json.dumps({"sent": args.depth, "ok": ok, "errors": errors,
                      "first_error": first_error}))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flood")
    f.add_argument("endpoint", type=loopback)
    f.add_argument("--clients", type=int, default=1)
    f.add_argument("--requests", type=int, default=100000)
    f.add_argument("--op", default="models")
    g = sub.add_parser("ping")
    g.add_argument("endpoint", type=loopback)
    g.add_argument("--count", type=int, default=200)
    g.add_argument("--gap-ms", type=float, default=5)
    h = sub.add_parser("stats")
    h.add_argument("endpoint", type=loopback)
    t = sub.add_parser("settle")
    t.add_argument("endpoint", type=loopback)
    t.add_argument("--sent", type=int, required=True)
    t.add_argument("--op", default="models")
    t.add_argument("--seconds", type=float, default=30)
    q = sub.add_parser("pipeline")
    q.add_argument("endpoint", type=loopback)
    q.add_argument("--depth", type=int, default=8)
    q.add_argument("--op", default="models")
    args = p.parse_args()
    return {"flood": flood, "ping": ping, "stats": stats, "settle": settle,
            "pipeline": pipeline}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
