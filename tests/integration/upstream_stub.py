#!/usr/bin/env python3
"""upstream_stub.py - an OpenAI-compatible upstream stand-in for the sidecar tests.

Listens on 127.0.0.1 (port 0 = ephemeral) and prints
"upstream_stub.py: ready on 127.0.0.1:PORT" to stderr once bound.

POST .../chat/completions records the request (path, headers, JSON body) and
answers like OpenAI: a chat.completion whose `model` is the model it was sent
and whose text is "echo <model>", or, with "stream": true, Server-Sent Events
(role chunk, two content chunks, finish chunk, [DONE]) with a pause of
--stream-gap-ms between the first content chunk and the rest, chunked encoding.
Answers carry OpenAI's usage (USAGE below, with `cost` in USD as OpenRouter
returns it when started with --cost USD, 0 for a model id ending in :free);
a stream ends with a usage chunk
({"choices": [], "usage": ...}, every other chunk with "usage": null) only
when the request asked for it with stream_options.include_usage, as OpenAI's
does.

Control (for the tests, same port):
  POST /_control {"fail": {"MODEL": STATUS, ...}}  answer STATUS (402, 429, 500...)
                                                   with an OpenAI error for MODEL
  POST /_control {"cut": ["MODEL", ...]}            answers for MODEL stop early and the
                                                   connection is dropped: streamed ones after
                                                   the first event, plain ones halfway through
                                                   the Content-Length they announced
  POST /_control {"big_header": [LINES, BYTES]}     every answer to a chat completion
                                                   carries LINES extra headers X-Stub-Big-N
                                                   of BYTES bytes each (a provider or a
                                                   gateway gone wrong), until a reset
  POST /_control {"drop_reused": true}              a request that arrives on a kept-alive
                                                   connection that already served one is not
                                                   answered: the connection is closed (an
                                                   upstream whose keep-alive timeout passed)
  POST /_control {"reset": true}                    forget failures, cuts, big headers, drops
                                                   and requests
  GET  /_requests                                   JSON array of recorded requests
  GET  /_dropped                                    {"dropped": N}: requests dropped so
Stops on SIGTERM/SIGINT. Only the standard library is used.
"""
import argparse
import json
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.RLock()  # _json reads big_header under it too
STATE = {"fail": {}, "cut": set(), "requests": [], "big_header": None}
GAP = 0.0
COST = None
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
         "prompt_tokens_details": {"cached_tokens": 4},
         "completion_tokens_details": {"reasoning_tokens": 2}}


def usage(model):
    u = dict(USAGE)
    if COST is not None:
        # OpenRouter bills nothing for a :free model.
        u["cost"] = 0.0 if model.endswith(":free") else COST
    return u


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the tests read stderr for the ready line
        pass

    def _json(self, status, obj, extra=None, cut=False):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self._big_headers()
        self.end_headers()
        if cut:  # half the announced body, then the connection is gone
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)

    def _big_headers(self):
        with LOCK:
            big = STATE["big_header"]
        if big and self.path.endswith("/chat/completions"):
            lines, size = big
            for i in range(int(lines)):
                self.send_header("X-Stub-Big-%d" % i, "b" * int(size))

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on a big answer
            self.close_connection = True

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        if self.path == "/_requests":
            with LOCK:
                self._json(200, STATE["requests"])
            return
        if self.path == "/_dropped":
            with LOCK:
                self._json(200, {"dropped": STATE.get("dropped", 0)})
            return
        self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        raw = self._body()
        if self.path == "/_control":
            cmd = json.loads(raw or b"{}")
            with LOCK:
                if cmd.get("reset"):
                    STATE["fail"].clear()
                    STATE["cut"].clear()
                    STATE["requests"].clear()
                    STATE["big_header"] = None
                    STATE["drop_reused"] = False
                    STATE["dropped"] = 0
                if "drop_reused" in cmd:
                    STATE["drop_reused"] = bool(cmd["drop_reused"])
                if "big_header" in cmd:
                    STATE["big_header"] = cmd["big_header"]
                STATE["fail"].update(cmd.get("fail", {}))
                STATE["cut"].update(cmd.get("cut", []))
            self._json(200, {"ok": True})
            return
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
            return
        model = body.get("model", "")
        with LOCK:
            drop = STATE.get("drop_reused") and getattr(self, "served", 0) > 0
            if drop:
                STATE["dropped"] = STATE.get("dropped", 0) + 1
        self.served = getattr(self, "served", 0) + 1
        if drop:  # closed while the client thought it idle: no answer at all
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        with LOCK:
            STATE["requests"].append(
                {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                 "body": body})
            status = STATE["fail"].get(model)
            cut = model in STATE["cut"]
        if status:
            kind = {402: "insufficient_quota", 429: "rate_limit_exceeded"}.get(status, "server_error")
            self._json(int(status), {"error": {"message": "stub failure for " + model,
                                               "type": kind, "code": kind}},
                       {"X-Stub-Status": str(status)})
            return
        if body.get("stream"):
            opts = body.get("stream_options")
            self.with_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            self._stream(model, cut)
            return
        self._json(200, {
            "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "echo " + model}}],
            "usage": usage(model),
        }, {"X-Stub-Model": model}, cut)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, model, delta, finish=None):
        obj = {"id": "chatcmpl-stub", "object": "chat.completion.chunk",
               "created": int(time.time()), "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if self.with_usage:
            obj["usage"] = None
        self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _stream(self, model, cut=False):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Stub-Model", model)
        self._big_headers()
        self.end_headers()
        self._event(model, {"role": "assistant", "content": ""})
        if cut:  # a provider that dies mid-answer: no final chunk, connection gone
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._event(model, {"content": "echo "})
        time.sleep(GAP)  # the client must see the events above before this ends
        self._event(model, {"content": model})
        self._event(model, {}, "stop")
        if self.with_usage:
            obj = {"id": "chatcmpl-stub", "object": "chat.completion.chunk",
                   "created": int(time.time()), "model": model, "choices": [], "usage": usage(model)}
            self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    global GAP, COST
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (default 127.0.0.1:0)")
    ap.add_argument("--stream-gap-ms", type=int, default=0,
                    help="pause inside a streamed answer, to prove streaming")
    ap.add_argument("--cost", type=float, default=None,
                    help="usage.cost (USD) in every answer, as OpenRouter returns it")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    GAP = a.stream_gap_ms / 1000.0
    COST = a.cost
    srv = ThreadingHTTPServer((host, int(port)), Handler)
    srv.daemon_threads = True

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("upstream_stub.py: ready on %s:%d" % (host, srv.server_address[1]), file=sys.stderr,
          flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
