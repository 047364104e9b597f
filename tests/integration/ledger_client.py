#!/usr/bin/env python3
"""ledger_client.py [ENDPOINT] - a gateway stand-in for tests/integration/ledger.sh.

Reads one request per line on stdin, each a JSON object (v and id are
added), sends it to the engine over ZeroMQ (DEALER) and prints the reply as
one JSON line. A request with "_noreply": true is sent without waiting (a
report without ack) and answered "{}".

A line "@ENDPOINT" (re)connects to ENDPOINT when it is not the current one,
so one process serves a whole suite: starting Python and pyzmq for every
call cost the suite most of its time. When the engine does not answer in
10 s the reply line is {"error": {"code": "client_no_reply"}} and the
socket is made again, so a late reply cannot pass for the next one.
"""
import json
import sys

import msgpack
import zmq

ctx = zmq.Context.instance()
sock = None
endpoint = None


def connect(ep, linger=2000):
    """A fresh DEALER on ep; the old one keeps LINGER ms to deliver reports."""
    global sock, endpoint
    if sock is not None:
        sock.close(linger)
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.connect(ep)
    endpoint = ep


def answer(body, rid):
    """The reply to request rid: replies to earlier, timed out ones are dropped."""
    while sock.poll(10000):
        reply = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
        if not isinstance(reply, dict) or reply.get("id", rid) == rid:
            return reply
    connect(endpoint, 0)
    return {"error": {"code": "client_no_reply", "message": "no reply to %r" % body}}


if len(sys.argv) > 1:
    connect(sys.argv[1])
rid = 0
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    if line.startswith("@"):
        if line[1:] != endpoint:
            connect(line[1:])
        continue
    if sock is None:
        sys.exit("ledger_client.py: no endpoint (give one, or a line @ENDPOINT)")
    body = json.loads(line)
    noreply = body.pop("_noreply", False)
    rid += 1
    body.update(v=1, id=rid)
    sock.send_multipart([b"", msgpack.packb(body)])
    if noreply:
        print("{}", flush=True)
        continue
    print(json.dumps(answer(body, rid), sort_keys=True), flush=True)
