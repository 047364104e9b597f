"""The Python client of hpp-engine: one ZeroMQ DEALER connected to 1 to 8
engines, msgpack requests and replies (proto/PROTOCOL.md), pipelining by id.

Needs pyzmq and msgpack (Debian: python3-zmq, python3-msgpack).

    from hpprouter import Client

    with Client("tcp://127.0.0.1:5555") as c:
        d = c.route(prompt_tokens=1200, hints=["code"], budget_usd=0.05)
        print(d["model"], d["provider"], d["cost_usd"])

Behaviour, as the C library's (proto/hpprouter/client.h):

* With several engines each request goes to the next connected one in turn
  (ZMQ_IMMEDIATE: never queued for an engine that is away).
* The synchronous calls (route, explain, models, ping, stats, reload,
  request) send an unanswered request again, with the same id, after
  resend_ms, then 2x, 4x ... that (at most 2 s apart), to the next engine,
  until the reply comes or the timeout ends. The first reply wins; a later
  twin is dropped and counted (counters()["duplicates"]). A reload is never
  sent twice.
* submit() sends once and returns the id; receive(id) waits for that reply,
  keeping replies to other ids for their own receive (at most STASH of them,
  the oldest dropped first and counted).
* An engine's ok=false reply raises EngineError (with .code, .message and
  .reply); no reply in time raises TimeoutError (the builtin's subclass
  hpprouter.Timeout); a reply that is not protocol raises ProtocolError.

A client is not thread-safe (neither is a ZeroMQ socket): one per thread.
"""

import collections
import itertools
import os
import stat
import time

import msgpack
import zmq

PROTOCOL_VERSION = 1
OPS = ("route", "explain", "models", "stats", "reload", "ping", "report")
MAX_ENDPOINTS = 8
STASH = 1024
HEARTBEAT_MS = 500
RESEND_MS = 100
RESEND_MAX_MS = 2000
FORGET = 256  # ids of resent requests remembered, to drop their late twins
KEY_LEN = 40  # Z85 characters of a CURVE key
_Z85 = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 ".-:+=^!/*?&<>()[]{}@%$#")

# Feature keys (PROTOCOL.md "Features") and the Python types they take.
FEATURES = {
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
    "providers_order": list,
    "providers_only": list,
    "providers_ignore": list,
    "allow_fallbacks": bool,
    "providers_sort": str,
    "max_price": dict,
    "models": list,
    "preferred_max_latency": (int, float),
    "preferred_min_throughput": (int, float),
    "attempts": list,  # report
    "ack": bool,  # report
}

# Keys of a report's attempt (PROTOCOL.md "Reports") and their types.
ATTEMPT = {
    "decision": int,
    "model": str,
    "provider": str,
    "status": int,
    "error": str,
    "latency_ms": (int, float),
    "ttft_ms": (int, float),
    "tokens_per_s": (int, float),
    "prompt_tokens": int,
    "completion_tokens": int,
    "cached_tokens": int,
    "reasoning_tokens": int,
    "cost_usd": (int, float),
}
ATTEMPT_ERRORS = ("timeout", "connect", "tls", "reset", "protocol", "canceled")
MAX_ATTEMPTS = 64


def check_attempt(i, a):
    """Raises ValueError naming attempts[i].KEY when `a` breaks PROTOCOL.md's rules
    (the engine checks them again)."""
    if not isinstance(a, dict):
        raise ValueError("attempts[%d]: expected a dict" % i)
    for key, value in a.items():
        want = ATTEMPT.get(key)
        if want is None:
            raise ValueError("attempts[%d]: unknown key %r" % (i, key))
        if value is not None and (not isinstance(value, want) or isinstance(value, bool)):
            raise ValueError("attempts[%d].%s: expected %s, got %s"
                             % (i, key, getattr(want, "__name__", "number"), type(value).__name__))
    for key in ("model", "provider"):
        if not a.get(key):
            raise ValueError("attempts[%d].%s: required" % (i, key))
    if (a.get("status") is None) == (a.get("error") is None):
        raise ValueError("attempts[%d]: exactly one of status and error" % i)
    if a.get("error") is not None and a["error"] not in ATTEMPT_ERRORS:
        raise ValueError("attempts[%d].error: one of %s" % (i, ", ".join(ATTEMPT_ERRORS)))
    if a.get("status") is not None and not 100 <= a["status"] <= 599:
        raise ValueError("attempts[%d].status: 100 .. 599" % i)


class Error(Exception):
    """Every error of this module."""


class EngineError(Error):
    """The engine answered ok=false: .code ("unknown_model" ...), .message, .reply."""

    def __init__(self, reply):
        err = reply.get("error") or {}
        self.code = err.get("code", "")
        self.message = err.get("message", "")
        self.reply = reply
        super().__init__("%s: %s" % (self.code, self.message))


class ProtocolError(Error):
    """A reply that does not follow PROTOCOL.md."""


class Timeout(Error, TimeoutError):
    """No reply (or no room to send) in time."""


def read_key(path, secret=False):
    """The key of a key file (hpp-engine --curve-keygen): its first line that
    is not blank or a '#' comment, first word, 40 Z85 characters. A secret
    key file that group or others can read is refused; its content is never
    quoted."""
    with open(path, "rb") as f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if secret and mode & 0o077:
            raise ValueError("%s: a secret key file must not be readable by others "
                             "(mode %03o; chmod 600 it)" % (path, mode))
        for lineno, raw in enumerate(f, 1):
            line = raw.decode("utf-8", "replace").strip()
            if not line or line.startswith("#"):
                continue
            key = line.split()[0]
            if len(key) != KEY_LEN or not set(key) <= _Z85:
                raise ValueError("%s:%d: expected a %d-character Z85 key"
                                 % (path, lineno, KEY_LEN))
            return key.encode("ascii")
    raise ValueError("%s: no key in the file" % path)


def encode_request(op, features=None, req_id=None):
    """The request frame: v first (an old engine then reports the version), id,
    op, then the features. Unknown keys and wrong types raise ValueError."""
    if op not in OPS:
        raise ValueError("unknown op %r (expected one of %s)" % (op, ", ".join(OPS)))
    body = {"v": PROTOCOL_VERSION}
    if req_id is not None:
        if isinstance(req_id, bool) or not isinstance(req_id, (int, str)):
            raise ValueError("id: an integer or a string")
        body["id"] = req_id
    body["op"] = op
    for key, value in (features or {}).items():
        if value is None:
            continue
        want = FEATURES.get(key)
        if want is None:
            raise ValueError("unknown feature %r" % key)
        # bool is an int in Python: keep counts from being booleans.
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ValueError("%s: expected %s, got %s"
                             % (key, getattr(want, "__name__", "number"), type(value).__name__))
        body[key] = value
    if op in ("route", "explain") and "prompt_tokens" not in body:
        raise ValueError("prompt_tokens is required for %s" % op)
    return msgpack.packb(body, use_bin_type=True)


def decode_reply(frame):
    """One reply frame as a dict, checked: v, a boolean ok, error.code when not ok."""
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


class Client:
    """A client of one or several engines (see the module's documentation).

    endpoints: one endpoint string or a list of 1 to 8.
    timeout_ms: the default time limit of each call.
    curve_server_key, curve_secret_key: key files (the engines' public key,
        this client's secret key, mode 0600), both or neither.
    heartbeat_ms: ZMTP heartbeat (an engine silent for 3x is dropped), 0 = off.
    resend_ms: first resend of an unanswered synchronous call, 0 = never.
    context: a zmq.Context to share; by default the process-wide instance.
    """

    def __init__(self, endpoints, *, timeout_ms=1000, curve_server_key=None,
                 curve_secret_key=None, heartbeat_ms=HEARTBEAT_MS, resend_ms=RESEND_MS,
                 context=None):
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        endpoints = list(endpoints)
        if not endpoints:
            raise ValueError("no endpoint")
        if len(endpoints) > MAX_ENDPOINTS:
            raise ValueError("%d endpoints, at most %d" % (len(endpoints), MAX_ENDPOINTS))
        if any(not isinstance(e, str) or not e for e in endpoints):
            raise ValueError("an endpoint is empty")
        if bool(curve_server_key) != bool(curve_secret_key):
            raise ValueError("CURVE needs both the engines' public key file and this "
                             "client's secret key file")
        if not 0 <= heartbeat_ms <= 600000:
            raise ValueError("heartbeat_ms: expected 0 (off) to 600000")
        if resend_ms < 0:
            raise ValueError("resend_ms: expected 0 (never) or more")
        self.timeout_ms = timeout_ms
        self.resend_ms = resend_ms
        self._ids = itertools.count(1)
        self._stash = collections.OrderedDict()  # id -> reply, oldest first
        self._forget = collections.OrderedDict()  # ids of resent requests
        self._counters = {"dropped": 0, "resent": 0, "duplicates": 0}
        ctx = context or zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            if len(endpoints) > 1:
                sock.setsockopt(zmq.IMMEDIATE, 1)
            if heartbeat_ms > 0:
                sock.setsockopt(zmq.HEARTBEAT_IVL, heartbeat_ms)
                sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * heartbeat_ms)
                sock.setsockopt(zmq.HEARTBEAT_TTL, min(3 * heartbeat_ms, 0xffff * 100))
            if curve_server_key:
                self._curve(sock, curve_server_key, curve_secret_key)
            for e in endpoints:
                sock.connect(e)
        except (zmq.ZMQError, ValueError, OSError) as exc:
            sock.close(0)
            raise ValueError(str(exc)) from None
        self._sock = sock
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)

    @staticmethod
    def _curve(sock, server_file, secret_file):
        if not zmq.has("curve"):
            raise ValueError("this libzmq was built without CURVE")
        server = read_key(server_file)
        secret = read_key(secret_file, secret=True)
        try:
            public = zmq.curve_public(secret)
        except zmq.ZMQError as exc:
            raise ValueError("%s: not a CURVE secret key (%s)" % (secret_file, exc)) from None
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server, public, secret

    # Lifetime ---------------------------------------------------------------

    def close(self):
        """Closes the socket; pending requests are abandoned. Idempotent."""
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def counters(self):
        """What the client did on its own: dropped, resent, duplicates."""
        return dict(self._counters)

    # Synchronous calls --------------------------------------------------------

    def route(self, features=None, *, timeout_ms=None, **kw):
        """One decision: the reply dict (model, provider, provider_model, tier,
        rule, cost_usd, cost_pusd, output_tokens, fallbacks). Features as a
        dict and/or keywords (prompt_tokens is required)."""
        return self.request("route", dict(features or {}, **kw), timeout_ms=timeout_ms)

    def explain(self, features=None, *, timeout_ms=None, **kw):
        """The decision plus its trace."""
        return self.request("explain", dict(features or {}, **kw), timeout_ms=timeout_ms)

    def models(self, *, timeout_ms=None):
        """The catalog: a list of model dicts."""
        return self.request("models", timeout_ms=timeout_ms)["models"]

    def ping(self, *, timeout_ms=None):
        """policy_version, policy_hash and the engine's version."""
        return self.request("ping", timeout_ms=timeout_ms)

    def stats(self, *, timeout_ms=None):
        """The engine's counters (an admin key under CURVE)."""
        return self.request("stats", timeout_ms=timeout_ms)

    def reload(self, *, timeout_ms=None):
        """Recompiles the policy and catalog (an admin key under CURVE); never resent."""
        return self.request("reload", timeout_ms=timeout_ms)

    def report(self, attempts, *, ack=False, timeout_ms=None):
        """Tells the engine how calls to endpoints went (PROTOCOL.md "Reports"):
        `attempts` is a list of 1 to 64 dicts (decision, model, provider, status
        or error, latency_ms, ttft_ms, tokens_per_s, the four token counts,
        cost_usd). Fire and forget: sent once (a resent report would count
        twice), and returns None at once, unless ack=True, which waits for the
        engine's answer and returns the count it took. A report the engine
        refuses is answered even without ack: that reply surfaces from a later
        receive_any() as ok=false; with ack it raises EngineError."""
        if not isinstance(attempts, (list, tuple)) or not 1 <= len(attempts) <= MAX_ATTEMPTS:
            raise ValueError("attempts: a list of 1 to %d attempts" % MAX_ATTEMPTS)
        for i, a in enumerate(attempts):
            check_attempt(i, a)
        clean = [{k: v for k, v in a.items() if v is not None} for a in attempts]
        body = {"attempts": clean}
        if not ack:
            self._send(encode_request("report", body, next(self._ids)), self._deadline(timeout_ms))
            return None
        body["ack"] = True
        deadline = self._deadline(timeout_ms)
        req_id = next(self._ids)
        self._send(encode_request("report", body, req_id), deadline)
        return self._recv(req_id, deadline)["attempts"]

    def request(self, op, features=None, *, id=None, timeout_ms=None):  # noqa: A002
        """Sends `op` and returns its reply, resending as described above."""
        deadline = self._deadline(timeout_ms)
        req_id = next(self._ids) if id is None else id
        frame = encode_request(op, features, req_id)
        self._forget.pop(req_id, None)
        self._send(frame, deadline)
        interval = 0 if op == "reload" else self.resend_ms
        sends = 1
        try:
            while True:
                wait = deadline
                if interval > 0:
                    wait = min(deadline, time.monotonic() + interval / 1000.0)
                try:
                    return self._recv(req_id, wait)
                except Timeout:
                    if wait >= deadline:
                        raise Timeout("no reply to %s in %d ms (sent %d times)"
                                      % (op, self._ms(timeout_ms), sends)) from None
                # No reply yet: the engine that took it may be gone; the next
                # one in turn gets the same bytes, the same id.
                self._send(frame, deadline)
                sends += 1
                self._counters["resent"] += 1
                interval = min(interval * 2, RESEND_MAX_MS)
        finally:
            if sends > 1:
                self._forget[req_id] = True
                while len(self._forget) > FORGET:
                    self._forget.popitem(last=False)

    # Pipelining ---------------------------------------------------------------

    def submit(self, op, features=None, *, id=None, timeout_ms=None):  # noqa: A002
        """Sends a request once without waiting; returns its id."""
        req_id = next(self._ids) if id is None else id
        frame = encode_request(op, features, req_id)
        self._forget.pop(req_id, None)
        self._send(frame, self._deadline(timeout_ms))
        return req_id

    def receive(self, req_id, *, timeout_ms=None):
        """The reply to a submitted request (EngineError when ok=false)."""
        return self._recv(req_id, self._deadline(timeout_ms))

    def receive_any(self, *, timeout_ms=None):
        """The next reply, whatever its id (kept replies first), ok or not."""
        if self._stash:
            return self._stash.popitem(last=False)[1]
        return self._recv(None, self._deadline(timeout_ms), raise_engine=False)

    # Internals ----------------------------------------------------------------

    def _ms(self, timeout_ms):
        return self.timeout_ms if timeout_ms is None else timeout_ms

    def _deadline(self, timeout_ms):
        ms = self._ms(timeout_ms)
        return float("inf") if ms is None or ms < 0 else time.monotonic() + ms / 1000.0

    @staticmethod
    def _left_ms(deadline):
        if deadline == float("inf"):
            return None
        return max(0, int((deadline - time.monotonic()) * 1000))

    def _check_open(self):
        if self._sock is None:
            raise Error("client is closed")

    def _send(self, frame, deadline):
        self._check_open()
        while True:
            try:
                self._sock.send(frame, zmq.DONTWAIT)
                return
            except zmq.Again:
                pass
            left = self._left_ms(deadline)
            if left == 0 or not self._sock.poll(left, zmq.POLLOUT):
                raise Timeout("send timed out (no engine connected?)")

    def _recv(self, req_id, deadline, raise_engine=True):
        self._check_open()
        if req_id is not None and req_id in self._stash:
            return self._result(self._stash.pop(req_id), raise_engine)
        while True:
            if not self._poller.poll(self._left_ms(deadline)):
                raise Timeout("receive timed out")
            frames = self._sock.recv_multipart()
            if len(frames) == 2 and frames[0] == b"":
                frames = frames[1:]  # an echoed empty delimiter
            if len(frames) != 1:
                raise ProtocolError("unexpected %d-frame reply" % len(frames))
            try:
                reply = decode_reply(frames[0])
            except ProtocolError:
                if req_id is None:
                    raise
                continue  # undecodable: cannot tell whose it is
            rid = reply.get("id")
            if rid in self._forget:
                self._counters["duplicates"] += 1  # the late twin of a reply delivered
                continue
            if req_id is None or rid == req_id:
                return self._result(reply, raise_engine)
            self._stash[rid] = reply
            if len(self._stash) > STASH:
                self._stash.popitem(last=False)
                self._counters["dropped"] += 1

    @staticmethod
    def _result(reply, raise_engine):
        if raise_engine and not reply["ok"]:
            raise EngineError(reply)
        return reply
