#!/usr/bin/env python3
"""ledger_client.py ENDPOINT - a gateway stand-in for tests/integration/ledger.sh.

Reads one request per line on stdin, each a JSON object (v and id are
added), sends it to the engine over ZeroMQ (DEALER) and prints the reply as
one JSON line. A request with "_noreply": true is sent without waiting (a
report without ack). Exits 1 when the engine does not answer in 10 s.
"""
import json
import sys

import msgpack
import zmq

sock = zmq.Context.instance().socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 2000)
sock.connect(sys.argv[1])
rid = 0
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    body = json.loads(line)
    noreply = body.pop("_noreply", False)
    rid += 1
    body.update(v=1, id=rid)
    sock.send_multipart([b"", msgpack.packb(body)])
    if noreply:
        print("{}", flush=True)
        continue
    if not sock.poll(10000):
        sys.exit("no reply to %r" % body)
    reply = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
    print(json.dumps(reply, sort_keys=True), flush=True)
