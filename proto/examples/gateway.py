#!/usr/bin/env python3
"""A gateway's side of the hpprouter wire protocol, in Python.

Written from proto/PROTOCOL.md alone (Debian packages python3-zmq and
python3-msgpack), as proof that the spec is enough to build a client in
another language. It sends requests to hpp-engine and prints each reply as
one JSON line.

One request from flags:

    python3 proto/examples/gateway.py --engine tcp://127.0.0.1:5555 \\
        --prompt-tokens 1200 --hint code --budget 0.05

Many requests, pipelined on one DEALER socket and matched by id, from a file
with one JSON object of features per line (an "op" key overrides --op):

    python3 proto/examples/gateway.py --engine tcp://127.0.0.1:5555 --requests reqs.jsonl

Several engines: repeat --engine. One DEALER is connected to all of them and
ZeroMQ deals the requests out in turn, to connected engines only
(ZMQ_IMMEDIATE); a request still unanswered after --resend-ms is sent again,
same id, and goes to the next engine (the first reply wins, a later twin is
ignored). With CURVE (PROTOCOL.md, Transport), give the engines' public key
file and this client's secret key file (mode 0600, never in argv):

    python3 proto/examples/gateway.py --engine tcp://10.0.0.1:5555 \\
        --engine tcp://10.0.0.2:5555 --curve-server-key keys/engine.pub \\
        --curve-secret keys/gateway.sec --prompt-tokens 1200

Reports: a line {"op": "report", "attempts": [{"model": ..., "provider": ...,
"status": 429, "latency_ms": 35}]} tells the engine how a call went
(PROTOCOL.md, Reports). A real gateway sends them without waiting (the
engine answers only a refused one); this example asks for an
acknowledgement ("ack": true) so that every line gets a reply to print.

Exit status: 0 when every reply has ok=true, 1 when any has ok=false or a
reply did not arrive in time, 2 for bad arguments or input.
"""

import argparse
import itertools
import json
import os
import stat
import sys
import time

import msgpack
import zmq

PROTOCOL_VERSION = 1
OPS = ("route", "explain", "models", "stats", "reload", "ping", "report")
# Feature keys and the Python types PROTOCOL.md allows for them.
FEATURE_TYPES = {
    "model": str,
    "prompt_tokens": int,
    "output_tokens": int,
    "cache_read_tokens": int,
    "cache_write_tokens": int,
    "reasoning_tokens": int,
    "images": int,
    "vision": bool,
    "tools": bool,
    "json": bool,
    "hints": list,
    "budget_usd": (int, float),
    "group": str,
    "text": str,
    "meta": dict,
    "providers_sort": str,
    "preferred_max_latency": (int, float),
    "preferred_min_throughput": (int, float),
    "attempts": list,  # report
    "ack": bool,  # report
}


class ProtocolError(Exception):
    """A reply that does not follow PROTOCOL.md."""


KEY_LEN = 40  # Z85 characters of a CURVE key
Z85 = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")


def read_key(path, secret=False):
    """The key of a key file: its first line that is not blank or a '#' comment,
    first word, 40 Z85 characters. A secret key file readable by group or others
    is refused (chmod 600 it), and its content is never quoted."""
    with open(path, "rb") as f:
        if secret and stat.S_IMODE(os.fstat(f.fileno()).st_mode) & 0o077:
            raise ValueError("%s: a secret key file must not be readable by others "
                             "(mode %03o; chmod 600 it)"
                             % (path, stat.S_IMODE(os.fstat(f.fileno()).st_mode)))
        for lineno, raw in enumerate(f, 1):
            line = raw.decode("utf-8", "replace").strip()
            if not line or line.startswith("#"):
                continue
            key = line.split()[0]
            if len(key) != KEY_LEN or not set(key) <= Z85:
                raise ValueError("%s:%d: expected a %d-character Z85 key"
                                 % (path, lineno, KEY_LEN))
            return key.encode("ascii")
    raise ValueError("%s: no key in the file" % path)


def curve_keys(server_key_file, secret_file):
    """(server public, client public, client secret) for a CURVE client, or None."""
    if not server_key_file and not secret_file:
        return None
    if not server_key_file or not secret_file:
        raise ValueError("CURVE needs both --curve-server-key and --curve-secret")
    if not zmq.has("curve"):
        raise ValueError("this libzmq was built without CURVE")
    server = read_key(server_key_file)
    secret = read_key(secret_file, secret=True)
    try:
        public = zmq.curve_public(secret)
    except zmq.ZMQError as exc:
        raise ValueError("%s: not a CURVE secret key (%s)" % (secret_file, exc)) from None
    return server, public, secret


def make_socket(ctx, kind, endpoints, curve, timeout_ms):
    """A socket connected to every endpoint, with CURVE when `curve` is set.
    A send waits at most timeout_ms for an engine to take it (zmq.Again)."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    if len(endpoints) > 1:
        # Deal requests out to connected engines only: a request queued for an
        # engine that is away would wait there while the others could answer.
        sock.setsockopt(zmq.IMMEDIATE, 1)
    if curve:
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = curve
    monitor = None
    if len(endpoints) > 1:
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    for endpoint in endpoints:
        sock.connect(endpoint)
    if monitor is not None:
        # Connections complete one by one; a batch sent at once would all go to
        # the first engine. Wait a little for the others (an engine that is
        # down only costs this wait).
        wait_connected(monitor, len(endpoints), min(CONNECT_WAIT_MS, timeout_ms))
        sock.disable_monitor()
        monitor.close()
    return sock


CONNECT_WAIT_MS = 300


def wait_connected(monitor, count, wait_ms):
    """Waits until `count` handshakes succeeded or wait_ms passed."""
    deadline = time.monotonic() + wait_ms / 1000.0
    while count > 0:
        left = int((deadline - time.monotonic()) * 1000)
        if left <= 0 or not monitor.poll(left):
            return
        monitor.recv_multipart()  # one event: [event id + value, endpoint]
        count -= 1


def build_request(op, features, req_id):
    """The request map: v first (so an old engine reports the version), id, op, features."""
    if op not in OPS:
        raise ValueError("unknown op %r (expected one of %s)" % (op, ", ".join(OPS)))
    body = {"v": PROTOCOL_VERSION, "id": req_id, "op": op}
    for key, value in features.items():
        if key == "op" or value is None:
            continue
        want = FEATURE_TYPES.get(key)
        if want is None:
            raise ValueError("unknown feature key %r" % key)
        # bool is a subclass of int in Python: keep counts from being booleans.
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ValueError("%s: wrong type %s" % (key, type(value).__name__))
        body[key] = value
    if op in ("route", "explain") and "prompt_tokens" not in body:
        raise ValueError("prompt_tokens is required for %s" % op)
    if op == "report":
        if not body.get("attempts"):
            raise ValueError("attempts is required for report")
        # Without ack a report that is taken gets no reply: this example
        # waits for one reply per line, so it asks for the acknowledgement.
        body.setdefault("ack", True)
    return msgpack.packb(body, use_bin_type=True)


def parse_reply(frame):
    """Decodes and checks one reply frame; returns the map."""
    try:
        reply = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError("reply is not msgpack: %s" % exc) from None
    if not isinstance(reply, dict):
        raise ProtocolError("reply is not a map")
    if reply.get("v") != PROTOCOL_VERSION:
        raise ProtocolError("reply speaks protocol version %r" % reply.get("v"))
    if not isinstance(reply.get("ok"), bool):
        raise ProtocolError("reply has no boolean 'ok'")
    if not reply["ok"]:
        err = reply.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), str):
            raise ProtocolError("ok=false without error.code")
    return reply


def features_from_args(args):
    feats = {
        "model": args.model,
        "prompt_tokens": args.prompt_tokens,
        "output_tokens": args.output_tokens,
        "images": args.images,
        "vision": args.vision or None,
        "tools": args.tools or None,
        "json": args.json or None,
        "hints": args.hint or None,
        "budget_usd": args.budget,
        "group": args.group,
        "text": args.text,
    }
    if args.meta:
        meta = {}
        for item in args.meta:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError("--meta wants KEY=VALUE, got %r" % item)
            meta[key] = value
        feats["meta"] = meta
    return feats


def read_requests(path, default_op):
    """(op, features) per non-empty line of a JSON-lines file."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                feats = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError("%s:%d: %s" % (path, lineno, exc)) from None
            if not isinstance(feats, dict):
                raise ValueError("%s:%d: expected a JSON object" % (path, lineno))
            out.append((feats.get("op", default_op), feats))
    return out


def run_req(ctx, endpoints, jobs, timeout_ms, curve):
    """REQ socket: one request at a time (ZeroMQ adds the delimiter). A REQ
    socket cannot send again before it receives: no resend."""
    sock = make_socket(ctx, zmq.REQ, endpoints, curve, timeout_ms)
    replies = []
    for req_id, frame in jobs:
        try:
            sock.send(frame)
        except zmq.Again:  # no engine connected in time
            replies.append((req_id, None))
            break
        if not sock.poll(timeout_ms):
            replies.append((req_id, None))
            break  # a REQ socket cannot send again before it receives
        replies.append((req_id, parse_reply(sock.recv())))
    sock.close()
    return replies


def run_dealer(ctx, endpoints, jobs, timeout_ms, delimiter, curve, resend_ms, once=()):
    """DEALER socket: every request in flight at once, replies matched by id.
    What is still unanswered after resend_ms (then 2x, 4x ...) is sent again,
    except the ids in `once` (reloads)."""
    sock = make_socket(ctx, zmq.DEALER, endpoints, curve, timeout_ms)
    frames_of = dict(jobs)

    def send(frame):
        if delimiter:
            sock.send_multipart([b"", frame])
        else:
            sock.send(frame)

    pending = {req_id for req_id, _ in jobs}
    got = {}
    now = time.monotonic()
    deadline = now + timeout_ms / 1000.0
    interval = resend_ms / 1000.0
    next_resend = now + interval if resend_ms > 0 else float("inf")
    for _, frame in jobs:
        try:
            send(frame)
        except zmq.Again:  # no engine took it in time (a resend may still go out)
            break
    while pending:
        now = time.monotonic()
        if now >= deadline:
            break
        if now >= next_resend:
            try:
                for req_id in sorted(pending - set(once)):
                    send(frames_of[req_id])
            except zmq.Again:
                break
            interval *= 2
            next_resend = now + interval
        left_ms = int((min(deadline, next_resend) - now) * 1000) + 1
        if not sock.poll(left_ms):
            continue
        frames = sock.recv_multipart()
        if delimiter:
            if len(frames) != 2 or frames[0] != b"":
                raise ProtocolError("expected an empty delimiter then the reply")
        elif len(frames) != 1:
            raise ProtocolError("expected one reply frame, got %d" % len(frames))
        reply = parse_reply(frames[-1])
        req_id = reply.get("id")
        if req_id in pending:
            pending.discard(req_id)
            got[req_id] = reply
        # A reply without a known id (a frame too broken to carry one), or the
        # late twin of a resent request, is ignored.
    sock.close()
    return [(req_id, got.get(req_id)) for req_id, _ in jobs]


def main(argv=None):
    p = argparse.ArgumentParser(description="Ask hpp-engine for routing decisions.")
    p.add_argument("--engine", required=True, action="append",
                   help="engine endpoint, e.g. tcp://127.0.0.1:5555; repeat it for several "
                   "engines (one socket connected to all)")
    p.add_argument("--curve-server-key", metavar="FILE",
                   help="the engines' CURVE public key file (with --curve-secret)")
    p.add_argument("--curve-secret", metavar="FILE",
                   help="this client's CURVE secret key file, mode 0600")
    p.add_argument("--resend-ms", type=int, default=100,
                   help="dealer shapes: send a request again, same id, when unanswered after "
                   "this long, then doubling (0: never; default 100)")
    p.add_argument("--op", default="route", choices=OPS)
    p.add_argument("--socket", default="dealer", choices=("req", "dealer", "dealer-delim"),
                   help="client socket shape (PROTOCOL.md, Frames)")
    p.add_argument("--requests", metavar="FILE", help="JSON lines of features, pipelined")
    p.add_argument("--timeout-ms", type=int, default=2000)
    p.add_argument("--model")
    p.add_argument("--prompt-tokens", type=int)
    p.add_argument("--output-tokens", type=int)
    p.add_argument("--images", type=int)
    p.add_argument("--vision", action="store_true")
    p.add_argument("--tools", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--hint", action="append")
    p.add_argument("--budget", type=float, help="budget in USD")
    p.add_argument("--group")
    p.add_argument("--text")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE")
    args = p.parse_args(argv)

    try:
        curve = curve_keys(args.curve_server_key, args.curve_secret)
        if args.requests:
            work = read_requests(args.requests, args.op)
        else:
            feats = features_from_args(args)
            if args.op in ("route", "explain") and feats["prompt_tokens"] is None:
                feats["prompt_tokens"] = 0
            work = [(args.op, feats)]
        ids = itertools.count(1)
        jobs = [(i, build_request(op, feats, i)) for (op, feats), i in zip(work, ids)]
        # A reload is not a question: sending it twice would reload twice;
        # a report sent twice would count its attempts twice.
        once = {i for (op, _), i in zip(work, itertools.count(1)) if op in ("reload", "report")}
    except (OSError, ValueError) as exc:
        print("gateway: %s" % exc, file=sys.stderr)
        return 2

    ctx = zmq.Context()
    try:
        if args.socket == "req":
            replies = run_req(ctx, args.engine, jobs, args.timeout_ms, curve)
        else:
            replies = run_dealer(ctx, args.engine, jobs, args.timeout_ms,
                                 args.socket == "dealer-delim", curve, args.resend_ms, once)
    except ProtocolError as exc:
        print("gateway: protocol error: %s" % exc, file=sys.stderr)
        return 1
    finally:
        ctx.term()

    status = 0
    for req_id, reply in replies:
        if reply is None:
            print(json.dumps({"id": req_id, "timeout": True}))
            status = 1
            continue
        print(json.dumps(reply, ensure_ascii=False, sort_keys=False))
        if not reply["ok"]:
            status = 1
    if len(replies) < len(jobs):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
