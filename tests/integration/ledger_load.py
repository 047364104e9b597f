#!/usr/bin/python3
"""ledger_load.py - spends one API key down to nothing through several
hpp-engines sharing one ledger, and says exactly what it was charged.

  ledger_load.py spend --engine EP [--engine EP ...] --key sha256:HEX
                 --model ID [--workers N] [--max-decisions N]
      N workers per engine (default 4), each a DEALER to its engine, loop:
      route (the key, the model, a prompt), then report the decision's one
      attempt as answered (200) with a cost_usd of at most the reservation
      (a whole number of microdollars, so the float the wire carries turns
      back into the same picodollars), with ack, so the settlement is done
      when the ack comes. A worker stops at its first insufficient_balance.
      Then one worker spends what is left at each reservation's full
      estimate until refused, so the key ends spent to zero. Prints one
      JSON line: decisions, settled_pd (the sum of the costs reported),
      max_reserved_pd (the largest single reservation), nodes (decisions by
      the node id in their decision ids), refusals by code, errors. Exits 1 on any reply other than a decision or
      insufficient_balance, or past --max-decisions (default 20000).
  ledger_load.py op EP JSON
      Sends one request (the JSON object, v and id added) and prints the
      reply as one JSON line.

Only loopback endpoints are accepted. Uses pyzmq and msgpack (/usr/bin/python3).
"""
import argparse
import json
import random
import sys
import threading

import msgpack
import zmq

TIMEOUT_MS = 10000


def loopback(ep):
    if not ep.startswith(("tcp://127.", "tcp://localhost:", "ipc://")):
        raise SystemExit(f"ledger_load.py: {ep}: loopback endpoints only")
    return ep


class Conn:
    def __init__(self, ctx, ep):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(loopback(ep))
        self.next_id = 1

    def call(self, body):
        body = dict(body, v=1, id=self.next_id)
        self.next_id += 1
        self.sock.send(msgpack.packb(body))
        if not self.sock.poll(TIMEOUT_MS):
            raise RuntimeError(f"no reply in {TIMEOUT_MS} ms to {body['op']}")
        rep = msgpack.unpackb(self.sock.recv(), raw=False)
        if rep.get("id") != body["id"]:
            raise RuntimeError(f"reply id {rep.get('id')} for request {body['id']}")
        return rep

    def close(self):
        self.sock.close()


class Totals:
    def __init__(self):
        self.lock = threading.Lock()
        self.decisions = 0
        self.settled_pd = 0
        self.max_reserved_pd = 0
        self.refusals = {}
        self.errors = []
        self.nodes = {}  # decisions per node id (a decision id's top 16 bits)


def one(conn, args, totals, rng, full):
    """One decision and its report. Returns False when refused."""
    rep = conn.call({"op": "route", "model": args.model, "key": args.key,
                     "prompt_tokens": 2000, "output_tokens": 500})
    if not rep.get("ok"):
        code = rep.get("error", {}).get("code", "?")
        with totals.lock:
            totals.refusals[code] = totals.refusals.get(code, 0) + 1
        if code != "insufficient_balance":
            raise RuntimeError(f"route refused: {rep.get('error')}")
        return False
    reserved = rep["reserved_pd"]
    if reserved <= 0:
        raise RuntimeError(f"a paid route reserved {reserved} pd")
    # A whole number of microdollars (10^6 pd) at most the reservation.
    micros = reserved // 1000000
    cost_pd = micros * 1000000 if full else rng.randint(0, micros) * 1000000
    ack = conn.call({"op": "report", "ack": True, "attempts": [{
        "decision": rep["decision_id"], "model": rep["model"], "provider": rep["provider"],
        "status": 200, "prompt_tokens": 2000, "completion_tokens": 500,
        "cost_usd": cost_pd / 1e12}]})
    if not ack.get("ok") or ack.get("attempts") != 1:
        raise RuntimeError(f"report not taken: {ack}")
    node = str(rep["decision_id"] >> 48)
    with totals.lock:
        totals.nodes[node] = totals.nodes.get(node, 0) + 1
        totals.decisions += 1
        totals.settled_pd += cost_pd
        totals.max_reserved_pd = max(totals.max_reserved_pd, reserved)
        if totals.decisions > args.max_decisions:
            raise RuntimeError(f"more than {args.max_decisions} decisions: the key never ran out")
    return True


def worker(ctx, ep, args, totals, seed):
    conn = Conn(ctx, ep)
    rng = random.Random(seed)
    try:
        while one(conn, args, totals, rng, False):
            pass
    except Exception as e:  # noqa: BLE001 - every failure is reported
        with totals.lock:
            totals.errors.append(f"{ep}: {e}")
    finally:
        conn.close()


def spend(args):
    ctx = zmq.Context()
    totals = Totals()
    threads = []
    for i, ep in enumerate(args.engine):
        for w in range(args.workers):
            t = threading.Thread(target=worker, args=(ctx, ep, args, totals, 1000 * i + w))
            t.start()
            threads.append(t)
    for t in threads:
        t.join()
    if not totals.errors:
        # What costs under their estimates left: spend it at full estimates.
        conn = Conn(ctx, args.engine[-1])
        try:
            while one(conn, args, totals, random.Random(7), True):
                pass
        except Exception as e:  # noqa: BLE001
            totals.errors.append(f"tail: {e}")
        conn.close()
    ctx.term()
    print(json.dumps({"decisions": totals.decisions, "settled_pd": totals.settled_pd,
                      "max_reserved_pd": totals.max_reserved_pd, "nodes": totals.nodes,
                      "refusals": totals.refusals, "errors": totals.errors}))
    return 1 if totals.errors else 0


def op(args):
    ctx = zmq.Context()
    conn = Conn(ctx, args.endpoint)
    try:
        rep = conn.call(json.loads(args.json))
    finally:
        conn.close()
        ctx.term()
    print(json.dumps(rep))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("spend")
    s.add_argument("--engine", action="append", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--workers", type=int, default=4)
    s.add_argument("--max-decisions", type=int, default=20000)
    o = sub.add_parser("op")
    o.add_argument("endpoint")
    o.add_argument("json")
    args = p.parse_args()
    return spend(args) if args.cmd == "spend" else op(args)


if __name__ == "__main__":
    sys.exit(main())
